//! Polling one register: what `crspace watch` does, as a function a tool can
//! call with its own output.

#![forbid(unsafe_code)]

use crate::error::Error;
use crate::mapping::{AccessMode, Mapping};
use std::time::Duration;

/// How [`watch`] samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    /// Time between two samples.
    pub interval: Duration,
    /// Samples to take; `None`: until `emit` fails.
    pub count: Option<u64>,
    /// Report only the first sample and those whose value differs from the
    /// last one reported; otherwise report every sample.
    pub changes_only: bool,
}

/// Reads the dword at CR-space `offset` of `mapping` every
/// `options.interval` and hands each reported value to `emit`. The first
/// sample is taken at once; the loop ends after `options.count` samples, or
/// at the first error (from the read or from `emit`).
pub fn watch<A: AccessMode, E: From<Error>>(
    mapping: &Mapping<'_, A>,
    offset: u32,
    options: &WatchOptions,
    emit: impl FnMut(u32) -> Result<(), E>,
) -> Result<(), E> {
    watch_with(|| mapping.read(offset), options, emit)
}

/// [`watch`] with the sample taken by `read` (a gateway read, a register
/// of a tool's own).
pub fn watch_with<E: From<Error>>(
    mut read: impl FnMut() -> Result<u32, Error>,
    options: &WatchOptions,
    mut emit: impl FnMut(u32) -> Result<(), E>,
) -> Result<(), E> {
    let mut last = None;
    let mut taken = 0u64;
    while options.count.is_none_or(|count| taken < count) {
        if taken > 0 {
            std::thread::sleep(options.interval);
        }
        let value = read()?;
        taken += 1;
        if !options.changes_only || last != Some(value) {
            emit(value)?;
            last = Some(value);
        }
    }
    Ok(())
}
