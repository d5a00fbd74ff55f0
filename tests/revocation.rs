//! What a tool sees of its views when the driver takes them away: after an
//! unmap, a close, the end of its process or a surprise removal, the VA no
//! longer reads CR space (touching it faults), and a revocation from another
//! context unmapped each view in its owner's process.
//!
//! One test in this binary, on purpose: a VA is probed after it was unmapped,
//! which is only meaningful while no other thread of the process can map
//! something new at that address.

mod common;

use common::*;
use mlnx_hca::sim::{SimAccess, SimHca};

const A: u32 = 100;
const B: u32 = 200;
const C: u32 = 300;

fn faults(va: u64) -> bool {
    matches!(
        in_child(|| {
            std::hint::black_box(peek(va));
        }),
        Err(libc::SIGSEGV | libc::SIGBUS)
    )
}

#[test]
fn views_taken_away_fault_and_were_unmapped_in_their_owners_process() {
    let hca = SimHca::new();
    // Unmap, close, process end: each takes the view with it.
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0, 4).unwrap();
    assert!(!faults(va), "a live view reads");
    unmap(&h, va).unwrap();
    assert!(faults(va), "an unmapped view faults");
    let va = map(&h, false, 0, 4).unwrap();
    h.close();
    assert!(faults(va), "closing the handle unmapped its view");
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0, 4).unwrap();
    hca.terminate(A);
    assert!(faults(va), "the end of the process unmapped its view");
    drop(h);

    // Surprise removal, in the system process, of views of three processes.
    let a = hca.open(A, SimAccess::ReadWrite);
    let b = hca.open(B, SimAccess::Read);
    let dup = a.duplicate(C);
    let vas = [map(&a, true, 0, 4).unwrap(), map(&b, false, 0xF0014, 4).unwrap(), map(&dup, false, 0, 4).unwrap()];
    assert!(vas.iter().all(|&va| !faults(va)));
    let attaches = hca.attaches();
    hca.surprise_remove();
    assert_eq!(hca.attaches(), attaches + 3, "each view unmapped attached to its owner");
    for va in vas {
        assert!(faults(va), "a revoked view at {va:#x} faults");
    }
    assert_idle(&hca);
}
