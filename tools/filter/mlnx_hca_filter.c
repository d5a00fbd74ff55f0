/* mlnx_hca_filter.exe: adds mlnx_hca as a lower filter of one chosen HCA,
 * below the HCA's own driver (WinOF, WinOF-2), and takes it out again.
 *
 *   mlnx_hca_filter list
 *   mlnx_hca_filter add [--inf FILE] [--no-restart] DEVICE-INSTANCE-ID
 *   mlnx_hca_filter remove [--no-restart] DEVICE-INSTANCE-ID
 *
 * `add` installs mlnx_hca.sys and the mlnx_hca service from the INF's filter
 * sections ([MlnxHca_Filter.NT], [MlnxHca_Filter.NT.Services]; by default the
 * mlnx_hca.inf beside this program), checks that the service is there, then
 * appends mlnx_hca to the device's LowerFilters (every other filter kept, in
 * order) and restarts the device, so that its stack is built again with the
 * filter. The HCA's driver, class and security are not touched. `remove`
 * takes every mlnx_hca out of LowerFilters (the value goes when nothing is
 * left) and restarts the device; the service stays, as other HCAs or the
 * root test device may use it. A restart stops and starts the HCA's own
 * driver: its network goes down for a moment. With --no-restart the change
 * takes effect at the device's next start (a reboot, or
 * `pnputil /restart-device "ID"`).
 *
 * Only an operational HCA mlnx_hca knows is accepted: up to ConnectX-3 Pro
 * it maps BAR 0 (CR space) into tools; for Connect-IB, ConnectX-4 to -7 and
 * BlueField it reaches CR space through the configuration-space gateway and
 * never touches BAR 0 (the running driver's doorbells). A flash-recovery id
 * has no driver of its own, so the INF makes mlnx_hca its function driver
 * instead.
 *
 * Exit status: 0 done; 1 a system call failed (nothing changed unless the
 * message says so); 2 refused (usage, unknown device, an HCA the filter
 * must not go on); 3 done, but the device was not restarted (the change
 * takes effect at its next start).
 *
 * Needs an elevated prompt for add and remove. Built with mingw-w64 here
 * (tools/filter/build.sh); with MSVC: cl /W4 /I include mlnx_hca_filter.c
 * setupapi.lib advapi32.lib.
 */
#include <windows.h>
#include <setupapi.h>
#include <cfgmgr32.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>
#include "mlnx_hca_ioctl.h"

#define SERVICE L"mlnx_hca"
#define FILTER_SECTION L"MlnxHca_Filter.NT"
#define FILTER_SERVICES L"MlnxHca_Filter.NT.Services"
#define MELLANOX 0x15B3u

enum { DONE = 0, FAILED = 1, REFUSED = 2, NOT_RESTARTED = 3 };

enum cr_space { CR_BAR0, CR_GATEWAY };

struct hca {
    unsigned device_id;
    const char *name;
    enum cr_space cr_space;
    int recovery;
};

static const struct hca HCAS[] = {
#define HCA(id, name, cr, recovery) {id, name, cr, recovery},
#include "hcas.h"
#undef HCA
};

static const struct hca *find_hca(unsigned device_id) {
    for (size_t i = 0; i < sizeof HCAS / sizeof HCAS[0]; i++)
        if (HCAS[i].device_id == device_id) return &HCAS[i];
    return NULL;
}

/* A REG_MULTI_SZ in a fixed buffer: `len` WCHARs, the final NUL included. */
#define LIST_CHARS 2048
struct list {
    WCHAR text[LIST_CHARS];
    DWORD len;
};

static void list_clear(struct list *l) {
    l->text[0] = 0;
    l->len = 0;
}

/* The next string of a list from `at`, or NULL. */
static const WCHAR *list_next(const struct list *l, const WCHAR *at) {
    const WCHAR *next = at ? at + wcslen(at) + 1 : l->text;
    if (next >= l->text + l->len || !*next) return NULL;
    return next;
}

static int list_contains(const struct list *l, const WCHAR *s) {
    for (const WCHAR *e = list_next(l, NULL); e; e = list_next(l, e))
        if (!_wcsicmp(e, s)) return 1;
    return 0;
}

/* Appends `s`; 0 if the list would not fit. */
static int list_append(struct list *l, const WCHAR *s) {
    DWORD used = 0;
    for (const WCHAR *e = list_next(l, NULL); e; e = list_next(l, e)) used = (DWORD)(e - l->text) + (DWORD)wcslen(e) + 1;
    size_t n = wcslen(s) + 1;
    if (used + n + 1 > LIST_CHARS) return 0;
    memcpy(l->text + used, s, n * sizeof(WCHAR));
    l->text[used + n] = 0;
    l->len = (DWORD)(used + n + 1);
    return 1;
}

/* The list without any entry equal to `s`; how many were dropped. */
static int list_without(const struct list *in, const WCHAR *s, struct list *out) {
    int dropped = 0;
    list_clear(out);
    for (const WCHAR *e = list_next(in, NULL); e; e = list_next(in, e)) {
        if (!_wcsicmp(e, s))
            dropped++;
        else
            list_append(out, e);
    }
    return dropped;
}

static void list_print(const struct list *l) {
    const WCHAR *e = list_next(l, NULL);
    if (!e) {
        printf("(none)");
        return;
    }
    for (; e; e = list_next(l, e)) printf("%ls%s", e, list_next(l, e) ? " " : "");
}

static void report(const char *what) {
    DWORD error = GetLastError();
    char text[256] = "";
    FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, error, 0, text, sizeof text, NULL);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) text[--n] = 0;
    fprintf(stderr, "mlnx_hca_filter: %s failed: error %lu%s%s\n", what, error, n ? ": " : "", text);
    if (error == ERROR_ACCESS_DENIED) fprintf(stderr, "mlnx_hca_filter: run it from an elevated prompt\n");
}

/* A multi-string device property; an absent one is an empty list. */
static int get_list(HDEVINFO set, SP_DEVINFO_DATA *dev, DWORD property, struct list *l) {
    DWORD type = 0, bytes = 0;
    list_clear(l);
    if (!SetupDiGetDeviceRegistryPropertyW(set, dev, property, &type, (BYTE *)l->text, sizeof l->text - 2 * sizeof(WCHAR),
                                           &bytes)) {
        DWORD error = GetLastError();
        if (error == ERROR_INVALID_DATA || error == ERROR_FILE_NOT_FOUND) return 1;
        return 0;
    }
    if (type != REG_MULTI_SZ) {
        SetLastError(ERROR_INVALID_DATA);
        return 0;
    }
    l->len = bytes / sizeof(WCHAR);
    /* Two NULs after whatever was stored, so a value without them still ends. */
    l->text[l->len] = 0;
    l->text[l->len + 1] = 0;
    return 1;
}

static int set_list(HDEVINFO set, SP_DEVINFO_DATA *dev, DWORD property, const struct list *l) {
    if (!list_next(l, NULL)) /* Nothing left: the value goes. */
        return SetupDiSetDeviceRegistryPropertyW(set, dev, property, NULL, 0);
    return SetupDiSetDeviceRegistryPropertyW(set, dev, property, (const BYTE *)l->text, l->len * sizeof(WCHAR));
}

static int get_string(HDEVINFO set, SP_DEVINFO_DATA *dev, DWORD property, WCHAR *out, DWORD chars) {
    DWORD type = 0;
    out[0] = 0;
    if (!SetupDiGetDeviceRegistryPropertyW(set, dev, property, &type, (BYTE *)out, (chars - 1) * sizeof(WCHAR), NULL))
        return 0;
    out[chars - 1] = 0;
    return type == REG_SZ;
}

/* The PCI vendor and device of the first hardware id `PCI\VEN_v&DEV_d...`. */
static int pci_ids(const struct list *ids, unsigned *vendor, unsigned *device) {
    for (const WCHAR *id = list_next(ids, NULL); id; id = list_next(ids, id)) {
        if (_wcsnicmp(id, L"PCI\\", 4)) continue;
        const WCHAR *v = NULL, *d = NULL;
        for (const WCHAR *p = id + 4; *p; p++) {
            if (!_wcsnicmp(p, L"VEN_", 4) && (p == id + 4 || p[-1] == L'&')) v = p + 4;
            if (!_wcsnicmp(p, L"DEV_", 4) && p[-1] == L'&') d = p + 4;
        }
        if (!v || !d) continue;
        WCHAR *end;
        unsigned long vv = wcstoul(v, &end, 16);
        if (end != v + 4) continue;
        unsigned long dd = wcstoul(d, &end, 16);
        if (end != d + 4) continue;
        *vendor = (unsigned)vv;
        *device = (unsigned)dd;
        return 1;
    }
    return 0;
}

/* What the device is, for `list` and for the checks of `add`. */
struct device_info {
    WCHAR id[MAX_DEVICE_ID_LEN];
    struct list hardware_ids;
    struct list lower_filters;
    WCHAR service[256];
    unsigned vendor, device;
    int is_pci;
    const struct hca *hca;
};

static int describe(HDEVINFO set, SP_DEVINFO_DATA *dev, struct device_info *info) {
    memset(info, 0, sizeof *info);
    if (!SetupDiGetDeviceInstanceIdW(set, dev, info->id, MAX_DEVICE_ID_LEN, NULL)) return 0;
    if (!get_list(set, dev, SPDRP_HARDWAREID, &info->hardware_ids)) return 0;
    if (!get_list(set, dev, SPDRP_LOWERFILTERS, &info->lower_filters)) return 0;
    get_string(set, dev, SPDRP_SERVICE, info->service, 256);
    info->is_pci = pci_ids(&info->hardware_ids, &info->vendor, &info->device);
    if (info->is_pci && info->vendor == MELLANOX) info->hca = find_hca(info->device);
    return 1;
}

/* Why the filter must not go on this device, or NULL if it may. */
static const char *refusal(const struct device_info *info) {
    if (!info->is_pci || info->vendor != MELLANOX) return "not a Mellanox PCI device";
    if (!info->hca) return "a Mellanox device mlnx_hca does not know (not an HCA)";
    if (info->hca->recovery)
        return "a flash-recovery HCA has no driver of its own: install mlnx_hca.inf as its function driver "
               "(pnputil /add-driver mlnx_hca.inf /install)";
    if (!_wcsicmp(info->service, SERVICE)) return "mlnx_hca is already its function driver";
    return NULL;
}

static const char *role_text(const struct device_info *info) {
    if (!info->hca) return "unknown Mellanox device: not served";
    if (info->hca->recovery) return "flash recovery: mlnx_hca.inf is its function driver";
    if (info->hca->cr_space == CR_GATEWAY)
        return "CR space through the configuration-space gateway: mlnx_hca can be its lower filter";
    return "BAR 0 is CR space: mlnx_hca can be its lower filter";
}

static int open_device(const char *id, HDEVINFO *set, SP_DEVINFO_DATA *dev, struct device_info *info) {
    WCHAR wid[MAX_DEVICE_ID_LEN];
    if (!MultiByteToWideChar(CP_ACP, 0, id, -1, wid, MAX_DEVICE_ID_LEN)) {
        fprintf(stderr, "mlnx_hca_filter: %s: not a device instance id\n", id);
        return REFUSED;
    }
    *set = SetupDiCreateDeviceInfoList(NULL, NULL);
    if (*set == INVALID_HANDLE_VALUE) {
        report("SetupDiCreateDeviceInfoList");
        return FAILED;
    }
    memset(dev, 0, sizeof *dev);
    dev->cbSize = sizeof *dev;
    if (!SetupDiOpenDeviceInfoW(*set, wid, NULL, 0, dev)) {
        DWORD error = GetLastError();
        fprintf(stderr, "mlnx_hca_filter: no device %s (error %lu); `mlnx_hca_filter list` shows the HCAs\n", id, error);
        SetupDiDestroyDeviceInfoList(*set);
        return REFUSED;
    }
    if (!describe(*set, dev, info)) {
        report("reading the device's properties");
        SetupDiDestroyDeviceInfoList(*set);
        return FAILED;
    }
    return DONE;
}

/* The control device's name the driver published in the hardware key. */
static int control_device(HDEVINFO set, SP_DEVINFO_DATA *dev, char *out, DWORD len) {
    HKEY key = SetupDiOpenDevRegKey(set, dev, DICS_FLAG_GLOBAL, 0, DIREG_DEV, KEY_READ);
    out[0] = 0;
    if (key == INVALID_HANDLE_VALUE) return 0;
    DWORD type = 0, bytes = len - 1;
    LONG rc = RegQueryValueExA(key, MLNX_HCA_CONTROL_DEVICE_VALUE, NULL, &type, (BYTE *)out, &bytes);
    RegCloseKey(key);
    if (rc || type != REG_SZ) {
        out[0] = 0;
        return 0;
    }
    out[bytes < len ? bytes : len - 1] = 0;
    return 1;
}

static int cmd_list(void) {
    HDEVINFO set = SetupDiGetClassDevsW(NULL, NULL, NULL, DIGCF_ALLCLASSES | DIGCF_PRESENT);
    if (set == INVALID_HANDLE_VALUE) {
        report("SetupDiGetClassDevs");
        return FAILED;
    }
    int found = 0;
    SP_DEVINFO_DATA dev = {.cbSize = sizeof dev};
    for (DWORD i = 0; SetupDiEnumDeviceInfo(set, i, &dev); i++) {
        struct device_info info;
        if (!describe(set, &dev, &info) || !info.is_pci || info.vendor != MELLANOX) continue;
        char control[64];
        found++;
        printf("%ls\n", info.id);
        if (info.hca)
            printf("  HCA            %s (15b3:%04x)\n", info.hca->name, info.device);
        else
            printf("  HCA            unknown (15b3:%04x)\n", info.device);
        printf("  mlnx_hca       %s\n", role_text(&info));
        printf("  driver         %ls\n", info.service[0] ? info.service : L"(none)");
        printf("  lower filters  ");
        list_print(&info.lower_filters);
        printf("\n");
        if (control_device(set, &dev, control, sizeof control)) printf("  tools open     %s\n", control);
    }
    SetupDiDestroyDeviceInfoList(set);
    if (!found) printf("no Mellanox PCI device\n");
    return DONE;
}

/* The filter's file and service, from the INF's filter sections. */
static int install_service(const char *inf_arg) {
    char inf[MAX_PATH], dir[MAX_PATH];
    char *file_part = NULL;
    if (inf_arg) {
        if (!GetFullPathNameA(inf_arg, MAX_PATH, inf, &file_part)) {
            report("GetFullPathName");
            return FAILED;
        }
    } else {
        DWORD n = GetModuleFileNameA(NULL, inf, MAX_PATH);
        char *slash = n && n < MAX_PATH ? strrchr(inf, '\\') : NULL;
        if (!slash || (size_t)(slash - inf) + sizeof "\\mlnx_hca.inf" > MAX_PATH) {
            fprintf(stderr, "mlnx_hca_filter: cannot tell where mlnx_hca.inf is: use --inf FILE\n");
            return REFUSED;
        }
        strcpy(slash, "\\mlnx_hca.inf");
    }
    strcpy(dir, inf);
    char *slash = strrchr(dir, '\\');
    if (slash) slash[1] = 0;
    if (GetFileAttributesA(inf) == INVALID_FILE_ATTRIBUTES) {
        fprintf(stderr, "mlnx_hca_filter: %s: no such INF (use --inf FILE)\n", inf);
        return REFUSED;
    }
    HINF hinf = SetupOpenInfFileA(inf, NULL, INF_STYLE_WIN4, NULL);
    if (hinf == INVALID_HANDLE_VALUE) {
        report("SetupOpenInfFile");
        return FAILED;
    }
    INFCONTEXT line;
    if (!SetupFindFirstLineW(hinf, FILTER_SECTION, NULL, &line)) {
        fprintf(stderr, "mlnx_hca_filter: %s has no [%ls] section: not mlnx_hca's INF, or an old one\n", inf,
                FILTER_SECTION);
        SetupCloseInfFile(hinf);
        return REFUSED;
    }
    /* No UI: the default callback without a progress window. */
    void *context = SetupInitDefaultQueueCallbackEx(NULL, INVALID_HANDLE_VALUE, 0, 0, NULL);
    WCHAR wdir[MAX_PATH];
    MultiByteToWideChar(CP_ACP, 0, dir, -1, wdir, MAX_PATH);
    BOOL ok = context && SetupInstallFromInfSectionW(NULL, hinf, FILTER_SECTION, SPINST_FILES, NULL, wdir,
                                                     SP_COPY_NEWER_OR_SAME, SetupDefaultQueueCallbackW, context, NULL,
                                                     NULL);
    if (!ok) report("copying mlnx_hca.sys (SetupInstallFromInfSection)");
    if (context) SetupTermDefaultQueueCallback(context);
    if (ok && !SetupInstallServicesFromInfSectionW(hinf, FILTER_SERVICES, 0)) {
        report("installing the mlnx_hca service (SetupInstallServicesFromInfSection)");
        ok = FALSE;
    }
    SetupCloseInfFile(hinf);
    if (!ok) return FAILED;

    /* The filter goes on the device only once its service can load: a
     * LowerFilters entry without a service would keep the HCA from starting. */
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    SC_HANDLE service = scm ? OpenServiceW(scm, SERVICE, SERVICE_QUERY_CONFIG) : NULL;
    union {
        QUERY_SERVICE_CONFIGW config;
        BYTE bytes[8192];
    } q;
    DWORD needed = 0;
    BOOL have = service && QueryServiceConfigW(service, &q.config, sizeof q, &needed);
    if (!have) report("checking the mlnx_hca service");
    if (service) CloseServiceHandle(service);
    if (scm) CloseServiceHandle(scm);
    if (!have) return FAILED;
    if (q.config.dwServiceType != SERVICE_KERNEL_DRIVER) {
        fprintf(stderr, "mlnx_hca_filter: the mlnx_hca service is not a kernel driver (type %lu)\n",
                q.config.dwServiceType);
        return FAILED;
    }
    char image[MAX_PATH];
    UINT n = GetSystemDirectoryA(image, MAX_PATH);
    if (!n || n + sizeof "\\drivers\\mlnx_hca.sys" > MAX_PATH) {
        report("GetSystemDirectory");
        return FAILED;
    }
    strcat(image, "\\drivers\\mlnx_hca.sys");
    if (GetFileAttributesA(image) == INVALID_FILE_ATTRIBUTES) {
        fprintf(stderr, "mlnx_hca_filter: %s is missing after the install\n", image);
        return FAILED;
    }
    printf("service mlnx_hca: %ls\n", q.config.lpBinaryPathName ? q.config.lpBinaryPathName : L"");
    return DONE;
}

/* Restarts the device so its stack is built again (DIF_PROPERTYCHANGE). */
static int restart(HDEVINFO set, SP_DEVINFO_DATA *dev, const char *id) {
    SP_PROPCHANGE_PARAMS params;
    memset(&params, 0, sizeof params);
    params.ClassInstallHeader.cbSize = sizeof params.ClassInstallHeader;
    params.ClassInstallHeader.InstallFunction = DIF_PROPERTYCHANGE;
    params.StateChange = DICS_PROPCHANGE;
    params.Scope = DICS_FLAG_CONFIGSPECIFIC;
    params.HwProfile = 0;
    printf("restarting %s (its driver stops and starts again)\n", id);
    if (!SetupDiSetClassInstallParamsW(set, dev, &params.ClassInstallHeader, sizeof params) ||
        !SetupDiCallClassInstaller(DIF_PROPERTYCHANGE, set, dev)) {
        report("restarting the device (DIF_PROPERTYCHANGE)");
        printf("not restarted: the change takes effect at the device's next start "
               "(pnputil /restart-device \"%s\", or a reboot)\n",
               id);
        return NOT_RESTARTED;
    }
    SP_DEVINSTALL_PARAMS_W install = {.cbSize = sizeof install};
    if (SetupDiGetDeviceInstallParamsW(set, dev, &install) && (install.Flags & (DI_NEEDREBOOT | DI_NEEDRESTART))) {
        printf("the device could not be restarted now (it is in use): the change takes effect after a reboot\n");
        return NOT_RESTARTED;
    }
    return DONE;
}

static int cmd_add(const char *id, const char *inf, int no_restart) {
    HDEVINFO set;
    SP_DEVINFO_DATA dev;
    struct device_info info;
    int rc = open_device(id, &set, &dev, &info);
    if (rc) return rc;
    const char *why = refusal(&info);
    if (why) {
        fprintf(stderr, "mlnx_hca_filter: refused for %s (%s): %s\n", id, info.hca ? info.hca->name : "no HCA", why);
        SetupDiDestroyDeviceInfoList(set);
        return REFUSED;
    }
    printf("%s: %s, driver %ls, lower filters ", id, info.hca->name, info.service[0] ? info.service : L"(none)");
    list_print(&info.lower_filters);
    printf("\n");
    rc = install_service(inf);
    if (rc) {
        fprintf(stderr, "mlnx_hca_filter: the device was not changed\n");
        SetupDiDestroyDeviceInfoList(set);
        return rc;
    }
    if (list_contains(&info.lower_filters, SERVICE)) {
        printf("mlnx_hca is already a lower filter of %s\n", id);
    } else {
        struct list filters = info.lower_filters;
        if (!list_append(&filters, SERVICE)) {
            fprintf(stderr, "mlnx_hca_filter: the device's LowerFilters is too long to extend\n");
            SetupDiDestroyDeviceInfoList(set);
            return FAILED;
        }
        struct list check;
        if (!set_list(set, &dev, SPDRP_LOWERFILTERS, &filters) || !get_list(set, &dev, SPDRP_LOWERFILTERS, &check) ||
            !list_contains(&check, SERVICE)) {
            report("writing LowerFilters");
            SetupDiDestroyDeviceInfoList(set);
            return FAILED;
        }
        printf("lower filters now ");
        list_print(&check);
        printf("\n");
    }
    if (no_restart) {
        printf("not restarted (--no-restart): mlnx_hca loads at the device's next start "
               "(pnputil /restart-device \"%s\", or a reboot)\n",
               id);
        rc = DONE;
    } else {
        rc = restart(set, &dev, id);
        char control[64];
        if (rc == DONE && control_device(set, &dev, control, sizeof control))
            printf("mlnx_hca serves %s: tools open %s\n", id, control);
        else if (rc == DONE)
            printf("restarted, but mlnx_hca has not published a control device for %s (see its debug output)\n", id);
    }
    SetupDiDestroyDeviceInfoList(set);
    return rc;
}

static int cmd_remove(const char *id, int no_restart) {
    HDEVINFO set;
    SP_DEVINFO_DATA dev;
    struct device_info info;
    int rc = open_device(id, &set, &dev, &info);
    if (rc) return rc;
    struct list rest;
    if (!list_without(&info.lower_filters, SERVICE, &rest)) {
        printf("mlnx_hca is not a lower filter of %s: nothing to do\n", id);
        SetupDiDestroyDeviceInfoList(set);
        return DONE;
    }
    struct list check;
    if (!set_list(set, &dev, SPDRP_LOWERFILTERS, &rest) || !get_list(set, &dev, SPDRP_LOWERFILTERS, &check) ||
        list_contains(&check, SERVICE)) {
        report("writing LowerFilters");
        SetupDiDestroyDeviceInfoList(set);
        return FAILED;
    }
    printf("lower filters of %s now ", id);
    list_print(&check);
    printf("\n");
    if (no_restart) {
        printf("not restarted (--no-restart): mlnx_hca leaves the device at its next start "
               "(pnputil /restart-device \"%s\", or a reboot)\n",
               id);
    } else {
        rc = restart(set, &dev, id);
    }
    SetupDiDestroyDeviceInfoList(set);
    return rc;
}

static int usage(void) {
    fprintf(stderr, "usage: mlnx_hca_filter list\n"
                    "       mlnx_hca_filter add [--inf FILE] [--no-restart] DEVICE-INSTANCE-ID\n"
                    "       mlnx_hca_filter remove [--no-restart] DEVICE-INSTANCE-ID\n");
    return REFUSED;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *command = argv[1], *inf = NULL, *id = NULL;
    int no_restart = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--no-restart"))
            no_restart = 1;
        else if (!strcmp(argv[i], "--inf") && i + 1 < argc && !strcmp(command, "add"))
            inf = argv[++i];
        else if (argv[i][0] == '-' || id)
            return usage();
        else
            id = argv[i];
    }
    if (!strcmp(command, "list") && !id && !no_restart) return cmd_list();
    if (!strcmp(command, "add") && id) return cmd_add(id, inf, no_restart);
    if (!strcmp(command, "remove") && id) return cmd_remove(id, no_restart);
    return usage();
}
