//! The whole request path of the simulated HCA under libFuzzer: any bytes
//! become quotas and a sequence of opens, requests (any code, lengths and
//! bytes, VAs fed back from earlier maps), duplicates, closes, process ends,
//! removals and injected faults, checked step by step against the reference
//! model. A panic (model divergence, Verifier) is a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mlnx_hca::sim::DriverPool;

// The driver's pool, so that injected allocation failures reach the core.
#[global_allocator]
static POOL: DriverPool = DriverPool;

fuzz_target!(|data: &[u8]| {
    mlnx_hca_fuzz::decode::run(data);
});
