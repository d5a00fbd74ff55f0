/*
 * mlnx_hca_ioctl.h - the CR-space mapping interface of the mlnx_hca driver.
 *
 * For tools (firmware burners, register viewers, trace readers) that open the
 * driver and call DeviceIoControl. The Rust definitions in src/abi.rs are the
 * same ABI; tests/c_header.rs compiles this header and proves codes, sizes and
 * field offsets equal. Blocks are fixed-width and little-endian, identical
 * for 32- and 64-bit callers (WOW64).
 *
 * CR space itself is big-endian, as on the bus: read and write a view with
 * mlnx_hca_cr_read32/mlnx_hca_cr_write32 below, which swap, never with a
 * plain load or store.
 *
 * Status codes (NTSTATUS; GetLastError() shows the Win32 mapping):
 *   STATUS_INVALID_DEVICE_REQUEST  unknown I/O control code
 *   STATUS_ACCESS_DENIED           FW_MAP_CRSPACE_RW on a handle not opened for
 *                                  write (only SYSTEM and Administrators can)
 *   STATUS_BUFFER_TOO_SMALL        input or output shorter than its block
 *   STATUS_NOT_IMPLEMENTED         bar_num 1 (UAR) or 2 (DDR)
 *   STATUS_INVALID_PARAMETER       other bar_num; offset/size not multiples of
 *                                  4, size 0, or past the BAR; unmap of a VA
 *                                  this handle did not map in this process
 *   STATUS_INSUFFICIENT_RESOURCES  per-handle or per-device mapping quota
 *   STATUS_DEVICE_BUSY             another handle holds the write lease
 *   STATUS_DELETE_PENDING          the device was removed
 *   STATUS_NOT_SUPPORTED           a map or unmap forwarded from another
 *                                  context; a request of the other path (a
 *                                  map on a gateway device, a block request
 *                                  on a mapped one); an address space the
 *                                  device does not report
 *   STATUS_IO_TIMEOUT              the gateway's semaphore stayed taken 2 s
 *   STATUS_IO_DEVICE_ERROR         the gateway did not complete a transfer
 *
 * Two paths to CR space (FW_QUERY_DEVICE says which): on ConnectX-3 and
 * older BAR 0 is CR space and the map codes map it; on ConnectX-4 and later
 * the block codes move up to MLNX_HCA_MAX_BLOCK_DWORDS dwords of a named
 * address space through the configuration-space gateway. Block values are
 * the device's as the gateway carries them: no byte swap.
 */
#ifndef MLNX_HCA_IOCTL_H
#define MLNX_HCA_IOCTL_H

#include <stdint.h>

#define MLNX_HCA_FILE_DEVICE_INFINIBAND 0x0000003B
#define MLNX_HCA_METHOD_BUFFERED        0
#define MLNX_HCA_FILE_READ_ACCESS       0x0001
#define MLNX_HCA_FILE_WRITE_ACCESS      0x0002

/* CTL_CODE from devioctl.h, spelled out so the header needs no WDK/SDK. */
#define MLNX_HCA_CTL_CODE(function, access) \
    (((uint32_t)MLNX_HCA_FILE_DEVICE_INFINIBAND << 16) | ((uint32_t)(access) << 14) | \
     ((uint32_t)(function) << 2) | (uint32_t)MLNX_HCA_METHOD_BUFFERED)

/* Map a window of BAR 0 read-only.  in: FW_MAP_CRSPACE_IN, out: FW_MAP_CRSPACE_OUT */
#define FW_MAP_CRSPACE_RO MLNX_HCA_CTL_CODE(0x800, MLNX_HCA_FILE_READ_ACCESS)
/* Map a window of BAR 0 read-write; takes the device's write lease.  Same blocks. */
#define FW_MAP_CRSPACE_RW MLNX_HCA_CTL_CODE(0x801, MLNX_HCA_FILE_READ_ACCESS | MLNX_HCA_FILE_WRITE_ACCESS)
/* Unmap a view.  in: FW_UNMAP_CRSPACE_IN, no output */
#define FW_UNMAP_CRSPACE  MLNX_HCA_CTL_CODE(0x802, MLNX_HCA_FILE_READ_ACCESS)
/* BAR sizes, lease holder, this handle's mappings.  no input, out: FW_QUERY_CRSPACE_OUT */
#define FW_QUERY_CRSPACE  MLNX_HCA_CTL_CODE(0x803, MLNX_HCA_FILE_READ_ACCESS)
/* Read `count` dwords of a space through the gateway.  in: FW_CRSPACE_BLOCK_IN,
 * out: `count` uint32_t (a read-only handle reads CR and ND_CR space only) */
#define FW_READ_CRSPACE_BLOCK  MLNX_HCA_CTL_CODE(0x804, MLNX_HCA_FILE_READ_ACCESS)
/* Write `count` dwords.  in: FW_CRSPACE_BLOCK_IN followed by `count` uint32_t,
 * no output; needs the write lease free or held by this handle */
#define FW_WRITE_CRSPACE_BLOCK MLNX_HCA_CTL_CODE(0x805, MLNX_HCA_FILE_READ_ACCESS | MLNX_HCA_FILE_WRITE_ACCESS)
/* Take (1) or give back (0) the write lease without mapping.  in:
 * FW_LEASE_CRSPACE_IN, no output */
#define FW_LEASE_CRSPACE       MLNX_HCA_CTL_CODE(0x806, MLNX_HCA_FILE_READ_ACCESS | MLNX_HCA_FILE_WRITE_ACCESS)
/* The device's identity and path.  no input, out: FW_QUERY_DEVICE_OUT */
#define FW_QUERY_DEVICE        MLNX_HCA_CTL_CODE(0x807, MLNX_HCA_FILE_READ_ACCESS)

#define MLNX_HCA_MAX_BLOCK_DWORDS 64 /* dwords one block request moves at most */
#define MLNX_HCA_PATH_MAPPED      1  /* FW_QUERY_DEVICE_OUT.path: BAR 0 is CR space */
#define MLNX_HCA_PATH_GATEWAY     2  /* FW_QUERY_DEVICE_OUT.path: the gateway */
/* Address spaces of the gateway (FW_CRSPACE_BLOCK_IN.space). */
#define MLNX_HCA_SPACE_ICMD_EXT   0x1
#define MLNX_HCA_SPACE_CR         0x2
#define MLNX_HCA_SPACE_ICMD       0x3
#define MLNX_HCA_SPACE_ND_CR      0x6 /* CR space, non-destructive reads */
#define MLNX_HCA_SPACE_SEMAPHORE  0xA /* the tools' locks; what a handle writes here
                                          is written back to 0 when it ends */

typedef struct FW_MAP_CRSPACE_IN {
    uint32_t bar_num; /* 0: CR space. 1 (UAR), 2 (DDR): STATUS_NOT_IMPLEMENTED */
    uint32_t offset;  /* byte offset in the BAR, multiple of 4 */
    uint32_t size;    /* bytes, non-zero multiple of 4; offset + size <= BAR size */
} FW_MAP_CRSPACE_IN;

typedef struct FW_MAP_CRSPACE_OUT {
    uint64_t va; /* address of `offset` itself in the calling process */
} FW_MAP_CRSPACE_OUT;

typedef struct FW_UNMAP_CRSPACE_IN {
    uint64_t va; /* a va a map of this handle returned to this process */
} FW_UNMAP_CRSPACE_IN;

typedef struct FW_CRSPACE_BLOCK_IN {
    uint32_t space;  /* MLNX_HCA_SPACE_*, one FW_QUERY_DEVICE_OUT.spaces reports */
    uint32_t offset; /* byte offset in the space, multiple of 4 */
    uint32_t count;  /* dwords, 1 to MLNX_HCA_MAX_BLOCK_DWORDS */
} FW_CRSPACE_BLOCK_IN;

typedef struct FW_LEASE_CRSPACE_IN {
    uint32_t take; /* 1: take the write lease; 0: give it back */
} FW_LEASE_CRSPACE_IN;

typedef struct FW_QUERY_DEVICE_OUT {
    uint32_t pci_device_id; /* 0x1003: ConnectX-3; 0x1013: ConnectX-4 */
    uint32_t hw_id;         /* low 16 bits of CR space's dword at 0xF0014 */
    uint32_t path;          /* MLNX_HCA_PATH_MAPPED or MLNX_HCA_PATH_GATEWAY */
    uint32_t spaces;        /* bit n: space n supported (0 on a mapped device) */
    uint32_t max_count;     /* MLNX_HCA_MAX_BLOCK_DWORDS */
    uint32_t reserved;      /* 0 */
} FW_QUERY_DEVICE_OUT;

typedef struct FW_QUERY_CRSPACE_OUT {
    uint32_t bar0_size;     /* CR space, bytes */
    uint32_t bar1_size;     /* UAR, bytes (never mapped) */
    uint32_t bar2_size;     /* DDR, bytes (never mapped) */
    uint32_t writer_pid;    /* process holding the write lease; 0: none */
    uint32_t mapping_count; /* this handle's live mappings */
    uint32_t reserved;      /* 0 */
} FW_QUERY_CRSPACE_OUT;

/*
 * Opening a device. Tools open the driver's control device of an HCA, named
 * \\.\mlnx_hca<N> (MLNX_HCA_DOS_NAME_PREFIX followed by a decimal N), N = 0,
 * 1, ...: the lowest number free when the HCA (or the root-enumerated
 * simulated HCA, hardware id root\mlnx_hca_sim) first started. The same
 * object serves whether the driver is the HCA's function driver or a lower
 * filter below the HCA's own driver (WinOF).
 * To find the HCAs: enumerate the device interface class
 * MLNX_HCA_INTERFACE_GUID {e53efdaf-9526-4702-9128-dc0e4be17d30} with
 * SetupDiGetClassDevs(&guid, NULL, NULL, DIGCF_PRESENT | DIGCF_DEVICEINTERFACE)
 * and read, for each, the value MLNX_HCA_CONTROL_DEVICE_VALUE (REG_SZ, e.g.
 * "\\.\mlnx_hca0") of its hardware key (SetupDiOpenDevRegKey(...,
 * DICS_FLAG_GLOBAL, 0, DIREG_DEV, KEY_READ)). Do not open the interface's
 * DevicePath: it leads to the HCA's own stack, which serves no tool (the
 * function driver refuses it; as a filter, the HCA's own driver answers it).
 * Only SYSTEM and Administrators may open the device, unless an
 * administrator granted a group read access (README). Open with
 * GENERIC_READ for FW_MAP_CRSPACE_RO/UNMAP/QUERY; add GENERIC_WRITE (SYSTEM
 * and Administrators only, whatever is granted) for FW_MAP_CRSPACE_RW.
 */
#define MLNX_HCA_INTERFACE_GUID_INIT \
    { 0xe53efdaf, 0x9526, 0x4702, { 0x91, 0x28, 0xdc, 0x0e, 0x4b, 0xe1, 0x7d, 0x30 } }
#ifdef DEFINE_GUID
DEFINE_GUID(MLNX_HCA_INTERFACE_GUID,
            0xe53efdaf, 0x9526, 0x4702, 0x91, 0x28, 0xdc, 0x0e, 0x4b, 0xe1, 0x7d, 0x30);
#endif
#define MLNX_HCA_DOS_NAME_PREFIX   "\\\\.\\mlnx_hca"
#define MLNX_HCA_CONTROL_DEVICE_VALUE   "MlnxHcaControlDevice"
#define MLNX_HCA_CONTROL_DEVICE_VALUE_W L"MlnxHcaControlDevice"
#define MLNX_HCA_DOS_NAME_PREFIX_W L"\\\\.\\mlnx_hca"

/*
 * Reading and writing a view. CR space is big-endian: the device's 32-bit
 * value at offset o is the four bytes at o, most significant first (the Linux
 * mthca/mlx4 drivers and mstflint's mtcr swap every dword), so a plain load
 * through a view shows 0xf5010100 where the device holds 0x000101f5. These
 * accessors make one 32-bit volatile access (CR space wants whole dwords) and
 * convert, on any host byte order. `view` is a va a map returned, `offset` a
 * byte offset from it, a multiple of 4, inside the mapped window.
 */
#if defined(_MSC_VER) && !defined(__cplusplus)
#define MLNX_HCA_INLINE static __inline
#else
#define MLNX_HCA_INLINE static inline
#endif

/* The device's value of a dword as it lies in CR space. */
MLNX_HCA_INLINE uint32_t mlnx_hca_cr_value(uint32_t raw)
{
    const unsigned char *b = (const unsigned char *)&raw;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

/* How the device's value `value` lies in CR space. */
MLNX_HCA_INLINE uint32_t mlnx_hca_cr_raw(uint32_t value)
{
    uint32_t raw;
    unsigned char *b = (unsigned char *)&raw;
    b[0] = (unsigned char)(value >> 24);
    b[1] = (unsigned char)(value >> 16);
    b[2] = (unsigned char)(value >> 8);
    b[3] = (unsigned char)value;
    return raw;
}

/* Reads the device's value of the dword at `offset` bytes into a view. */
MLNX_HCA_INLINE uint32_t mlnx_hca_cr_read32(const volatile void *view, uint32_t offset)
{
    return mlnx_hca_cr_value(*(const volatile uint32_t *)((const volatile unsigned char *)view + offset));
}

/* Writes the device's value `value` to the dword at `offset` bytes into a
 * view mapped with FW_MAP_CRSPACE_RW. */
MLNX_HCA_INLINE void mlnx_hca_cr_write32(volatile void *view, uint32_t offset, uint32_t value)
{
    *(volatile uint32_t *)((volatile unsigned char *)view + offset) = mlnx_hca_cr_raw(value);
}

/* Compile-time checks of the wire sizes (C11 and C++11). */
#if defined(__cplusplus)
static_assert(sizeof(FW_MAP_CRSPACE_IN) == 12, "FW_MAP_CRSPACE_IN is 12 bytes");
static_assert(sizeof(FW_MAP_CRSPACE_OUT) == 8, "FW_MAP_CRSPACE_OUT is 8 bytes");
static_assert(sizeof(FW_UNMAP_CRSPACE_IN) == 8, "FW_UNMAP_CRSPACE_IN is 8 bytes");
static_assert(sizeof(FW_QUERY_CRSPACE_OUT) == 24, "FW_QUERY_CRSPACE_OUT is 24 bytes");
static_assert(sizeof(FW_CRSPACE_BLOCK_IN) == 12, "FW_CRSPACE_BLOCK_IN is 12 bytes");
static_assert(sizeof(FW_LEASE_CRSPACE_IN) == 4, "FW_LEASE_CRSPACE_IN is 4 bytes");
static_assert(sizeof(FW_QUERY_DEVICE_OUT) == 24, "FW_QUERY_DEVICE_OUT is 24 bytes");
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(FW_MAP_CRSPACE_IN) == 12, "FW_MAP_CRSPACE_IN is 12 bytes");
_Static_assert(sizeof(FW_MAP_CRSPACE_OUT) == 8, "FW_MAP_CRSPACE_OUT is 8 bytes");
_Static_assert(sizeof(FW_UNMAP_CRSPACE_IN) == 8, "FW_UNMAP_CRSPACE_IN is 8 bytes");
_Static_assert(sizeof(FW_QUERY_CRSPACE_OUT) == 24, "FW_QUERY_CRSPACE_OUT is 24 bytes");
_Static_assert(sizeof(FW_CRSPACE_BLOCK_IN) == 12, "FW_CRSPACE_BLOCK_IN is 12 bytes");
_Static_assert(sizeof(FW_LEASE_CRSPACE_IN) == 4, "FW_LEASE_CRSPACE_IN is 4 bytes");
_Static_assert(sizeof(FW_QUERY_DEVICE_OUT) == 24, "FW_QUERY_DEVICE_OUT is 24 bytes");
#endif

#endif /* MLNX_HCA_IOCTL_H */
