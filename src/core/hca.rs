//! Which HCA a device is, and what the driver is to it.
//!
//! Facts (PCI ids from `pci.ids`, Debian `pciutils`; the Linux mthca and
//! mlx4 drivers' tables; mstflint's mtcr): BAR 0 is CR space on InfiniHost,
//! InfiniHost III, ConnectX (ConnectX-2) and ConnectX-3 / ConnectX-3 Pro.
//! From Connect-IB and ConnectX-4 on, BAR 0 starts with the initialization
//! segment and the doorbell pages the running driver uses, and CR space is
//! reached through the vendor-specific capability in configuration space
//! (mstflint forces that path for them), so mapping their BAR 0 into a tool
//! would be a way to crash the running driver, not CR-space access.
//!
//! The driver has two roles ([`Role`]): the *function driver* of the root
//! test device and of an HCA in flash-recovery mode (which has no driver of
//! its own), bound by the INF; and a *lower filter* below the HCA's own
//! driver (WinOF, WinOF-2), added to a chosen HCA by an administrator. In
//! both it serves tools through a control device of its own: by mapping
//! BAR 0 for an HCA whose BAR 0 is CR space, through the configuration-space
//! gateway for the later ones (never touching their BAR 0).

/// The root-enumerated simulated ConnectX-3's hardware id (the INF's).
pub const SIMULATED_HARDWARE_ID: &str = r"root\mlnx_hca_sim";
/// The root-enumerated simulated ConnectX-4's hardware id (the INF's).
pub const SIMULATED4_HARDWARE_ID: &str = r"root\mlnx_hca_sim4";

/// Mellanox's PCI vendor id.
pub const MELLANOX: u16 = 0x15B3;

/// How CR space is reached on an HCA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrSpace {
    /// BAR 0 is CR space: mapped into tools.
    Bar0,
    /// Through the configuration-space gateway (ConnectX-4 and later).
    Gateway,
}

/// A Mellanox PCI function the driver knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hca {
    /// PCI device id.
    pub device_id: u16,
    /// Product, as pci.ids names it.
    pub name: &'static str,
    /// How CR space is reached.
    pub cr_space: CrSpace,
    /// A flash-recovery id: the device runs no firmware to speak of, and no
    /// other driver binds it.
    pub recovery: bool,
}

const fn bar0(device_id: u16, name: &'static str, recovery: bool) -> Hca {
    Hca { device_id, name, cr_space: CrSpace::Bar0, recovery }
}

const fn gateway(device_id: u16, name: &'static str, recovery: bool) -> Hca {
    Hca { device_id, name, cr_space: CrSpace::Gateway, recovery }
}

/// Every Mellanox HCA id the driver knows, operational and flash recovery.
/// Virtual functions (no CR space of their own) and switches are absent.
pub const HCAS: &[Hca] = &[
    bar0(0x5A44, "InfiniHost (MT23108)", false),
    bar0(0x5A45, "InfiniHost (MT23108) flash recovery", true),
    bar0(0x6278, "InfiniHost III Ex (MT25208, Tavor compatibility)", false),
    bar0(0x6282, "InfiniHost III Ex (MT25208)", false),
    bar0(0x6279, "InfiniHost III Ex (MT25208) flash recovery", true),
    bar0(0x6274, "InfiniHost III Lx (MT25204)", false),
    bar0(0x5E8C, "InfiniHost III Lx (MT24204)", false),
    bar0(0x5E8D, "InfiniHost III Lx (MT25204) flash recovery", true),
    bar0(0x6340, "ConnectX (MT25408) IB SDR", false),
    bar0(0x634A, "ConnectX (MT25408) IB DDR", false),
    bar0(0x6354, "ConnectX (MT25408) IB QDR", false),
    bar0(0x6732, "ConnectX (MT25408) IB DDR, PCIe 5 GT/s", false),
    bar0(0x673C, "ConnectX (MT25408) IB QDR, PCIe 5 GT/s", false),
    bar0(0x6746, "ConnectX VPI (MT26438)", false),
    bar0(0x0191, "ConnectX (MT25408) flash recovery", true),
    bar0(0x1003, "ConnectX-3 (MT27500)", false),
    bar0(0x01F6, "ConnectX-3 (MT27500) flash recovery", true),
    bar0(0x1007, "ConnectX-3 Pro (MT27520)", false),
    bar0(0x01F8, "ConnectX-3 Pro (MT27520) flash recovery", true),
    gateway(0x1011, "Connect-IB (MT27600)", false),
    gateway(0x01FF, "Connect-IB (MT27600) flash recovery", true),
    gateway(0x1013, "ConnectX-4 (MT27700)", false),
    gateway(0x0209, "ConnectX-4 (MT27700) flash recovery", true),
    gateway(0x1015, "ConnectX-4 Lx (MT27710)", false),
    gateway(0x020B, "ConnectX-4 Lx (MT27710) flash recovery", true),
    gateway(0x1017, "ConnectX-5 (MT27800)", false),
    gateway(0x1019, "ConnectX-5 Ex (MT28800)", false),
    gateway(0x020D, "ConnectX-5 (MT28800) flash recovery", true),
    gateway(0x101B, "ConnectX-6 (MT28908)", false),
    gateway(0x020F, "ConnectX-6 (MT28908) flash recovery", true),
    gateway(0x101D, "ConnectX-6 Dx (MT2892)", false),
    gateway(0x0212, "ConnectX-6 Dx (MT2892) flash recovery", true),
    gateway(0x101F, "ConnectX-6 Lx (MT2894)", false),
    gateway(0x0216, "ConnectX-6 Lx (MT2894) flash recovery", true),
    gateway(0x1021, "ConnectX-7 (MT2910)", false),
    gateway(0x0218, "ConnectX-7 (MT2910) flash recovery", true),
    gateway(0xA2D2, "BlueField (MT416842)", false),
    gateway(0x0211, "BlueField (MT416842) flash recovery", true),
    gateway(0xA2D6, "BlueField-2 (MT42822)", false),
    gateway(0x0214, "BlueField-2 (MT42822) flash recovery", true),
    gateway(0xA2DC, "BlueField-3 (MT43244)", false),
    gateway(0x021C, "BlueField-3 (MT43244) flash recovery", true),
];

/// The HCA a PCI device id names, if the driver knows it.
pub fn hca(device_id: u16) -> Option<&'static Hca> {
    HCAS.iter().find(|h| h.device_id == device_id)
}

/// The `(vendor, device)` of a PnP hardware id `PCI\VEN_vvvv&DEV_dddd...`.
pub fn pci_ids(hardware_id: &str) -> Option<(u16, u16)> {
    let rest = hardware_id.get(..4).filter(|p| p.eq_ignore_ascii_case(r"PCI\"))?;
    let rest = &hardware_id[rest.len()..];
    let mut vendor = None;
    let mut device = None;
    for part in rest.split('&') {
        let (key, value) = part.split_at_checked(4)?;
        let hex = |v: &str| (v.len() == 4).then(|| u16::from_str_radix(v, 16).ok()).flatten();
        if key.eq_ignore_ascii_case("VEN_") {
            vendor = hex(value);
        } else if key.eq_ignore_ascii_case("DEV_") {
            device = hex(value);
        }
    }
    Some((vendor?, device?))
}

/// What the driver is to a device, decided once in `AddDevice` from the
/// device's hardware ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The function driver: of a root test device (`simulated`: its CR
    /// space is in driver memory), or of an HCA in flash recovery (which has
    /// no driver of its own). Serves tools.
    Function {
        /// The HCA it is (the test devices: the one each simulates).
        hca: &'static Hca,
        /// A root-enumerated test device.
        simulated: bool,
    },
    /// A lower filter below the HCA's own driver: passes every request of
    /// the stack through; serves tools when it knows the HCA (BAR 0 mapped
    /// for ConnectX-3 and older, the configuration-space gateway for later
    /// ones).
    Filter {
        /// The HCA, if the driver knows it.
        hca: Option<&'static Hca>,
    },
}

/// What the root test device `root\mlnx_hca_sim` is: a ConnectX-3 (BAR 0
/// in driver memory).
pub static SIMULATED_CONNECTX3: Hca = bar0(0x1003, "ConnectX-3 (MT27500)", false);
/// What the root test device `root\mlnx_hca_sim4` is: a ConnectX-4 (a
/// gateway emulated in driver memory).
pub static SIMULATED_CONNECTX4: Hca = gateway(0x1013, "ConnectX-4 (MT27700)", false);

impl Role {
    /// The role for a device with these hardware ids (most specific first,
    /// as the PnP manager lists them). A device the INF binds (a test
    /// device, a flash-recovery id) is the function driver's; any other
    /// device the driver is loaded for can only be a stack it was added to
    /// as a filter.
    pub fn for_device<'a>(hardware_ids: impl IntoIterator<Item = &'a str>) -> Role {
        let mut found = None;
        for id in hardware_ids {
            if id.eq_ignore_ascii_case(SIMULATED_HARDWARE_ID) {
                return Role::Function { hca: &SIMULATED_CONNECTX3, simulated: true };
            }
            if id.eq_ignore_ascii_case(SIMULATED4_HARDWARE_ID) {
                return Role::Function { hca: &SIMULATED_CONNECTX4, simulated: true };
            }
            if let (None, Some((MELLANOX, device))) = (found, pci_ids(id)) {
                found = Some(hca(device));
            }
        }
        match found.flatten() {
            Some(h) if h.recovery => Role::Function { hca: h, simulated: false },
            hca => Role::Filter { hca },
        }
    }

    /// The HCA, if the driver knows it.
    pub fn hca(self) -> Option<&'static Hca> {
        match self {
            Role::Function { hca, .. } => Some(hca),
            Role::Filter { hca } => hca,
        }
    }

    /// Whether tools get a control device for this device: for every HCA
    /// the driver knows.
    pub fn serves(self) -> bool {
        self.hca().is_some()
    }

    /// Whether this is a root test device.
    pub fn simulated(self) -> bool {
        matches!(self, Role::Function { simulated: true, .. })
    }

    /// Whether this is the function driver (not a filter).
    pub const fn is_function(self) -> bool {
        matches!(self, Role::Function { .. })
    }
}

/// The major function codes of the IRPs the driver tells apart (`wdm.h`).
pub mod major {
    /// `IRP_MJ_CREATE`.
    pub const CREATE: u8 = 0x00;
    /// `IRP_MJ_CLOSE`.
    pub const CLOSE: u8 = 0x02;
    /// `IRP_MJ_DEVICE_CONTROL`.
    pub const DEVICE_CONTROL: u8 = 0x0E;
    /// `IRP_MJ_CLEANUP`.
    pub const CLEANUP: u8 = 0x12;
    /// `IRP_MJ_POWER`.
    pub const POWER: u8 = 0x16;
    /// `IRP_MJ_SYSTEM_CONTROL` (WMI).
    pub const SYSTEM_CONTROL: u8 = 0x17;
    /// `IRP_MJ_PNP`.
    pub const PNP: u8 = 0x1B;
    /// `IRP_MJ_MAXIMUM_FUNCTION`.
    pub const MAXIMUM: u8 = 0x1B;
}

/// Which of the driver's device objects an IRP is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The stack device (FDO or lower filter) of a device in this role.
    Stack(Role),
    /// A control device.
    Control,
}

/// A tool's request on a control device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolRequest {
    /// `IRP_MJ_CREATE`: a new context.
    Create,
    /// `IRP_MJ_CLEANUP`: the context's views and lease go.
    Cleanup,
    /// `IRP_MJ_CLOSE`: the context goes.
    Close,
    /// `IRP_MJ_DEVICE_CONTROL`: the contract's requests.
    DeviceControl,
}

/// What the driver does with an IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Down the stack, untouched (a filter's lot for whatever is not its
    /// business, and WMI).
    PassDown,
    /// The stack device's PnP handling (which passes the IRP down too).
    Pnp,
    /// The stack device's power handling (likewise).
    Power,
    /// Served on a control device.
    Tool(ToolRequest),
    /// Refused with `STATUS_INVALID_DEVICE_REQUEST`: the function driver's
    /// FDO serves no tool, a control device nothing but tools.
    Refuse,
    /// Completed with `STATUS_SUCCESS`, nothing done: the `CLEANUP` and
    /// `CLOSE` of a handle to the function driver's FDO, whose `CREATE` was
    /// refused. Windows sends none (a failed create makes no handle); a host
    /// that hands out the handle before the driver answers (Wine) does, and
    /// a close must not fail.
    Succeed,
}

/// The route of an IRP with major function `major` on `target`. A filter
/// looks only at PnP and power IRPs (and passes those on as well); every
/// other IRP of the stack it passes down at once.
pub const fn route(target: Target, major: u8) -> Route {
    match target {
        Target::Control => match major {
            major::CREATE => Route::Tool(ToolRequest::Create),
            major::CLEANUP => Route::Tool(ToolRequest::Cleanup),
            major::CLOSE => Route::Tool(ToolRequest::Close),
            major::DEVICE_CONTROL => Route::Tool(ToolRequest::DeviceControl),
            _ => Route::Refuse,
        },
        Target::Stack(role) => match major {
            major::PNP => Route::Pnp,
            major::POWER => Route::Power,
            major::SYSTEM_CONTROL => Route::PassDown,
            major::CLEANUP | major::CLOSE if role.is_function() => Route::Succeed,
            _ if role.is_function() => Route::Refuse,
            _ => Route::PassDown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_passes_down_everything_but_pnp_and_power() {
        let filter = Target::Stack(Role::for_device([r"PCI\VEN_15B3&DEV_1003"]));
        for m in 0..=major::MAXIMUM {
            let want = match m {
                major::PNP => Route::Pnp,
                major::POWER => Route::Power,
                _ => Route::PassDown,
            };
            assert_eq!(route(filter, m), want, "major {m:#x}");
        }
        for other in [r"PCI\VEN_15B3&DEV_1013", r"PCI\VEN_8086&DEV_1003"] {
            let other = Target::Stack(Role::for_device([other]));
            for m in 0..=major::MAXIMUM {
                assert_eq!(route(other, m), route(filter, m), "the same pass-through for every stack it filters");
            }
        }
    }

    #[test]
    fn only_the_control_device_serves_tools() {
        let function = Target::Stack(Role::Function { hca: &SIMULATED_CONNECTX3, simulated: true });
        for m in [major::CREATE, major::DEVICE_CONTROL, 0x03, 0x04] {
            assert_eq!(route(function, m), Route::Refuse, "the FDO serves no tool: major {m:#x}");
        }
        for m in [major::CLEANUP, major::CLOSE] {
            assert_eq!(route(function, m), Route::Succeed, "a close does not fail: major {m:#x}");
        }
        assert_eq!(route(function, major::SYSTEM_CONTROL), Route::PassDown);
        let served: Vec<Route> = (0..=major::MAXIMUM).map(|m| route(Target::Control, m)).collect();
        assert_eq!(served.iter().filter(|r| matches!(r, Route::Tool(_))).count(), 4);
        assert_eq!(route(Target::Control, major::PNP), Route::Refuse);
        assert_eq!(route(Target::Control, major::POWER), Route::Refuse);
        assert_eq!(route(Target::Control, major::DEVICE_CONTROL), Route::Tool(ToolRequest::DeviceControl));
    }

    #[test]
    fn hardware_ids_name_vendor_and_device() {
        assert_eq!(pci_ids(r"PCI\VEN_15B3&DEV_1003&SUBSYS_006715B3&REV_00"), Some((0x15B3, 0x1003)));
        assert_eq!(pci_ids(r"pci\ven_15b3&dev_01f6"), Some((0x15B3, 0x01F6)));
        assert_eq!(pci_ids(r"PCI\VEN_15B3&CC_0C0600"), None);
        assert_eq!(pci_ids(r"root\mlnx_hca_sim"), None);
        assert_eq!(pci_ids(r"PCI\VEN_15B3&DEV_10031"), None);
        assert_eq!(pci_ids(""), None);
    }

    #[test]
    fn roles() {
        let sim = Role::for_device([r"ROOT\MLNX_HCA_SIM"]);
        assert_eq!(sim, Role::Function { hca: &SIMULATED_CONNECTX3, simulated: true });
        let sim4 = Role::for_device([r"root\mlnx_hca_sim4"]);
        assert!(matches!(sim4, Role::Function { hca, simulated: true } if hca.cr_space == CrSpace::Gateway));
        assert!(sim.simulated() && sim4.simulated() && sim4.serves());
        let recovery = [r"PCI\VEN_15B3&DEV_01F6&SUBSYS_00000000&REV_00", r"PCI\VEN_15B3&DEV_01F6"];
        let cx3_recovery = Role::for_device(recovery);
        assert!(matches!(cx3_recovery, Role::Function { hca, simulated: false } if hca.device_id == 0x01F6));
        let cx3 = Role::for_device([r"PCI\VEN_15B3&DEV_1003&SUBSYS_006715B3&REV_00", r"PCI\VEN_15B3&DEV_1003"]);
        assert!(matches!(cx3, Role::Filter { hca: Some(h) } if h.name.starts_with("ConnectX-3")));
        assert!(cx3.serves() && !cx3.is_function() && !cx3.simulated());
        let cx4 = Role::for_device([r"PCI\VEN_15B3&DEV_1013&SUBSYS_003315B3"]);
        assert!(
            matches!(cx4, Role::Filter { hca: Some(h) } if h.cr_space == CrSpace::Gateway),
            "ConnectX-4: a filter, served through the gateway"
        );
        assert!(cx4.serves());
        let cx4_recovery = Role::for_device([r"PCI\VEN_15B3&DEV_0209"]);
        assert!(
            matches!(cx4_recovery, Role::Function { hca, simulated: false } if hca.cr_space == CrSpace::Gateway),
            "a flash-recovery ConnectX-4 has no driver of its own"
        );
        let foreign = Role::for_device([r"PCI\VEN_8086&DEV_1003"]);
        assert_eq!(foreign, Role::Filter { hca: None });
        assert!(!foreign.serves());
        assert_eq!(Role::for_device([]), Role::Filter { hca: None });
    }

    #[test]
    fn the_test_devices_are_table_entries() {
        assert_eq!(hca(SIMULATED_CONNECTX3.device_id), Some(&SIMULATED_CONNECTX3));
        assert_eq!(hca(SIMULATED_CONNECTX4.device_id), Some(&SIMULATED_CONNECTX4));
        assert_eq!(SIMULATED_CONNECTX3.device_id, crate::core::simulated::SIM_PCI_DEVICE_ID);
        assert_eq!(SIMULATED_CONNECTX4.device_id, crate::core::simulated::SIM4_PCI_DEVICE_ID);
    }

    #[test]
    fn the_table_is_consistent() {
        for (i, h) in HCAS.iter().enumerate() {
            assert!(HCAS[i + 1..].iter().all(|o| o.device_id != h.device_id), "{:#06x} twice", h.device_id);
            assert_eq!(h.recovery, h.name.ends_with("flash recovery"), "{h:?}");
        }
        // mstflint maps BAR 0 for ConnectX-3 and ConnectX-3 Pro and nothing newer.
        assert_eq!(hca(0x1003).map(|h| h.cr_space), Some(CrSpace::Bar0));
        assert_eq!(hca(0x1007).map(|h| h.cr_space), Some(CrSpace::Bar0));
        assert_eq!(hca(0x1011).map(|h| h.cr_space), Some(CrSpace::Gateway));
    }
}
