//! Tracing through `DbgPrint`: every line starts with `mlnx_hca: `. Seen in a
//! kernel debugger or DebugView on Windows (Debug Print Filter permitting)
//! and as `warn:debugstr:` lines in Wine's log. Formats are C `printf`
//! formats checked by nobody: pass only `u32`/`i32` (`%u`, `%d`, `%x`),
//! `u64`/`i64` (`%I64x`, `%I64d`) and pointers (`%p`).

/// `trace!("CREATE pid %u", pid)`: one `DbgPrint` line.
macro_rules! trace {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        // SAFETY: the format is a NUL-terminated literal built by `concat!`, and
        // the callers pass only integers and pointers matching its conversions
        // (see the module documentation); DbgPrint may run at any IRQL for such
        // arguments.
        let _ = unsafe {
            ::wdk_sys::ntddk::DbgPrint(concat!("mlnx_hca: ", $fmt, "\n\0").as_ptr().cast() $(, $arg)*)
        };
    }};
}

pub(crate) use trace;
