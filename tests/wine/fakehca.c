/* fakehca.exe NAME HWID [FILTER...]: a device node that looks like an
 * operational HCA to SetupAPI, for testing mlnx_hca_filter.exe: a
 * root-enumerated device ROOT\NAME\NNNN whose hardware id is HWID (e.g.
 * PCI\VEN_15B3&DEV_1003&SUBSYS_006715B3), whose LowerFilters are FILTER...
 * (absent if none) and whose driver is the service "mlx4_bus" (WinOF's, as
 * its Service value only: nothing is installed or loaded). Prints the new
 * device's instance id. uninstall.exe HWID removes it again. */
#include <windows.h>
#include <setupapi.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what) {
    printf("fakehca: %s failed: error %lu\n", what, GetLastError());
    return 1;
}

/* The InfiniBand controller class (the INF's, and WinOF's). */
static const GUID CLASS = {0x58517E00, 0xD3CF, 0x40C9, {0xA6, 0x79, 0xCE, 0xE5, 0x75, 0x2F, 0x44, 0x91}};

int main(int argc, char **argv) {
    if (argc < 3) {
        printf("usage: fakehca.exe NAME HWID [FILTER...]\n");
        return 2;
    }
    HDEVINFO set = SetupDiCreateDeviceInfoList(&CLASS, NULL);
    if (set == INVALID_HANDLE_VALUE) return fail("SetupDiCreateDeviceInfoList");
    SP_DEVINFO_DATA dev = {.cbSize = sizeof dev};
    if (!SetupDiCreateDeviceInfoA(set, argv[1], &CLASS, NULL, NULL, DICD_GENERATE_ID, &dev))
        return fail("SetupDiCreateDeviceInfo");
    /* REG_MULTI_SZ values: each string, then an empty one. */
    char ids[512] = {0};
    size_t n = strlen(argv[2]);
    if (n + 2 > sizeof ids) return 2;
    memcpy(ids, argv[2], n);
    if (!SetupDiSetDeviceRegistryPropertyA(set, &dev, SPDRP_HARDWAREID, (BYTE *)ids, (DWORD)(n + 2)))
        return fail("SetupDiSetDeviceRegistryProperty(HARDWAREID)");
    char filters[512] = {0};
    size_t used = 0;
    for (int i = 3; i < argc; i++) {
        size_t len = strlen(argv[i]) + 1;
        if (used + len + 1 > sizeof filters) return 2;
        memcpy(filters + used, argv[i], len);
        used += len;
    }
    if (used && !SetupDiSetDeviceRegistryPropertyA(set, &dev, SPDRP_LOWERFILTERS, (BYTE *)filters, (DWORD)(used + 1)))
        return fail("SetupDiSetDeviceRegistryProperty(LOWERFILTERS)");
    const char service[] = "mlx4_bus";
    if (!SetupDiSetDeviceRegistryPropertyA(set, &dev, SPDRP_SERVICE, (const BYTE *)service, sizeof service))
        return fail("SetupDiSetDeviceRegistryProperty(SERVICE)");
    if (!SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set, &dev)) return fail("DIF_REGISTERDEVICE");
    char id[MAX_PATH];
    if (!SetupDiGetDeviceInstanceIdA(set, &dev, id, sizeof id, NULL)) return fail("SetupDiGetDeviceInstanceId");
    printf("%s\n", id);
    SetupDiDestroyDeviceInfoList(set);
    return 0;
}
