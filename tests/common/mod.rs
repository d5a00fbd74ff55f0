//! Helpers the scenario tests share: the calls a tool makes, spelled out.

#![allow(dead_code)]

use mlnx_hca::abi::*;
use mlnx_hca::sim::{SimHandle, SimHca};
use mlnx_hca::Status;

/// `Err` of an ioctl as a named status, for readable assertions.
pub fn st(r: Result<usize, i32>) -> Result<usize, Status> {
    r.map_err(Status::from_raw)
}

pub fn map_in(bar_num: u32, offset: u32, size: u32) -> [u8; 12] {
    MapCrSpaceIn { bar_num, offset, size }.to_bytes()
}

/// Maps and returns the VA, or the status.
pub fn map(h: &SimHandle, writable: bool, offset: u32, size: u32) -> Result<u64, Status> {
    let code = if writable { FW_MAP_CRSPACE_RW } else { FW_MAP_CRSPACE_RO };
    let mut out = [0u8; 8];
    let n = st(h.ioctl(code, &map_in(0, offset, size), &mut out))?;
    assert_eq!(n, 8, "a map reports exactly its 8-byte block");
    Ok(MapCrSpaceOut::from_bytes(&out).unwrap().va)
}

pub fn unmap(h: &SimHandle, va: u64) -> Result<(), Status> {
    let n = st(h.ioctl(FW_UNMAP_CRSPACE, &UnmapCrSpaceIn { va }.to_bytes(), &mut []))?;
    assert_eq!(n, 0, "an unmap reports no output");
    Ok(())
}

pub fn query(h: &SimHandle) -> QueryCrSpaceOut {
    let mut out = [0u8; 24];
    let n = st(h.ioctl(FW_QUERY_CRSPACE, &[], &mut out)).expect("query");
    assert_eq!(n, 24);
    QueryCrSpaceOut::from_bytes(&out).unwrap()
}

/// The four bytes of a dword through a user view, as they lie in CR space.
pub fn peek_bytes(va: u64) -> [u8; 4] {
    // SAFETY: the tests only pass VAs the simulated driver returned for live
    // views, dword aligned and inside the mapped window.
    unsafe { std::ptr::read_volatile(va as usize as *const [u8; 4]) }
}

/// Reads a dword through a user view as a tool does: one 32-bit load, then
/// the swap big-endian CR space needs, giving the device's value.
pub fn peek(va: u64) -> u32 {
    // SAFETY: as `peek_bytes`.
    let raw = unsafe { std::ptr::read_volatile(va as usize as *const u32) };
    u32::from_be(raw)
}

/// Writes the device's value `value` to a dword through a user view (one
/// 32-bit store of its big-endian form).
pub fn poke(va: u64, value: u32) {
    // SAFETY: as `peek`; the caller passes a VA of a read-write view (or
    // does this in a forked child to watch it fault).
    unsafe { std::ptr::write_volatile(va as usize as *mut u32, value.to_be()) }
}

/// How a forked child that runs `f` ended: `Ok(exit code)` or `Err(signal)`.
pub fn in_child(f: impl FnOnce()) -> Result<i32, i32> {
    // SAFETY: the child only runs `f` (a volatile access) and `_exit`; it
    // touches no lock, allocator or other thread's state.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    if libc::WIFSIGNALED(status) {
        Err(libc::WTERMSIG(status))
    } else {
        Ok(libc::WEXITSTATUS(status))
    }
}

/// Nothing mapped, nobody writing: what a tool sees on an idle device.
pub fn assert_idle(hca: &SimHca) {
    assert_eq!(hca.live_views(), 0, "no view left");
    assert_eq!(hca.writer_pid(), None, "lease free");
}
