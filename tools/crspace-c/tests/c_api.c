/* c_api.c BAR-FILE: the C API of crspace (include/mlnx_hca_crspace.h) as a
 * C tool author uses it, against the simulated HCA whose CR space is
 * BAR-FILE (a fresh one). Prints one ok/FAIL line per check and
 * "N passed, M failed" last; exits with the number of failures. */
#include <stdio.h>
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
    if (argc != 2) {
        fprintf(stderr, "usage: c_api BAR-FILE\n");
        return 2;
    }
    char name[4096];
    snprintf(name, sizeof name, "sim:%s", argv[1]);

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
    mlnx_hca_close(ro);
    mlnx_hca_close(rw);
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}
