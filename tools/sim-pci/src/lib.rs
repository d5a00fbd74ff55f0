//! `libmlnx_hca_sim_pci.so`: loaded with `LD_PRELOAD` into an unmodified
//! Linux tool (mstflint's `mstmcra`, `mstregdump`) by the `sim-pci`
//! launcher, it serves the tool's `mmap` of the simulated HCA's `resource0`
//! through the driver's own path, the way the Windows driver serves a tool:
//!
//! - `mmap` of that file (recognised by device and inode, see
//!   [`env::RESOURCE0`]): a `FW_MAP_CRSPACE_RW` request (`_RO` when the tool
//!   maps without `PROT_WRITE`) on a handle of the simulated HCA opened by
//!   this process, whose driver maps a real view of the shared CR space
//!   ([`env::BAR`]); the view's address is what the tool gets;
//! - `munmap` of such a view: `FW_UNMAP_CRSPACE`;
//! - process exit: the handle is closed (the driver's cleanup unmaps whatever
//!   the tool left mapped and gives the lease back).
//!
//! Every other `mmap`/`munmap` goes to the C library untouched. The
//! simulated driver's own `mmap`/`munmap` calls come through these same
//! symbols (the preload library is first in the process's symbol scope):
//! while this library is inside the driver on a thread, that thread's calls
//! pass straight through ([`DriverTurn`]).
//!
//! For the simulated ConnectX-4 (`sim-pci --cx4`), whose CR space is behind
//! the configuration-space gateway, it serves mstflint's kernel-module node
//! `/dev/<BDF>_mstconf` instead: `access`, `open`/`open64`, `ioctl` and
//! `close` of that one path, through the driver's block requests
//! ([`mstconf`]).
//!
//! A refused map fails the tool's `mmap` with an `errno` that says why
//! (`EBUSY` for the write lease, `EACCES` for a read-only handle, `EINVAL`
//! for a window outside CR space, `ENODEV` for a removed device) and one line
//! on stderr in `crspace`'s words, since the tool's own message can only
//! show the `errno` of its last fallback.

#![cfg(target_os = "linux")]

mod env;
mod mstconf;
// One protocol, two sides: the server's half (receive_request, send_answer) is `sim-pci serve`'s.
#[allow(dead_code)]
mod wire;

use crspace::abi::{
    MapCrSpaceIn, MapCrSpaceOut, UnmapCrSpaceIn, FW_MAP_CRSPACE_RO, FW_MAP_CRSPACE_RW, FW_UNMAP_CRSPACE,
};
use crspace::sim::{SimAccess, SimConnection, SimOptions, SimSession};
use crspace::{explain_map_failure, Connection, Error, Status};
use libc::{c_char, c_int, c_ulong, c_void, mode_t, off_t, size_t};
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

// ---------------------------------------------------------------- the C library's own

type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;
type AccessFn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type OpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;

/// The next definition of `name` after this library: the C library's.
fn next_symbol(name: &'static std::ffi::CStr) -> usize {
    // SAFETY: RTLD_NEXT with a NUL-terminated name is dlsym's documented use
    // from a library; the result is checked for null below.
    let symbol = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    assert!(!symbol.is_null(), "sim-pci: the C library has no {name:?}");
    symbol as usize
}

fn real_mmap() -> MmapFn {
    static REAL: OnceLock<usize> = OnceLock::new();
    let address = *REAL.get_or_init(|| next_symbol(c"mmap"));
    // SAFETY: `address` is the C library's `mmap`, whose C signature this is.
    unsafe { std::mem::transmute::<usize, MmapFn>(address) }
}

fn real_munmap() -> MunmapFn {
    static REAL: OnceLock<usize> = OnceLock::new();
    let address = *REAL.get_or_init(|| next_symbol(c"munmap"));
    // SAFETY: `address` is the C library's `munmap`, whose C signature this is.
    unsafe { std::mem::transmute::<usize, MunmapFn>(address) }
}

/// The C library's definition of one of the calls this library interposes
/// (`$name` as a C string), as a function pointer of type `$ty`.
macro_rules! real {
    ($name:literal, $ty:ty) => {{
        static REAL: OnceLock<usize> = OnceLock::new();
        let address = *REAL.get_or_init(|| next_symbol($name));
        // SAFETY: `address` is the C library's function of that name, whose
        // C signature `$ty` is.
        unsafe { std::mem::transmute::<usize, $ty>(address) }
    }};
}

fn set_errno(errno: c_int) {
    // SAFETY: no precondition; it returns the address of this thread's errno.
    let location = unsafe { libc::__errno_location() };
    // SAFETY: that address is valid and this thread's own for its lifetime.
    unsafe { *location = errno };
}

// ---------------------------------------------------------------- the interposed calls

/// `mmap`, as the tool calls it.
///
/// # Safety
/// As the C library's `mmap`: the caller owns the consequences of mapping
/// over `addr` with `MAP_FIXED`.
#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    if !DriverTurn::inside() && is_resource0(fd) {
        return match serve_map(len, prot, flags, off) {
            Ok(va) => std::ptr::with_exposed_provenance_mut(va),
            Err(errno) => {
                set_errno(errno);
                libc::MAP_FAILED
            }
        };
    }
    // SAFETY: the caller's arguments, unchanged, to the call they were meant for.
    unsafe { real_mmap()(addr, len, prot, flags, fd, off) }
}

/// `mmap64`: the same call on 64-bit Linux (mstflint's tools use this name).
///
/// # Safety
/// As [`mmap`].
#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    // SAFETY: the caller upholds `mmap`'s contract.
    unsafe { mmap(addr, len, prot, flags, fd, off) }
}

/// `munmap`, as the tool calls it.
///
/// # Safety
/// As the C library's `munmap`: nothing still uses the range.
#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: size_t) -> c_int {
    if !DriverTurn::inside() {
        if let Some(result) = serve_unmap(addr as usize, len) {
            return match result {
                Ok(()) => 0,
                Err(errno) => {
                    set_errno(errno);
                    -1
                }
            };
        }
    }
    // SAFETY: the caller's arguments, unchanged, to the call they were meant for.
    unsafe { real_munmap()(addr, len) }
}

// ---------------------------------------------------------------- the ConnectX-4's node

/// `access`, as the tool calls it: the served node exists.
///
/// # Safety
/// As the C library's `access`: `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    if mstconf::is_node(path) {
        return 0;
    }
    let real = real!(c"access", AccessFn);
    // SAFETY: the caller's arguments, unchanged, to the call they were meant for.
    unsafe { real(path, mode) }
}

/// `open64` (glibc's name for `open` on 64-bit Linux; mtcr calls this one):
/// the served node is a new handle of the driver.
///
/// `open` is variadic in C; its optional `mode` is received here as a third
/// argument, which the x86-64 and AArch64 Linux calling conventions pass in
/// the same register either way (garbage when the caller passed none, and
/// then only handed on to the C library, which ignores it without
/// `O_CREAT`/`O_TMPFILE`).
///
/// # Safety
/// As the C library's `open64`.
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    if mstconf::is_node(path) {
        return match mstconf::open() {
            Ok(fd) => fd,
            Err(errno) => {
                set_errno(errno);
                -1
            }
        };
    }
    let real = real!(c"open64", OpenFn);
    // SAFETY: the caller's arguments, unchanged (`mode` promoted as a C
    // variadic argument is), to the call they were meant for.
    unsafe { real(path, flags, mode as c_int) }
}

/// `open`: as [`open64`].
///
/// # Safety
/// As the C library's `open`.
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    if mstconf::is_node(path) {
        // SAFETY: the caller upholds `open`'s contract, which is open64's.
        return unsafe { open64(path, flags, mode) };
    }
    let real = real!(c"open", OpenFn);
    // SAFETY: as in `open64`.
    unsafe { real(path, flags, mode as c_int) }
}

/// `ioctl`: a request on the node is the driver's; any other goes to the
/// C library. Variadic in C; its third argument (every ioctl mtcr sends has
/// one, a pointer) is received as a fixed one, as for `open64`.
///
/// # Safety
/// As the C library's `ioctl`: `arg` is what `request` expects.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if mstconf::is_open(fd) {
        // SAFETY: the caller's structure for `request`.
        return match unsafe { mstconf::ioctl(fd, request, arg) } {
            Ok(value) => value,
            Err(errno) => {
                set_errno(errno);
                -1
            }
        };
    }
    let real = real!(c"ioctl", IoctlFn);
    // SAFETY: the caller's arguments, unchanged, to the call they were meant for.
    unsafe { real(fd, request, arg) }
}

/// `close`: the node's descriptor closes its handle (the driver's cleanup
/// gives back what it held).
///
/// # Safety
/// As the C library's `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    mstconf::forget(fd);
    let real = real!(c"close", CloseFn);
    // SAFETY: the caller's descriptor, to the call it was meant for.
    unsafe { real(fd) }
}

// ---------------------------------------------------------------- inside the driver

thread_local! {
    // Const-initialised, no destructor: safe to read from any libc call.
    static IN_DRIVER: Cell<bool> = const { Cell::new(false) };
}

/// This thread is running the simulated HCA (its I/O manager, driver and
/// memory manager): its own `mmap`/`munmap` calls go to the C library.
struct DriverTurn(());

impl DriverTurn {
    fn enter() -> DriverTurn {
        IN_DRIVER.with(|cell| cell.set(true));
        DriverTurn(())
    }

    fn inside() -> bool {
        IN_DRIVER.with(Cell::get)
    }
}

impl Drop for DriverTurn {
    fn drop(&mut self) {
        IN_DRIVER.with(|cell| cell.set(false));
    }
}

/// Whether `fd` is the simulated device's `resource0` (same device and
/// inode as the file the launcher named).
fn is_resource0(fd: c_int) -> bool {
    static RESOURCE0: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    let Some(ours) = *RESOURCE0.get_or_init(|| {
        let path = std::env::var_os(env::RESOURCE0)?;
        let stat = rustix::fs::stat(path.as_os_str()).ok()?;
        Some((stat.st_dev, stat.st_ino))
    }) else {
        return false;
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` is the caller's open descriptor (or a bad number, which
    // fstat answers with EBADF); it is only borrowed for the call.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
    rustix::fs::fstat(fd).is_ok_and(|stat| (stat.st_dev, stat.st_ino) == ours)
}

/// One view the tool got from an `mmap` of `resource0`.
#[derive(Clone, Copy, Debug)]
struct View {
    len: usize,
}

/// The simulated HCA as this process sees it: a session (the shared CR
/// space, the other processes the environment asks for) and this process's
/// handle on it.
struct Device {
    /// Declared before `session`: the handle closes before the HCA goes.
    conn: Option<SimConnection>,
    session: SimSession,
    views: HashMap<usize, View>,
    log: Option<File>,
}

enum Life {
    NotStarted,
    Running(Box<Device>),
    /// The process is exiting: the handle is closed.
    Ended,
}

static DEVICE: Mutex<Life> = Mutex::new(Life::NotStarted);

fn device() -> MutexGuard<'static, Life> {
    DEVICE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const PAGE: usize = 4096;

fn round_up(len: usize) -> Option<usize> {
    len.checked_add(PAGE - 1).map(|n| n & !(PAGE - 1))
}

impl Device {
    fn start() -> Result<Device, String> {
        let bar = std::env::var_os(env::BAR)
            .map(PathBuf::from)
            .ok_or_else(|| format!("{} is not set: run the tool under sim-pci", env::BAR))?;
        let writer_pid = match std::env::var(env::WRITER) {
            Ok(text) => Some(text.parse::<u32>().map_err(|_| format!("{}={text} is not a pid", env::WRITER))?),
            Err(_) => None,
        };
        let max_access = match std::env::var(env::ACCESS).as_deref() {
            Ok("read") => SimAccess::Read,
            Ok("read-write") | Err(_) => SimAccess::ReadWrite,
            Ok(other) => return Err(format!("{}={other}: use read or read-write", env::ACCESS)),
        };
        let log = match std::env::var_os(env::LOG) {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", PathBuf::from(path).display()))?,
            ),
            None => None,
        };
        let options = SimOptions { bar: Some(bar), writer_pid, max_access, ..SimOptions::default() };
        let session = SimSession::start(options).map_err(|e| e.to_string())?;
        let conn = session.connect(true);
        let mut device = Device { conn: Some(conn), session, views: HashMap::new(), log };
        let access = if max_access == SimAccess::ReadWrite { "read-write" } else { "read-only" };
        device.note(&format!("open: {access} handle"));
        // SAFETY: registers a plain `extern "C" fn()` to run at exit().
        unsafe { libc::atexit(at_exit) };
        Ok(device)
    }

    fn conn(&self) -> &SimConnection {
        self.conn.as_ref().expect("the handle is open while the device runs")
    }

    /// One line in the log, if there is one.
    fn note(&mut self, what: &str) {
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "sim-pci[{}] {}: {what}", std::process::id(), program());
        }
    }
}

/// This process's name, for the log.
fn program() -> String {
    std::fs::read_to_string("/proc/self/comm").map(|name| name.trim().to_string()).unwrap_or_default()
}

/// The `errno` a tool's `mmap` fails with for a driver status.
fn errno_of(status: Status) -> c_int {
    match status {
        Status::DEVICE_BUSY => libc::EBUSY,
        Status::ACCESS_DENIED => libc::EACCES,
        Status::INVALID_PARAMETER => libc::EINVAL,
        Status::INSUFFICIENT_RESOURCES => libc::ENOMEM,
        Status::DELETE_PENDING => libc::ENODEV,
        _ => libc::EIO,
    }
}

/// Runs `f` on the started device, inside the driver. `Err(errno)` if the
/// device cannot start or the process is exiting.
fn with_device<R>(f: impl FnOnce(&mut Device) -> Result<R, c_int>) -> Result<R, c_int> {
    let _turn = DriverTurn::enter();
    let mut life = device();
    if let Life::NotStarted = *life {
        match Device::start() {
            Ok(device) => *life = Life::Running(Box::new(device)),
            Err(why) => {
                eprintln!("mlnx_hca sim-pci: cannot start the simulated HCA: {why}");
                return Err(libc::ENODEV);
            }
        }
    }
    match &mut *life {
        Life::Running(device) => f(device),
        Life::NotStarted | Life::Ended => Err(libc::ENODEV),
    }
}

/// An `mmap` of `resource0`: the window `off..off + len` of CR space, mapped
/// by the driver.
fn serve_map(len: size_t, prot: c_int, flags: c_int, off: off_t) -> Result<usize, c_int> {
    // Checked before the device is asked: what Linux's own resource0 would
    // refuse, and what a driver view cannot be.
    if flags & libc::MAP_SHARED == 0 || flags & libc::MAP_FIXED != 0 || prot & libc::PROT_EXEC != 0 {
        return Err(libc::EINVAL);
    }
    if prot & (libc::PROT_READ | libc::PROT_WRITE) == 0 || len == 0 {
        return Err(libc::EINVAL);
    }
    let offset = u32::try_from(off).map_err(|_| libc::EINVAL)?;
    if offset as usize % PAGE != 0 {
        return Err(libc::EINVAL);
    }
    // Whole dwords; a window past CR space is the driver's to refuse.
    let size = u32::try_from(len.checked_add(3).ok_or(libc::EINVAL)? & !3).map_err(|_| libc::EINVAL)?;
    let writable = prot & libc::PROT_WRITE != 0;
    let (code, request) =
        if writable { (FW_MAP_CRSPACE_RW, "FW_MAP_CRSPACE_RW") } else { (FW_MAP_CRSPACE_RO, "FW_MAP_CRSPACE_RO") };
    with_device(|device| {
        let mut out = [0u8; 8];
        let input = MapCrSpaceIn { bar_num: 0, offset, size }.to_bytes();
        let what = format!("map {} {offset:#010x}+{size:#x}", if writable { "rw" } else { "ro" });
        match device.conn().ioctl(code, &input, &mut out) {
            Ok(_) => {
                let va = MapCrSpaceOut::from_bytes(&out).map(|o| o.va).unwrap_or(0);
                let va = usize::try_from(va).map_err(|_| libc::EIO)?;
                device.views.insert(va, View { len });
                device.note(&format!("{what}: ok"));
                Ok(va)
            }
            Err(status) => {
                let error = explain_map_failure(device.conn(), request, status, offset, size);
                device.note(&format!("{what}: {error}"));
                eprintln!("mlnx_hca sim-pci: mmap of CR space refused: {error}");
                Err(errno_of(status))
            }
        }
    })
}

/// A `munmap` that concerns a view of `resource0`: `FW_UNMAP_CRSPACE`.
/// `None`: not a view of ours (the C library's business).
fn serve_unmap(addr: usize, len: size_t) -> Option<Result<(), c_int>> {
    let _turn = DriverTurn::enter();
    let mut life = device();
    let Life::Running(device) = &mut *life else { return None };
    let start = *device.views.keys().find(|&&va| va <= addr && addr < va + device.views[&va].len.max(1))?;
    let view = device.views[&start];
    // A view goes whole, as a driver's view does: no part of one.
    if start != addr || round_up(len) != round_up(view.len) {
        device.note(&format!("unmap {addr:#x}+{len:#x}: refused, not a whole view ({start:#x}+{:#x})", view.len));
        return Some(Err(libc::EINVAL));
    }
    device.views.remove(&start);
    let input = UnmapCrSpaceIn { va: start as u64 }.to_bytes();
    let result = device.conn().ioctl(FW_UNMAP_CRSPACE, &input, &mut []);
    let what = format!("unmap {start:#x}+{:#x}", view.len);
    match result {
        Ok(_) => {
            device.note(&format!("{what}: ok"));
            Some(Ok(()))
        }
        Err(status) => {
            let error = Error::from_status("FW_UNMAP_CRSPACE", status);
            device.note(&format!("{what}: {error}"));
            Some(Err(libc::EINVAL))
        }
    }
}

/// At exit: the handle closes (its cleanup unmaps what the tool left
/// mapped and releases the lease), and the log says what is left.
extern "C" fn at_exit() {
    let _turn = DriverTurn::enter();
    let mut life = device();
    let Life::Running(mut device) = std::mem::replace(&mut *life, Life::Ended) else { return };
    let left = device.views.len();
    drop(device.conn.take());
    let hca = device.session.hca();
    let (live, lease) = (hca.views_of(std::process::id()), hca.writer_pid());
    let lease = match (lease, device.session.writer_pid()) {
        (None, _) => "free".to_string(),
        (Some(pid), Some(other)) if pid == other => format!("held by {pid} (MLNX_HCA_SIM_WRITER)"),
        (Some(pid), _) => format!("held by {pid}"),
    };
    device.note(&format!(
        "exit: handle closed ({left} view(s) left to cleanup); views of this process {live}, write lease {lease}"
    ));
}
