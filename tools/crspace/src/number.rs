//! Numbers as register tools take them: `0x`-prefixed hex or decimal.

#![forbid(unsafe_code)]

/// Parses `0x1F`/`0X1f` (hex) or `31` (decimal) into a `u64`; `_` may
/// separate digits (`0x10_0000`).
pub fn parse_u64(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (digits, radix) = match trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (trimmed, 10),
    };
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("'{text}' is not a number (write hex as 0x1f, or decimal)"));
    }
    u64::from_str_radix(&digits, radix).map_err(|_| format!("'{text}' is too large"))
}

/// Like [`parse_u64`], for values that must fit 32 bits (CR-space offsets,
/// register values).
pub fn parse_u32(text: &str) -> Result<u32, String> {
    let value = parse_u64(text)?;
    u32::try_from(value).map_err(|_| format!("'{text}' does not fit in 32 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_decimal() {
        assert_eq!(parse_u32("0xf0014"), Ok(0xF0014));
        assert_eq!(parse_u32("0XF0014"), Ok(0xF0014));
        assert_eq!(parse_u32("983060"), Ok(0xF0014));
        assert_eq!(parse_u32("0x10_0000"), Ok(0x10_0000));
        assert_eq!(parse_u32("0xffffffff"), Ok(u32::MAX));
        assert_eq!(parse_u64("0x100000000"), Ok(1 << 32));
    }

    #[test]
    fn refusals_say_why() {
        assert!(parse_u32("0x100000000").unwrap_err().contains("does not fit in 32 bits"));
        assert!(parse_u32("0x").unwrap_err().contains("not a number"));
        assert!(parse_u32("12ab").unwrap_err().contains("not a number"));
        assert!(parse_u32("-4").unwrap_err().contains("not a number"));
        assert!(parse_u32("").unwrap_err().contains("not a number"));
        assert!(parse_u64("99999999999999999999999").unwrap_err().contains("too large"));
    }
}
