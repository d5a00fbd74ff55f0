//! Replays the fuzz corpus kept in the repository (`fuzz/corpus/ioctl`)
//! through the fuzz target's own code, on stable Rust: every input must pass
//! the model's checks, and together they must reach every status of the
//! contract. `cargo test --test fuzz_corpus -- --ignored write_seeds` writes
//! the hand-made seeds the corpus started from.

#[path = "../fuzz/src/decode.rs"]
mod decode;
#[path = "../fuzz/src/harness.rs"]
mod harness;
#[path = "../fuzz/src/reference.rs"]
mod reference;

use decode::seed::*;
use mlnx_hca::sim::DriverPool;
use mlnx_hca::Status;
use std::path::PathBuf;

// As in the fuzz target: injected allocation failures reach the core.
#[global_allocator]
static POOL: DriverPool = DriverPool;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ioctl")
}

/// What the corpus must make the driver answer. `STATUS_FILE_CLOSED` is not
/// here: only a request racing the close of its handle's last duplicate gets
/// it, which a sequential run cannot do (tests/concurrency.rs races for it).
const MUST_SEE: &[(&str, Status)] = &[
    ("ioctl", Status::SUCCESS),
    ("ioctl", Status::INVALID_DEVICE_REQUEST),
    ("ioctl", Status::ACCESS_DENIED),
    ("ioctl", Status::BUFFER_TOO_SMALL),
    ("ioctl", Status::NOT_IMPLEMENTED),
    ("ioctl", Status::INVALID_PARAMETER),
    ("ioctl", Status::INSUFFICIENT_RESOURCES),
    ("ioctl", Status::DEVICE_BUSY),
    ("ioctl", Status::DELETE_PENDING),
    ("ioctl", Status::INVALID_HANDLE),
    ("ioctl", Status::NOT_SUPPORTED),
    ("open", Status::SUCCESS),
    ("open", Status::DELETE_PENDING),
    ("open", Status::INSUFFICIENT_RESOURCES),
    ("query_remove", Status::SUCCESS),
    ("query_remove", Status::DEVICE_BUSY),
];

#[test]
fn the_corpus_passes_and_reaches_every_status() {
    let mut seen = harness::Seen::new();
    let mut inputs = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz/corpus/ioctl") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| decode::run(&data));
        match result {
            Ok(s) => seen.extend(s),
            Err(_) => panic!("corpus input {} fails", path.display()),
        }
        inputs += 1;
    }
    let missing: Vec<_> = MUST_SEE.iter().filter(|want| !seen.contains(want)).collect();
    assert!(missing.is_empty(), "{inputs} corpus inputs never answer {missing:?}; they answer {seen:?}");
}

/// Hand-made sequences that reach each status in a few steps; the fuzzer
/// grows the corpus from them. Indexes: pids into `PIDS`, handles in the
/// order they were made.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    // Map RO and RW, query, unmap own, stale and moved VAs, close.
    let mut s = start(0);
    open(&mut s, 0, true);
    map(&mut s, 0, false, 0xF0, 1);
    map(&mut s, 0, true, 0, 2);
    query(&mut s, 0);
    unmap(&mut s, 0, 0);
    unmap_va(&mut s, 0, 0, 0);
    unmap_va(&mut s, 0, 1, 1);
    close(&mut s, 0);
    out.push(("seed-map-unmap", s));
    // Bad codes, access, lengths, BARs and ranges.
    let mut s = start(0);
    open(&mut s, 0, false);
    raw(&mut s, 0, 0x003B_6010, &[], 0);
    raw(&mut s, 0, 0x003B_E004, &[0; 12], 0);
    raw(&mut s, 0, 0x003B_6000, &[0; 11], 0);
    raw(&mut s, 0, 0x003B_600C, &[], 2);
    map_raw(&mut s, 0, 1, 0, 4);
    map_raw(&mut s, 0, 7, 0, 4);
    map_raw(&mut s, 0, 0, 0xFFFF_FFFC, 8);
    map_raw(&mut s, 0, 0, 2, 4);
    out.push(("seed-bad-requests", s));
    // Quota (per handle 1, per device 3) and a second writer.
    let mut s = start(1);
    open(&mut s, 0, true);
    open(&mut s, 1, true);
    map(&mut s, 0, true, 0, 1);
    map(&mut s, 0, false, 1, 1);
    map(&mut s, 1, true, 2, 1);
    out.push(("seed-quota-busy", s));
    // Duplicates, a process end, a dead handle, removal refused then agreed.
    let mut s = start(0);
    open(&mut s, 0, true);
    map(&mut s, 0, true, 3, 1);
    duplicate(&mut s, 0, 1);
    map(&mut s, 1, true, 4, 1);
    unmap_va(&mut s, 1, 0, 0);
    query_remove(&mut s);
    terminate(&mut s, 0);
    query(&mut s, 0);
    query(&mut s, 1);
    close(&mut s, 1);
    query_remove(&mut s);
    open(&mut s, 2, false);
    out.push(("seed-dup-terminate-remove", s));
    // Surprise removal with live views in two processes.
    let mut s = start(0);
    open(&mut s, 0, true);
    open(&mut s, 1, false);
    map(&mut s, 0, true, 0, 1);
    map(&mut s, 1, false, 0xF0, 1);
    surprise_remove(&mut s);
    query(&mut s, 1);
    open(&mut s, 2, false);
    out.push(("seed-surprise", s));
    // Injected faults: the first map, the first allocation of a map and of
    // an open, the attach of a cleanup in another process.
    let mut s = start(0);
    open(&mut s, 0, true);
    fault(&mut s, 0, 1);
    map(&mut s, 0, false, 0, 1);
    fault(&mut s, 2, 1);
    map(&mut s, 0, false, 0, 1);
    fault(&mut s, 2, 1);
    open(&mut s, 1, false);
    open(&mut s, 2, false);
    open(&mut s, 3, false);
    open(&mut s, 0, false);
    map(&mut s, 0, true, 1, 1);
    duplicate(&mut s, 0, 1);
    fault(&mut s, 1, 1);
    close(&mut s, 0);
    close(&mut s, 7);
    out.push(("seed-faults", s));
    // Requests a driver forwarded from another context; a process killed
    // by another while a duplicate of its handle lives on.
    let mut s = start(0);
    open(&mut s, 0, true);
    map_forwarded(&mut s, 0, true, 0, 1, false);
    map_forwarded(&mut s, 0, false, 0, 1, true);
    map(&mut s, 0, true, 0, 1);
    duplicate(&mut s, 0, 1);
    map(&mut s, 1, false, 2, 1);
    kill(&mut s, 0, 2);
    query(&mut s, 1);
    close(&mut s, 1);
    out.push(("seed-forwarded-kill", s));
    out
}

#[test]
fn the_seeds_pass() {
    for (name, data) in seeds() {
        let result = std::panic::catch_unwind(|| decode::run(&data));
        assert!(result.is_ok(), "seed {name} fails");
    }
}

#[test]
#[ignore = "writes fuzz/corpus/ioctl/seed-*; run by hand"]
fn write_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds() {
        std::fs::write(dir.join(name), data).unwrap();
    }
}
