/* Prints the ABI as the C compiler sees it, one "name value" per line;
 * tests/c_header.rs compares every line with the Rust definitions. */
#include <stddef.h>
#include <stdio.h>
#include "mlnx_hca_ioctl.h"

#define SHOW(expr) printf("%s %lu\n", #expr, (unsigned long)(expr))

int main(void) {
    SHOW(FW_MAP_CRSPACE_RO);
    SHOW(FW_MAP_CRSPACE_RW);
    SHOW(FW_UNMAP_CRSPACE);
    SHOW(FW_QUERY_CRSPACE);
    SHOW(sizeof(FW_MAP_CRSPACE_IN));
    SHOW(offsetof(FW_MAP_CRSPACE_IN, bar_num));
    SHOW(offsetof(FW_MAP_CRSPACE_IN, offset));
    SHOW(offsetof(FW_MAP_CRSPACE_IN, size));
    SHOW(sizeof(FW_MAP_CRSPACE_OUT));
    SHOW(offsetof(FW_MAP_CRSPACE_OUT, va));
    SHOW(sizeof(FW_UNMAP_CRSPACE_IN));
    SHOW(offsetof(FW_UNMAP_CRSPACE_IN, va));
    SHOW(sizeof(FW_QUERY_CRSPACE_OUT));
    SHOW(offsetof(FW_QUERY_CRSPACE_OUT, bar0_size));
    SHOW(offsetof(FW_QUERY_CRSPACE_OUT, bar1_size));
    SHOW(offsetof(FW_QUERY_CRSPACE_OUT, bar2_size));
    SHOW(offsetof(FW_QUERY_CRSPACE_OUT, writer_pid));
    SHOW(offsetof(FW_QUERY_CRSPACE_OUT, mapping_count));
    SHOW(offsetof(FW_QUERY_CRSPACE_OUT, reserved));
    return 0;
}
