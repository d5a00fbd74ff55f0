//! Which HCA a CR space belongs to: the device-identification dword at
//! 0xF0014, as mstflint's tools read it (hardware id in bits 0-15, revision
//! in bits 16-23).

#![forbid(unsafe_code)]

use std::fmt;

/// CR-space offset of the device-identification dword.
pub const DEVICE_ID_OFFSET: u32 = 0xF0014;

/// The device-identification dword, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId {
    /// Hardware id (bits 0-15): 0x1F5 for a ConnectX-3.
    pub hw_id: u16,
    /// Hardware revision (bits 16-23).
    pub revision: u8,
}

impl DeviceId {
    /// Decodes the device's value of the dword at [`DEVICE_ID_OFFSET`].
    pub fn from_dword(value: u32) -> DeviceId {
        // CAST: the low 16 bits and bits 16-23, truncation intended.
        DeviceId { hw_id: value as u16, revision: (value >> 16) as u8 }
    }

    /// The product, for the hardware ids mstflint 4.21 knows among HCAs.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.hw_id {
            0x1F5 => "ConnectX-3",
            0x1F7 => "ConnectX-3 Pro",
            0x1FF => "Connect-IB",
            0x209 => "ConnectX-4",
            0x20B => "ConnectX-4 Lx",
            0x20D => "ConnectX-5",
            0x20F => "ConnectX-6",
            0x212 => "ConnectX-6 Dx",
            0x216 => "ConnectX-6 Lx",
            0x218 => "ConnectX-7",
            0x211 => "BlueField",
            0x214 => "BlueField-2",
            0x21C => "BlueField-3",
            _ => return None,
        })
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x} ({}), revision {:#04x}", self.hw_id, self.name().unwrap_or("unknown"), self.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_connectx3_and_an_unknown_device() {
        let id = DeviceId::from_dword(0x0001_01F5);
        assert_eq!((id.hw_id, id.revision, id.name()), (0x1F5, 1, Some("ConnectX-3")));
        assert_eq!(id.to_string(), "0x01f5 (ConnectX-3), revision 0x01");
        assert_eq!(DeviceId::from_dword(0xF501_0100).to_string(), "0x0100 (unknown), revision 0x01");
    }
}
