//! Range checks: a caller's `{ bar_num, offset, size }` becomes a checked
//! window of CR space and the pages that cover it.

use super::{BarSizes, PAGE_SIZE};
use crate::abi::MapCrSpaceIn;
use crate::status::{Result, Status};

/// A checked byte range of BAR 0: dword aligned, non-empty, inside the BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrSpaceWindow {
    offset: u32,
    size: u32,
}

/// The whole pages of BAR 0 that cover a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSpan {
    /// Index of the first page in BAR 0.
    pub first_page: u32,
    /// Number of pages, at least 1.
    pub pages: u32,
}

impl PageSpan {
    /// Byte offset of the first page in BAR 0.
    pub const fn byte_offset(&self) -> u64 {
        // CAST: u32 * u32 page size fits u64.
        self.first_page as u64 * PAGE_SIZE as u64
    }

    /// Length of the span in bytes.
    pub const fn byte_len(&self) -> u64 {
        // CAST: u32 * u32 page size fits u64.
        self.pages as u64 * PAGE_SIZE as u64
    }
}

impl CrSpaceWindow {
    /// Checks the caller's block against the device, in the contract's order:
    /// BAR 1/2 are not implemented, any other BAR but 0 is invalid; then
    /// alignment, size and bounds with checked arithmetic.
    pub fn new(params: &MapCrSpaceIn, bars: &BarSizes) -> Result<Self> {
        match params.bar_num {
            0 => {}
            1 | 2 => return Err(Status::NOT_IMPLEMENTED),
            _ => return Err(Status::INVALID_PARAMETER),
        }
        let MapCrSpaceIn { offset, size, .. } = *params;
        if size == 0 || offset % 4 != 0 || size % 4 != 0 {
            return Err(Status::INVALID_PARAMETER);
        }
        match offset.checked_add(size) {
            Some(end) if end <= bars.bar0 => Ok(CrSpaceWindow { offset, size }),
            _ => Err(Status::INVALID_PARAMETER),
        }
    }

    /// Byte offset of the window in BAR 0.
    pub const fn offset(&self) -> u32 {
        self.offset
    }

    /// Size of the window in bytes.
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// Offset of the window inside its first page: added to the view's base
    /// to give the VA of `offset` itself.
    pub const fn offset_in_page(&self) -> u32 {
        self.offset % PAGE_SIZE
    }

    /// The pages that cover the window.
    pub const fn pages(&self) -> PageSpan {
        let first = self.offset / PAGE_SIZE;
        // INVARIANT: size > 0 and offset + size did not overflow.
        let last = (self.offset + self.size - 1) / PAGE_SIZE;
        PageSpan { first_page: first, pages: last - first + 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARS: BarSizes = BarSizes { bar0: 1 << 20, bar1: 8 << 20, bar2: 256 << 20 };

    fn check(bar_num: u32, offset: u32, size: u32) -> Result<CrSpaceWindow> {
        CrSpaceWindow::new(&MapCrSpaceIn { bar_num, offset, size }, &BARS)
    }

    #[test]
    fn bars_other_than_zero() {
        assert_eq!(check(1, 0, 4), Err(Status::NOT_IMPLEMENTED));
        assert_eq!(check(2, 0, 4), Err(Status::NOT_IMPLEMENTED));
        assert_eq!(check(3, 0, 4), Err(Status::INVALID_PARAMETER));
        assert_eq!(check(u32::MAX, 0, 4), Err(Status::INVALID_PARAMETER));
    }

    #[test]
    fn alignment_size_and_bounds() {
        assert_eq!(check(0, 2, 4), Err(Status::INVALID_PARAMETER));
        assert_eq!(check(0, 0, 6), Err(Status::INVALID_PARAMETER));
        assert_eq!(check(0, 0, 0), Err(Status::INVALID_PARAMETER));
        assert_eq!(check(0, (1 << 20) - 4, 8), Err(Status::INVALID_PARAMETER));
        assert_eq!(check(0, 0xFFFF_FFFC, 8), Err(Status::INVALID_PARAMETER), "offset + size overflows u32");
        assert!(check(0, (1 << 20) - 4, 4).is_ok());
        assert!(check(0, 0, 1 << 20).is_ok());
    }

    #[test]
    fn pages_cover_the_window() {
        let w = check(0, 0xF0014, 4).unwrap();
        assert_eq!(w.pages(), PageSpan { first_page: 0xF0, pages: 1 });
        assert_eq!(w.offset_in_page(), 0x14);
        let w = check(0, 0xFFC, 8).unwrap();
        assert_eq!(w.pages(), PageSpan { first_page: 0, pages: 2 });
        let w = check(0, 0x1000, 0x1000).unwrap();
        assert_eq!(w.pages(), PageSpan { first_page: 1, pages: 1 });
        let w = check(0, 0, 1 << 20).unwrap();
        assert_eq!(w.pages(), PageSpan { first_page: 0, pages: 256 });
    }
}
