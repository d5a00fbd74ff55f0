//! Fuzzing and model checking of `mlnx_hca` through its simulated HCA.
//!
//! - [`reference`]: the contract as a plain model that predicts every answer.
//! - [`harness`]: runs steps (requests, opens, duplicates, closes, process
//!   ends, removals, injected faults) on a `SimHca` and checks each against
//!   the model.
//! - [`decode`]: libFuzzer's bytes as such steps.
//!
//! The fuzz target (`fuzz_targets/ioctl.rs`) is [`decode::run`]. The root
//! crate's `tests/model.rs` (proptest) and `tests/fuzz_corpus.rs` (replays the
//! corpus kept in `fuzz/corpus/ioctl`) compile these same files.

pub mod decode;
pub mod harness;
pub mod reference;
