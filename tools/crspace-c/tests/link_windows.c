/* link_windows.c: a C tool linked with the Windows builds of the crspace C
 * API, the DLL (through its import library) and the static library, as the
 * bundle's README tells tool authors to (tools/kit/build.sh builds both).
 * Run: opens the first HCA and prints its CR-space id, or why it cannot. */
#include <stdio.h>
#include "mlnx_hca_crspace.h"

int main(void) {
    mlnx_hca *dev = NULL;
    uint32_t id = 0;
    int rc = mlnx_hca_open(NULL, 0, &dev);
    if (rc == MLNX_HCA_OK) rc = mlnx_hca_read32(dev, 0xF0014, &id);
    if (rc != MLNX_HCA_OK) {
        printf("error %d: %s (%s)\n", rc, mlnx_hca_strerror(rc), mlnx_hca_last_error());
    } else {
        printf("0x%08x\n", id);
    }
    mlnx_hca_close(dev);
    return rc;
}
