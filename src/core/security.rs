//! Who may open the device: its security descriptor.
//!
//! Reading CR space has side effects (reading a hardware semaphore takes it),
//! so by default only SYSTEM and Administrators open the device at all; the
//! INF gives the device that descriptor. An administrator may grant read
//! access to groups of their choice in the registry value
//! `HKLM\SYSTEM\CurrentControlSet\Services\mlnx_hca\Parameters\ReadAccess`
//! (`REG_SZ`, SID strings separated by `;`), which a driver update leaves
//! alone; the driver then applies [`DeviceSecurity::descriptor`] at start.
//! Write access stays with SYSTEM and Administrators whatever is granted.
//!
//! The descriptor is built here, byte for byte, as the self-relative
//! `SECURITY_DESCRIPTOR` that `ConvertStringSecurityDescriptorToSecurityDescriptor`
//! makes of [`DeviceSecurity::sddl`], so the Windows layer only hands bytes
//! to the kernel, and the encoding is tested on any host (and compared with
//! Windows' own conversion under Wine).

use crate::status::{Result, Status};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// `FILE_ALL_ACCESS` (SDDL `FA`).
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
/// `FILE_GENERIC_READ` (SDDL `FR`): `READ_CONTROL | FILE_READ_DATA |
/// FILE_READ_ATTRIBUTES | FILE_READ_EA | SYNCHRONIZE`; no write bit.
pub const FILE_GENERIC_READ: u32 = 0x0012_0089;

/// Most groups the registry value may grant read access to.
pub const MAX_READERS: usize = 8;

/// A security identifier (`S-1-5-32-544`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sid {
    /// The 48-bit identifier authority.
    authority: u64,
    count: u8,
    subs: [u32; Sid::MAX_SUBS],
}

impl Sid {
    /// `SID_MAX_SUB_AUTHORITIES`.
    pub const MAX_SUBS: usize = 15;

    /// `S-1-5-18`: the local system account (SDDL `SY`).
    pub const LOCAL_SYSTEM: Sid = Sid::new(5, &[18]);
    /// `S-1-5-32-544`: the Administrators group (SDDL `BA`).
    pub const ADMINISTRATORS: Sid = Sid::new(5, &[32, 544]);

    const fn new(authority: u64, subs: &[u32]) -> Sid {
        let mut sid = Sid { authority, count: subs.len() as u8, subs: [0; Sid::MAX_SUBS] };
        let mut i = 0;
        while i < subs.len() {
            sid.subs[i] = subs[i];
            i += 1;
        }
        sid
    }

    /// Parses `S-1-<authority>-<sub>[-<sub>...]` (revision 1; the authority
    /// in decimal, or in hex with `0x` as SDDL writes authorities of 2^32
    /// and more; 1 to 15 sub-authorities in decimal).
    pub fn parse(text: &str) -> core::result::Result<Sid, SidError> {
        let mut parts = text.split('-');
        if !matches!(parts.next(), Some("S" | "s")) || parts.next() != Some("1") {
            return Err(SidError::NotASid);
        }
        let authority = match parts.next() {
            Some(hex) if hex.starts_with("0x") || hex.starts_with("0X") => u64::from_str_radix(&hex[2..], 16).ok(),
            Some(decimal) if !decimal.is_empty() && decimal.bytes().all(|b| b.is_ascii_digit()) => {
                decimal.parse::<u64>().ok()
            }
            _ => None,
        };
        let authority = authority.filter(|&a| a < 1 << 48).ok_or(SidError::BadAuthority)?;
        let mut sid = Sid { authority, count: 0, subs: [0; Sid::MAX_SUBS] };
        for part in parts {
            if usize::from(sid.count) == Sid::MAX_SUBS {
                return Err(SidError::TooManySubAuthorities);
            }
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SidError::BadSubAuthority);
            }
            sid.subs[usize::from(sid.count)] = part.parse().map_err(|_| SidError::BadSubAuthority)?;
            sid.count += 1;
        }
        if sid.count == 0 {
            return Err(SidError::NoSubAuthority);
        }
        Ok(sid)
    }

    fn subs(&self) -> &[u32] {
        &self.subs[..usize::from(self.count)]
    }

    /// Bytes of the binary `SID`.
    pub fn len(&self) -> usize {
        8 + 4 * usize::from(self.count)
    }

    /// A SID has at least one sub-authority; never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The binary `SID`: revision, count, the authority big-endian in six
    /// bytes, the sub-authorities little-endian.
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        out.push(self.count);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub in self.subs() {
            out.extend_from_slice(&sub.to_le_bytes());
        }
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.authority < 1 << 32 {
            write!(f, "S-1-{}", self.authority)?;
        } else {
            write!(f, "S-1-{:#x}", self.authority)?;
        }
        for sub in self.subs() {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a SID string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidError {
    /// It does not start with `S-1-`.
    NotASid,
    /// The identifier authority is not a number below 2^48.
    BadAuthority,
    /// A sub-authority is not a 32-bit decimal number.
    BadSubAuthority,
    /// More than 15 sub-authorities.
    TooManySubAuthorities,
    /// No sub-authority at all.
    NoSubAuthority,
}

impl fmt::Display for SidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SidError::NotASid => "a SID starts with S-1-",
            SidError::BadAuthority => "the identifier authority is not a number below 2^48",
            SidError::BadSubAuthority => "a sub-authority is not a 32-bit decimal number",
            SidError::TooManySubAuthorities => "more than 15 sub-authorities",
            SidError::NoSubAuthority => "no sub-authority",
        })
    }
}

/// The device's access policy: SYSTEM and Administrators get all access,
/// each of `readers` read access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSecurity {
    readers: Vec<Sid>,
}

/// Why the registry value was refused (the driver then keeps the default,
/// administrators only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// One entry is not a SID.
    BadSid {
        /// Its position, from 1.
        entry: usize,
        /// Why.
        why: SidError,
    },
    /// More than [`MAX_READERS`] entries.
    TooMany,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::BadSid { entry, why } => write!(f, "entry {entry} is not a SID: {why}"),
            PolicyError::TooMany => write!(f, "more than {MAX_READERS} groups"),
        }
    }
}

impl DeviceSecurity {
    /// SYSTEM and Administrators only: the INF's descriptor.
    pub const ADMINISTRATORS_ONLY: DeviceSecurity = DeviceSecurity { readers: Vec::new() };

    /// The policy the registry value `ReadAccess` names: SID strings
    /// separated by `;` (spaces around them ignored, empty entries skipped).
    /// Anything that is not a SID refuses the whole value.
    pub fn from_read_access(value: &str) -> core::result::Result<DeviceSecurity, PolicyError> {
        let mut readers = Vec::new();
        for (index, entry) in value.split(';').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            if index == MAX_READERS {
                return Err(PolicyError::TooMany);
            }
            let sid = Sid::parse(entry).map_err(|why| PolicyError::BadSid { entry: index + 1, why })?;
            if !readers.contains(&sid) {
                readers.push(sid);
            }
        }
        Ok(DeviceSecurity { readers })
    }

    /// The groups granted read access.
    pub fn readers(&self) -> &[Sid] {
        &self.readers
    }

    /// The policy in SDDL: `D:P(A;;FA;;;SY)(A;;FA;;;BA)` and one
    /// `(A;;FR;;;<sid>)` per reader.
    pub fn sddl(&self) -> String {
        let mut text = String::from("D:P(A;;FA;;;SY)(A;;FA;;;BA)");
        for sid in &self.readers {
            // Writing to a String cannot fail.
            let _ = write!(text, "(A;;FR;;;{sid})");
        }
        text
    }

    /// The self-relative `SECURITY_DESCRIPTOR` of [`sddl`](Self::sddl): no
    /// owner, group or SACL; a protected DACL of `ACCESS_ALLOWED_ACE`s.
    /// `Err(STATUS_INSUFFICIENT_RESOURCES)` if memory runs out.
    pub fn descriptor(&self) -> Result<Vec<u8>> {
        let aces: Vec<(u32, &Sid)> = [(FILE_ALL_ACCESS, &Sid::LOCAL_SYSTEM), (FILE_ALL_ACCESS, &Sid::ADMINISTRATORS)]
            .into_iter()
            .chain(self.readers.iter().map(|sid| (FILE_GENERIC_READ, sid)))
            .collect();
        let acl_len = 8 + aces.iter().map(|(_, sid)| 8 + sid.len()).sum::<usize>();
        let mut out = Vec::new();
        out.try_reserve_exact(HEADER_LEN + acl_len).map_err(|_| Status::INSUFFICIENT_RESOURCES)?;
        // SECURITY_DESCRIPTOR_RELATIVE: revision, Sbz1, control, then the
        // offsets of owner, group, SACL (none) and DACL (right after).
        out.extend_from_slice(&[SECURITY_DESCRIPTOR_REVISION, 0]);
        out.extend_from_slice(&(SE_SELF_RELATIVE | SE_DACL_PROTECTED | SE_DACL_PRESENT).to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        // CAST: HEADER_LEN is 20.
        out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        // ACL: revision, Sbz1, size, ACE count, Sbz2.
        out.extend_from_slice(&[ACL_REVISION, 0]);
        // CAST: at most 3 + MAX_READERS ACEs of at most 76 bytes.
        out.extend_from_slice(&(acl_len as u16).to_le_bytes());
        // CAST: as above.
        out.extend_from_slice(&(aces.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for (mask, sid) in aces {
            // ACE_HEADER: ACCESS_ALLOWED_ACE_TYPE, no flags, size; then the mask and the SID.
            out.extend_from_slice(&[ACCESS_ALLOWED_ACE_TYPE, 0]);
            // CAST: at most 76 bytes.
            out.extend_from_slice(&((8 + sid.len()) as u16).to_le_bytes());
            out.extend_from_slice(&mask.to_le_bytes());
            sid.encode(&mut out);
        }
        Ok(out)
    }
}

const HEADER_LEN: usize = 20;
const SECURITY_DESCRIPTOR_REVISION: u8 = 1;
const ACL_REVISION: u8 = 2;
const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
const SE_DACL_PRESENT: u16 = 0x0004;
const SE_DACL_PROTECTED: u16 = 0x1000;
const SE_SELF_RELATIVE: u16 = 0x8000;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn sids_parse_and_print_as_windows_writes_them() {
        let users = Sid::parse("S-1-5-32-545").unwrap();
        assert_eq!(users.to_string(), "S-1-5-32-545");
        assert_eq!(Sid::parse("S-1-5-18"), Ok(Sid::LOCAL_SYSTEM));
        let domain = "S-1-5-21-3623811015-3361044348-30300820-1013";
        assert_eq!(Sid::parse(domain).unwrap().to_string(), domain);
        assert_eq!(Sid::parse("S-1-0x123456789ABC-7").unwrap().to_string(), "S-1-0x123456789abc-7");
        assert_eq!(Sid::parse("S-1-1-0").unwrap().len(), 12);
    }

    #[test]
    fn what_is_not_a_sid_is_refused() {
        assert_eq!(Sid::parse("Users"), Err(SidError::NotASid));
        assert_eq!(Sid::parse("S-2-5-18"), Err(SidError::NotASid));
        assert_eq!(Sid::parse("S-1-x-18"), Err(SidError::BadAuthority));
        assert_eq!(Sid::parse("S-1-281474976710656-1"), Err(SidError::BadAuthority), "2^48");
        assert_eq!(Sid::parse("S-1-5-4294967296"), Err(SidError::BadSubAuthority), "2^32");
        assert_eq!(Sid::parse("S-1-5--1"), Err(SidError::BadSubAuthority));
        assert_eq!(Sid::parse("S-1-5-+1"), Err(SidError::BadSubAuthority));
        assert_eq!(Sid::parse("S-1-5"), Err(SidError::NoSubAuthority));
        let sixteen = "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16";
        assert_eq!(Sid::parse(sixteen), Err(SidError::TooManySubAuthorities));
    }

    #[test]
    fn the_registry_value_grants_read_to_its_groups_or_nothing() {
        let policy = DeviceSecurity::from_read_access(" S-1-5-32-545 ;S-1-5-32-559;; S-1-5-32-545").unwrap();
        assert_eq!(policy.sddl(), "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;S-1-5-32-545)(A;;FR;;;S-1-5-32-559)");
        assert_eq!(DeviceSecurity::from_read_access("").unwrap(), DeviceSecurity::ADMINISTRATORS_ONLY);
        assert_eq!(
            DeviceSecurity::from_read_access("S-1-5-32-545;Everyone"),
            Err(PolicyError::BadSid { entry: 2, why: SidError::NotASid })
        );
        let nine = ["S-1-5-32-545"; 9].iter().enumerate().map(|(i, s)| alloc::format!("{s}{i}")).collect::<Vec<_>>();
        assert_eq!(DeviceSecurity::from_read_access(&nine.join(";")), Err(PolicyError::TooMany));
    }

    #[test]
    fn the_descriptor_is_the_binary_of_its_sddl() {
        // ConvertStringSecurityDescriptorToSecurityDescriptorW of
        // "D:P(A;;FA;;;SY)(A;;FA;;;BA)", as Windows documents the layout.
        let bytes = DeviceSecurity::ADMINISTRATORS_ONLY.descriptor().unwrap();
        let want: &[u8] = &[
            1, 0, 0x04, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, // header, DACL at 20
            2, 0, 52, 0, 2, 0, 0, 0, // ACL: revision 2, 52 bytes, 2 ACEs
            0, 0, 20, 0, 0xFF, 0x01, 0x1F, 0x00, 1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0, // SY
            0, 0, 24, 0, 0xFF, 0x01, 0x1F, 0x00, 1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0, // BA
        ];
        assert_eq!(bytes, want);
        let readers = DeviceSecurity::from_read_access("S-1-5-32-545").unwrap().descriptor().unwrap();
        assert_eq!(readers.len(), want.len() + 24);
        assert_eq!(readers[22..24], [76, 0], "ACL size");
        assert_eq!(readers[24], 3, "ACE count");
        assert_eq!(
            readers[72..],
            [0, 0, 24, 0, 0x89, 0, 0x12, 0, 1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 0x02, 0, 0]
        );
    }

    proptest::proptest! {
        #[test]
        fn every_sid_prints_to_text_that_parses_back(
            authority in 0u64..1 << 48,
            subs in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..=Sid::MAX_SUBS)
        ) {
            let sid = Sid::new(authority, &subs);
            let text = sid.to_string();
            proptest::prop_assert_eq!(Sid::parse(&text), Ok(sid), "{}", text);
            proptest::prop_assert_eq!(sid.len(), 8 + 4 * subs.len());
        }
    }
}
