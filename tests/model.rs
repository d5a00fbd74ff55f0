//! Random sequences of what tools and the system do, over several processes
//! and handles, against a plain reference model of the contract
//! (`fuzz/src/reference.rs`, shared with the fuzz target): open read-only or
//! read-write, map read-only or read-write with random windows (valid and
//! not), unmap (own, another handle's or process's, stale and bogus VAs),
//! query, duplicate, close, process end, query-remove and surprise removal.
//! After every step the model's status, output bytes, live views (per
//! process), each handle's `mapping_count`, contexts and lease holder must be
//! the device's; a divergence fails with the shrunk sequence.
//!
//! `PROPTEST_CASES=10000 cargo test --test model` runs a longer search.

#[path = "../fuzz/src/decode.rs"]
#[expect(dead_code, reason = "the fuzz target's byte decoder; only its quotas are used here")]
mod decode;
#[path = "../fuzz/src/harness.rs"]
mod harness;
#[path = "../fuzz/src/reference.rs"]
mod reference;

use decode::QUOTAS;
use harness::{Code, Harness, Input, Op, Origin, PIDS};
use proptest::collection::vec;
use proptest::prelude::*;
use reference::{Access, BAR0, MAP_RO, MAP_RW, QUERY, UNMAP};

fn pid() -> impl Strategy<Value = u32> {
    prop::sample::select(PIDS.to_vec())
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![Just(Access::Read), Just(Access::ReadWrite)]
}

/// Windows that are valid, at the BAR's edges, or wrong in one way.
fn window() -> impl Strategy<Value = Input> {
    let bar = prop_oneof![12 => Just(0u32), 1 => Just(1), 1 => Just(2), 1 => any::<u32>()];
    let offset = prop_oneof![
        4 => (0..BAR0 / 4096).prop_map(|p| p * 4096),
        4 => (0..BAR0 / 4).prop_map(|d| d * 4),
        1 => (1..=64u32).prop_map(|d| BAR0 - d * 4),
        1 => any::<u32>(),
    ];
    let size = prop_oneof![
        4 => (1..=16u32).prop_map(|d| d * 4),
        3 => (1..=8u32).prop_map(|p| p * 4096),
        1 => Just(0u32),
        1 => Just(BAR0),
        1 => any::<u32>(),
    ];
    let len = prop_oneof![12 => Just(12usize), 1 => 0..12usize, 1 => 13..24usize];
    (bar, offset, size, len).prop_map(|(bar, offset, size, len)| Input::Map { bar, offset, size, len })
}

/// Unmap blocks: a live view of the caller (most often), any VA a map
/// returned (another handle's, another process's, an unmapped one), moved or
/// not, and bogus numbers.
fn unmap_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => any::<usize>().prop_map(|pick| Input::Own { pick }),
        3 => (any::<usize>(), prop_oneof![3 => Just(0i64), 1 => (-8..8i64).prop_map(|d| d * 4)])
            .prop_map(|(pick, delta)| Input::Va { pick, delta, len: 8 }),
        1 => (any::<u64>(), 0..12usize).prop_map(|(va, len)| {
            let mut b = va.to_le_bytes().to_vec();
            b.resize(len, 0);
            Input::Bytes(b)
        }),
    ]
}

/// Mostly the tool's own request; sometimes one a driver forwarded.
fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        13 => Just(Origin::Caller),
        1 => Just(Origin::Caller32),
        1 => Just(Origin::KernelMode),
        1 => Just(Origin::WorkerThread)
    ]
}

fn out_len(block: usize) -> impl Strategy<Value = usize> {
    prop_oneof![10 => Just(block), 1 => 0..block.max(1), 1 => block..block + 16]
}

fn op() -> impl Strategy<Value = Op> {
    let handle = any::<usize>();
    prop_oneof![
        12 => (pid(), access()).prop_map(|(pid, access)| Op::Open { pid, access }),
        24 => (handle, origin(), prop_oneof![Just(Code(MAP_RO)), Just(Code(MAP_RW))], window(), out_len(8))
            .prop_map(|(handle, origin, code, input, out_len)| Op::Ioctl { handle, origin, code, input, out_len }),
        15 => (handle, origin(), unmap_input(), out_len(0)).prop_map(|(handle, origin, input, out_len)| Op::Ioctl {
            handle,
            origin,
            code: Code(UNMAP),
            input,
            out_len
        }),
        6 => (handle, origin(), out_len(24)).prop_map(|(handle, origin, out_len)| Op::Ioctl {
            handle,
            origin,
            code: Code(QUERY),
            input: Input::Bytes(Vec::new()),
            out_len
        }),
        6 => (handle, pid()).prop_map(|(handle, pid)| Op::Duplicate { handle, pid }),
        6 => handle.prop_map(|handle| Op::Close { handle }),
        3 => (pid(), prop::option::of(pid())).prop_map(|(pid, killer)| Op::Terminate { pid, killer }),
        3 => Just(Op::QueryRemove),
        // Rarer: it ends the device for the rest of the sequence.
        1 => Just(Op::SurpriseRemove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn the_driver_follows_the_model(quotas in 0..QUOTAS.len(), ops in vec(op(), 1..60)) {
        let (per_handle, per_device) = QUOTAS[quotas];
        let mut harness = Harness::new(per_handle, per_device, true);
        for op in &ops {
            harness.apply(op);
        }
        harness.finish();
    }
}

/// The model agrees with the contract's own worked cases, so that it is not
/// merely agreeing with the driver.
#[test]
fn the_model_knows_the_contract() {
    use mlnx_hca::Status;
    use reference::{Expect, Model};
    let mut m = Model::new(64, 1024);
    m.opened(101, Access::ReadWrite, Status::SUCCESS);
    m.opened(102, Access::Read, Status::SUCCESS);
    m.opened(103, Access::ReadWrite, Status::SUCCESS);
    let block =
        |bar: u32, offset: u32, size: u32| [bar.to_le_bytes(), offset.to_le_bytes(), size.to_le_bytes()].concat();
    assert_eq!(
        m.predict_as(0, Origin::Caller, MAP_RW, &block(0, 0xF0014, 4)[..11], 8),
        Expect::Fail(Status::BUFFER_TOO_SMALL)
    );
    assert_eq!(
        m.predict_as(1, Origin::Caller, MAP_RW, &[], 0),
        Expect::Fail(Status::ACCESS_DENIED),
        "access before lengths"
    );
    assert_eq!(m.predict_as(0, Origin::Caller, MAP_RO, &block(1, 0, 4), 8), Expect::Fail(Status::NOT_IMPLEMENTED));
    assert_eq!(m.predict_as(0, Origin::Caller, MAP_RO, &block(3, 0, 4), 8), Expect::Fail(Status::INVALID_PARAMETER));
    assert_eq!(
        m.predict_as(0, Origin::Caller, MAP_RO, &block(0, 0xFFFF_FFFC, 8), 8),
        Expect::Fail(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        m.predict_as(0, Origin::Caller, MAP_RO | 0x8000_0000, &block(0, 0, 4), 8),
        Expect::Fail(Status::INVALID_DEVICE_REQUEST)
    );
    let rw = m.predict_as(0, Origin::Caller, MAP_RW, &block(0, 0xF0014, 4), 8);
    assert!(matches!(rw, Expect::Map { writable: true, .. }));
    m.succeeded(&rw, 0x7000_0014);
    m.writer_pid(Some(101)).unwrap();
    assert_eq!(
        m.predict_as(2, Origin::Caller, MAP_RW, &block(0, 0, 4), 8),
        Expect::Fail(Status::DEVICE_BUSY),
        "one writer at a time"
    );
    assert!(
        matches!(m.predict_as(1, Origin::Caller, MAP_RO, &block(0, 0, 4), 8), Expect::Map { .. }),
        "readers any time"
    );
    assert_eq!(
        m.predict_as(0, Origin::Caller, UNMAP, &0x7000_0010u64.to_le_bytes(), 0),
        Expect::Fail(Status::INVALID_PARAMETER)
    );
    m.duplicate(0, 104);
    assert_eq!(
        m.predict_as(3, Origin::Caller, UNMAP, &0x7000_0014u64.to_le_bytes(), 0),
        Expect::Fail(Status::INVALID_PARAMETER)
    );
    m.terminate(101);
    m.writer_pid(None).unwrap();
    assert_eq!(m.query_remove(), Status::DEVICE_BUSY, "open handles refuse removal");
}
