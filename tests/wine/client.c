/* client.exe [DEVICE] [noclose]: the conformance client a C tool author would
 * write, against include/mlnx_hca_ioctl.h only. Drives the real mlnx_hca.sys
 * through DeviceIoControl and checks every status through GetLastError, and
 * sends every refused request a second time through NtDeviceIoControlFile to
 * check the exact NTSTATUS the contract names (several share one Win32 error:
 * STATUS_NOT_IMPLEMENTED and STATUS_INVALID_DEVICE_REQUEST are both
 * ERROR_INVALID_FUNCTION) and that the driver reported 0 bytes.
 *
 * Under Wine the memory manager is stubbed, so the maps themselves must fail
 * cleanly (STATUS_INSUFFICIENT_RESOURCES) and leave nothing behind. With
 * "noclose" the client exits holding its handles, so that the driver must
 * free their contexts when the I/O manager closes them.
 *
 * Prints one "ok"/"FAIL" line per check and "N passed, M failed" last; the
 * exit code is the number of failures (0: all passed). */
#define WIN32_NO_STATUS
#include <windows.h>
#undef WIN32_NO_STATUS
#include <ntstatus.h>
#include <winternl.h>
#include <setupapi.h>
#include <initguid.h>
#include <stdio.h>
#include <string.h>
#include "mlnx_hca_ioctl.h"

static int passed, failed;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok) passed++; else failed++;
    fflush(stdout);
}

/* One request; returns the Win32 error (0 on success) and the bytes returned. */
static DWORD call(HANDLE h, DWORD code, void *in, DWORD in_len, void *out, DWORD out_len, DWORD *got) {
    DWORD sentinel = 0xA5A5A5A5;
    *got = sentinel;
    if (DeviceIoControl(h, code, in, in_len, out, out_len, got, NULL)) return 0;
    return GetLastError();
}

static int untouched(const unsigned char *out, size_t len) {
    int same = 1;
    for (size_t i = 0; i < len; i++) same &= out[i] == 0xA5;
    return same;
}

/* A request that must fail with `want`, report 0 bytes and leave the output
 * untouched: as a tool sees it (DeviceIoControl, GetLastError), then as the
 * driver answered it (NtDeviceIoControlFile: the NTSTATUS, Information). */
static void refused(HANDLE h, const char *what, DWORD code, void *in, DWORD in_len, DWORD out_len, NTSTATUS want) {
    unsigned char out[64];
    DWORD got;
    memset(out, 0xA5, sizeof out);
    DWORD err = call(h, code, in, in_len, out_len ? out : NULL, out_len, &got);
    DWORD want_err = RtlNtStatusToDosError(want);
    char line[256];
    snprintf(line, sizeof line, "%s -> error %lu (want %lu), output untouched", what, err, want_err);
    check(err == want_err && untouched(out, sizeof out), line);

    IO_STATUS_BLOCK iosb;
    memset(&iosb, 0xA5, sizeof iosb);
    memset(out, 0xA5, sizeof out);
    NTSTATUS st = NtDeviceIoControlFile(h, NULL, NULL, NULL, &iosb, code, in, in_len, out_len ? out : NULL, out_len);
    /* A request the I/O manager refuses before the driver (a code's access
     * bits) leaves the block as it was; the driver sets Information to 0. */
    int no_bytes = iosb.Information == 0 || iosb.Information == (ULONG_PTR)0xA5A5A5A5A5A5A5A5ull;
    snprintf(line, sizeof line, "%s -> NTSTATUS 0x%08lx (want 0x%08lx), 0 bytes, output untouched", what,
             (unsigned long)st, (unsigned long)want);
    check(st == want && no_bytes && untouched(out, sizeof out), line);
}

static int query(HANDLE h, FW_QUERY_CRSPACE_OUT *q) {
    DWORD got;
    memset(q, 0xA5, sizeof *q);
    DWORD err = call(h, FW_QUERY_CRSPACE, NULL, 0, q, sizeof *q, &got);
    return err == 0 && got == sizeof *q;
}

static void expect_idle(HANDLE h, const char *when) {
    FW_QUERY_CRSPACE_OUT q;
    char line[200];
    int ok = query(h, &q);
    snprintf(line, sizeof line, "%s: query shows no mapping and no lease (count %u, writer %u)", when,
             q.mapping_count, q.writer_pid);
    check(ok && q.mapping_count == 0 && q.writer_pid == 0 && q.reserved == 0, line);
}

static HANDLE open_device(const char *path, DWORD access) {
    return CreateFileA(path, access, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING, 0, NULL);
}

/* Discovery as the header describes it: the HCAs' device interface, the
 * control device's name in each one's hardware key. The first HCA's control
 * device name goes to `name`; the interface's own path (a link to the HCA's
 * PDO, so an open of it reaches the stack device) to `iface_path`, and the
 * PDO's name to `pdo` where the system reports it (Windows does; Wine's
 * SetupAPI has no SPDRP_PHYSICAL_DEVICE_OBJECT_NAME). On failure `name` says
 * which step failed. */
static int discover(char *name, size_t name_len, char *iface_path, size_t iface_len, char *pdo, size_t pdo_len) {
    iface_path[0] = 0;
    pdo[0] = 0;
    HDEVINFO set = SetupDiGetClassDevsA(&MLNX_HCA_INTERFACE_GUID, NULL, NULL, DIGCF_PRESENT | DIGCF_DEVICEINTERFACE);
    if (set == INVALID_HANDLE_VALUE) {
        snprintf(name, name_len, "SetupDiGetClassDevs: error %lu", GetLastError());
        return 0;
    }
    SP_DEVICE_INTERFACE_DATA iface;
    SP_DEVINFO_DATA dev;
    union {
        SP_DEVICE_INTERFACE_DETAIL_DATA_A detail;
        char bytes[sizeof(SP_DEVICE_INTERFACE_DETAIL_DATA_A) + MAX_PATH];
    } d;
    memset(&iface, 0, sizeof iface);
    memset(&dev, 0, sizeof dev);
    memset(&d, 0, sizeof d);
    iface.cbSize = sizeof iface;
    dev.cbSize = sizeof dev;
    d.detail.cbSize = sizeof d.detail;
    int found = 0;
    if (!SetupDiEnumDeviceInterfaces(set, NULL, &MLNX_HCA_INTERFACE_GUID, 0, &iface)) {
        snprintf(name, name_len, "no interface enumerated: error %lu", GetLastError());
    } else if (!SetupDiGetDeviceInterfaceDetailA(set, &iface, &d.detail, sizeof d, NULL, &dev)) {
        snprintf(name, name_len, "SetupDiGetDeviceInterfaceDetail: error %lu", GetLastError());
    } else {
        snprintf(iface_path, iface_len, "%s", d.detail.DevicePath);
        HKEY key = SetupDiOpenDevRegKey(set, &dev, DICS_FLAG_GLOBAL, 0, DIREG_DEV, KEY_READ);
        DWORD type = 0, len = (DWORD)name_len;
        if (key == INVALID_HANDLE_VALUE) {
            snprintf(name, name_len, "SetupDiOpenDevRegKey: error %lu", GetLastError());
        } else {
            LONG rc = RegQueryValueExA(key, MLNX_HCA_CONTROL_DEVICE_VALUE, NULL, &type, (BYTE *)name, &len);
            found = rc == 0 && type == REG_SZ;
            if (!found) snprintf(name, name_len, "%s: error %ld, type %lu", MLNX_HCA_CONTROL_DEVICE_VALUE, rc, type);
            RegCloseKey(key);
        }
        if (!SetupDiGetDeviceRegistryPropertyA(set, &dev, SPDRP_PHYSICAL_DEVICE_OBJECT_NAME, NULL, (BYTE *)pdo,
                                               (DWORD)pdo_len, NULL))
            pdo[0] = 0;
    }
    SetupDiDestroyDeviceInfoList(set);
    return found;
}

/* An open of the stack device (by the interface's path, or by the PDO's
 * name) is refused: the driver answers STATUS_INVALID_DEVICE_REQUEST. Wine's
 * server hands out the handle without waiting for the driver's answer to the
 * CREATE (server/device.c queues it with no async), so where the open
 * "succeeds" every request on that handle must be refused the same way: the
 * stack device serves no tool either way. */
static void expect_stack_refused(const char *what, const char *stack_path) {
    char line[2 * MAX_PATH];
    HANDLE stack = open_device(stack_path, GENERIC_READ);
    DWORD stack_error = GetLastError();
    if (stack == INVALID_HANDLE_VALUE) {
        snprintf(line, sizeof line, "an open of the stack device by %s (%s) is refused (error %lu)", what, stack_path,
                 stack_error);
        check(stack_error == ERROR_INVALID_FUNCTION, line);
        return;
    }
    snprintf(line, sizeof line, "the stack device by %s (%s; the open was not refused): query", what, stack_path);
    refused(stack, line, FW_QUERY_CRSPACE, NULL, 0, sizeof(FW_QUERY_CRSPACE_OUT), STATUS_INVALID_DEVICE_REQUEST);
    CloseHandle(stack);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "\\\\.\\mlnx_hca0";
    int noclose = argc > 2 && !strcmp(argv[2], "noclose");
    printf("client pid %lu, device %s%s\n", GetCurrentProcessId(), path, noclose ? ", exits without closing" : "");

    HANDLE ro = open_device(path, GENERIC_READ);
    check(ro != INVALID_HANDLE_VALUE, "read-only open");
    HANDLE rw = open_device(path, GENERIC_READ | GENERIC_WRITE);
    check(rw != INVALID_HANDLE_VALUE, "read-write open");
    if (ro == INVALID_HANDLE_VALUE || rw == INVALID_HANDLE_VALUE) {
        printf("%d passed, %d failed\n", passed, failed + 1);
        return 1 + failed;
    }
    if (noclose) {
        /* Leave a trace in the driver, then vanish with both handles open. */
        expect_idle(ro, "noclose run");
        printf("%d passed, %d failed\n", passed, failed);
        fflush(stdout);
        ExitProcess(failed);
    }

    /* The control device is found through the device interface, and the
     * stack device (the FDO on the PDO) serves no tool. */
    char found[MAX_PATH] = "", iface_path[MAX_PATH] = "", pdo[MAX_PATH] = "";
    int discovered = discover(found, sizeof found, iface_path, sizeof iface_path, pdo, sizeof pdo);
    char line[MAX_PATH + 80];
    snprintf(line, sizeof line, "the device interface names the control device (%s)", found);
    check(discovered && strcmp(found, path) == 0, line);
    if (iface_path[0])
        expect_stack_refused("the interface's path", iface_path);
    else
        check(0, "the interface has a path");
    if (pdo[0]) {
        char stack_path[MAX_PATH + 32];
        snprintf(stack_path, sizeof stack_path, "\\\\?\\GLOBALROOT%s", pdo);
        expect_stack_refused("the PDO's name", stack_path);
    }

    /* The device has no namespace: a name after the device's is refused
     * (the driver answers STATUS_INVALID_PARAMETER; Wine's server refuses it
     * before the driver sees it, with STATUS_OBJECT_NAME_NOT_FOUND). */
    char suffixed[MAX_PATH];
    snprintf(suffixed, sizeof suffixed, "%s\\anything", path);
    HANDLE named = open_device(suffixed, GENERIC_READ);
    DWORD named_error = GetLastError();
    check(named == INVALID_HANDLE_VALUE && (named_error == ERROR_INVALID_PARAMETER || named_error == ERROR_FILE_NOT_FOUND),
          "an open of a name under the device is refused");
    if (named != INVALID_HANDLE_VALUE)
        CloseHandle(named);

    /* The query block of the root test device. */
    FW_QUERY_CRSPACE_OUT q;
    check(query(ro, &q), "query succeeds with exactly 24 bytes");
    check(q.bar0_size == 1u << 20 && q.bar1_size == 8u << 20 && q.bar2_size == 256u << 20,
          "query: BAR sizes 1 MiB, 8 MiB, 256 MiB");
    expect_idle(ro, "fresh handle");

    /* Every bad input of the contract. */
    FW_MAP_CRSPACE_IN in;
    FW_UNMAP_CRSPACE_IN un = {0x12345678};
    unsigned char junk[16] = {0};
    refused(ro, "unknown code (function 0x804)", MLNX_HCA_CTL_CODE(0x804, MLNX_HCA_FILE_READ_ACCESS), junk, 12, 8,
            STATUS_INVALID_DEVICE_REQUEST);
    refused(ro, "map code with METHOD_NEITHER", FW_MAP_CRSPACE_RO | 3, junk, 12, 8, STATUS_INVALID_DEVICE_REQUEST);
    refused(ro, "unknown code asking write access, on a read-only handle",
            MLNX_HCA_CTL_CODE(0x804, MLNX_HCA_FILE_READ_ACCESS | MLNX_HCA_FILE_WRITE_ACCESS), junk, 12, 8,
            STATUS_ACCESS_DENIED);
    in = (FW_MAP_CRSPACE_IN){0, 0, 4};
    refused(ro, "RW map on a read-only handle", FW_MAP_CRSPACE_RW, &in, sizeof in, 8, STATUS_ACCESS_DENIED);
    refused(ro, "map input 11 bytes", FW_MAP_CRSPACE_RO, &in, 11, 8, STATUS_BUFFER_TOO_SMALL);
    refused(ro, "map output 7 bytes", FW_MAP_CRSPACE_RO, &in, sizeof in, 7, STATUS_BUFFER_TOO_SMALL);
    refused(ro, "unmap input 7 bytes", FW_UNMAP_CRSPACE, &un, 7, 0, STATUS_BUFFER_TOO_SMALL);
    refused(ro, "query output 23 bytes", FW_QUERY_CRSPACE, NULL, 0, 23, STATUS_BUFFER_TOO_SMALL);
    in = (FW_MAP_CRSPACE_IN){1, 0, 4};
    refused(ro, "BAR 1", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_NOT_IMPLEMENTED);
    in = (FW_MAP_CRSPACE_IN){2, 0, 4};
    refused(ro, "BAR 2", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_NOT_IMPLEMENTED);
    in = (FW_MAP_CRSPACE_IN){3, 0, 4};
    refused(ro, "BAR 3", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INVALID_PARAMETER);
    in = (FW_MAP_CRSPACE_IN){0, 0xF0016, 4};
    refused(ro, "unaligned offset", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INVALID_PARAMETER);
    in = (FW_MAP_CRSPACE_IN){0, 0xF0014, 6};
    refused(ro, "unaligned size", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INVALID_PARAMETER);
    in = (FW_MAP_CRSPACE_IN){0, 0xF0014, 0};
    refused(ro, "zero size", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INVALID_PARAMETER);
    in = (FW_MAP_CRSPACE_IN){0, (1u << 20) - 4, 8};
    refused(ro, "offset + size past BAR 0", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INVALID_PARAMETER);
    in = (FW_MAP_CRSPACE_IN){0, 0xFFFFFFFC, 8};
    refused(ro, "offset + size overflows u32", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INVALID_PARAMETER);
    refused(ro, "unmap of a bogus VA", FW_UNMAP_CRSPACE, &un, sizeof un, 0, STATUS_INVALID_PARAMETER);
    expect_idle(ro, "after the bad inputs");

    /* Wine cannot map (MmMapLockedPagesSpecifyCache returns NULL): a map must
     * fail with the resources error and leave no view, entry or lease. */
    in = (FW_MAP_CRSPACE_IN){0, 0xF0014, 4};
    refused(ro, "RO map (Wine cannot map)", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INSUFFICIENT_RESOURCES);
    expect_idle(ro, "after the failed RO map");
    refused(rw, "RW map (Wine cannot map)", FW_MAP_CRSPACE_RW, &in, sizeof in, 8, STATUS_INSUFFICIENT_RESOURCES);
    expect_idle(rw, "after the failed RW map");
    expect_idle(ro, "seen from the other handle");
    refused(rw, "unmap of a bogus VA on the RW handle", FW_UNMAP_CRSPACE, &un, sizeof un, 0, STATUS_INVALID_PARAMETER);

    check(CloseHandle(ro), "close the read-only handle");
    check(CloseHandle(rw), "close the read-write handle");
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}
