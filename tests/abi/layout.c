/* Prints the ABI as the C compiler sees it, one "name value" per line;
 * tests/c_header.rs compares every line with the Rust definitions. The CR
 * space accessors run against a buffer laid out as CR space is (big-endian). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
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
    SHOW(FW_READ_CRSPACE_BLOCK);
    SHOW(FW_WRITE_CRSPACE_BLOCK);
    SHOW(FW_LEASE_CRSPACE);
    SHOW(FW_QUERY_DEVICE);
    SHOW(MLNX_HCA_MAX_BLOCK_DWORDS);
    SHOW(MLNX_HCA_PATH_MAPPED);
    SHOW(MLNX_HCA_PATH_GATEWAY);
    SHOW(MLNX_HCA_SPACE_ICMD_EXT);
    SHOW(MLNX_HCA_SPACE_CR);
    SHOW(MLNX_HCA_SPACE_ICMD);
    SHOW(MLNX_HCA_SPACE_ND_CR);
    SHOW(MLNX_HCA_SPACE_SEMAPHORE);
    SHOW(sizeof(FW_CRSPACE_BLOCK_IN));
    SHOW(offsetof(FW_CRSPACE_BLOCK_IN, space));
    SHOW(offsetof(FW_CRSPACE_BLOCK_IN, offset));
    SHOW(offsetof(FW_CRSPACE_BLOCK_IN, count));
    SHOW(sizeof(FW_LEASE_CRSPACE_IN));
    SHOW(offsetof(FW_LEASE_CRSPACE_IN, take));
    SHOW(sizeof(FW_QUERY_DEVICE_OUT));
    SHOW(offsetof(FW_QUERY_DEVICE_OUT, pci_device_id));
    SHOW(offsetof(FW_QUERY_DEVICE_OUT, hw_id));
    SHOW(offsetof(FW_QUERY_DEVICE_OUT, path));
    SHOW(offsetof(FW_QUERY_DEVICE_OUT, spaces));
    SHOW(offsetof(FW_QUERY_DEVICE_OUT, max_count));
    SHOW(offsetof(FW_QUERY_DEVICE_OUT, reserved));

    /* Two dwords of CR space: 0xf0010 and the ConnectX-3 id at 0xf0014. */
    union { uint32_t dwords[2]; unsigned char bytes[8]; } cr = {{0}};
    const unsigned char id[4] = {0x00, 0x01, 0x01, 0xF5};
    memcpy(cr.bytes + 4, id, 4);
    mlnx_hca_cr_write32(cr.dwords, 0, 0xDEADBEEFu);
    SHOW(cr.bytes[0]);
    SHOW(cr.bytes[1]);
    SHOW(cr.bytes[2]);
    SHOW(cr.bytes[3]);
    SHOW(mlnx_hca_cr_read32(cr.dwords, 0));
    SHOW(mlnx_hca_cr_read32(cr.dwords, 4));
    return 0;
}
