//! Which assigned resource is BAR 0: the start request's memory resources,
//! raw (bus addresses, as programmed into the configuration space's BARs)
//! and translated (CPU physical addresses, what is mapped), cross-checked
//! before anything is mapped.

/// One memory resource: start address and length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRange {
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

/// Why the resources do not describe a BAR 0 the driver can map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// No memory resource was assigned.
    None,
    /// The raw and the translated lists have different numbers of memory
    /// resources, or lengths.
    Disagree,
    /// BAR 0 as the bus sees it is not a PCI BAR: its length is not a power
    /// of two of at least a page, or its bus address is not aligned to it.
    NotABar,
    /// Larger than 4 GiB.
    TooLarge,
}

/// BAR 0's translated range, once the lists agree: the same number of
/// memory resources in the same order (the PCI bus driver lists them in BAR
/// order), pairwise of equal length, and the first one shaped as a PCI BAR
/// is (a power of two of at least 4 KiB, naturally aligned on the bus).
pub fn bar0(raw: &[MemoryRange], translated: &[MemoryRange]) -> Result<MemoryRange, BarError> {
    let (Some(bus), Some(cpu)) = (raw.first(), translated.first()) else {
        return Err(BarError::None);
    };
    if raw.len() != translated.len() || raw.iter().zip(translated).any(|(r, t)| r.len != t.len) {
        return Err(BarError::Disagree);
    }
    if !bus.len.is_power_of_two() || bus.len < u64::from(super::PAGE_SIZE) || bus.start % bus.len != 0 {
        return Err(BarError::NotABar);
    }
    if cpu.len > u64::from(u32::MAX) {
        return Err(BarError::TooLarge);
    }
    Ok(*cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn r(start: u64, len: u64) -> MemoryRange {
        MemoryRange { start, len }
    }

    #[test]
    fn a_connectx3_s_bars() {
        // BAR 0 (CR space, 1 MiB) and BAR 2 (UAR, 8 MiB), bus and CPU alike on x86.
        let raw = [r(0xF7E0_0000, 1 << 20), r(0xF000_0000, 8 << 20)];
        assert_eq!(bar0(&raw, &raw), Ok(r(0xF7E0_0000, 1 << 20)));
        // A translation that moves the window is fine; the lengths must agree.
        let moved = [r(0x1_F7E0_0000, 1 << 20), r(0x1_F000_0000, 8 << 20)];
        assert_eq!(bar0(&raw, &moved), Ok(moved[0]));
    }

    #[test]
    fn lists_that_do_not_describe_bar_0_are_refused() {
        assert_eq!(bar0(&[], &[]), Err(BarError::None));
        let raw = [r(0xF7E0_0000, 1 << 20), r(0xF000_0000, 8 << 20)];
        assert_eq!(bar0(&raw, &raw[..1]), Err(BarError::Disagree));
        assert_eq!(bar0(&raw, &[r(0xF7E0_0000, 1 << 20), r(0xF000_0000, 4 << 20)]), Err(BarError::Disagree));
        assert_eq!(bar0(&[r(0xF7E0_0000, 3 << 19)], &[r(0xF7E0_0000, 3 << 19)]), Err(BarError::NotABar));
        assert_eq!(bar0(&[r(0xF7E8_0000, 1 << 20)], &[r(0xF7E8_0000, 1 << 20)]), Err(BarError::NotABar));
        assert_eq!(bar0(&[r(0xF7E0_0000, 2048)], &[r(0xF7E0_0000, 2048)]), Err(BarError::NotABar));
        assert_eq!(bar0(&[r(1 << 40, 1 << 33)], &[r(1 << 40, 1 << 33)]), Err(BarError::TooLarge));
    }
}
