#!/bin/bash
# make-wdk.sh OUT [VERSION]  -- assemble a synthetic WDKContentRoot on Debian.
# make-wdk.sh --stamp [VERSION] -- print the stamp a tree built now would carry.
#
# wdk-build 0.6 reads the WDK from $WDKContentRoot with this layout (WDM, x64):
#   OUT/Include/<VERSION>/km/crt   CRT headers            (include path 1)
#   OUT/Include/<VERSION>/km       kernel headers         (include path 2)
#   OUT/Include/<VERSION>/shared   shared SDK headers     (include path 3)
#   OUT/Lib/<VERSION>/km/x64       ntoskrnl.lib hal.lib wmilib.lib
#                                  BufferOverflowFastFailK.lib
# There is no WDK for Linux, so the tree is built from Debian's
# mingw-w64-x86-64-dev (mingw-w64 10):
#   * km/ holds symlinks to mingw's include/ddk headers, except for two
#     patched copies (wdm.h, ntddk.h) where mingw differs from the WDK in a way
#     the driver can see, and the compat header wdk_compat.h (declarations
#     of the real WDK that mingw-w64 10 lacks), included at the end of wdm.h so
#     that bindgen (ntifs.h ntddk.h ntstrsafe.h) and a C shim including
#     <ntddk.h> both see it;
#   * km/crt and shared are symlinks to mingw's include/;
#   * the .lib files are MSVC short-import libraries written by llvm-dlltool
#     from the export lists of mingw's GNU import libraries (function exports
#     get a thunk, data exports are marked DATA, i.e. only __imp_X exists, as
#     in the real WDK libraries), plus the Win10 exports mingw lacks.
# Then a self-test compiles a C file that uses every kernel routine the driver
# needs against the tree (clang-14, same flags as bindgen) and checks that each
# exported one is in the import library.
#
# Idempotent: the tree is built in OUT.tmp and swapped in whole; OUT/.stamp
# records the script hash, VERSION and the mingw/llvm/clang package versions.
# build.sh reruns this script only when that stamp changes, because a new tree
# (new mtimes) makes wdk-sys rerun bindgen (~10 s per cargo profile).
set -euo pipefail

MINGW=/usr/x86_64-w64-mingw32
SELF=$(realpath "$0")

stamp() {
    local v=$1
    printf 'script=%s\nversion=%s\n%s\n' \
        "$(sha256sum "$SELF" | cut -d' ' -f1)" "$v" \
        "$(dpkg-query -W -f='${Package}=${Version}\n' mingw-w64-x86-64-dev llvm clang-14 2>/dev/null)"
}

if [ "${1:-}" = --stamp ]; then
    stamp "${2:-10.0.26100.0}"
    exit 0
fi

OUT=${1:?usage: make-wdk.sh OUT [VERSION] | make-wdk.sh --stamp [VERSION]}
V=${2:-10.0.26100.0}
OUT=$(realpath -m "$OUT")
[ -d "$MINGW/include/ddk" ] || { echo "make-wdk: $MINGW/include/ddk missing (install-deps.sh)" >&2; exit 1; }

TMP=$OUT.tmp
rm -rf "$TMP"
INC=$TMP/Include/$V
KM=$INC/km
LIB=$TMP/Lib/$V/km/x64
mkdir -p "$KM" "$LIB" "$TMP/defs"

# ---------------------------------------------------------------- headers
ln -s "$MINGW/include" "$KM/crt"
ln -s "$MINGW/include" "$INC/shared"
for h in "$MINGW"/include/ddk/*; do
    ln -s "$h" "$KM/$(basename "$h")"
done

# Patched copies of mingw headers. Each substitution must match exactly once.
patch_header() { # NAME PYTHON-REPLACEMENTS...  (pairs of regex / replacement)
    local name=$1; shift
    rm "$KM/$name"
    python3 - "$MINGW/include/ddk/$name" "$KM/$name" "$@" <<'PY'
import re, sys
src, dst, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
s = open(src).read()
for pat, rep in zip(pairs[::2], pairs[1::2]):
    s, n = re.subn(pat, rep, s, flags=re.S)
    if n != 1:
        sys.exit("make-wdk: %s: %r matched %d times" % (src, pat, n))
open(dst, "w").write(s)
PY
}

# wdm.h:
#  * MmMapLockedPagesSpecifyCache: the WDK (wdm.h) declares the last parameter
#    `ULONG Priority  // MM_PAGE_PRIORITY logically OR'd with MdlMapping*`;
#    mingw has `MM_PAGE_PRIORITY Priority` (an enum, i32 in Rust).
#  * DEVICE_OBJECT and IRP are `typedef struct DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT)`
#    in the WDK (16 on x64): sizeof(DEVICE_OBJECT) is 0x150 there, 0x148 in
#    mingw. (MEMORY_ALLOCATION_ALIGNMENT itself is only defined later, in
#    wdk_compat.h, hence the literal.)
#  * PEPROCESS/PETHREAD: the WDK's wdm.h picks the pointee by who includes it:
#      #if defined(_NTHAL_INCLUDED_)    _KPROCESS / _ETHREAD
#      #elif defined(_NTIFS_INCLUDED_)  _KPROCESS / _KTHREAD
#      #else                            _EPROCESS / _ETHREAD
#    and bindgen (ntifs.h first) therefore sees PEPROCESS = *mut _KPROCESS,
#    which KeStackAttachProcess(PRKPROCESS) accepts without a cast. mingw
#    always uses _EPROCESS/_ETHREAD.
#  * include our compat header once wdm.h's own declarations are done.
patch_header wdm.h \
    'typedef struct _EPROCESS \*PEPROCESS;\ntypedef struct _ETHREAD \*PETHREAD;\n' \
    '/* wdk-cross: as in the WDK */\n#if defined(_NTHAL_INCLUDED_)\ntypedef struct _KPROCESS *PEPROCESS;\ntypedef struct _ETHREAD *PETHREAD;\n#elif defined(_NTIFS_INCLUDED_)\ntypedef struct _KPROCESS *PEPROCESS;\ntypedef struct _KTHREAD *PETHREAD;\n#else\ntypedef struct _EPROCESS *PEPROCESS;\ntypedef struct _ETHREAD *PETHREAD;\n#endif\n' \
    '(MmMapLockedPagesSpecifyCache\([^;]*?)IN MM_PAGE_PRIORITY Priority\);' \
    '\1IN ULONG Priority);' \
    'typedef struct _DEVICE_OBJECT \{' \
    'typedef struct DECLSPEC_ALIGN(16) _DEVICE_OBJECT {' \
    'typedef struct _IRP \{' \
    'typedef struct DECLSPEC_ALIGN(16) _IRP {' \
    '\Z' \
    '\n/* wdk-cross: declarations of the real WDK that mingw-w64 lacks */\n#include "wdk_compat.h"\n'

# ntddk.h: PS_CREATE_NOTIFY_INFO's flag bits are, in the WDK (ntddk.h),
#   ULONG FileOpenNameAvailable : 1; ULONG IsSubsystemProcess : 1; ULONG Reserved : 30;
# mingw only knows FileOpenNameAvailable:1 + Reserved:31 (same layout, but the
# IsSubsystemProcess accessor would be missing from the bindings).
patch_header ntddk.h \
    '(IN ULONG FileOpenNameAvailable:1;\n)(\s*)IN ULONG Reserved:31;' \
    '\1\2IN ULONG IsSubsystemProcess:1;\n\2IN ULONG Reserved:30;'

cat > "$KM/wdk_compat.h" <<'HDR'
/*
 * wdk_compat.h -- declarations present in the real WDK (10.0.26100) but
 * missing from mingw-w64 10's DDK headers. Included at the end of wdm.h.
 * Every declaration is written as the WDK header named in its comment
 * declares it (same types, same calling convention; SAL annotations dropped).
 * Do not add anything here that is not in the real WDK.
 */
#ifndef WDK_CROSS_COMPAT_H
#define WDK_CROSS_COMPAT_H

/* ntdef.h / winnt.h: #define DECLSPEC_RESTRICT __declspec(restrict) */
#ifndef DECLSPEC_RESTRICT
#define DECLSPEC_RESTRICT __declspec(restrict)
#endif

/* wdm.h: pool flags for ExAllocatePool2/3 (Windows 10 2004+). The UI64
 * suffix is the WDK's; bindgen cannot parse it (rust-bindgen#2600), exactly as
 * with the real WDK, and wdk-sys defines the POOL_FLAG_* constants itself. */
typedef ULONG64 POOL_FLAGS;

#define POOL_FLAG_REQUIRED_START          0x0000000000000001UI64
#define POOL_FLAG_USE_QUOTA               0x0000000000000001UI64
#define POOL_FLAG_UNINITIALIZED           0x0000000000000002UI64
#define POOL_FLAG_SESSION                 0x0000000000000004UI64
#define POOL_FLAG_CACHE_ALIGNED           0x0000000000000008UI64
#define POOL_FLAG_RESERVED1               0x0000000000000010UI64
#define POOL_FLAG_RAISE_ON_FAILURE        0x0000000000000020UI64
#define POOL_FLAG_NON_PAGED               0x0000000000000040UI64
#define POOL_FLAG_NON_PAGED_EXECUTE       0x0000000000000080UI64
#define POOL_FLAG_PAGED                   0x0000000000000100UI64
#define POOL_FLAG_RESERVED2               0x0000000000000200UI64
#define POOL_FLAG_RESERVED3               0x0000000000000400UI64
#define POOL_FLAG_REQUIRED_END            0x0000000080000000UI64
#define POOL_FLAG_OPTIONAL_START          0x0000000100000000UI64
#define POOL_FLAG_SPECIAL_POOL            0x0000000100000000UI64
#define POOL_FLAG_OPTIONAL_END            0x8000000000000000UI64

/* wdm.h (NTDDI_VERSION >= NTDDI_WIN10_VB) */
DECLSPEC_RESTRICT
NTKERNELAPI
PVOID
NTAPI
ExAllocatePool2 (
    POOL_FLAGS Flags,
    SIZE_T NumberOfBytes,
    ULONG Tag
    );

/* wdm.h (NTDDI_VERSION >= NTDDI_WIN10) */
NTKERNELAPI
PVOID
MmMapIoSpaceEx (
    PHYSICAL_ADDRESS PhysicalAddress,
    SIZE_T NumberOfBytes,
    ULONG Protect
    );

/* wdm.h (NTDDI_VERSION >= NTDDI_WIN8): an MDL that describes device memory
 * (I/O space) by physical address, without touching it. */
typedef struct _MM_PHYSICAL_ADDRESS_LIST {
    PHYSICAL_ADDRESS PhysicalAddress;
    SIZE_T NumberOfBytes;
} MM_PHYSICAL_ADDRESS_LIST, *PMM_PHYSICAL_ADDRESS_LIST;

NTKERNELAPI
NTSTATUS
MmAllocateMdlForIoSpace (
    PMM_PHYSICAL_ADDRESS_LIST PhysicalAddressList,
    SIZE_T NumberOfEntries,
    PMDL *NewMdl
    );

/* wdm.h: flags OR'd into MmMapLockedPagesSpecifyCache's Priority (Windows 8+) */
#define MdlMappingNoWrite       0x80000000  // Create the mapping as nowrite
#define MdlMappingNoExecute     0x40000000  // Create the mapping as noexecute

/* ntdef.h / winnt.h (_WIN64) */
#ifndef MEMORY_ALLOCATION_ALIGNMENT
#define MEMORY_ALLOCATION_ALIGNMENT 16
#endif

/* Not needed here: __C_specific_handler (the __try/__except language handler,
 * exported by ntoskrnl.exe) is declared by mingw's excpt.h for x64 like the
 * WDK's km/crt/excpt.h, with EXCEPTION_DISPOSITION as int (an enum there). */

#endif /* WDK_CROSS_COMPAT_H */
HDR

# ---------------------------------------------------------------- import libraries
# Exports of ntoskrnl.exe (Windows 10+) that mingw-w64 10's libntoskrnl.a lacks.
# Keep in step with the declarations in wdk_compat.h.
NTOSKRNL_EXTRA="ExAllocatePool2 MmMapIoSpaceEx MmAllocateMdlForIoSpace"

# mkimplib MINGW-LIB DLL OUT-LIB [EXTRA-EXPORTS...]
mkimplib() {
    local a=$MINGW/lib/lib$1.a dll=$2 out=$3; shift 3
    local def=$TMP/defs/${out%.lib}.def
    {
        echo "LIBRARY $dll"
        echo "EXPORTS"
        # In a GNU import library a function export defines both X (thunk) and
        # __imp_X; a data export only __imp_X. Keep that distinction.
        llvm-nm --defined-only "$a" 2>/dev/null | awk '
            NF == 3 && $3 ~ /^__imp_/ { imp[substr($3, 7)] = 1; next }
            NF == 3 && $2 == "T"      { code[$3] = 1 }
            END { for (s in imp) print s (s in code ? "" : " DATA") }' | LC_ALL=C sort
        for x in "$@"; do echo "$x"; done
    } > "$def"
    llvm-dlltool -m i386:x86-64 -d "$def" -l "$LIB/$out"
}
# shellcheck disable=SC2086
mkimplib ntoskrnl ntoskrnl.exe ntoskrnl.lib $NTOSKRNL_EXTRA
mkimplib hal hal.dll hal.lib
mkimplib wmilib wmilib.sys wmilib.lib
# /GS fast-fail support library of the WDK; Rust code does not use it (empty).
llvm-ar rcs "$LIB/BufferOverflowFastFailK.lib"

# ---------------------------------------------------------------- self-test
# 1. Every routine the driver uses is declared (macros and inline helpers are
#    fine too), compiled the way bindgen parses the headers.
# 2. Every routine the driver imports is exported by the import libraries.
DECLARED="IoAllocateMdl IoFreeMdl MmMapLockedPagesSpecifyCache
MmUnmapLockedPages MmProtectMdlSystemAddress MmMapIoSpaceEx MmMapIoSpace MmUnmapIoSpace
ExAllocatePool2 ExAllocatePoolWithTag ExFreePoolWithTag ExFreePool KeStackAttachProcess
KeUnstackDetachProcess PsSetCreateProcessNotifyRoutineEx PsGetCurrentProcessId
PsGetCurrentProcess IoGetCurrentProcess ObfReferenceObject ObfDereferenceObject
PsLookupProcessByProcessId IoCreateDevice IoDeleteDevice IoAttachDeviceToDeviceStack
IoDetachDevice IofCallDriver IofCompleteRequest IoRegisterDeviceInterface
IoSetDeviceInterfaceState IoCreateSymbolicLink IoDeleteSymbolicLink ExInitializeFastMutex
ExAcquireFastMutex ExReleaseFastMutex KeInitializeGuardedMutex KeAcquireGuardedMutex
KeReleaseGuardedMutex ExInitializeResourceLite ExAcquireResourceExclusiveLite
ExAcquireResourceSharedLite ExReleaseResourceLite ExDeleteResourceLite KeEnterCriticalRegion
KeLeaveCriticalRegion IoAcquireRemoveLockEx IoReleaseRemoveLockEx
IoReleaseRemoveLockAndWaitEx IoInitializeRemoveLockEx KeInitializeEvent
KeWaitForSingleObject KeSetEvent IoSetCompletionRoutineEx IoSetCompletionRoutine
IoGetCurrentIrpStackLocation IoGetNextIrpStackLocation IoCopyCurrentIrpStackLocationToNext
IoSkipCurrentIrpStackLocation DbgPrint DbgPrintEx PoStartNextPowerIrp PoCallDriver
RtlInitUnicodeString KeBugCheckEx __C_specific_handler MmAllocateMdlForIoSpace
MmProbeAndLockPages MmUnlockPages IoGetDeviceProperty RtlFreeUnicodeString IoGetRequestorProcess
PsGetProcessId PoRegisterSystemState PoUnregisterSystemState PoRequestPowerIrp PoSetPowerState
ObOpenObjectByPointer ZwSetSecurityObject ZwOpenKey ZwQueryValueKey ZwClose IoOpenDeviceRegistryKey
ZwSetValueKey ZwDeleteValueKey IoIs32bitProcess IoBuildSynchronousFsdRequest
KeDelayExecutionThread KeQueryPerformanceCounter"
# Inline in the WDK (FORCEINLINE / macros): never imported.
INLINE="PsGetCurrentProcess ExInitializeFastMutex IoSetCompletionRoutine
IoGetCurrentIrpStackLocation IoGetNextIrpStackLocation IoCopyCurrentIrpStackLocationToNext
IoSkipCurrentIrpStackLocation"

CHECK=$TMP/defs/selftest.c
{
    echo '#include <ntifs.h>'
    echo '#include <ntddk.h>'
    echo '#include <ntstrsafe.h>'
    echo 'void *wdk_cross_selftest[] = {'
    for f in $DECLARED; do echo "    (void *)&$f,"; done
    echo '    (void *)(ULONG_PTR)(MdlMappingNoWrite | MdlMappingNoExecute),'
    echo '    (void *)sizeof(POOL_FLAGS),'
    echo '};'
    echo '_Static_assert(sizeof(POOL_FLAGS) == 8, "POOL_FLAGS");'
    echo '_Static_assert(MdlMappingNoWrite == 0x80000000u && MdlMappingNoExecute == 0x40000000u, "MdlMapping*");'
    # Sizes of the structures the driver touches, as in the x64 WDK (dt nt!_X).
    for s in DEVICE_OBJECT:0x150 DRIVER_OBJECT:0x150 IRP:0xd0 IO_STACK_LOCATION:0x48 \
             FILE_OBJECT:0xd8 MDL:0x30 ERESOURCE:0x68 FAST_MUTEX:0x38 KGUARDED_MUTEX:0x38 \
             KEVENT:0x18 KAPC_STATE:0x30 IO_REMOVE_LOCK:0x20 KDPC:0x40 KTIMER:0x40 \
             UNICODE_STRING:0x10 IO_STATUS_BLOCK:0x10 PS_CREATE_NOTIFY_INFO:0x48; do
        echo "_Static_assert(sizeof(${s%:*}) == ${s#*:}, \"sizeof(${s%:*}) != ${s#*:}\");"
    done
    echo '_Static_assert(_Alignof(DEVICE_OBJECT) == 16 && _Alignof(IRP) == 16, "DECLSPEC_ALIGN");'
    echo '_Static_assert(_Generic((PEPROCESS)0, struct _KPROCESS *: 1, default: 0), "PEPROCESS");'
    echo '_Static_assert(_Generic((PETHREAD)0, struct _KTHREAD *: 1, default: 0), "PETHREAD");'
} > "$CHECK"
# Inline functions have no address to take in every mingw variant; a macro
# cannot have its address taken at all: strip those from the address table
# and just make sure the names are known.
for f in $INLINE; do sed -i "/(void \*)&$f,/d" "$CHECK"; done
for f in $INLINE; do
    grep -qE "(^|[^A-Za-z0-9_])$f([^A-Za-z0-9_]|$)" "$MINGW/include/ddk/wdm.h" "$KM/wdm.h" \
        || { echo "make-wdk: $f not found in wdm.h" >&2; exit 1; }
done
clang-14 --target=x86_64-pc-windows-msvc -fsyntax-only -fms-extensions -fno-ms-compatibility \
    -fno-builtin -D_WIN64 -D_AMD64_ -DAMD64 -D_KERNEL_MODE \
    -Wno-ignored-attributes -Wno-pragma-pack -Wno-microsoft -Wno-comment \
    -Wno-ignored-pragma-intrinsic -Wno-nonportable-include-path -D__AMXINTRIN_H \
    -nostdinc -isystem "$(clang-14 -print-resource-dir)/include" \
    -I"$KM/crt" -I"$KM" -I"$INC/shared" "$CHECK"

is_inline() { local i; for i in $INLINE; do [ "$i" = "$1" ] && return 0; done; return 1; }
missing=""
for f in $DECLARED; do
    is_inline "$f" && continue
    grep -qxE "$f( DATA)?" "$TMP"/defs/ntoskrnl.def "$TMP"/defs/hal.def || missing="$missing $f"
done
[ -z "$missing" ] || { echo "make-wdk: not exported by the import libraries:$missing" >&2; exit 1; }

# ---------------------------------------------------------------- publish
stamp "$V" > "$TMP/.stamp"
rm -rf "$OUT.old"
[ ! -e "$OUT" ] || mv "$OUT" "$OUT.old"
mv "$TMP" "$OUT"
rm -rf "$OUT.old"
echo "make-wdk: WDKContentRoot=$OUT (version $V):" \
     "$(grep -vcE '^(LIBRARY|EXPORTS)' "$OUT/defs/ntoskrnl.def") ntoskrnl," \
     "$(grep -vcE '^(LIBRARY|EXPORTS)' "$OUT/defs/hal.def") hal exports"
