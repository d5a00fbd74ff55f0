/* client.exe: the conformance client a C tool author would write, against
 * include/mlnx_hca_ioctl.h only. Drives the real mlnx_hca.sys through
 * DeviceIoControl and checks every status through GetLastError, and sends
 * every refused request a second time through NtDeviceIoControlFile to check
 * the exact NTSTATUS the contract names (several share one Win32 error:
 * STATUS_NOT_IMPLEMENTED and STATUS_INVALID_DEVICE_REQUEST are both
 * ERROR_INVALID_FUNCTION) and that the driver reported 0 bytes. The same
 * source builds for x64 and for x86 (a 32-bit caller through WOW64).
 *
 *   client.exe [--windows] [DEVICE]   the conformance run. Under Wine (the
 *       default) the memory manager is stubbed, so the maps themselves must
 *       fail cleanly (STATUS_INSUFFICIENT_RESOURCES) and leave nothing
 *       behind. With --windows the maps are real: a read-only view reads the
 *       simulated HCA's id big-endian, a write through it raises an access
 *       violation, a read-write write lands and a reader sees it, a second
 *       writer is refused, a child process killed with views of a shared
 *       handle leaves none, a duplicate closed in a child leaves the
 *       parent's handle and views working.
 *   client.exe DEVICE noclose         opens two handles and exits without
 *       closing them: the driver must free their contexts when the I/O
 *       manager closes them.
 *   client.exe --user none|read [DEVICE]   run as a standard user: "none":
 *       no open at all; "read" (after the administrator's read grant): a
 *       read-only open that maps and reads, and no read-write open.
 *   client.exe --hold [DEVICE]        maps a read-only view (where the
 *       system can), prints "holding" and keeps it until its standard input
 *       ends: the view the removal check needs.
 *   client.exe --query-remove INSTANCE-ID   asks the PnP manager to remove
 *       the device (CM_Query_And_Remove_SubTree): prints "removed" (exit 0)
 *       or "vetoed <type> <name>" (exit 1).
 *   client.exe --gateway [DEVICE]     the gateway run on a ConnectX-4, by
 *       default \\.\mlnx_hca1 (root\mlnx_hca_sim4 installed beside
 *       root\mlnx_hca_sim): the device query, blocks out and back, every bad
 *       input, the lease without views, tool locks given back when their
 *       handle closes and when their process is killed. Nothing is mapped,
 *       so it runs the same under Wine and on Windows.
 *   client.exe --gateway-real DEVICE  the same on a real ConnectX-4 or later:
 *       the query, the id, the refusals; nothing written.
 *   client.exe --child HANDLE EVENT map|close, --lock-child DEVICE EVENT
 *       OFFSET   (used by the runs themselves)
 *
 * Prints one "ok"/"FAIL" line per check and "N passed, M failed" last; the
 * exit code is the number of failures (0: all passed). */
#define WIN32_NO_STATUS
#include <windows.h>
#undef WIN32_NO_STATUS
#include <ntstatus.h>
#include <winternl.h>
#include <setupapi.h>
#include <cfgmgr32.h>
#include <initguid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    unsigned char out[4 * (MLNX_HCA_MAX_BLOCK_DWORDS + 2)];
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

static int query_device(HANDLE h, FW_QUERY_DEVICE_OUT *d);

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

/* ---------------------------------------------------------------- views */

/* A map that must succeed: the VA of the window's first byte, or 0. */
static uint64_t map(HANDLE h, DWORD code, uint32_t offset, uint32_t size, const char *what) {
    FW_MAP_CRSPACE_IN in = {0, offset, size};
    FW_MAP_CRSPACE_OUT out;
    DWORD got;
    memset(&out, 0xA5, sizeof out);
    DWORD err = call(h, code, &in, sizeof in, &out, sizeof out, &got);
    char line[200];
    snprintf(line, sizeof line, "%s: mapped (error %lu, %lu bytes, va 0x%llx)", what, err, got,
             (unsigned long long)(err ? 0 : out.va));
    int ok = err == 0 && got == sizeof out && out.va != 0 && (out.va & 0xFFF) == (offset & 0xFFF);
    check(ok, line);
    if (!ok) return 0;
    /* A 32-bit caller can only use an address below 4 GiB. */
    snprintf(line, sizeof line, "%s: the view is addressable by this %d-bit process", what, (int)sizeof(void *) * 8);
    check(sizeof(void *) == 8 || out.va >> 32 == 0, line);
    return out.va >> 32 && sizeof(void *) == 4 ? 0 : out.va;
}

static void *view_ptr(uint64_t va) {
    return (void *)(uintptr_t)va;
}

static int unmap(HANDLE h, uint64_t va) {
    FW_UNMAP_CRSPACE_IN un = {va};
    DWORD got;
    return call(h, FW_UNMAP_CRSPACE, &un, sizeof un, NULL, 0, &got) == 0;
}

/* The address range of a view is free again once it is unmapped. */
static int unmapped(uint64_t va) {
    MEMORY_BASIC_INFORMATION mbi;
    if (!VirtualQuery(view_ptr(va), &mbi, sizeof mbi)) return 0;
    return mbi.State == MEM_FREE || mbi.State == MEM_RESERVE;
}

/* A write through a read-only view must fault. The store is one known
 * instruction (movl %eax, (%edx) / (%rdx)) between two labels; a vectored
 * handler records an access violation at the first and resumes at the
 * second. (mingw-w64's gcc has no __try/__except.) */
#define MLNX_STR2(x) #x
#define MLNX_STR(x) MLNX_STR2(x)
#define MLNX_SYM(name) MLNX_STR(__USER_LABEL_PREFIX__) name
extern char mlnx_client_store[], mlnx_client_store_end[];
static volatile LONG store_faulted;
static volatile ULONG_PTR store_fault_kind, store_fault_address;

__attribute__((noinline, noclone)) static void store32(volatile void *p, uint32_t v) {
    __asm__ volatile(".globl " MLNX_SYM("mlnx_client_store") "\n" MLNX_SYM("mlnx_client_store") ":\n\t"
                     "movl %1, (%0)\n"
                     ".globl " MLNX_SYM("mlnx_client_store_end") "\n" MLNX_SYM("mlnx_client_store_end") ":\n"
                     :
                     : "d"(p), "a"(v)
                     : "memory");
}

static LONG CALLBACK on_store_fault(EXCEPTION_POINTERS *e) {
    EXCEPTION_RECORD *r = e->ExceptionRecord;
    if (r->ExceptionCode != (DWORD)EXCEPTION_ACCESS_VIOLATION || r->ExceptionAddress != (void *)mlnx_client_store)
        return EXCEPTION_CONTINUE_SEARCH;
    store_faulted++;
    store_fault_kind = r->ExceptionInformation[0];
    store_fault_address = r->ExceptionInformation[1];
#ifdef _WIN64
    e->ContextRecord->Rip = (DWORD64)(ULONG_PTR)mlnx_client_store_end;
#else
    e->ContextRecord->Eip = (DWORD)(ULONG_PTR)mlnx_client_store_end;
#endif
    return EXCEPTION_CONTINUE_EXECUTION;
}

/* ---------------------------------------------------------------- child processes */

/* Runs this program as a child with `args`, inheriting the handles marked
 * inheritable; returns its process handle (or NULL). */
static HANDLE spawn(const char *args, DWORD *pid) {
    char self[MAX_PATH], cmd[2 * MAX_PATH];
    if (!GetModuleFileNameA(NULL, self, MAX_PATH)) return NULL;
    snprintf(cmd, sizeof cmd, "\"%s\" %s", self, args);
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) return NULL;
    CloseHandle(pi.hThread);
    *pid = pi.dwProcessId;
    return pi.hProcess;
}

/* The child's side: "map" maps a read-write and a read-only view through
 * the inherited handle, signals, and waits to be killed; "close" closes the
 * inherited duplicate and exits. */
static int child(const char *handle, const char *event, const char *what) {
    HANDLE h = (HANDLE)(uintptr_t)strtoull(handle, NULL, 0);
    HANDLE ready = (HANDLE)(uintptr_t)strtoull(event, NULL, 0);
    if (!strcmp(what, "map")) {
        FW_MAP_CRSPACE_IN in = {0, 0x2000, 8};
        FW_MAP_CRSPACE_OUT out;
        DWORD got;
        if (call(h, FW_MAP_CRSPACE_RW, &in, sizeof in, &out, sizeof out, &got)) return 10;
        in.offset = 0xF0014;
        in.size = 4;
        if (call(h, FW_MAP_CRSPACE_RO, &in, sizeof in, &out, sizeof out, &got)) return 11;
        SetEvent(ready);
        Sleep(INFINITE);
        return 12;
    }
    if (!strcmp(what, "close")) {
        int ok = CloseHandle(h);
        SetEvent(ready);
        return ok ? 0 : 13;
    }
    return 14;
}

/* ---------------------------------------------------------------- the runs */

/* The maps of the conformance run on Windows, where they are real. */
static void windows_maps(const char *path, HANDLE ro, HANDLE rw) {
    FW_MAP_CRSPACE_IN in = {0, 0xF0014, 4};
    FW_UNMAP_CRSPACE_IN un;
    FW_QUERY_CRSPACE_OUT q;
    char line[200];

    /* A read-only view reads the device's id, big-endian on the bus. */
    uint64_t id_va = map(ro, FW_MAP_CRSPACE_RO, 0xF0014, 4, "RO map of the id dword");
    if (id_va) {
        const volatile unsigned char *b = view_ptr(id_va);
        snprintf(line, sizeof line, "the id reads 0x%08x (bytes %02x %02x %02x %02x): 0x000101f5, big-endian",
                 (unsigned)mlnx_hca_cr_read32(view_ptr(id_va), 0), b[0], b[1], b[2], b[3]);
        check(mlnx_hca_cr_read32(view_ptr(id_va), 0) == 0x000101F5 && b[0] == 0 && b[3] == 0xF5, line);
        /* A write through it faults (and changes nothing). */
        PVOID handler = AddVectoredExceptionHandler(1, on_store_fault);
        store_faulted = 0;
        store32(view_ptr(id_va), 0x12345678);
        RemoveVectoredExceptionHandler(handler);
        snprintf(line, sizeof line, "a write through the RO view raises an access violation (%ld, write %lu, at the view %d)",
                 (long)store_faulted, (unsigned long)store_fault_kind, store_fault_address == (ULONG_PTR)id_va);
        check(store_faulted == 1 && store_fault_kind == 1 && store_fault_address == (ULONG_PTR)id_va, line);
        check(mlnx_hca_cr_read32(view_ptr(id_va), 0) == 0x000101F5, "the id is unchanged after the faulting write");
    }
    check(query(ro, &q) && q.mapping_count == 1 && q.writer_pid == 0, "query: one mapping on the RO handle, no writer");

    /* A read-write view: the write lands, and a reader sees it. */
    uint64_t rw_va = map(rw, FW_MAP_CRSPACE_RW, 0x1000, 8, "RW map at 0x1000");
    uint64_t reader_va = map(ro, FW_MAP_CRSPACE_RO, 0x1000, 8, "RO map of the same window");
    if (rw_va && reader_va) {
        mlnx_hca_cr_write32(view_ptr(rw_va), 4, 0xC0FFEE01);
        snprintf(line, sizeof line, "the reader sees the writer's dword (0x%08x)",
                 (unsigned)mlnx_hca_cr_read32(view_ptr(reader_va), 4));
        check(mlnx_hca_cr_read32(view_ptr(reader_va), 4) == 0xC0FFEE01, line);
    }
    check(query(rw, &q) && q.writer_pid == GetCurrentProcessId() && q.mapping_count == 1,
          "query: this process holds the write lease");

    /* A second handle cannot write meanwhile, but can read. */
    HANDLE rw2 = open_device(path, GENERIC_READ | GENERIC_WRITE);
    check(rw2 != INVALID_HANDLE_VALUE, "a second read-write handle opens");
    if (rw2 != INVALID_HANDLE_VALUE) {
        in = (FW_MAP_CRSPACE_IN){0, 0x1000, 8};
        refused(rw2, "RW map on a second handle while the lease is held", FW_MAP_CRSPACE_RW, &in, sizeof in, 8,
                STATUS_DEVICE_BUSY);
        uint64_t va = map(rw2, FW_MAP_CRSPACE_RO, 0x1000, 8, "RO map on the second handle");
        if (va) check(unmap(rw2, va), "unmap on the second handle");
        CloseHandle(rw2);
    }

    /* Unmap: the VA goes, and a second unmap of it changes nothing. */
    if (reader_va) {
        check(unmap(ro, reader_va) && unmapped(reader_va), "unmap of the reader's view frees its address range");
        un.va = reader_va;
        refused(ro, "unmap of the same VA again", FW_UNMAP_CRSPACE, &un, sizeof un, 0, STATUS_INVALID_PARAMETER);
    }
    if (rw_va) check(unmap(rw, rw_va), "unmap of the RW view");
    check(query(rw, &q) && q.writer_pid == 0 && q.mapping_count == 0, "query: the lease ended with its last RW view");

    /* A child maps through an inherited duplicate of the RW handle and is
     * killed: its views and its lease go with it. */
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE ready = CreateEventA(&inherit, TRUE, FALSE, NULL);
    SetHandleInformation(rw, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
    char args[100];
    DWORD pid = 0;
    snprintf(args, sizeof args, "--child %llu %llu map", (unsigned long long)(uintptr_t)rw,
             (unsigned long long)(uintptr_t)ready);
    HANDLE proc = spawn(args, &pid);
    check(proc != NULL, "a child process starts with the handle");
    if (proc) {
        HANDLE both[2] = {ready, proc};
        DWORD w = WaitForMultipleObjects(2, both, FALSE, 30000);
        check(w == WAIT_OBJECT_0, "the child mapped RW and RO views through the duplicate");
        snprintf(line, sizeof line, "query: the child's two views and its lease (count %u, writer %u, child %lu)",
                 query(rw, &q) ? q.mapping_count : 99, q.writer_pid, pid);
        check(q.mapping_count == 2 && q.writer_pid == pid, line);
        TerminateProcess(proc, 9);
        WaitForSingleObject(proc, 30000);
        CloseHandle(proc);
        expect_idle(rw, "after TerminateProcess of the child");
        uint64_t va = map(rw, FW_MAP_CRSPACE_RW, 0x2000, 8, "RW map after the child's end (the lease is free)");
        if (va) check(unmap(rw, va), "unmap");
    }
    CloseHandle(ready);
    SetHandleInformation(rw, HANDLE_FLAG_INHERIT, 0);
    if (id_va) check(unmap(ro, id_va), "unmap of the id view");
}

/* A duplicate closed in a child: the parent's handle (the same file object)
 * and its views work on. `windows`: with a live view. */
static void duplicate_closed_in_child(HANDLE rw, int windows) {
    uint64_t va = windows ? map(rw, FW_MAP_CRSPACE_RO, 0xF0014, 4, "RO map before the child closes its duplicate") : 0;
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE ready = CreateEventA(&inherit, TRUE, FALSE, NULL);
    SetHandleInformation(rw, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
    char args[100];
    DWORD pid = 0, code = 99;
    snprintf(args, sizeof args, "--child %llu %llu close", (unsigned long long)(uintptr_t)rw,
             (unsigned long long)(uintptr_t)ready);
    HANDLE proc = spawn(args, &pid);
    SetHandleInformation(rw, HANDLE_FLAG_INHERIT, 0);
    check(proc != NULL, "a child starts with a duplicate of the handle");
    if (proc) {
        WaitForSingleObject(proc, 30000);
        GetExitCodeProcess(proc, &code);
        CloseHandle(proc);
    }
    check(code == 0, "the child closed its duplicate and exited");
    FW_QUERY_CRSPACE_OUT q;
    check(query(rw, &q) && q.mapping_count == (windows ? 1u : 0u), "the parent's handle still answers, its views counted");
    if (va) {
        check(mlnx_hca_cr_read32(view_ptr(va), 0) == 0x000101F5, "the parent's view still reads the id");
        check(unmap(rw, va), "unmap");
    }
    CloseHandle(ready);
}

static int conformance(const char *path, int windows, int noclose) {
    printf("client pid %lu, %d-bit, device %s%s%s\n", GetCurrentProcessId(), (int)sizeof(void *) * 8, path,
           windows ? ", Windows (real maps)" : ", Wine (maps fail)", noclose ? ", exits without closing" : "");

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
    check(discovered && lstrcmpiA(found, path) == 0, line);
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
    refused(ro, "unknown code (function 0x808)", MLNX_HCA_CTL_CODE(0x808, MLNX_HCA_FILE_READ_ACCESS), junk, 12, 8,
            STATUS_INVALID_DEVICE_REQUEST);
    refused(ro, "map code with METHOD_NEITHER", FW_MAP_CRSPACE_RO | 3, junk, 12, 8, STATUS_INVALID_DEVICE_REQUEST);
    refused(ro, "unknown code asking write access, on a read-only handle",
            MLNX_HCA_CTL_CODE(0x808, MLNX_HCA_FILE_READ_ACCESS | MLNX_HCA_FILE_WRITE_ACCESS), junk, 12, 8,
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

    /* A mapped device (ConnectX-3): the device query says so, and the
     * gateway's requests are not its. */
    FW_QUERY_DEVICE_OUT d;
    check(query_device(ro, &d) && d.pci_device_id == 0x1003 && d.hw_id == 0x01F5 && d.path == MLNX_HCA_PATH_MAPPED &&
              d.spaces == 0 && d.max_count == MLNX_HCA_MAX_BLOCK_DWORDS && d.reserved == 0,
          "device query: ConnectX-3 (0x1003), hardware id 0x1f5, BAR 0 mapped, no gateway spaces");
    FW_CRSPACE_BLOCK_IN blk = {MLNX_HCA_SPACE_CR, 0xF0014, 1};
    refused(ro, "a block read on a mapped device", FW_READ_CRSPACE_BLOCK, &blk, sizeof blk, 4, STATUS_NOT_SUPPORTED);

    if (windows) {
        windows_maps(path, ro, rw);
    } else {
        /* Wine cannot map (MmMapLockedPagesSpecifyCache returns NULL): a
         * map must fail with the resources error and leave no view, entry
         * or lease. */
        in = (FW_MAP_CRSPACE_IN){0, 0xF0014, 4};
        refused(ro, "RO map (Wine cannot map)", FW_MAP_CRSPACE_RO, &in, sizeof in, 8, STATUS_INSUFFICIENT_RESOURCES);
        expect_idle(ro, "after the failed RO map");
        refused(rw, "RW map (Wine cannot map)", FW_MAP_CRSPACE_RW, &in, sizeof in, 8, STATUS_INSUFFICIENT_RESOURCES);
        expect_idle(rw, "after the failed RW map");
        expect_idle(ro, "seen from the other handle");
    }
    refused(rw, "unmap of a bogus VA on the RW handle", FW_UNMAP_CRSPACE, &un, sizeof un, 0, STATUS_INVALID_PARAMETER);
    duplicate_closed_in_child(rw, windows);
    expect_idle(rw, "at the end");

    check(CloseHandle(ro), "close the read-only handle");
    check(CloseHandle(rw), "close the read-write handle");
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}

/* ---------------------------------------------------------------- the gateway (ConnectX-4 and later) */

/* Whether this runs under Wine (its ntdll exports wine_get_version). */
static int under_wine(void) {
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

static int query_device(HANDLE h, FW_QUERY_DEVICE_OUT *d) {
    DWORD got;
    memset(d, 0xA5, sizeof *d);
    return call(h, FW_QUERY_DEVICE, NULL, 0, d, sizeof *d, &got) == 0 && got == sizeof *d;
}

/* FW_READ_CRSPACE_BLOCK of `count` dwords into `out`; the Win32 error. */
static DWORD read_block(HANDLE h, uint32_t space, uint32_t offset, uint32_t count, uint32_t *out) {
    FW_CRSPACE_BLOCK_IN in = {space, offset, count};
    DWORD got;
    DWORD err = call(h, FW_READ_CRSPACE_BLOCK, &in, sizeof in, out, 4 * count, &got);
    return err ? err : got == 4 * count ? 0 : ERROR_INVALID_DATA;
}

/* FW_WRITE_CRSPACE_BLOCK: the block header, then the dwords. */
static DWORD write_block(HANDLE h, uint32_t space, uint32_t offset, uint32_t count, const uint32_t *data) {
    uint32_t in[3 + MLNX_HCA_MAX_BLOCK_DWORDS] = {space, offset, count};
    memcpy(in + 3, data, 4 * count);
    DWORD got;
    return call(h, FW_WRITE_CRSPACE_BLOCK, in, 12 + 4 * count, NULL, 0, &got);
}

static DWORD lease(HANDLE h, uint32_t take) {
    FW_LEASE_CRSPACE_IN in = {take};
    DWORD got;
    return call(h, FW_LEASE_CRSPACE, &in, sizeof in, NULL, 0, &got);
}

/* One dword of a space, or 0xDEADDEAD when the read fails. */
static uint32_t read1(HANDLE h, uint32_t space, uint32_t offset) {
    uint32_t v;
    return read_block(h, space, offset, 1, &v) ? 0xDEADDEAD : v;
}

/* The child that takes a tool lock: opens its own handle, writes its pid
 * into the semaphore space at `offset`, signals, and waits to be killed. */
static int lock_child(const char *path, const char *event, const char *offset) {
    HANDLE ready = (HANDLE)(uintptr_t)strtoull(event, NULL, 0);
    HANDLE h = open_device(path, GENERIC_READ | GENERIC_WRITE);
    if (h == INVALID_HANDLE_VALUE) return 20;
    uint32_t pid = GetCurrentProcessId();
    if (write_block(h, MLNX_HCA_SPACE_SEMAPHORE, (uint32_t)strtoul(offset, NULL, 0), 1, &pid)) return 21;
    SetEvent(ready);
    Sleep(INFINITE);
    return 22;
}

/* A tool killed while it holds a lock: the driver gives the lock back, so
 * the next tool has it. Windows closes the killed process's handles before
 * its process object is signalled; Wine closes them in its server a moment
 * later, so the release is awaited (at most 10 s, reported). */
static void killed_lock_holder(const char *path, HANDLE other) {
    const uint32_t at = 0x44;
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE ready = CreateEventA(&inherit, TRUE, FALSE, NULL);
    char args[MAX_PATH + 64];
    snprintf(args, sizeof args, "--lock-child %s 0x%llx 0x%x", path, (unsigned long long)(uintptr_t)ready, at);
    DWORD pid = 0;
    HANDLE proc = ready ? spawn(args, &pid) : NULL;
    HANDLE both[2] = {ready, proc};
    int up = proc && WaitForMultipleObjects(2, both, FALSE, 30000) == WAIT_OBJECT_0;
    check(up && read1(other, MLNX_HCA_SPACE_SEMAPHORE, at) == pid, "a child tool holds a lock (its pid in the semaphore space)");
    if (proc) {
        TerminateProcess(proc, 9);
        WaitForSingleObject(proc, 30000);
        CloseHandle(proc);
    }
    DWORD waited = 0;
    uint32_t v = read1(other, MLNX_HCA_SPACE_SEMAPHORE, at);
    while (v != 0 && waited < 10000) {
        Sleep(50);
        waited += 50;
        v = read1(other, MLNX_HCA_SPACE_SEMAPHORE, at);
    }
    char line[160];
    snprintf(line, sizeof line, "killed: the driver gave its lock back (after %lu ms)", waited);
    check(v == 0, line);
    uint32_t mine = GetCurrentProcessId();
    check(write_block(other, MLNX_HCA_SPACE_SEMAPHORE, at, 1, &mine) == 0 &&
              read1(other, MLNX_HCA_SPACE_SEMAPHORE, at) == mine,
          "the next tool takes the lock");
    uint32_t zero = 0;
    check(write_block(other, MLNX_HCA_SPACE_SEMAPHORE, at, 1, &zero) == 0, "and gives it back");
    if (ready) CloseHandle(ready);
}

/* The gateway run, on a ConnectX-4 (the root test device root\mlnx_hca_sim4
 * or a real one): the block codes, the lease without views, the tool locks,
 * and every bad input. The same under Wine and on Windows: nothing is
 * mapped. `real` (a real HCA): its values are not the simulated device's,
 * so only what every ConnectX-4 and later shows is checked. */
static int gateway(const char *path, int real) {
    printf("client pid %lu, %d-bit, device %s, the configuration-space gateway%s\n", GetCurrentProcessId(),
           (int)sizeof(void *) * 8, path, real ? " of a real HCA" : "");
    HANDLE ro = open_device(path, GENERIC_READ);
    HANDLE rw = open_device(path, GENERIC_READ | GENERIC_WRITE);
    HANDLE rw2 = open_device(path, GENERIC_READ | GENERIC_WRITE);
    check(ro != INVALID_HANDLE_VALUE && rw != INVALID_HANDLE_VALUE && rw2 != INVALID_HANDLE_VALUE,
          "a read-only and two read-write opens");
    if (ro == INVALID_HANDLE_VALUE || rw == INVALID_HANDLE_VALUE || rw2 == INVALID_HANDLE_VALUE) {
        printf("%d passed, %d failed\n", passed, failed);
        return 1 + failed;
    }
    FW_QUERY_DEVICE_OUT d;
    char line[200];
    int ok = query_device(ro, &d);
    snprintf(line, sizeof line, "device query: pci id 0x%x, hardware id 0x%x, path %u, spaces 0x%x, at most %u dwords",
             d.pci_device_id, d.hw_id, d.path, d.spaces, d.max_count);
    uint32_t need = 1u << MLNX_HCA_SPACE_ICMD_EXT | 1u << MLNX_HCA_SPACE_CR | 1u << MLNX_HCA_SPACE_SEMAPHORE;
    check(ok && d.path == MLNX_HCA_PATH_GATEWAY && (d.spaces & need) == need &&
              d.max_count == MLNX_HCA_MAX_BLOCK_DWORDS && d.reserved == 0 &&
              (real || (d.pci_device_id == 0x1013 && d.hw_id == 0x209)),
          line);
    uint32_t id = read1(ro, MLNX_HCA_SPACE_CR, 0xF0014);
    snprintf(line, sizeof line, "CR space 0xf0014 through the gateway: 0x%08x, the hardware id the query reports", id);
    check((id & 0xFFFF) == d.hw_id, line);
    snprintf(line, sizeof line, "the same through ND_CR space");
    if (d.spaces & 1u << MLNX_HCA_SPACE_ND_CR) check(read1(ro, MLNX_HCA_SPACE_ND_CR, 0xF0014) == id, line);

    /* Bad input: a clear status, nothing moved. */
    FW_CRSPACE_BLOCK_IN blk = {MLNX_HCA_SPACE_CR, 0x1000, 0};
    refused(ro, "block of 0 dwords", FW_READ_CRSPACE_BLOCK, &blk, sizeof blk, 4, STATUS_INVALID_PARAMETER);
    blk.count = MLNX_HCA_MAX_BLOCK_DWORDS + 1;
    refused(ro, "block of 65 dwords", FW_READ_CRSPACE_BLOCK, &blk, sizeof blk, 4 * blk.count,
            STATUS_INVALID_PARAMETER);
    blk = (FW_CRSPACE_BLOCK_IN){MLNX_HCA_SPACE_CR, 0x1002, 1};
    refused(ro, "unaligned offset", FW_READ_CRSPACE_BLOCK, &blk, sizeof blk, 4, STATUS_INVALID_PARAMETER);
    blk = (FW_CRSPACE_BLOCK_IN){MLNX_HCA_SPACE_CR, 0x3FFFFFFC, 2};
    refused(ro, "a block past the gateway's 30-bit addresses", FW_READ_CRSPACE_BLOCK, &blk, sizeof blk, 8,
            STATUS_INVALID_PARAMETER);
    blk = (FW_CRSPACE_BLOCK_IN){5, 0x1000, 1};
    refused(ro, "a space the contract does not name", FW_READ_CRSPACE_BLOCK, &blk, sizeof blk, 4,
            STATUS_NOT_SUPPORTED);
    blk = (FW_CRSPACE_BLOCK_IN){MLNX_HCA_SPACE_CR, 0x1000, 4};
    refused(ro, "output shorter than the block", FW_READ_CRSPACE_BLOCK, &blk, sizeof blk, 12,
            STATUS_BUFFER_TOO_SMALL);
    refused(ro, "input 11 bytes", FW_READ_CRSPACE_BLOCK, &blk, 11, 16, STATUS_BUFFER_TOO_SMALL);
    uint32_t wr[3 + 2] = {MLNX_HCA_SPACE_CR, 0x1000, 2, 1, 2};
    refused(rw, "write input shorter than its dwords", FW_WRITE_CRSPACE_BLOCK, wr, 16, 0, STATUS_BUFFER_TOO_SMALL);
    refused(ro, "a write on a read-only handle", FW_WRITE_CRSPACE_BLOCK, wr, sizeof wr, 0, STATUS_ACCESS_DENIED);
    blk = (FW_CRSPACE_BLOCK_IN){MLNX_HCA_SPACE_SEMAPHORE, 0, 1};
    if (under_wine())
        printf("note: Wine passes no security context at create, so every handle is read-write to the driver;"
               " its refusal of the semaphore space to a read-only handle is checked on Windows\n");
    else
        refused(ro, "the semaphore space on a read-only handle (reads there have effects)", FW_READ_CRSPACE_BLOCK,
                &blk, sizeof blk, 4, STATUS_ACCESS_DENIED);
    FW_LEASE_CRSPACE_IN take = {1}, bogus = {2};
    refused(ro, "the lease on a read-only handle", FW_LEASE_CRSPACE, &take, sizeof take, 0, STATUS_ACCESS_DENIED);
    refused(rw, "lease input 3 bytes", FW_LEASE_CRSPACE, &take, 3, 0, STATUS_BUFFER_TOO_SMALL);
    refused(rw, "lease neither 0 nor 1", FW_LEASE_CRSPACE, &bogus, sizeof bogus, 0, STATUS_INVALID_PARAMETER);
    refused(ro, "device query output 23 bytes", FW_QUERY_DEVICE, NULL, 0, 23, STATUS_BUFFER_TOO_SMALL);
    FW_MAP_CRSPACE_IN in = {0, 0, 4};
    refused(ro, "a map: BAR 0 of a gateway device is never mapped", FW_MAP_CRSPACE_RO, &in, sizeof in, 8,
            STATUS_NOT_SUPPORTED);
    refused(rw, "a read-write map, the same", FW_MAP_CRSPACE_RW, &in, sizeof in, 8, STATUS_NOT_SUPPORTED);
    expect_idle(rw, "after the bad inputs");

    if (!real) {
        /* A whole block out and back, seen from every handle. */
        uint32_t out[MLNX_HCA_MAX_BLOCK_DWORDS], back[MLNX_HCA_MAX_BLOCK_DWORDS];
        for (int i = 0; i < MLNX_HCA_MAX_BLOCK_DWORDS; i++) out[i] = 0x5A000000u | (uint32_t)i << 8 | 0xC3;
        check(write_block(rw, MLNX_HCA_SPACE_CR, 0x10000, MLNX_HCA_MAX_BLOCK_DWORDS, out) == 0, "write 64 dwords");
        memset(back, 0, sizeof back);
        check(read_block(ro, MLNX_HCA_SPACE_CR, 0x10000, MLNX_HCA_MAX_BLOCK_DWORDS, back) == 0 &&
                  !memcmp(out, back, sizeof out),
              "the read-only handle reads them back, as written (no byte swap)");

        /* The lease without views: one writer at a time. */
        DWORD lease_error = lease(rw, 1);
        snprintf(line, sizeof line, "take the write lease (error %lu)", lease_error);
        check(lease_error == 0, line);
        FW_QUERY_CRSPACE_OUT q;
        check(query(ro, &q) && q.writer_pid == GetCurrentProcessId(), "the query names this process as the writer");
        uint32_t one = 1;
        check(lease(rw2, 1) == ERROR_BUSY, "a second handle cannot take it");
        check(write_block(rw2, MLNX_HCA_SPACE_CR, 0x10000, 1, &one) == ERROR_BUSY &&
                  read1(ro, MLNX_HCA_SPACE_CR, 0x10000) == out[0],
              "nor write while it is held (and wrote nothing)");
        check(write_block(rw, MLNX_HCA_SPACE_CR, 0x10000, 1, &one) == 0, "the holder writes");
        check(lease(rw2, 0) == 0, "giving back a lease one does not hold changes nothing");
        check(lease(rw, 0) == 0 && query(ro, &q) && q.writer_pid == 0, "the holder gives it back");
        check(write_block(rw2, MLNX_HCA_SPACE_CR, 0x10000, 1, &out[0]) == 0, "then the other handle writes");

        /* Tool locks: a handle's non-zero writes into the semaphore space go
         * back to 0 when it closes, where they still hold its value. */
        uint32_t pid = GetCurrentProcessId(), other = pid + 4;
        check(write_block(rw, MLNX_HCA_SPACE_SEMAPHORE, 0x40, 1, &pid) == 0 &&
                  read1(rw2, MLNX_HCA_SPACE_SEMAPHORE, 0x40) == pid,
              "a handle takes a lock");
        check(write_block(rw2, MLNX_HCA_SPACE_SEMAPHORE, 0x40, 1, &other) == 0 &&
                  read1(rw2, MLNX_HCA_SPACE_SEMAPHORE, 0x40) == pid,
              "another handle's value does not stick while it is taken");
        check(CloseHandle(rw), "close the lock holder");
        rw = INVALID_HANDLE_VALUE;
        check(read1(rw2, MLNX_HCA_SPACE_SEMAPHORE, 0x40) == 0, "its close gave the lock back");
        killed_lock_holder(path, rw2);
    }
    expect_idle(rw2, "at the end");
    if (rw != INVALID_HANDLE_VALUE) CloseHandle(rw);
    check(CloseHandle(rw2) && CloseHandle(ro), "close");
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}

/* A standard user's view of the device: `read` after the administrator's
 * read grant, else none at all. */
static int as_user(const char *path, int read) {
    printf("client pid %lu, %d-bit, device %s, as a standard user (%s)\n", GetCurrentProcessId(),
           (int)sizeof(void *) * 8, path, read ? "read granted" : "no grant");
    HANDLE rw = open_device(path, GENERIC_READ | GENERIC_WRITE);
    DWORD rw_error = GetLastError();
    check(rw == INVALID_HANDLE_VALUE && rw_error == ERROR_ACCESS_DENIED, "a read-write open is denied");
    if (rw != INVALID_HANDLE_VALUE) CloseHandle(rw);
    HANDLE ro = open_device(path, GENERIC_READ);
    DWORD ro_error = GetLastError();
    if (!read) {
        check(ro == INVALID_HANDLE_VALUE && ro_error == ERROR_ACCESS_DENIED, "a read-only open is denied");
    } else {
        check(ro != INVALID_HANDLE_VALUE, "a read-only open works");
        if (ro != INVALID_HANDLE_VALUE) {
            uint64_t va = map(ro, FW_MAP_CRSPACE_RO, 0xF0014, 4, "RO map");
            if (va) {
                check(mlnx_hca_cr_read32(view_ptr(va), 0) == 0x000101F5, "the view reads the id");
                check(unmap(ro, va), "unmap");
            }
            FW_MAP_CRSPACE_IN in = {0, 0xF0014, 4};
            refused(ro, "RW map on the read-only handle", FW_MAP_CRSPACE_RW, &in, sizeof in, 8, STATUS_ACCESS_DENIED);
        }
    }
    if (ro != INVALID_HANDLE_VALUE) CloseHandle(ro);
    printf("%d passed, %d failed\n", passed, failed);
    return failed;
}

/* Holds a read-only view until standard input ends. */
static int hold(const char *path) {
    HANDLE ro = open_device(path, GENERIC_READ);
    if (ro == INVALID_HANDLE_VALUE) {
        printf("hold: open failed: error %lu\n", GetLastError());
        return 1;
    }
    uint64_t va = map(ro, FW_MAP_CRSPACE_RO, 0xF0014, 4, "RO map to hold");
    printf("holding %s (view 0x%llx)\n", path, (unsigned long long)va);
    fflush(stdout);
    char buf[64];
    while (fgets(buf, sizeof buf, stdin)) {
    }
    CloseHandle(ro);
    printf("released\n");
    return va ? 0 : 1;
}

/* CM_Query_And_Remove_SubTree: refused (vetoed) while a view or a handle
 * lives; the veto type and name say who refused. */
static int query_remove(const char *instance) {
    DEVINST dn;
    CONFIGRET cr = CM_Locate_DevNodeA(&dn, (DEVINSTID_A)instance, CM_LOCATE_DEVNODE_NORMAL);
    if (cr != CR_SUCCESS) {
        printf("no device %s (CONFIGRET %lu)\n", instance, (unsigned long)cr);
        return 2;
    }
    PNP_VETO_TYPE veto = PNP_VetoTypeUnknown;
    char name[MAX_PATH] = "";
    cr = CM_Query_And_Remove_SubTreeA(dn, &veto, name, MAX_PATH, CM_REMOVE_UI_NOT_OK);
    if (cr == CR_SUCCESS) {
        printf("removed %s\n", instance);
        return 0;
    }
    printf("vetoed %d %s (CONFIGRET %lu)\n", (int)veto, name, (unsigned long)cr);
    return 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *fallback = "\\\\.\\mlnx_hca0";
    if (argc > 1 && !strcmp(argv[1], "--child") && argc == 5) return child(argv[2], argv[3], argv[4]);
    if (argc > 1 && !strcmp(argv[1], "--query-remove") && argc == 3) return query_remove(argv[2]);
    if (argc > 1 && !strcmp(argv[1], "--lock-child") && argc == 5) return lock_child(argv[2], argv[3], argv[4]);
    if (argc > 1 && !strcmp(argv[1], "--gateway")) return gateway(argc > 2 ? argv[2] : "\\\\.\\mlnx_hca1", 0);
    if (argc > 1 && !strcmp(argv[1], "--gateway-real") && argc == 3) return gateway(argv[2], 1);
    if (argc > 1 && !strcmp(argv[1], "--hold")) return hold(argc > 2 ? argv[2] : fallback);
    if (argc > 2 && !strcmp(argv[1], "--user") && (!strcmp(argv[2], "none") || !strcmp(argv[2], "read")))
        return as_user(argc > 3 ? argv[3] : fallback, !strcmp(argv[2], "read"));
    int windows = argc > 1 && !strcmp(argv[1], "--windows");
    int first = windows ? 2 : 1;
    const char *path = argc > first ? argv[first] : fallback;
    int noclose = argc > first + 1 && !strcmp(argv[first + 1], "noclose");
    if (argc > first + 2 || (argc > first + 1 && !noclose) || (argc > first && argv[first][0] == '-')) {
        printf("usage: client.exe [--windows] [DEVICE] [noclose] | --user none|read [DEVICE] | --hold [DEVICE]"
               " | --query-remove INSTANCE-ID | --gateway [DEVICE] | --gateway-real DEVICE\n");
        return 2;
    }
    return conformance(path, windows, noclose);
}
