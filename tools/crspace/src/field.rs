//! CR-space addresses as `mcra` takes them: a dword offset, optionally with a
//! bit field (`0xf0014.16:8`: 8 bits starting at bit 16, bit 0 the least
//! significant of the device's value).

#![forbid(unsafe_code)]

use crate::number::parse_u32;
use std::fmt;

/// `BIT:LEN` of a dword: `len` bits from bit `bit`. Always inside the dword
/// (`bit + len <= 32`, `len >= 1`): [`BitField::new`] refuses anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitField {
    bit: u8,
    len: u8,
}

impl BitField {
    /// The whole dword.
    pub const WHOLE: BitField = BitField { bit: 0, len: 32 };

    /// `len` bits from bit `bit`, if they lie inside a dword.
    pub fn new(bit: u32, len: u32) -> Result<BitField, String> {
        if len == 0 {
            return Err(format!("bit field {bit}:{len} is empty: give a length of 1 to 32"));
        }
        match bit.checked_add(len) {
            // CAST: both are at most 32 here.
            Some(end) if end <= 32 => Ok(BitField { bit: bit as u8, len: len as u8 }),
            _ => Err(format!("bit field {bit}:{len} is past bit 31")),
        }
    }

    /// The lowest bit.
    pub fn bit(self) -> u32 {
        u32::from(self.bit)
    }

    /// The number of bits (1 to 32).
    pub fn width(self) -> u32 {
        u32::from(self.len)
    }

    /// Whether this is the whole dword.
    pub fn is_whole(self) -> bool {
        self == Self::WHOLE
    }

    /// The field's bits in place.
    pub fn mask(self) -> u32 {
        (u32::MAX >> (32 - self.width())) << self.bit()
    }

    /// The field's value in `dword`.
    pub fn extract(self, dword: u32) -> u32 {
        (dword & self.mask()) >> self.bit()
    }

    /// `dword` with the field set to `value` and every other bit kept;
    /// refuses a value wider than the field.
    pub fn insert(self, dword: u32, value: u32) -> Result<u32, String> {
        let widest = u32::MAX >> (32 - self.width());
        if value > widest {
            return Err(format!("value {value:#x} does not fit in {} bit(s) (at most {widest:#x})", self.width()));
        }
        Ok((dword & !self.mask()) | (value << self.bit()))
    }
}

/// A CR-space address: the byte offset of a dword and the bits of it meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrAddress {
    /// Byte offset in CR space (alignment is checked where it is used).
    pub offset: u32,
    /// The bits meant; [`BitField::WHOLE`] for a plain address.
    pub field: BitField,
}

impl CrAddress {
    /// Parses `ADDR` or `ADDR.BIT:LEN`, numbers in hex (`0x`) or decimal.
    pub fn parse(text: &str) -> Result<CrAddress, String> {
        let Some((addr, field)) = text.split_once('.') else {
            return Ok(CrAddress { offset: parse_u32(text)?, field: BitField::WHOLE });
        };
        let Some((bit, len)) = field.split_once(':') else {
            return Err(format!("'{text}': write a bit field as ADDR.BIT:LEN, e.g. 0xf0014.16:8"));
        };
        let field = BitField::new(parse_u32(bit)?, parse_u32(len)?).map_err(|e| format!("'{text}': {e}"))?;
        Ok(CrAddress { offset: parse_u32(addr)?, field })
    }
}

impl fmt::Display for CrAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.offset)?;
        if !self.field.is_whole() {
            write!(f, ".{}:{}", self.field.bit, self.field.len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_with_and_without_fields() {
        assert_eq!(CrAddress::parse("0xf0014"), Ok(CrAddress { offset: 0xF0014, field: BitField::WHOLE }));
        let id = CrAddress::parse("0xf0014.0:16").unwrap();
        assert_eq!((id.offset, id.field.bit(), id.field.width()), (0xF0014, 0, 16));
        assert_eq!(id.field.extract(0x0001_01F5), 0x1F5, "the hardware id of a ConnectX-3");
        let rev = CrAddress::parse("983060.16:8").unwrap();
        assert_eq!(rev.field.extract(0x0001_01F5), 0x01, "its revision");
        assert_eq!(CrAddress::parse("0xf0014.31:1").unwrap().field.mask(), 0x8000_0000);
        assert_eq!(CrAddress::parse("0x10.0:32").unwrap().field, BitField::WHOLE);
        assert_eq!(id.to_string(), "0x000f0014.0:16");
        assert_eq!(CrAddress::parse("0x10").unwrap().to_string(), "0x00000010");
    }

    #[test]
    fn fields_past_bit_31_or_empty_or_malformed_are_refused() {
        assert!(CrAddress::parse("0xf0014.30:8").unwrap_err().contains("is past bit 31"));
        assert!(CrAddress::parse("0xf0014.32:1").unwrap_err().contains("is past bit 31"));
        assert!(CrAddress::parse("0xf0014.4294967295:2").unwrap_err().contains("is past bit 31"));
        assert!(CrAddress::parse("0xf0014.0:0").unwrap_err().contains("is empty"));
        assert!(CrAddress::parse("0xf0014.8").unwrap_err().contains("ADDR.BIT:LEN"));
        assert!(CrAddress::parse("0xf0014.x:8").unwrap_err().contains("not a number"));
        assert!(CrAddress::parse("zz.0:8").unwrap_err().contains("not a number"));
    }

    #[test]
    fn a_value_wider_than_its_field_is_refused() {
        let byte = BitField::new(8, 8).unwrap();
        assert_eq!(byte.insert(0xAABB_CCDD, 0x12), Ok(0xAABB_12DD));
        assert!(byte.insert(0, 0x100).unwrap_err().contains("does not fit in 8 bit(s) (at most 0xff)"));
        assert_eq!(BitField::WHOLE.insert(0x1234, u32::MAX), Ok(u32::MAX));
    }

    proptest! {
        #[test]
        fn insert_then_extract_round_trips_and_keeps_other_bits(
            bit in 0u32..32, len in 1u32..=32, dword: u32, value: u32
        ) {
            prop_assume!(bit + len <= 32);
            let field = BitField::new(bit, len).unwrap();
            let value = value & (u32::MAX >> (32 - len));
            let out = field.insert(dword, value).unwrap();
            prop_assert_eq!(field.extract(out), value);
            prop_assert_eq!(out & !field.mask(), dword & !field.mask());
        }
    }
}
