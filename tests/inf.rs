//! `mlnx_hca.inx`, the INF source, read as Windows setup reads it: UTF-16 LE
//! with a BOM, sections and `key = value, value` lines, `;` comments,
//! `%string%` substitution. Checks what installing the driver depends on:
//! the version stamp fields, the models (the root test device and the
//! flash-recovery HCA ids, each given the function role by the core; no
//! operational HCA, nothing newer than ConnectX-3), the service, the files,
//! and the device's security: an SDDL for SYSTEM and Administrators only,
//! and FILE_DEVICE_SECURE_OPEN. Also: the device-interface GUID is the same
//! in the C header and the driver.

use mlnx_hca::core::hca::{hca, pci_ids, CrSpace, Role, HCAS, MELLANOX};
use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One line of a section: an optional key and its comma-separated values
/// (quotes removed, `%strings%` substituted).
#[derive(Debug, Clone)]
struct Line {
    key: Option<String>,
    values: Vec<String>,
}

#[derive(Debug, Default)]
struct Inf {
    /// Section name (lowercase) -> lines.
    sections: BTreeMap<String, Vec<Line>>,
}

/// Splits at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Drops a `;` comment (outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s).to_string()
}

fn decode_utf16_le_bom(bytes: &[u8]) -> String {
    assert!(bytes.starts_with(&[0xFF, 0xFE]), "mlnx_hca.inx must start with the UTF-16 LE BOM (FF FE)");
    assert_eq!(bytes.len() % 2, 0, "odd length for UTF-16");
    let units: Vec<u16> = bytes[2..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).expect("valid UTF-16")
}

fn parse(text: &str) -> Inf {
    let mut inf = Inf::default();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').unwrap_or_else(|| panic!("bad section header {raw:?}"));
            let name = name.trim().to_ascii_lowercase();
            assert!(!inf.sections.contains_key(&name), "section [{name}] appears twice");
            inf.sections.insert(name.clone(), Vec::new());
            current = Some(name);
            continue;
        }
        let section = current.as_ref().unwrap_or_else(|| panic!("line outside any section: {raw:?}"));
        let eq = split_unquoted(line, '=');
        let (key, rest) = if eq.len() > 1 {
            (Some(eq[0].trim().to_string()), line[eq[0].len() + 1..].to_string())
        } else {
            (None, line.to_string())
        };
        let values = split_unquoted(&rest, ',').into_iter().map(unquote).collect();
        inf.sections.get_mut(section).expect("current section").push(Line { key, values });
    }
    // %strings% substitution, as setup does (DIRIDs such as %12% stay).
    let strings: BTreeMap<String, String> = inf
        .sections
        .get("strings")
        .map(|lines| {
            lines.iter().filter_map(|l| Some((l.key.clone()?.to_ascii_lowercase(), l.values.join(",")))).collect()
        })
        .unwrap_or_default();
    let substitute = |s: &str| -> String {
        let mut out = String::new();
        let mut parts = s.split('%');
        out.push_str(parts.next().unwrap_or(""));
        let rest: Vec<&str> = parts.collect();
        let mut i = 0;
        while i < rest.len() {
            if i + 1 < rest.len() || rest.len() % 2 == 0 {
                match strings.get(&rest[i].to_ascii_lowercase()) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('%');
                        out.push_str(rest[i]);
                        out.push('%');
                    }
                }
                if i + 1 < rest.len() {
                    out.push_str(rest[i + 1]);
                }
                i += 2;
            } else {
                out.push('%');
                out.push_str(rest[i]);
                i += 1;
            }
        }
        out
    };
    for (name, lines) in inf.sections.iter_mut() {
        if name == "strings" {
            continue;
        }
        for line in lines.iter_mut() {
            for v in line.values.iter_mut() {
                *v = substitute(v);
            }
            if let Some(k) = line.key.as_mut() {
                *k = substitute(k);
            }
        }
    }
    inf
}

impl Inf {
    fn section(&self, name: &str) -> &[Line] {
        self.sections.get(&name.to_ascii_lowercase()).unwrap_or_else(|| panic!("no [{name}] section"))
    }

    /// The values of `key` in `section` (keys are case-insensitive).
    fn values(&self, section: &str, key: &str) -> Vec<&[String]> {
        self.section(section)
            .iter()
            .filter(|l| l.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(key)))
            .map(|l| l.values.as_slice())
            .collect()
    }

    fn value(&self, section: &str, key: &str) -> String {
        let all = self.values(section, key);
        assert_eq!(all.len(), 1, "[{section}] {key} must appear once");
        all[0].join(",")
    }
}

fn inx() -> Inf {
    let bytes = std::fs::read(root().join("mlnx_hca.inx")).expect("mlnx_hca.inx in the repository root");
    parse(&decode_utf16_le_bom(&bytes))
}

fn is_guid(s: &str) -> bool {
    let s = s.trim();
    let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else { return false };
    let groups: Vec<&str> = inner.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn version_section_carries_class_provider_and_stamp_fields() {
    let inf = inx();
    assert_eq!(inf.value("Version", "Signature").to_ascii_uppercase(), "$WINDOWS NT$");
    assert!(!inf.value("Version", "Class").is_empty(), "Class");
    assert!(is_guid(&inf.value("Version", "ClassGuid")), "ClassGuid {:?}", inf.value("Version", "ClassGuid"));
    let provider = inf.value("Version", "Provider");
    assert!(!provider.is_empty() && !provider.contains('%'), "Provider resolves to a string: {provider:?}");
    let driver_ver = inf.values("Version", "DriverVer");
    assert_eq!(driver_ver.len(), 1, "one DriverVer (stampinf replaces it)");
    assert_eq!(driver_ver[0].len(), 2, "DriverVer = date,version");
    assert_eq!(inf.value("Version", "CatalogFile"), "mlnx_hca.cat");
    assert_eq!(inf.value("Version", "PnpLockdown"), "1");
    // The class is installed by the INF if the machine lacks it.
    assert!(!inf.values("ClassInstall32", "AddReg").is_empty(), "[ClassInstall32] AddReg");
}

/// Every (install section, hardware id) of the models sections the
/// [Manufacturer] section names, for the $ARCH$ decoration stampinf fills in.
fn models(inf: &Inf) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in inf.section("Manufacturer") {
        let (base, decorations) = (&line.values[0], &line.values[1..]);
        assert!(decorations.iter().any(|d| d.eq_ignore_ascii_case("NT$ARCH$")), "models decorated NT$ARCH$: {line:?}");
        for decoration in decorations {
            for model in inf.section(&format!("{base}.{decoration}")) {
                let install = model.values[0].clone();
                for id in &model.values[1..] {
                    out.push((install.clone(), id.to_ascii_uppercase()));
                }
            }
        }
    }
    out
}

/// The INF binds the driver as the function driver only where no other
/// driver does: the root test devices and HCAs in flash recovery (BAR 0
/// mapped up to ConnectX-3 Pro, the gateway after). Every id it binds, the
/// core gives the function role; no operational HCA (WinOF's, WinOF-2's)
/// is bound: those it serves only as a filter.
#[test]
fn models_bind_only_the_test_device_and_flash_recovery_hcas() {
    let inf = inx();
    let models = models(&inf);
    for sim in [r"ROOT\MLNX_HCA_SIM", r"ROOT\MLNX_HCA_SIM4"] {
        assert!(models.iter().any(|(_, id)| id == sim), "{sim} is listed");
    }
    let mut recovery_bound = Vec::new();
    for (_, id) in &models {
        let role = Role::for_device([id.as_str()]);
        assert!(role.is_function(), "{id}: bound, so it must be the function driver's, not {role:?}");
        if let Some((vendor, device)) = pci_ids(id) {
            assert_eq!(vendor, MELLANOX, "{id}: not a Mellanox id");
            let hca = hca(device).unwrap_or_else(|| panic!("{id}: not an HCA the driver knows"));
            assert!(hca.recovery, "{id} ({}): an operational HCA runs its own driver", hca.name);
            recovery_bound.push(device);
        }
    }
    // Every flash-recovery id the driver knows is bound, of both paths.
    for known in HCAS.iter().filter(|h| h.recovery) {
        assert!(recovery_bound.contains(&known.device_id), "{} ({:#06x}) is not bound", known.name, known.device_id);
    }
    // Every model's install section exists (setup picks the .NT decoration).
    for (install, id) in &models {
        assert!(inf.sections.contains_key(&format!("{install}.nt").to_ascii_lowercase()), "{id}: no [{install}.NT]");
    }
}

/// What the INF does not bind, whatever its form (`PCI\VEN_15B3&DEV_1013`
/// with or without SUBSYS/REV): no operational HCA, of either path (the
/// ConnectX-4 to -7 and BlueField run WinOF-2; mlnx_hca is only ever their
/// filter).
#[test]
fn no_operational_hca_is_bound() {
    let inf = inx();
    let bound: Vec<String> = models(&inf).into_iter().map(|(_, id)| id).collect();
    assert!(HCAS.iter().any(|h| !h.recovery && h.cr_space == CrSpace::Gateway));
    for h in HCAS.iter().filter(|h| !h.recovery) {
        let id = format!(r"PCI\VEN_15B3&DEV_{:04X}", h.device_id);
        assert!(!bound.iter().any(|b| b.starts_with(&id)), "{} ({id}) is bound", h.name);
    }
}

/// The filter install: the file and the service for mlnx_hca_filter.exe,
/// which names these sections; no model reaches them, they carry no device
/// settings (the HCA keeps its own security and driver), and the service is
/// the function install's, without SPSVCINST_ASSOCSERVICE.
#[test]
fn the_filter_install_adds_file_and_service_and_binds_nothing() {
    let inf = inx();
    let tool = std::fs::read_to_string(root().join("tools/filter/mlnx_hca_filter.c")).expect("the filter installer");
    assert!(tool.contains(r#"#define FILTER_SECTION L"MlnxHca_Filter.NT""#), "the tool installs [MlnxHca_Filter.NT]");
    assert!(tool.contains(r#"#define FILTER_SERVICES L"MlnxHca_Filter.NT.Services""#), "and its .Services");
    assert!(models(&inf).iter().all(|(install, _)| !install.eq_ignore_ascii_case("MlnxHca_Filter")), "no model");
    assert!(!inf.sections.contains_key("mlnxhca_filter.nt.hw"), "no device settings on the HCA's stack");
    let copies = inf.values("MlnxHca_Filter.NT", "CopyFiles");
    assert_eq!(copies.len(), 1, "[MlnxHca_Filter.NT] copies files");
    assert!(inf.section(&copies[0][0]).iter().any(|l| l.values[0] == "mlnx_hca.sys"), "mlnx_hca.sys");
    assert_eq!(inf.section("MlnxHca_Filter.NT").len(), 1, "[MlnxHca_Filter.NT] does nothing else");
    let add = inf.values("MlnxHca_Filter.NT.Services", "AddService");
    assert_eq!(add.len(), 1, "one AddService");
    assert_eq!(add[0][0], "mlnx_hca");
    let flags = u32::from_str_radix(add[0][1].trim_start_matches("0x"), 16).expect("flags");
    assert_eq!(flags & 0x2, 0, "not SPSVCINST_ASSOCSERVICE: mlnx_hca is not the HCA's function driver");
    let function = inf.values("MlnxHca_Device.NT.Services", "AddService");
    assert_eq!(add[0][2], function[0][2], "the same service definition as the function install");
}

#[test]
fn service_is_a_demand_start_kernel_driver_from_mlnx_hca_sys() {
    let inf = inx();
    for (install, _) in models(&inf) {
        let add_service = inf.values(&format!("{install}.NT.Services"), "AddService");
        assert_eq!(add_service.len(), 1, "one AddService in [{install}.NT.Services]");
        let v = add_service[0];
        assert_eq!(v[0], "mlnx_hca", "service name");
        let flags = u32::from_str_radix(v[1].trim_start_matches("0x").trim_start_matches("0X"), 16).expect("flags");
        assert_ne!(flags & 0x2, 0, "SPSVCINST_ASSOCSERVICE: the function driver of the device");
        let service = &v[2];
        assert_eq!(inf.value(service, "ServiceType"), "1", "SERVICE_KERNEL_DRIVER");
        assert_eq!(inf.value(service, "StartType"), "3", "SERVICE_DEMAND_START");
        assert_eq!(inf.value(service, "ErrorControl"), "1", "SERVICE_ERROR_NORMAL");
        let binary = inf.value(service, "ServiceBinary");
        assert!(
            binary.eq_ignore_ascii_case(r"%12%\mlnx_hca.sys") || binary.eq_ignore_ascii_case(r"%13%\mlnx_hca.sys"),
            "ServiceBinary {binary:?}"
        );
    }
}

#[test]
fn files_are_listed_and_copied() {
    let inf = inx();
    let source = inf.section("SourceDisksFiles");
    assert!(source.iter().any(|l| l.key.as_deref() == Some("mlnx_hca.sys")), "SourceDisksFiles lists mlnx_hca.sys");
    let dest = inf.value("DestinationDirs", "DefaultDestDir");
    assert!(dest == "12" || dest == "13", "DefaultDestDir {dest}");
    for (install, _) in models(&inf) {
        for copy in inf.values(&format!("{install}.NT"), "CopyFiles") {
            let files = inf.section(&copy[0]);
            assert!(files.iter().any(|l| l.values[0] == "mlnx_hca.sys"), "[{}] copies mlnx_hca.sys", copy[0]);
        }
    }
}

/// The HKR lines of every AddReg section the install's `.NT.HW` section names.
fn hw_registry(inf: &Inf, install: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for add_reg in inf.values(&format!("{install}.NT.HW"), "AddReg") {
        for section in add_reg {
            out.extend(inf.section(section).iter().map(|l| l.values.clone()));
        }
    }
    out
}

/// One allow ACE of an SDDL DACL: rights string and trustee SID string.
fn sddl_aces(sddl: &str) -> (bool, Vec<(String, String, String)>) {
    let dacl = sddl.strip_prefix("D:").unwrap_or_else(|| panic!("SDDL {sddl:?} must be a DACL (D:...)"));
    let flags_end = dacl.find('(').unwrap_or(dacl.len());
    let protected = dacl[..flags_end].contains('P');
    let mut aces = Vec::new();
    for ace in dacl[flags_end..].split(')').filter(|s| !s.is_empty()) {
        let fields: Vec<&str> = ace.trim_start_matches('(').split(';').collect();
        assert_eq!(fields.len(), 6, "ACE {ace:?}: type;flags;rights;object;inherit;sid");
        aces.push((fields[0].to_string(), fields[2].to_string(), fields[5].to_string()));
    }
    (protected, aces)
}

/// Whether SDDL rights let the holder write: generic write/all, file
/// all/write, write-data, or a hex mask with FILE_WRITE_DATA, generic write or
/// generic all, or WRITE_DAC/WRITE_OWNER.
fn grants_write(rights: &str) -> bool {
    if let Some(hex) = rights.strip_prefix("0x").or_else(|| rights.strip_prefix("0X")) {
        let mask = u32::from_str_radix(hex, 16).expect("hex rights");
        return mask & (0x2 | 0x4000_0000 | 0x1000_0000 | 0x0004_0000 | 0x0008_0000) != 0;
    }
    rights
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .any(|r| matches!(r, "GA" | "GW" | "FA" | "FW" | "WD" | "WO" | "KA" | "KW" | "WP" | "SD"))
}

#[test]
fn only_system_and_administrators_open_the_device() {
    let inf = inx();
    for (install, _) in models(&inf) {
        let registry = hw_registry(&inf, &install);
        let security: Vec<&Vec<String>> = registry
            .iter()
            .filter(|v| v[0].eq_ignore_ascii_case("HKR") && v[2].eq_ignore_ascii_case("Security"))
            .collect();
        assert_eq!(security.len(), 1, "[{install}.NT.HW]: one HKR,,Security line");
        let sddl = security[0].last().expect("SDDL value");
        let (protected, aces) = sddl_aces(sddl);
        assert!(protected, "the DACL is protected (D:P): nothing inherited");
        let mut writers = Vec::new();
        for (kind, rights, _sid) in &aces {
            assert_eq!(kind, "A", "only allow ACEs: {sddl}");
            assert!(grants_write(rights), "no read-only ACE by default (reading has side effects): {sddl}");
        }
        for (_, _, sid) in &aces {
            writers.push(sid.as_str());
        }
        writers.sort_unstable();
        assert_eq!(writers, ["BA", "SY"], "SYSTEM and Administrators only, read included: {sddl}");
        for sid in ["SY", "BA"] {
            assert!(aces.iter().any(|(_, r, s)| s == sid && r == "GA"), "{sid} gets GENERIC_ALL: {sddl}");
        }

        let characteristics: Vec<&Vec<String>> = registry
            .iter()
            .filter(|v| v[0].eq_ignore_ascii_case("HKR") && v[2].eq_ignore_ascii_case("DeviceCharacteristics"))
            .collect();
        assert_eq!(characteristics.len(), 1, "[{install}.NT.HW]: one HKR,,DeviceCharacteristics line");
        let v = characteristics[0];
        let parse = |s: &str| u32::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).unwrap();
        assert_eq!(parse(&v[3]), 0x10001, "FLG_ADDREG_TYPE_DWORD");
        assert_ne!(parse(&v[4]) & 0x100, 0, "FILE_DEVICE_SECURE_OPEN (0x100)");
    }
}

/// The 11 numbers of a GUID initializer `{ a, b, c, { d0, ..., d7 } }` found
/// after `anchor` in `text`.
fn guid_numbers(text: &str, anchor: &str) -> Vec<u64> {
    let at = text.find(anchor).unwrap_or_else(|| panic!("{anchor:?} not found"));
    let body = &text[at + anchor.len()..];
    let end = body.find(';').or_else(|| body.find("\n#")).expect("end of the initializer");
    body[..end]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|t| t.strip_prefix("0x"))
        .map(|h| u64::from_str_radix(h, 16).expect("hex"))
        .take(11)
        .collect()
}

#[test]
fn interface_guid_is_the_same_in_header_and_driver() {
    let header = std::fs::read_to_string(root().join("include/mlnx_hca_ioctl.h")).expect("header");
    let driver = std::fs::read_to_string(root().join("src/windows/mod.rs")).expect("driver");
    let in_header = guid_numbers(&header, "#define MLNX_HCA_INTERFACE_GUID_INIT");
    let in_define = guid_numbers(&header, "DEFINE_GUID(MLNX_HCA_INTERFACE_GUID,");
    let in_driver = guid_numbers(&driver, "static INTERFACE_GUID: GUID =");
    assert_eq!(in_header.len(), 11, "header initializer: {in_header:x?}");
    assert_eq!(in_header, in_define, "MLNX_HCA_INTERFACE_GUID_INIT and DEFINE_GUID differ");
    assert_eq!(in_header, in_driver, "the header's GUID and the driver's INTERFACE_GUID differ");
    let text = format!(
        "{{{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}}}",
        in_header[0],
        in_header[1],
        in_header[2],
        in_header[3],
        in_header[4],
        in_header[5..].iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert!(header.contains(&text), "the header's comment names {text}");
    assert!(driver.contains(&text), "the driver's comment names {text}");
}

/// The names tools find the control device by: the header's value name and
/// name prefix are the ones the driver writes and creates.
#[test]
fn control_device_names_are_the_same_in_header_and_driver() {
    let header = std::fs::read_to_string(root().join("include/mlnx_hca_ioctl.h")).expect("header");
    let driver = std::fs::read_to_string(root().join("src/windows/device.rs")).expect("driver");
    let define = |name: &str| -> String {
        let line = header
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["#define", name]))
            .unwrap_or_else(|| panic!("#define {name}"));
        let value = line.split_whitespace().nth(2).expect("a value");
        value.trim_start_matches('L').trim_matches('"').replace(r"\\", r"\")
    };
    let value = define("MLNX_HCA_CONTROL_DEVICE_VALUE");
    assert_eq!(value, define("MLNX_HCA_CONTROL_DEVICE_VALUE_W"));
    assert!(driver.contains(&format!("const CONTROL_DEVICE_VALUE: &str = \"{value}\";")), "the driver writes {value}");
    let prefix = define("MLNX_HCA_DOS_NAME_PREFIX");
    assert_eq!(prefix, define("MLNX_HCA_DOS_NAME_PREFIX_W"));
    assert_eq!(prefix, r"\\.\mlnx_hca");
    assert!(driver.contains(&format!("Name::new(r\"{prefix}\", n)")), "the value written is {prefix}<N>");
    assert!(driver.contains(r#"Name::new(r"\DosDevices\mlnx_hca", instance)"#), "the link \\DosDevices\\mlnx_hca<N>");
    assert!(driver.contains(r#"Name::new(r"\Device\mlnx_hca", instance)"#), "the control device \\Device\\mlnx_hca<N>");
}

/// The administrator's read grant (the service's `Parameters\ReadAccess`)
/// survives a driver update because no install section writes it: the
/// service install only makes the empty key (`FLG_ADDREG_KEYONLY`).
#[test]
fn the_read_grant_lives_where_no_install_writes() {
    let inf = inx();
    for (name, lines) in &inf.sections {
        for line in lines {
            assert!(
                !line.values.iter().any(|v| v.eq_ignore_ascii_case("ReadAccess")),
                "[{name}] writes ReadAccess: {line:?}"
            );
        }
    }
    let add_reg = inf.value("MlnxHca_Service", "AddReg");
    let lines = inf.section(&add_reg);
    assert_eq!(lines.len(), 1, "[{add_reg}]: the Parameters key only");
    let v = &lines[0].values;
    assert!(v[0].eq_ignore_ascii_case("HKR") && v[1].eq_ignore_ascii_case("Parameters"), "{v:?}");
    assert_eq!(u32::from_str_radix(v[3].trim_start_matches("0x"), 16), Ok(0x10), "FLG_ADDREG_KEYONLY: {v:?}");
}
