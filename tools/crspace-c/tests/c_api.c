/* c_api.c BAR-FILE DEVICE-FILE: the C API of crspace
 * (include/mlnx_hca_crspace.h) as a C tool author uses it, against the
 * simulated ConnectX-3 whose CR space is BAR-FILE and the simulated
 * ConnectX-4 whose state is DEVICE-FILE (fresh ones). Prints one ok/FAIL line per check and
 * "N passed, M failed" last; exits with the number of failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mlnx_hca_crspace.h"

static int passed, failed;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok) passed++; else failed++;
}

/* A call that must fail with `want`, leaving a message that contains `text`. */
static void refused(int got, int want, const char *text, const char *what) {
    char line[512];
    const char *message = mlnx_hca_last_error();
    snprintf(line, sizeof line, "%s -> %d (want %d): \"%s\"", what, got, want, message);
    check(got == want && strstr(message, text) != NULL, line);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: c_api BAR-FILE DEVICE-FILE (the simulated ConnectX-3's and ConnectX-4's)\n");
        return 2;
    }
    char name[4096], name4[4096];
    snprintf(name, sizeof name, "sim:%s", argv[1]);
    snprintf(name4, sizeof name4, "sim4:%s", argv[2]);

    mlnx_hca *ro = NULL, *rw = NULL, *other = NULL;
    mlnx_hca_window *w = NULL, *ww = NULL;
    uint32_t v = 0, block[4];
    mlnx_hca_info info;

    refused(mlnx_hca_open("nonesuch", 0, &ro), MLNX_HCA_ERR_NO_DEVICE, "no such device", "open of an unknown device");
    check(ro == NULL, "a failed open leaves *out alone");
    refused(mlnx_hca_open(name, 0, NULL), MLNX_HCA_ERR_INVALID, "NULL", "open with out NULL");

    check(mlnx_hca_open(name, 0, &ro) == MLNX_HCA_OK && ro != NULL, "open read-only");
    check(mlnx_hca_last_error()[0] == 0, "no message after a success");
    check(mlnx_hca_query(ro, &info) == MLNX_HCA_OK && info.bar0_size == 1u << 20 && info.bar1_size == 8u << 20 &&
              info.bar2_size == 256u << 20 && info.writer_pid == 0 && info.mapping_count == 0,
          "query: BAR sizes, no writer, no window");

    /* One-shot reads. */
    check(mlnx_hca_read32(ro, 0xF0014, &v) == MLNX_HCA_OK && v == 0x000101F5, "read32 of the id: 0x000101f5");
    refused(mlnx_hca_read32(ro, 0xF0016, &v), MLNX_HCA_ERR_RANGE, "not dword aligned", "unaligned read32");
    refused(mlnx_hca_read32(ro, 1u << 20, &v), MLNX_HCA_ERR_RANGE, "past the end of CR space", "read32 past CR space");
    refused(mlnx_hca_write32(ro, 0x100, 1), MLNX_HCA_ERR_ACCESS, "read-only handle", "write32 on a read-only device");

    /* A window. */
    check(mlnx_hca_map(ro, 0xF0000, 0x100, 0, &w) == MLNX_HCA_OK && w != NULL, "map a read-only window");
    check(mlnx_hca_window_offset(w) == 0xF0000 && mlnx_hca_window_size(w) == 0x100, "the window's offset and size");
    check(mlnx_hca_window_read32(w, 0xF0014, &v) == MLNX_HCA_OK && v == 0x000101F5, "window_read32 of the id");
    check(mlnx_hca_window_read_block(w, 0xF0010, block, 3) == MLNX_HCA_OK && block[0] == 0 &&
              block[1] == 0x000101F5 && block[2] == 0,
          "window_read_block around the id");
    refused(mlnx_hca_window_read32(w, 0xF0100, &v), MLNX_HCA_ERR_RANGE, "outside this mapping", "read past the window");
    refused(mlnx_hca_window_read_block(w, 0xF00F8, block, 3), MLNX_HCA_ERR_RANGE, "outside this mapping",
            "a block that runs out of the window");
    refused(mlnx_hca_window_write32(w, 0xF0014, 1), MLNX_HCA_ERR_INVALID, "read-only window", "write through a read-only window");
    check(mlnx_hca_query(ro, &info) == MLNX_HCA_OK && info.mapping_count == 1, "query: one window");
    refused(mlnx_hca_map(ro, 0x100, 4, 1, &ww), MLNX_HCA_ERR_ACCESS, "read-only handle", "read-write map on a read-only device");
    refused(mlnx_hca_map(ro, 0x100, 6, 0, &ww), MLNX_HCA_ERR_RANGE, "multiple of 4", "map of a length not whole dwords");
    refused(mlnx_hca_map(ro, 0xFFFFC, 8, 0, &ww), MLNX_HCA_ERR_RANGE, "past the end", "map past CR space");
    check(ww == NULL, "failed maps leave *out alone");

    /* Writes, through a read-write device, seen by another one. */
    check(mlnx_hca_open(name, 1, &rw) == MLNX_HCA_OK, "open read-write");
    check(mlnx_hca_write32(rw, 0x100, 0xDEADBEEF) == MLNX_HCA_OK, "write32");
    check(mlnx_hca_read32(ro, 0x100, &v) == MLNX_HCA_OK && v == 0xDEADBEEF, "another device reads it back");
    check(mlnx_hca_map(rw, 0x200, 0x10, 1, &ww) == MLNX_HCA_OK, "map a read-write window");
    check(mlnx_hca_query(rw, &info) == MLNX_HCA_OK && info.writer_pid == (uint32_t)getpid() && info.mapping_count == 1,
          "query: this process holds the write lease");
    uint32_t values[4] = {1, 2, 3, 0xCAFEF00D};
    check(mlnx_hca_window_write_block(ww, 0x200, values, 4) == MLNX_HCA_OK, "window_write_block");
    check(mlnx_hca_read_block(ro, 0x200, block, 4) == MLNX_HCA_OK && block[0] == 1 && block[3] == 0xCAFEF00D,
          "read_block sees it");
    check(mlnx_hca_write_block(rw, 0x300, values, 2) == MLNX_HCA_OK, "write_block while the window holds the lease");
    check(mlnx_hca_unmap(ww) == MLNX_HCA_OK, "unmap the read-write window");
    check(mlnx_hca_query(rw, &info) == MLNX_HCA_OK && info.writer_pid == 0 && info.mapping_count == 0,
          "query: the lease went with the last read-write window");

    /* Closing the device first: the window keeps its handle. */
    check(mlnx_hca_open(name, 0, &other) == MLNX_HCA_OK, "a third device");
    mlnx_hca_window *kept = NULL;
    check(mlnx_hca_map(other, 0xF0014, 4, 0, &kept) == MLNX_HCA_OK, "map, then close the device");
    mlnx_hca_close(other);
    check(mlnx_hca_window_read32(kept, 0xF0014, &v) == MLNX_HCA_OK && v == 0x000101F5, "the window still reads");
    check(mlnx_hca_unmap(kept) == MLNX_HCA_OK, "and unmaps");

    /* NULLs. */
    refused(mlnx_hca_query(NULL, &info), MLNX_HCA_ERR_INVALID, "NULL", "query of a NULL device");
    refused(mlnx_hca_window_read32(NULL, 0, &v), MLNX_HCA_ERR_INVALID, "NULL", "read of a NULL window");
    refused(mlnx_hca_read_block(ro, 0, NULL, 2), MLNX_HCA_ERR_INVALID, "NULL", "read into a NULL buffer");
    check(mlnx_hca_unmap(NULL) == MLNX_HCA_OK, "unmap(NULL) is nothing");
    mlnx_hca_close(NULL);

    /* Messages. */
    check(strstr(mlnx_hca_strerror(MLNX_HCA_ERR_BUSY), "write lease") != NULL, "strerror(BUSY)");
    check(strcmp(mlnx_hca_strerror(99), "unknown status") == 0, "strerror of an unknown status");

    check(mlnx_hca_unmap(w) == MLNX_HCA_OK, "unmap the read-only window");
    check(mlnx_hca_query(ro, &info) == MLNX_HCA_OK && info.mapping_count == 0, "query: nothing left");

    /* The ConnectX-3 says it is mapped, and has no gateway. */
    mlnx_hca_device d;
    check(mlnx_hca_query_device(ro, &d) == MLNX_HCA_OK && d.path == 1 && d.pci_device_id == 0x1003 &&
              d.hw_id == 0x1F5 && d.spaces == 0,
          "query_device: a ConnectX-3, mapped");
    refused(mlnx_hca_space_read(ro, 2, 0xF0014, &v, 1), MLNX_HCA_ERR_UNSUPPORTED, "mapped",
            "a space read on a ConnectX-3");
    mlnx_hca_close(ro);
    mlnx_hca_close(rw);

    /* The ConnectX-4: CR space and the other spaces through the gateway. */
    mlnx_hca *ro4 = NULL, *rw4 = NULL, *rw4b = NULL;
    check(mlnx_hca_open(name4, 0, &ro4) == MLNX_HCA_OK && mlnx_hca_open(name4, 1, &rw4) == MLNX_HCA_OK &&
              mlnx_hca_open(name4, 1, &rw4b) == MLNX_HCA_OK,
          "open the simulated ConnectX-4 three times");
    check(mlnx_hca_query_device(ro4, &d) == MLNX_HCA_OK && d.path == 2 && d.pci_device_id == 0x1013 &&
              d.hw_id == 0x209 && (d.spaces & (1u << 2)) && (d.spaces & (1u << 0xA)) && d.max_count == 64,
          "query_device: a ConnectX-4, through its gateway");
    check(mlnx_hca_space_read(ro4, 2, 0xF0014, &v, 1) == MLNX_HCA_OK && v == 0x209, "its id through the gateway");
    uint32_t out[100], back[100];
    for (int i = 0; i < 100; i++) out[i] = 0xC0DE0000u + (uint32_t)i;
    check(mlnx_hca_space_write(rw4, 2, 0x4000, out, 100) == MLNX_HCA_OK, "write 100 dwords (two requests)");
    check(mlnx_hca_space_read(ro4, 2, 0x4000, back, 100) == MLNX_HCA_OK && memcmp(out, back, sizeof out) == 0,
          "another handle reads them back, unswapped");
    refused(mlnx_hca_map(ro4, 0, 4, 0, &w), MLNX_HCA_ERR_UNSUPPORTED, "never mapped", "a map on a ConnectX-4");
    refused(mlnx_hca_space_read(ro4, 0xA, 0, &v, 1), MLNX_HCA_ERR_ACCESS, "only administrators",
            "a read-only device reading the semaphore space");
    refused(mlnx_hca_space_write(ro4, 2, 0x4000, out, 1), MLNX_HCA_ERR_ACCESS, "Administrator",
            "a write through a read-only device");
    refused(mlnx_hca_space_read(ro4, 5, 0, &v, 1), MLNX_HCA_ERR_UNSUPPORTED, "does not serve",
            "a space the gateway does not report");
    refused(mlnx_hca_space_read(ro4, 2, 2, &v, 1), MLNX_HCA_ERR_RANGE, "aligned", "an unaligned address");
    refused(mlnx_hca_space_read(ro4, 2, 0x3FFFFFFC, back, 2), MLNX_HCA_ERR_RANGE, "1 GiB",
            "past the gateway's addresses");
    refused(mlnx_hca_space_read(ro4, 2, 0, NULL, 1), MLNX_HCA_ERR_INVALID, "NULL", "into a NULL buffer");
    check(mlnx_hca_lease(rw4, 1) == MLNX_HCA_OK && mlnx_hca_query(rw4, &info) == MLNX_HCA_OK &&
              info.writer_pid == (uint32_t)getpid(),
          "take the write lease: the query names this process");
    check(mlnx_hca_space_write(rw4, 2, 0x4000, out, 1) == MLNX_HCA_OK, "the holder writes");
    check(mlnx_hca_lease(rw4, 0) == MLNX_HCA_OK && mlnx_hca_query(rw4, &info) == MLNX_HCA_OK && info.writer_pid == 0,
          "give it back");
    /* Another process holding the lease (each simulated device is its own
     * copy of the driver: MLNX_HCA_SIM_WRITER plays the other holder). */
    mlnx_hca *held = NULL;
    setenv("MLNX_HCA_SIM_WRITER", "4242", 1);
    check(mlnx_hca_open(name4, 1, &held) == MLNX_HCA_OK, "open while process 4242 holds the lease");
    unsetenv("MLNX_HCA_SIM_WRITER");
    refused(mlnx_hca_space_write(held, 2, 0x4000, out, 1), MLNX_HCA_ERR_BUSY, "process 4242 holds the write lease",
            "a write while another holds it");
    refused(mlnx_hca_lease(held, 1), MLNX_HCA_ERR_BUSY, "process 4242 holds the write lease", "or a take");
    check(mlnx_hca_space_read(held, 2, 0x4000, &v, 1) == MLNX_HCA_OK && v == out[0], "reads go on");
    mlnx_hca_close(held);
    uint32_t me = 0x4242;
    check(mlnx_hca_space_write(rw4b, 0xA, 0x20, &me, 1) == MLNX_HCA_OK &&
              mlnx_hca_space_read(rw4, 0xA, 0x20, &v, 1) == MLNX_HCA_OK && v == 0x4242,
          "a tool lock taken");
    mlnx_hca_close(rw4b);
    check(mlnx_hca_space_read(rw4, 0xA, 0x20, &v, 1) == MLNX_HCA_OK && v == 0, "and given back when its device closes");
    check(strstr(mlnx_hca_strerror(MLNX_HCA_ERR_UNSUPPORTED), "does not serve") != NULL, "strerror(UNSUPPORTED)");
    mlnx_hca_close(ro4);
    mlnx_hca_close(rw4);
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}
