/*
 * mlnx_hca_crspace.h - the C API of the crspace library: CR space of a
 * Mellanox HCA, mapped into the calling process by the mlnx_hca driver.
 *
 * For C and C++ tool authors (register viewers, trace readers, burners):
 * open a device, map a window of CR space read-only or read-write, read and
 * write the device's dwords, unmap, close. A ConnectX-4 or later is not
 * mapped: mlnx_hca_query_device says so (path 2), and its CR space and other
 * address spaces are read and written with mlnx_hca_space_read/_write,
 * which the driver carries through the configuration-space gateway. The library speaks the driver's
 * I/O control contract (mlnx_hca_ioctl.h) for you, swaps every dword (CR
 * space is big-endian on the bus: every value here is the device's) and
 * turns every refusal into a status and a message that says what to do.
 *
 * Libraries: libmlnx_hca_crspace.a / libmlnx_hca_crspace.so (Linux),
 * mlnx_hca_crspace.dll or the static libmlnx_hca_crspace.a (Windows, built
 * with mingw-w64; link also -lntdll -luserenv -lws2_32 -lbcrypt for the
 * static one).
 *
 * Devices (mlnx_hca_open's `device`):
 *   Windows  NULL: the first HCA, \\.\mlnx_hca0; "mlnx_hca<N>" or a full
 *            path "\\.\mlnx_hca<N>": that HCA.
 *   Linux    NULL or "sim": the simulated HCA (a ConnectX-3) whose CR space
 *            is the file /dev/shm/mlnx_hca-sim.bar, shared with
 *            `crspace --sim --sim-bar FILE` and mstflint's tools under
 *            sim-pci; "sim:FILE": the same over FILE. "sim4": the simulated
 *            ConnectX-4 whose state is /dev/shm/mlnx_hca-sim4.dev, shared
 *            with `sim-pci serve` and `crspace --sim --sim-device FILE`;
 *            "sim4:FILE": the same over FILE. Each process runs its
 *            own copy of the driver's core over the shared CR space; with
 *            MLNX_HCA_SIM_WRITER=PID in the environment another simulated
 *            process PID holds the write lease (to try a busy device).
 *
 * Threads: a device and its windows may be used from any thread, one call
 * at a time per device.
 *
 * Every function returns MLNX_HCA_OK (0) or a status below;
 * mlnx_hca_last_error() then has the whole story for this thread
 * ("busy: process 4242 holds the write lease").
 */
#ifndef MLNX_HCA_CRSPACE_H
#define MLNX_HCA_CRSPACE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(MLNX_HCA_CRSPACE_DLL)
#define MLNX_HCA_CRSPACE_API __declspec(dllimport)
#else
#define MLNX_HCA_CRSPACE_API
#endif

/* Statuses. */
#define MLNX_HCA_OK            0 /* done */
#define MLNX_HCA_ERR_NO_DEVICE 1 /* no such device, or it cannot be opened (driver not running) */
#define MLNX_HCA_ERR_ACCESS    2 /* not allowed: a read-only handle (only administrators write), or the
                                    user may not open the device at all */
#define MLNX_HCA_ERR_BUSY      3 /* another process holds the device's write lease */
#define MLNX_HCA_ERR_RANGE     4 /* an address not dword aligned, a length not whole dwords, a range
                                    past CR space or outside the window; nothing was touched */
#define MLNX_HCA_ERR_REMOVED   5 /* the device was removed */
#define MLNX_HCA_ERR_RESOURCES 6 /* a mapping quota (per handle or per device) is used up, or memory */
#define MLNX_HCA_ERR_INVALID   7 /* a NULL argument, a write through a read-only window, a closed handle */
#define MLNX_HCA_ERR_DRIVER    8 /* any other answer of the driver (the message names it) */
#define MLNX_HCA_ERR_UNSUPPORTED 9 /* the device does not serve this: a map on a ConnectX-4 or later, a space
                                      its gateway does not report, a space request on a ConnectX-3 */

typedef struct mlnx_hca mlnx_hca;               /* an open device: one handle on the driver */
typedef struct mlnx_hca_window mlnx_hca_window; /* one mapped window of CR space */

/* What the driver reports of a device and of this handle. */
typedef struct mlnx_hca_info {
    uint32_t bar0_size;     /* CR space, bytes */
    uint32_t bar1_size;     /* UAR, bytes (never mapped) */
    uint32_t bar2_size;     /* DDR, bytes (never mapped) */
    uint32_t writer_pid;    /* the process holding the write lease, 0 if none */
    uint32_t mapping_count; /* this handle's live windows */
} mlnx_hca_info;

/* Opens `device` (above); `write` non-zero opens it for writing too (only
 * SYSTEM and Administrators may). *out receives the device. */
MLNX_HCA_CRSPACE_API int mlnx_hca_open(const char *device, int write, mlnx_hca **out);

/* Closes the device. Windows still mapped keep the handle open until they
 * are unmapped; NULL is ignored. */
MLNX_HCA_CRSPACE_API void mlnx_hca_close(mlnx_hca *dev);

/* The driver's report (FW_QUERY_CRSPACE). */
MLNX_HCA_CRSPACE_API int mlnx_hca_query(mlnx_hca *dev, mlnx_hca_info *info);

/* Maps `size` bytes of CR space at `offset` (both multiples of 4, size not
 * 0, inside CR space), read-only or, with `write`, read-write: a read-write
 * window takes the device's write lease (ERR_BUSY if another handle holds
 * it) until this handle's last read-write window is unmapped. */
MLNX_HCA_CRSPACE_API int mlnx_hca_map(mlnx_hca *dev, uint32_t offset, uint32_t size, int write,
                                      mlnx_hca_window **out);

/* Unmaps and frees the window (NULL is ignored). */
MLNX_HCA_CRSPACE_API int mlnx_hca_unmap(mlnx_hca_window *window);

/* The window's first CR-space byte and its size. */
MLNX_HCA_CRSPACE_API uint32_t mlnx_hca_window_offset(const mlnx_hca_window *window);
MLNX_HCA_CRSPACE_API uint32_t mlnx_hca_window_size(const mlnx_hca_window *window);

/* The device's dword at CR-space address `addr` (not an offset into the
 * window), which must lie in the window. */
MLNX_HCA_CRSPACE_API int mlnx_hca_window_read32(const mlnx_hca_window *window, uint32_t addr, uint32_t *value);
MLNX_HCA_CRSPACE_API int mlnx_hca_window_write32(mlnx_hca_window *window, uint32_t addr, uint32_t value);

/* `count` dwords from CR-space address `addr` on, all in the window. A
 * range check failure touches nothing. */
MLNX_HCA_CRSPACE_API int mlnx_hca_window_read_block(const mlnx_hca_window *window, uint32_t addr,
                                                    uint32_t *values, uint32_t count);
MLNX_HCA_CRSPACE_API int mlnx_hca_window_write_block(mlnx_hca_window *window, uint32_t addr,
                                                     const uint32_t *values, uint32_t count);

/* One-shot forms: map the dwords' window, read or write, unmap. */
MLNX_HCA_CRSPACE_API int mlnx_hca_read32(mlnx_hca *dev, uint32_t addr, uint32_t *value);
MLNX_HCA_CRSPACE_API int mlnx_hca_write32(mlnx_hca *dev, uint32_t addr, uint32_t value);
MLNX_HCA_CRSPACE_API int mlnx_hca_read_block(mlnx_hca *dev, uint32_t addr, uint32_t *values, uint32_t count);
MLNX_HCA_CRSPACE_API int mlnx_hca_write_block(mlnx_hca *dev, uint32_t addr, const uint32_t *values,
                                              uint32_t count);

/* The device's identity and path (FW_QUERY_DEVICE). */
typedef struct mlnx_hca_device {
    uint32_t pci_device_id; /* 0x1003: ConnectX-3; 0x1013: ConnectX-4 */
    uint32_t hw_id;         /* low 16 bits of CR space's dword at 0xF0014 */
    uint32_t path;          /* 1: CR space is mapped (mlnx_hca_map); 2: the gateway (mlnx_hca_space_*) */
    uint32_t spaces;        /* bit n: address space n served (2 CR space, 6 the same read without
                               effects, 1 and 3 ICMD, 0xA the tools' semaphores) */
    uint32_t max_count;     /* dwords per driver request (the library splits longer transfers) */
} mlnx_hca_device;

MLNX_HCA_CRSPACE_API int mlnx_hca_query_device(mlnx_hca *dev, mlnx_hca_device *out);

/* `count` dwords of address space `space` from byte `addr` on (a multiple
 * of 4), through the gateway of a ConnectX-4 or later. Values are the
 * device's (the gateway carries them; no swap). A read-only device reads
 * CR space (2 and 6) only: the other spaces' reads have effects. A write
 * needs the write lease free or this handle's; what it writes into the
 * semaphore space (0xA) the driver writes back to 0 when the handle closes
 * or its process ends, where the value is still there (a killed tool never
 * leaves the HCA locked). */
MLNX_HCA_CRSPACE_API int mlnx_hca_space_read(mlnx_hca *dev, uint32_t space, uint32_t addr, uint32_t *values,
                                             uint32_t count);
MLNX_HCA_CRSPACE_API int mlnx_hca_space_write(mlnx_hca *dev, uint32_t space, uint32_t addr,
                                              const uint32_t *values, uint32_t count);

/* Takes (take != 0; ERR_BUSY if another handle holds it) or gives back the
 * device's write lease without mapping: a burner's writes through the
 * gateway go uninterrupted by other writers until it gives it back or
 * closes. */
MLNX_HCA_CRSPACE_API int mlnx_hca_lease(mlnx_hca *dev, int take);

/* The general text of a status ("another process holds the write lease"). */
MLNX_HCA_CRSPACE_API const char *mlnx_hca_strerror(int status);

/* The calling thread's last failure in full, or "" if its last call
 * succeeded; valid until the thread's next call into the library. */
MLNX_HCA_CRSPACE_API const char *mlnx_hca_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* MLNX_HCA_CRSPACE_H */
