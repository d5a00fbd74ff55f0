/*
 * probe.c - drives the sim-pci preload library the way a tool would, with
 * the calls mstflint's tools do not make: a read-only view, a one-page
 * window, every refusal, a mapping of another file, a view left mapped at
 * exit. Run under sim-pci:
 *
 *   sim-pci --log LOG probe /sys/bus/pci/devices/0000:ca:00.0/resource0 [OTHER_FILE]
 *   sim-pci probe RESOURCE0 --hold      maps read-write, prints "holding", sleeps
 *
 * CR space is big-endian: values are swapped as mstflint's mtcr swaps them.
 * Exit code 0 when every check passed.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1u << 20)
#define PAGE 4096u

static int failures;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok)
        failures++;
}

static uint32_t cr_read(volatile void *view, uint32_t offset)
{
    return be32toh(*(volatile uint32_t *)((volatile char *)view + offset));
}

static void cr_write(volatile void *view, uint32_t offset, uint32_t value)
{
    *(volatile uint32_t *)((volatile char *)view + offset) = htobe32(value);
}

/* A refused mmap: MAP_FAILED with `want` in errno. */
static void refused(int fd, size_t len, int prot, int flags, off_t off, int want, const char *what)
{
    errno = 0;
    void *p = mmap(NULL, len, prot, flags, fd, off);
    char line[160];
    snprintf(line, sizeof line, "%s: refused with %s (got %s)", what, strerrorname_np(want),
             p == MAP_FAILED ? strerrorname_np(errno) : "a mapping");
    check(p == MAP_FAILED && errno == want, line);
    if (p != MAP_FAILED)
        munmap(p, len);
}

/* How a child that writes `value` at `offset` through `view` ended. */
static int write_in_child(volatile void *view, uint32_t offset, uint32_t value)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        cr_write(view, offset, value);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: probe RESOURCE0 [OTHER_FILE | --hold]\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_SYNC);
    if (fd < 0) {
        perror(argv[1]);
        return 2;
    }

    if (argc > 2 && strcmp(argv[2], "--hold") == 0) {
        volatile void *rw = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (rw == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        cr_write(rw, 0x2000, 0x600DF00D);
        printf("holding\n");
        fflush(stdout);
        for (;;)
            pause();
    }

    /* A read-only view: the id reads, a write faults and changes nothing. */
    volatile void *ro = mmap(NULL, MIB, PROT_READ, MAP_SHARED, fd, 0);
    check(ro != MAP_FAILED, "a read-only view of all of CR space");
    if (ro == MAP_FAILED)
        return 1;
    check(cr_read(ro, 0xF0014) == 0x000101F5, "it reads the ConnectX-3 id 0x000101f5 at 0xf0014");
    int sig = write_in_child(ro, 0x1000, 0xBAD0BAD0);
    check(sig == SIGSEGV || sig == SIGBUS, "a write through it faults");
    check(cr_read(ro, 0x1000) != 0xBAD0BAD0, "and does not reach CR space");

    /* A read-write view of one page: what it writes, the reader sees. */
    volatile void *rw = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0x1000);
    check(rw != MAP_FAILED, "a read-write view of the page at 0x1000");
    if (rw == MAP_FAILED)
        return 1;
    cr_write(rw, 0, 0xA5A5F00D);
    check(cr_read(ro, 0x1000) == 0xA5A5F00D, "a write through it reaches CR space and the reader");

    /* Refused, each before anything is mapped. */
    refused(fd, PAGE, PROT_READ, MAP_PRIVATE, 0, EINVAL, "a private mapping of device memory");
    refused(fd, PAGE, PROT_READ | PROT_EXEC, MAP_SHARED, 0, EINVAL, "an executable mapping");
    refused(fd, PAGE, PROT_READ, MAP_SHARED, MIB, EINVAL, "a window past CR space");
    refused(fd, 2 * MIB, PROT_READ, MAP_SHARED, 0, EINVAL, "a window larger than CR space");
    refused(fd, PAGE, PROT_READ, MAP_SHARED, 0x800, EINVAL, "an offset that is not page aligned");

    /* A view goes whole or not at all. */
    errno = 0;
    int rc = munmap((char *)ro + PAGE, PAGE);
    check(rc == -1 && errno == EINVAL, "unmapping part of a view is refused");
    check(cr_read(ro, 0xF0014) == 0x000101F5, "and the view still reads");
    check(munmap((void *)rw, PAGE) == 0, "the read-write view unmaps");
    check(munmap((void *)ro, MIB) == 0, "the read-only view unmaps");

    /* Any other file is the C library's, untouched. */
    if (argc > 2) {
        int other = open(argv[2], O_RDONLY);
        void *p = other < 0 ? MAP_FAILED : mmap(NULL, 4, PROT_READ, MAP_SHARED, other, 0);
        check(p != MAP_FAILED && memcmp(p, "file", 4) == 0, "another file maps as it always does");
        if (p != MAP_FAILED)
            munmap(p, 4);
        if (other >= 0)
            close(other);
    }

    /* Left mapped on purpose: the handle's cleanup at exit unmaps it. */
    volatile void *left = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check(left != MAP_FAILED, "a view left mapped at exit");

    printf("probe: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
