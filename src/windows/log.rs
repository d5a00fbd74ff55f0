//! Tracing through `DbgPrint`, by way of `wdk::println!`: Rust formatting
//! (no printf format strings to get wrong), every line prefixed with
//! `mlnx_hca: `. Seen in a kernel debugger or DebugView on Windows (Debug
//! Print Filter permitting) and as `warn:debugstr:` lines in Wine's log.
//!
//! IRQL: <= DIRQL (DbgPrint's rule); every caller runs at <= APC_LEVEL.

/// `trace!("CREATE pid {}", pid)`: one line.
macro_rules! trace {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        ::wdk::println!(concat!("mlnx_hca: ", $fmt) $(, $arg)*)
    };
}

pub(crate) use trace;
