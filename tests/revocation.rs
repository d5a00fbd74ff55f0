//! What a tool sees of its views when the driver takes them away: after an
//! unmap, a close, the end of its process or a surprise removal, the VA no
//! longer maps CR space, and a revocation from another context unmapped each
//! view in its owner's process.
//!
//! "No longer maps CR space" is read from the process's memory map (no
//! mapping of this BAR's memory object covers the VA), not by touching the
//! old address: another thread of the test process (the harness, a malloc
//! arena) may map something new there at any time, and a touch would then
//! read it fine.

mod common;

use common::*;
use mlnx_hca::sim::{ExitOrder, SimAccess, SimHca};

const A: u32 = 100;
const B: u32 = 200;
const C: u32 = 300;

#[test]
fn views_taken_away_are_gone_and_were_unmapped_in_their_owners_process() {
    let hca = SimHca::new();
    // Unmap, close, process end: each takes the view with it.
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0, 4).unwrap();
    assert!(hca.is_bar_mapped_at(va), "a live view maps CR space");
    hca.write_dword(0, 0x1234_5678);
    assert_eq!(peek(va), 0x1234_5678, "and reads it");
    unmap(&h, va).unwrap();
    assert!(!hca.is_bar_mapped_at(va), "an unmapped view is gone");
    let va = map(&h, false, 0, 4).unwrap();
    h.close();
    assert!(!hca.is_bar_mapped_at(va), "closing the handle unmapped its view");
    for order in ExitOrder::both(C) {
        let h = hca.open(A, SimAccess::Read);
        let va = map(&h, false, 0, 4).unwrap();
        hca.terminate(A, order);
        assert!(!hca.is_bar_mapped_at(va), "{order:?}: the end of the process unmapped its view");
        drop(h);
    }

    // Surprise removal, in the system process, of views of three processes.
    let a = hca.open(A, SimAccess::ReadWrite);
    let b = hca.open(B, SimAccess::Read);
    let dup = a.duplicate(C);
    let vas = [map(&a, true, 0, 4).unwrap(), map(&b, false, 0xF0014, 4).unwrap(), map(&dup, false, 0, 4).unwrap()];
    assert!(vas.iter().all(|&va| hca.is_bar_mapped_at(va)));
    let attaches = hca.attaches();
    hca.surprise_remove();
    assert_eq!(hca.attaches(), attaches + 3, "each view unmapped attached to its owner");
    for va in vas {
        assert!(!hca.is_bar_mapped_at(va), "a revoked view at {va:#x} is gone");
    }
    assert_idle(&hca);
}
