/* uninstall.exe HWID: remove every root-enumerated device whose hardware id
 * is HWID (stale instances included). The PnP manager sends SURPRISE_REMOVAL
 * (under Wine) and REMOVE_DEVICE to the driver. */
#include <windows.h>
#include <setupapi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        printf("usage: uninstall.exe HWID\n");
        return 2;
    }
    HDEVINFO set = SetupDiGetClassDevsA(NULL, "ROOT", NULL, DIGCF_ALLCLASSES);
    if (set == INVALID_HANDLE_VALUE) {
        printf("uninstall: SetupDiGetClassDevs failed: error %lu\n", GetLastError());
        return 1;
    }
    SP_DEVINFO_DATA dev = {.cbSize = sizeof dev};
    int removed = 0, failed = 0;
    for (DWORD i = 0; SetupDiEnumDeviceInfo(set, i, &dev); i++) {
        char ids[512] = {0};
        if (!SetupDiGetDeviceRegistryPropertyA(set, &dev, SPDRP_HARDWAREID, NULL, (BYTE *)ids, sizeof ids - 2, NULL))
            continue;
        if (lstrcmpiA(ids, argv[1]) != 0) continue;
        if (SetupDiCallClassInstaller(DIF_REMOVE, set, &dev)) {
            removed++;
        } else {
            printf("uninstall: DIF_REMOVE failed: error %lu\n", GetLastError());
            failed++;
        }
    }
    SetupDiDestroyDeviceInfoList(set);
    printf("uninstall: removed %d device(s)\n", removed);
    return failed ? 1 : 0;
}
