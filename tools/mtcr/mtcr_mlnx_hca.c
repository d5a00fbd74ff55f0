/*
 * mtcr_mlnx_hca.c - mstflint's access layer (mtcr) with mlnx_hca behind it.
 *
 * Every mstflint tool reaches the device through mtcr (mopen_adv, mread4,
 * mwrite4, mread4_block, ...). This file implements what the register tools
 * mcra and mstdump call, over the crspace C API (mlnx_hca_crspace.h): so the
 * unmodified tools, linked with it, read and write CR space through the
 * driver's mappings, on Windows through \\.\mlnx_hca<N> and on Linux through
 * the simulated HCA. It is compiled against mstflint's own headers
 * (include/mtcr_ul/mtcr.h, the mfile struct of mtcr_mf.h), fetched with the
 * source at build time (tools/mtcr/build.sh); nothing of mstflint is kept in
 * this repository.
 *
 * Devices (mopen_adv's name):
 *   Windows  mlnx_hca<N>, \\.\mlnx_hca<N>, or mstflint's Windows habit
 *            mt<PCI device id>_pci_cr<N> (mt4099_pci_cr0: the first HCA)
 *   Linux    sim, sim:FILE (the simulated ConnectX-3 over that CR-space
 *            file); sim4, sim4:FILE (the simulated ConnectX-4 whose state is
 *            that file, shared with `sim-pci serve --device FILE`)
 *
 * At open the device is opened for write if the user may (else read-only)
 * and asked which path it takes (mlnx_hca_query_device):
 *
 * - ConnectX-3 and older: all of CR space is mapped read-only; the first
 *   write maps it read-write, which takes the device's write lease until
 *   mclose. Only CR space is served.
 * - ConnectX-4 and later: nothing is mapped; every access is a block
 *   request the driver carries through the configuration-space gateway, in
 *   the address space mset_addr_space chose (CR space by default; any the
 *   device reports), as mstflint's own kernel-module path (MST_PCICONF with
 *   the vendor-specific capability) does on Linux.
 *
 * Reads and writes are of the device's values (the C API swaps a mapped
 * CR space, which is big-endian; the gateway carries values). Register
 * access (maccess_reg), ICMD and I2C answer "unsupported" with mtcr's own
 * error codes, never a pretended success. A failure sets errno (the tools
 * print perror or strerror) and prints the driver's whole reason on stderr
 * once, prefixed "mlnx_hca: ".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtcr.h"
#include "mtcr_ul/mtcr_ul_com.h"
#include "mlnx_hca_crspace.h"

/* What an mfile of ours carries (mf->ctx). */
struct mlnx_hca_mtcr {
    mlnx_hca *dev;
    mlnx_hca_window *ro; /* all of CR space, read-only */
    mlnx_hca_window *rw; /* all of CR space, read-write, from the first write on */
    int writable;        /* the device was opened for write */
    uint32_t bar0_size;
    int gateway;         /* ConnectX-4 and later: block requests, nothing mapped */
    uint32_t spaces;     /* the gateway's address spaces (bit n: space n) */
};

static struct mlnx_hca_mtcr *state(mfile *mf) {
    return mf ? (struct mlnx_hca_mtcr *)mf->ctx : NULL;
}

/* errno for a C API status. */
static int errno_of(int status) {
    switch (status) {
    case MLNX_HCA_ERR_NO_DEVICE: return ENODEV;
    case MLNX_HCA_ERR_ACCESS: return EACCES;
    case MLNX_HCA_ERR_BUSY: return EBUSY;
    case MLNX_HCA_ERR_RANGE: return EINVAL;
    case MLNX_HCA_ERR_REMOVED: return ENODEV;
    case MLNX_HCA_ERR_RESOURCES: return ENOMEM;
    case MLNX_HCA_ERR_INVALID: return EINVAL;
    case MLNX_HCA_ERR_UNSUPPORTED: return EOPNOTSUPP;
    default: return EIO;
    }
}

/* A failed C API call: its message on stderr, errno set; returns -1. */
static int failed(int status, const char *what) {
    const char *message = mlnx_hca_last_error();
    fprintf(stderr, "mlnx_hca: %s: %s\n", what, message[0] ? message : mlnx_hca_strerror(status));
    errno = errno_of(status);
    return -1;
}

/* The C API's device name for an mtcr name, or NULL if it is none of ours. */
static const char *device_name(const char *name, char *buf, size_t len) {
    if (!name) return NULL;
#ifdef _WIN32
    unsigned long id = 0, n = 0;
    char tail;
    /* mstflint's Windows names: mt<PCI device id>_pci_cr<N>. */
    if (sscanf(name, "mt%lu_pci_cr%lu%c", &id, &n, &tail) == 2) {
        snprintf(buf, len, "mlnx_hca%lu", n);
        return buf;
    }
    if (!strncmp(name, "mlnx_hca", 8) || !strncmp(name, "\\\\.\\mlnx_hca", 12)) {
        snprintf(buf, len, "%s", name);
        return buf;
    }
#else
    if (!strcmp(name, "sim") || !strncmp(name, "sim:", 4) || !strcmp(name, "sim4") || !strncmp(name, "sim4:", 5)) {
        snprintf(buf, len, "%s", name);
        return buf;
    }
#endif
    return NULL;
}

mfile *mopen_adv(const char *name, MType mtype) {
    (void)mtype;
    char buf[1024];
    const char *device = device_name(name, buf, sizeof buf);
    if (!device) {
#ifdef _WIN32
        fprintf(stderr, "mlnx_hca: %s is not a device of mlnx_hca (mlnx_hca<N>, \\\\.\\mlnx_hca<N>, mt<id>_pci_cr<N>)\n",
                name ? name : "(null)");
#else
        fprintf(stderr, "mlnx_hca: %s is not a device of mlnx_hca (on this OS: sim, sim:FILE, sim4, sim4:FILE)\n",
                name ? name : "(null)");
#endif
        errno = ENODEV;
        return NULL;
    }
    struct mlnx_hca_mtcr *s = calloc(1, sizeof *s);
    mfile *mf = calloc(1, sizeof *mf);
    if (!s || !mf) {
        free(s);
        free(mf);
        errno = ENOMEM;
        return NULL;
    }
    /* For write if this user may (an administrator), else read-only: a
     * reader needs no more, and a write says why it cannot. */
    int rc = mlnx_hca_open(device, 1, &s->dev);
    s->writable = rc == MLNX_HCA_OK;
    if (rc == MLNX_HCA_ERR_ACCESS) rc = mlnx_hca_open(device, 0, &s->dev);
    mlnx_hca_info info;
    mlnx_hca_device device_info;
    if (rc == MLNX_HCA_OK) rc = mlnx_hca_query(s->dev, &info);
    if (rc == MLNX_HCA_OK) rc = mlnx_hca_query_device(s->dev, &device_info);
    if (rc == MLNX_HCA_OK) {
        s->bar0_size = info.bar0_size;
        s->gateway = device_info.path == 2;
        s->spaces = device_info.spaces;
        if (!s->gateway) rc = mlnx_hca_map(s->dev, 0, info.bar0_size, 0, &s->ro);
    }
    if (rc != MLNX_HCA_OK) {
        failed(rc, device);
        mlnx_hca_close(s->dev);
        free(s);
        free(mf);
        return NULL;
    }
    if (s->gateway) {
        /* What mtcr's kernel-module path makes of a ConnectX-4: the
         * configuration-space gateway, CR space selected. */
        mf->tp = MST_PCICONF;
        mf->functional_vsec_supp = 1;
    } else {
        mf->tp = MST_PCI; /* CR space mapped into memory */
        mf->flags = MDEVS_TAVOR_CR;
    }
    mf->address_space = AS_CR_SPACE;
    mf->ctx = s;
    return mf;
}

mfile *mopen(const char *name) {
    return mopen_adv(name, MST_DEFAULT);
}

int mclose(mfile *mf) {
    struct mlnx_hca_mtcr *s = state(mf);
    if (s) {
        mlnx_hca_unmap(s->rw);
        mlnx_hca_unmap(s->ro);
        mlnx_hca_close(s->dev);
        free(s);
    }
    free(mf);
    return 0;
}

/* A mapped device serves only CR space. */
static int in_cr_space(mfile *mf) {
    if (mf->address_space == AS_CR_SPACE) return 1;
    fprintf(stderr, "mlnx_hca: address space %#x is not served (only CR space, %#x)\n", (unsigned)mf->address_space,
            (unsigned)AS_CR_SPACE);
    errno = EOPNOTSUPP;
    return 0;
}

/* The read-write window, mapped at the first write. */
static mlnx_hca_window *writer(struct mlnx_hca_mtcr *s) {
    if (s->rw) return s->rw;
    int rc = mlnx_hca_map(s->dev, 0, s->bar0_size, 1, &s->rw);
    if (rc != MLNX_HCA_OK) {
        failed(rc, "write");
        s->rw = NULL;
    }
    return s->rw;
}

int mread4(mfile *mf, unsigned int offset, u_int32_t *value) {
    struct mlnx_hca_mtcr *s = state(mf);
    if (!s || !value) {
        errno = EINVAL;
        return -1;
    }
    if (s->gateway) {
        uint32_t v = 0;
        int rc = mlnx_hca_space_read(s->dev, (uint32_t)mf->address_space, offset, &v, 1);
        if (rc != MLNX_HCA_OK) return failed(rc, "read");
        *value = v;
        return 4;
    }
    if (!in_cr_space(mf)) return -1;
    uint32_t v = 0;
    int rc = mlnx_hca_window_read32(s->ro, offset, &v);
    if (rc != MLNX_HCA_OK) return failed(rc, "read");
    *value = v;
    return 4;
}

int mwrite4(mfile *mf, unsigned int offset, u_int32_t value) {
    struct mlnx_hca_mtcr *s = state(mf);
    if (!s) {
        errno = EINVAL;
        return -1;
    }
    if (s->gateway) {
        int rc = mlnx_hca_space_write(s->dev, (uint32_t)mf->address_space, offset, &value, 1);
        if (rc != MLNX_HCA_OK) return failed(rc, "write");
        return 4;
    }
    if (!in_cr_space(mf)) return -1;
    mlnx_hca_window *w = writer(s);
    if (!w) return -1;
    int rc = mlnx_hca_window_write32(w, offset, value);
    if (rc != MLNX_HCA_OK) return failed(rc, "write");
    return 4;
}

int mread4_block(mfile *mf, unsigned int offset, u_int32_t *data, int byte_len) {
    struct mlnx_hca_mtcr *s = state(mf);
    if (!s || !data || byte_len < 0 || byte_len % 4) {
        errno = EINVAL;
        return -1;
    }
    if (s->gateway) {
        int rc = mlnx_hca_space_read(s->dev, (uint32_t)mf->address_space, offset, data, (uint32_t)byte_len / 4);
        if (rc != MLNX_HCA_OK) return failed(rc, "read");
        return byte_len;
    }
    if (!in_cr_space(mf)) return -1;
    int rc = mlnx_hca_window_read_block(s->ro, offset, data, (uint32_t)byte_len / 4);
    if (rc != MLNX_HCA_OK) return failed(rc, "read");
    return byte_len;
}

int mwrite4_block(mfile *mf, unsigned int offset, u_int32_t *data, int byte_len) {
    struct mlnx_hca_mtcr *s = state(mf);
    if (!s || !data || byte_len < 0 || byte_len % 4) {
        errno = EINVAL;
        return -1;
    }
    if (s->gateway) {
        int rc = mlnx_hca_space_write(s->dev, (uint32_t)mf->address_space, offset, data, (uint32_t)byte_len / 4);
        if (rc != MLNX_HCA_OK) return failed(rc, "write");
        return byte_len;
    }
    if (!in_cr_space(mf)) return -1;
    mlnx_hca_window *w = writer(s);
    if (!w) return -1;
    int rc = mlnx_hca_window_write_block(w, offset, data, (uint32_t)byte_len / 4);
    if (rc != MLNX_HCA_OK) return failed(rc, "write");
    return byte_len;
}

int mget_mdevs_flags(mfile *mf, u_int32_t *devs_flags) {
    if (!mf || !devs_flags) return ME_BAD_PARAMS;
    *devs_flags = mf->flags;
    return ME_OK;
}

int mget_addr_space(mfile *mf) {
    return mf ? mf->address_space : -1;
}

/* A gateway device: any address space it reports. A mapped device: CR
 * space only (as mtcr answers for a ConnectX-3, which has no gateway). */
int mset_addr_space(mfile *mf, int space) {
    struct mlnx_hca_mtcr *s = state(mf);
    if (!s) return -1;
    int served = s->gateway ? space >= 0 && space < 32 && (s->spaces & (1u << space)) : space == AS_CR_SPACE;
    if (!served) {
        errno = EOPNOTSUPP;
        return -1;
    }
    mf->address_space = space;
    return 0;
}

/* A PCI device has no I2C secondary address: nothing to set. */
unsigned char mset_i2c_secondary(mfile *mf, unsigned char new_i2c_secondary) {
    (void)mf;
    (void)new_i2c_secondary;
    fprintf(stderr, "mlnx_hca: an I2C secondary address does not apply to a PCI device: ignored\n");
    return 0;
}

/* The same under its older name (mstflint before 4.26). */
unsigned char mset_i2c_slave(mfile *mf, unsigned char new_i2c_slave) {
    return mset_i2c_secondary(mf, new_i2c_slave);
}

/* The PCI semaphore is the configuration-space gateway's: the driver takes
 * and gives it back around each of its requests, so no tool ever holds it
 * through mlnx_hca, and there is nothing to clear. */
int mclear_pci_semaphore(const char *name) {
    (void)name;
    return ME_UNSUPPORTED_ACCESS_TYPE;
}

/* Register access needs the tools' command interface (ICMD or HCR), which
 * mlnx_hca does not serve. */
int maccess_reg(mfile *mf, u_int16_t reg_id, maccess_reg_method_t reg_method, void *reg_data, u_int32_t reg_size,
                u_int32_t r_size_reg, u_int32_t w_size_reg, int *reg_status) {
    (void)mf;
    (void)reg_id;
    (void)reg_method;
    (void)reg_data;
    (void)reg_size;
    (void)r_size_reg;
    (void)w_size_reg;
    if (reg_status) *reg_status = 0;
    return ME_REG_ACCESS_NOT_SUPPORTED;
}

int mget_max_reg_size(mfile *mf, maccess_reg_method_t reg_method) {
    (void)mf;
    (void)reg_method;
    return 0;
}

int read_device_id(mfile *mf, u_int32_t *device_id) {
    u_int32_t dword = 0;
    if (!device_id || mread4(mf, 0xF0014, &dword) != 4) return -1;
    *device_id = dword & 0xFFFF;
    return 4;
}

/* A "zombiefish" is a ConnectX-7 or later whose firmware did not come up,
 * which mtcr detects through registers this backend does not serve: never
 * reported. */
int is_zombiefish_device(mfile *mf) {
    (void)mf;
    return 0;
}

const char *m_err2str(MError status) {
    switch (status) {
    case ME_OK: return "Success";
    case ME_ERROR: return "General error";
    case ME_BAD_PARAMS: return "Bad parameters";
    case ME_CR_ERROR: return "CR space access error";
    case ME_NOT_IMPLEMENTED: return "Not implemented";
    case ME_MEM_ERROR: return "Memory allocation error";
    case ME_UNSUPPORTED_ACCESS_TYPE:
        return "Unsupported access type: mlnx_hca takes the configuration-space gateway's semaphore itself, per "
               "request; there is none to clear";
    case ME_REG_ACCESS_NOT_SUPPORTED:
        return "Register access is not supported: mlnx_hca serves CR space only (no ICMD or tools HCR)";
    default: return "Unsupported by mlnx_hca";
    }
}
