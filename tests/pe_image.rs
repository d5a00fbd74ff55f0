//! The built driver image, checked as the Windows loader would: a PE32+ file
//! for AMD64, native subsystem, entry point `DriverEntry`, imports from the
//! kernel only (and among them the calls the contract depends on), the
//! FORCE_INTEGRITY characteristic `PsSetCreateProcessNotifyRoutineEx` needs,
//! a valid checksum, no section both writable and executable; and the
//! stamped INF next to it.
//!
//! Needs a cross build (`tools/wdk-cross/build.sh build-release`), so it only
//! exists with `--features image-tests`; then a missing image is a failure,
//! never a skip.
//!
//! - `MLNX_HCA_SYS`: the default image (default
//!   `target/x86_64-pc-windows-msvc/release/mlnx_hca.sys`).
//! - `MLNX_HCA_SYS_LEGACY`: the `legacy-pool` image, checked only when set; it
//!   must not import `ExAllocatePool2` or `MmMapIoSpaceEx` (absent before
//!   Windows 10 2004 and in Wine 8).

use object::pe;
use object::read::pe::PeFile64;
use object::{LittleEndian as LE, Object, ObjectSection};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the driver must import for the contract: the MDL path (device
/// memory by physical address, pool pages locked), the user mapping and its
/// protection, attach, the BAR mapping, the process-exit notification, the
/// requester's process, the busy state while a write lease is held, power
/// policy, the administrator's read grant, and the gateway (the bus
/// interface's query, the waits and their clock).
const REQUIRED: &[&str] = &[
    "IoAllocateMdl",
    "MmAllocateMdlForIoSpace",
    "MmProbeAndLockPages",
    "MmUnlockPages",
    "MmMapLockedPagesSpecifyCache",
    "MmProtectMdlSystemAddress",
    "MmUnmapLockedPages",
    "KeStackAttachProcess",
    "KeUnstackDetachProcess",
    "IoFreeMdl",
    "PsSetCreateProcessNotifyRoutineEx",
    "MmUnmapIoSpace",
    "__C_specific_handler",
    "IoGetRequestorProcess",
    "IoIs32bitProcess",
    "PsGetProcessId",
    "PoRegisterSystemState",
    "PoUnregisterSystemState",
    "PoRequestPowerIrp",
    "PoSetPowerState",
    "ObOpenObjectByPointer",
    "ZwSetSecurityObject",
    "ZwOpenKey",
    "ZwQueryValueKey",
    "IoBuildSynchronousFsdRequest",
    "KeDelayExecutionThread",
    "KeQueryPerformanceCounter",
];

/// Windows 10 2004+ only (and not exported by Wine 8).
const WINDOWS_10_2004: &[&str] = &["ExAllocatePool2", "MmMapIoSpaceEx"];

struct Image {
    path: PathBuf,
    data: Vec<u8>,
}

fn load(var: &str, default: Option<&str>) -> Option<Image> {
    let path = match (std::env::var_os(var), default) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(d)) => Path::new(env!("CARGO_MANIFEST_DIR")).join(d),
        (None, None) => return None,
    };
    match std::fs::read(&path) {
        Ok(data) => Some(Image { path, data }),
        Err(e) => panic!(
            "{var}: cannot read {}: {e}\n  build it first: tools/wdk-cross/build.sh build-release \
             (legacy: WDK_CROSS_FEATURES=\"driver legacy-pool\" WDK_CROSS_TARGET_SUBDIR=legacy ...), \
             or point {var} at a built mlnx_hca.sys",
            path.display()
        ),
    }
}

/// The PE checksum (as `CheckSumMappedFile` computes it): 16-bit one's
/// complement-style sum of the file with the checksum field skipped, plus the
/// file length.
fn pe_checksum(data: &[u8], checksum_at: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in data.chunks(2).enumerate() {
        let at = i * 2;
        if at == checksum_at || at == checksum_at + 2 {
            continue;
        }
        let word = u16::from_le_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u64::from(word);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    (sum as u32).wrapping_add(data.len() as u32)
}

/// The file offset of an RVA (through the section table).
fn rva_to_offset(file: &PeFile64<'_>, rva: u32) -> Option<usize> {
    file.section_table().iter().find_map(|section| {
        let (start, raw) = (section.virtual_address.get(LE), section.size_of_raw_data.get(LE));
        let offset = rva.checked_sub(start).filter(|&o| o < raw)?;
        Some((section.pointer_to_raw_data.get(LE) + offset) as usize)
    })
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().expect("in bounds"))
}

/// The RVA of a named export, read by hand: the loader accepts an export
/// directory at any RVA, and lld may place it unaligned, which `object`'s
/// (aligned) export parser refuses.
fn export_rva(file: &PeFile64<'_>, data: &[u8], wanted: &str) -> Option<u32> {
    let dir = file.data_directory(pe::IMAGE_DIRECTORY_ENTRY_EXPORT)?;
    let at = rva_to_offset(file, dir.virtual_address.get(LE))?;
    let (count, functions, names, ordinals) =
        (u32_at(data, at + 24), u32_at(data, at + 28), u32_at(data, at + 32), u32_at(data, at + 36));
    (0..count as usize).find_map(|i| {
        let name_at = rva_to_offset(file, u32_at(data, rva_to_offset(file, names)? + 4 * i))?;
        let name = data[name_at..].split(|&b| b == 0).next()?;
        if name != wanted.as_bytes() {
            return None;
        }
        let ordinal_at = rva_to_offset(file, ordinals)? + 2 * i;
        let index = u16::from_le_bytes([data[ordinal_at], data[ordinal_at + 1]]) as usize;
        Some(u32_at(data, rva_to_offset(file, functions)? + 4 * index))
    })
}

/// Checks every loader fact; returns the imports by DLL (lowercase).
fn check_driver_image(image: &Image) -> BTreeMap<String, BTreeSet<String>> {
    let name = image.path.display();
    let file = PeFile64::parse(&*image.data).unwrap_or_else(|e| panic!("{name}: not a PE32+ image: {e}"));
    let nt = file.nt_headers();
    assert_eq!(nt.file_header.machine.get(LE), pe::IMAGE_FILE_MACHINE_AMD64, "{name}: machine is not AMD64");
    let optional = &nt.optional_header;
    assert_eq!(optional.magic.get(LE), pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC, "{name}: not PE32+");
    assert_eq!(optional.subsystem.get(LE), pe::IMAGE_SUBSYSTEM_NATIVE, "{name}: subsystem is not native");
    let characteristics = optional.dll_characteristics.get(LE);
    assert_ne!(
        characteristics & pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY,
        0,
        "{name}: FORCE_INTEGRITY (/INTEGRITYCHECK) missing: PsSetCreateProcessNotifyRoutineEx would fail"
    );
    assert_ne!(characteristics & pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT, 0, "{name}: not NX compatible");

    // The checksum: the kernel refuses boot drivers whose checksum is wrong.
    let dos = pe::ImageDosHeader::parse(&*image.data).expect("DOS header");
    let checksum_at = dos.nt_headers_offset() as usize + 4 + 20 + 64;
    let stored = optional.check_sum.get(LE);
    assert_ne!(stored, 0, "{name}: no PE checksum (link with /RELEASE)");
    assert_eq!(stored, pe_checksum(&image.data, checksum_at), "{name}: PE checksum is wrong");

    // An embedded Authenticode signature, when the image is meant to be
    // signed (the kit's rehearsal): the security directory holds one
    // WIN_CERTIFICATE (revision 2.0, PKCS#7 signed data) inside the file.
    // The directory's address is a file offset, not an RVA.
    if std::env::var_os("MLNX_HCA_EXPECT_SIGNED").is_some() {
        let security = file
            .data_directory(pe::IMAGE_DIRECTORY_ENTRY_SECURITY)
            .unwrap_or_else(|| panic!("{name}: no security directory: the image is not signed"));
        let (at, size) = (security.virtual_address.get(LE) as usize, security.size.get(LE) as usize);
        assert!(size >= 8 && at + size <= image.data.len(), "{name}: the signature lies outside the file");
        let (length, revision, kind) = (
            u32_at(&image.data, at) as usize,
            u16::from_le_bytes([image.data[at + 4], image.data[at + 5]]),
            u16::from_le_bytes([image.data[at + 6], image.data[at + 7]]),
        );
        assert!(length <= size, "{name}: WIN_CERTIFICATE longer than its directory");
        assert_eq!((revision, kind), (0x0200, 0x0002), "{name}: not a WIN_CERT_TYPE_PKCS_SIGNED_DATA, revision 2.0");
    }

    // Entry point = the DriverEntry export.
    let driver_entry =
        export_rva(&file, &image.data, "DriverEntry").unwrap_or_else(|| panic!("{name}: no DriverEntry export"));
    assert_eq!(optional.address_of_entry_point.get(LE), driver_entry, "{name}: the entry point is not DriverEntry");

    // No section both writable and executable (HVCI refuses such images).
    for section in file.sections() {
        if let object::SectionFlags::Coff { characteristics } = section.flags() {
            let wx = pe::IMAGE_SCN_MEM_WRITE | pe::IMAGE_SCN_MEM_EXECUTE;
            assert_ne!(
                characteristics & wx,
                wx,
                "{name}: section {} is writable and executable",
                section.name().unwrap_or("?")
            );
        }
    }

    // Imports: kernel modules only.
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for import in file.imports().expect("import table") {
        let library = String::from_utf8_lossy(import.library()).to_ascii_lowercase();
        imports.entry(library).or_default().insert(String::from_utf8_lossy(import.name()).into_owned());
    }
    for library in imports.keys() {
        assert!(
            library == "ntoskrnl.exe" || library == "hal.dll",
            "{name}: imports from {library}; a driver may import only from ntoskrnl.exe and HAL.dll"
        );
    }
    let all: BTreeSet<&str> = imports.values().flatten().map(String::as_str).collect();
    for required in REQUIRED {
        assert!(all.contains(required), "{name}: does not import {required}; imports: {all:?}");
    }
    imports
}

/// The stamped INF build.sh writes next to the image.
fn check_stamped_inf(image: &Image) {
    let inf = image.path.with_extension("inf");
    let data = std::fs::read(&inf)
        .unwrap_or_else(|e| panic!("{}: {e} (build.sh stamps it from mlnx_hca.inx next to the .sys)", inf.display()));
    assert!(data.starts_with(&[0xFF, 0xFE]), "{}: not UTF-16 LE with BOM", inf.display());
    let units: Vec<u16> = data[2..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let text = String::from_utf16(&units).expect("UTF-16");
    assert!(!text.contains("$ARCH$"), "{}: $ARCH$ not stamped", inf.display());
    assert!(text.contains("NTamd64"), "{}: no NTamd64 models section", inf.display());
    let driver_ver = text
        .lines()
        .find(|l| l.trim_start().to_ascii_lowercase().starts_with("driverver"))
        .unwrap_or_else(|| panic!("{}: no DriverVer", inf.display()));
    let value = driver_ver.split_once('=').map(|(_, v)| v.trim()).unwrap_or("");
    let (date, version) = value.split_once(',').unwrap_or_else(|| panic!("DriverVer {value:?}"));
    let date_ok = date.len() == 10 && date.as_bytes()[2] == b'/' && date.as_bytes()[5] == b'/';
    let version_ok = version.split('.').count() == 4 && version.split('.').all(|p| p.parse::<u16>().is_ok());
    assert!(date_ok && version_ok, "{}: DriverVer {value:?} is not MM/DD/YYYY,a.b.c.d", inf.display());
}

#[test]
fn default_image_loads_as_a_wdm_driver() {
    let image = load("MLNX_HCA_SYS", Some("target/x86_64-pc-windows-msvc/release/mlnx_hca.sys")).expect("image");
    let imports = check_driver_image(&image);
    let all: BTreeSet<&str> = imports.values().flatten().map(String::as_str).collect();
    for name in WINDOWS_10_2004 {
        assert!(all.contains(name), "{}: the default image should use {name}", image.path.display());
    }
    check_stamped_inf(&image);
}

#[test]
fn legacy_image_avoids_windows_10_2004_exports() {
    let Some(image) = load("MLNX_HCA_SYS_LEGACY", None) else {
        eprintln!("MLNX_HCA_SYS_LEGACY is not set: the legacy-pool image is not checked");
        return;
    };
    let imports = check_driver_image(&image);
    let all: BTreeSet<&str> = imports.values().flatten().map(String::as_str).collect();
    for name in WINDOWS_10_2004 {
        assert!(!all.contains(name), "{}: the legacy image imports {name}", image.path.display());
    }
    for name in ["ExAllocatePoolWithTag", "MmMapIoSpace"] {
        assert!(all.contains(name), "{}: the legacy image should use {name}", image.path.display());
    }
    check_stamped_inf(&image);
}
