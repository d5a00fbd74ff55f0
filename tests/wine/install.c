/* install.exe INF HWID: install a root-enumerated device the way devcon does.
 * Creates the device node with the hardware id, registers it, then asks
 * SetupAPI to install the best driver from INF for every device with HWID. */
#include <windows.h>
#include <setupapi.h>
#include <newdev.h>
#include <stdio.h>

static int fail(const char *what) {
    printf("install: %s failed: error %lu\n", what, GetLastError());
    return 1;
}

int main(int argc, char **argv) {
    WCHAR inf[MAX_PATH], hwid[200], class_name[64];
    GUID class_guid;
    if (argc != 3) {
        printf("usage: install.exe INF HWID\n");
        return 2;
    }
    /* SetupAPI wants a full path to the INF. */
    char full[MAX_PATH];
    if (!GetFullPathNameA(argv[1], MAX_PATH, full, NULL)) return fail("GetFullPathName");
    MultiByteToWideChar(CP_ACP, 0, full, -1, inf, MAX_PATH);
    /* A REG_MULTI_SZ: the id, then an empty string. */
    ZeroMemory(hwid, sizeof hwid);
    MultiByteToWideChar(CP_ACP, 0, argv[2], -1, hwid, 198);

    if (!SetupDiGetINFClassW(inf, &class_guid, class_name, 64, NULL)) return fail("SetupDiGetINFClass");
    HDEVINFO set = SetupDiCreateDeviceInfoList(&class_guid, NULL);
    if (set == INVALID_HANDLE_VALUE) return fail("SetupDiCreateDeviceInfoList");
    SP_DEVINFO_DATA dev = {.cbSize = sizeof dev};
    if (!SetupDiCreateDeviceInfoW(set, class_name, &class_guid, NULL, NULL, DICD_GENERATE_ID, &dev))
        return fail("SetupDiCreateDeviceInfo");
    DWORD bytes = (DWORD)((lstrlenW(hwid) + 2) * sizeof(WCHAR));
    if (!SetupDiSetDeviceRegistryPropertyW(set, &dev, SPDRP_HARDWAREID, (BYTE *)hwid, bytes))
        return fail("SetupDiSetDeviceRegistryProperty(HARDWAREID)");
    if (!SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set, &dev)) return fail("DIF_REGISTERDEVICE");
    BOOL reboot = FALSE;
    if (!UpdateDriverForPlugAndPlayDevicesW(NULL, hwid, inf, INSTALLFLAG_FORCE, &reboot))
        return fail("UpdateDriverForPlugAndPlayDevices");
    printf("install: %s installed from %s\n", argv[2], argv[1]);
    SetupDiDestroyDeviceInfoList(set);
    return 0;
}
