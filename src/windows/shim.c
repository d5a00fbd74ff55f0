/*
 * shim.c - the two memory-manager calls of mlnx_hca that report failure by
 * raising an exception instead of returning it, each inside __try/__except
 * (structured exception handling, which Rust cannot express). Compiled by
 * build.rs for Windows targets with the WDK's include paths and defines.
 *
 * Both run synchronously in the calling thread; the Rust side
 * (src/windows/platform.rs) owns the MDLs and everything else.
 */
#include <ntddk.h>

NTSTATUS mlnx_hca_map_user(PMDL Mdl, MEMORY_CACHING_TYPE CacheType, ULONG Priority, PVOID *UserVa);
NTSTATUS mlnx_hca_probe_and_lock(PMDL Mdl, LOCK_OPERATION Operation);

/*
 * MmMapLockedPagesSpecifyCache(Mdl, UserMode, ...) maps the MDL's pages into
 * the current process. With AccessMode == UserMode it raises an exception
 * when it cannot map (BugCheckOnFailure is ignored for user mappings).
 * Priority carries MdlMappingNoExecute and, for read-only views,
 * MdlMappingNoWrite. IRQL <= APC_LEVEL.
 */
NTSTATUS mlnx_hca_map_user(PMDL Mdl, MEMORY_CACHING_TYPE CacheType, ULONG Priority, PVOID *UserVa)
{
    PVOID va = NULL;

    *UserVa = NULL;
    __try {
        va = MmMapLockedPagesSpecifyCache(Mdl, UserMode, CacheType, NULL, FALSE, Priority);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return GetExceptionCode();
    }
    if (va == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    *UserVa = va;
    return STATUS_SUCCESS;
}

/*
 * MmProbeAndLockPages(Mdl, KernelMode, Operation) raises an exception when a
 * page cannot be locked. Used only for nonpaged RAM (the simulated BAR).
 * IRQL <= DISPATCH_LEVEL for nonpaged memory.
 */
NTSTATUS mlnx_hca_probe_and_lock(PMDL Mdl, LOCK_OPERATION Operation)
{
    __try {
        MmProbeAndLockPages(Mdl, KernelMode, Operation);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return GetExceptionCode();
    }
    return STATUS_SUCCESS;
}
