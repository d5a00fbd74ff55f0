//! The C API of the `crspace` library: `include/mlnx_hca_crspace.h` is its
//! contract, and every function here is one of it. The work is crspace's
//! (its [`Mapping`] and the driver's requests); this crate turns C pointers
//! into Rust values, results into statuses, and errors into the calling
//! thread's last message.
//!
//! Ownership: [`mlnx_hca_open`] hands C a `Box<Device>`, [`mlnx_hca_map`] a
//! `Box<Window>`; [`mlnx_hca_close`] and [`mlnx_hca_unmap`] take them back.
//! A window holds a share of its device's connection, so it stays valid
//! (and the handle open) until it is unmapped, whatever order C frees
//! things in.

use crspace::{Error, Mapping, ReadOnly, ReadWrite, SharedConnection};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::Arc;

/// Done.
pub const MLNX_HCA_OK: c_int = 0;
/// No such device, or it cannot be opened.
pub const MLNX_HCA_ERR_NO_DEVICE: c_int = 1;
/// Not allowed: a read-only handle, or no access to the device at all.
pub const MLNX_HCA_ERR_ACCESS: c_int = 2;
/// Another process holds the write lease.
pub const MLNX_HCA_ERR_BUSY: c_int = 3;
/// Unaligned, not whole dwords, past CR space or outside the window.
pub const MLNX_HCA_ERR_RANGE: c_int = 4;
/// The device was removed.
pub const MLNX_HCA_ERR_REMOVED: c_int = 5;
/// A mapping quota is used up, or memory.
pub const MLNX_HCA_ERR_RESOURCES: c_int = 6;
/// A NULL argument, a write through a read-only window, a closed handle.
pub const MLNX_HCA_ERR_INVALID: c_int = 7;
/// Any other answer of the driver.
pub const MLNX_HCA_ERR_DRIVER: c_int = 8;
/// The device does not serve this: a map on a ConnectX-4 or later, a space
/// its gateway does not report, a space request on a ConnectX-3 or older.
pub const MLNX_HCA_ERR_UNSUPPORTED: c_int = 9;

/// An open device (`mlnx_hca`).
pub struct Device {
    conn: SharedConnection,
}

/// A mapped window (`mlnx_hca_window`).
pub enum Window {
    /// Mapped with `FW_MAP_CRSPACE_RO`.
    ReadOnly(Mapping<'static, ReadOnly>),
    /// Mapped with `FW_MAP_CRSPACE_RW`.
    ReadWrite(Mapping<'static, ReadWrite>),
}

impl Window {
    fn read(&self, addr: u32) -> crspace::Result<u32> {
        match self {
            Window::ReadOnly(m) => m.read(addr),
            Window::ReadWrite(m) => m.read(addr),
        }
    }

    fn offset(&self) -> u32 {
        match self {
            Window::ReadOnly(m) => m.offset(),
            Window::ReadWrite(m) => m.offset(),
        }
    }

    fn size(&self) -> u32 {
        match self {
            Window::ReadOnly(m) => m.size(),
            Window::ReadWrite(m) => m.size(),
        }
    }

    fn end(&self) -> u64 {
        u64::from(self.offset()) + u64::from(self.size())
    }
}

// ---------------------------------------------------------------- statuses

/// A failure: its status and its whole message.
struct Failure {
    status: c_int,
    message: String,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let status = match &error {
            Error::Unaligned { .. } | Error::BadLength { .. } | Error::PastEnd { .. } | Error::OutsideWindow { .. } => {
                MLNX_HCA_ERR_RANGE
            }
            Error::Busy { .. } | Error::GatewayBusy { .. } => MLNX_HCA_ERR_BUSY,
            Error::NotSupported { .. } => MLNX_HCA_ERR_UNSUPPORTED,
            Error::PastGateway { .. } => MLNX_HCA_ERR_RANGE,
            Error::SpaceNeedsWrite { .. } => MLNX_HCA_ERR_ACCESS,
            Error::ReadOnly => MLNX_HCA_ERR_ACCESS,
            Error::Removed => MLNX_HCA_ERR_REMOVED,
            Error::TooManyMappings => MLNX_HCA_ERR_RESOURCES,
            Error::HandleClosed => MLNX_HCA_ERR_INVALID,
            Error::Open { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => MLNX_HCA_ERR_ACCESS,
            Error::Open { .. } | Error::File { .. } | Error::BadStateFile { .. } => MLNX_HCA_ERR_NO_DEVICE,
            _ => MLNX_HCA_ERR_DRIVER,
        };
        Failure { status, message: error.to_string() }
    }
}

fn invalid(message: &str) -> Failure {
    Failure { status: MLNX_HCA_ERR_INVALID, message: message.to_string() }
}

thread_local! {
    /// The calling thread's last failure (empty after a success).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the outcome of one call as the thread's last error and returns
/// its status.
fn finish(result: Result<(), Failure>) -> c_int {
    let (status, message) = match result {
        Ok(()) => (MLNX_HCA_OK, String::new()),
        Err(failure) => (failure.status, failure.message),
    };
    // A message never holds a NUL; if it did, it would end there.
    let message = CString::new(message).unwrap_or_else(|e| {
        let end = e.nul_position();
        CString::new(&e.into_vec()[..end]).unwrap_or_default()
    });
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
    status
}

// ---------------------------------------------------------------- devices

/// The connection for a device name (the header's "Devices").
#[cfg(windows)]
fn connect(device: Option<&str>, write: bool) -> Result<SharedConnection, Failure> {
    let path = match device {
        None => crspace::DEFAULT_DEVICE.to_string(),
        Some(name) if name.starts_with(r"\\") => name.to_string(),
        Some(name)
            if name.starts_with("mlnx_hca") && name[8..].chars().all(|c| c.is_ascii_digit()) && name.len() > 8 =>
        {
            format!(r"\\.\{name}")
        }
        Some(name) => {
            return Err(Failure {
                status: MLNX_HCA_ERR_NO_DEVICE,
                message: format!("{name}: not an mlnx_hca device name (mlnx_hca<N> or \\\\.\\mlnx_hca<N>)"),
            })
        }
    };
    let handle = crspace::windows::DeviceHandle::open(&path, write)?;
    Ok(Arc::new(handle))
}

/// The simulated HCA over a shared CR-space file, and this process's
/// handle on it.
#[cfg(unix)]
struct SimDevice {
    // Dropped in this order: the handle (its cleanup), then the HCA.
    conn: crspace::sim::SimConnection,
    _session: crspace::sim::SimSession,
}

#[cfg(unix)]
impl crspace::Connection for SimDevice {
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, crspace::status::Status> {
        crspace::Connection::ioctl(&self.conn, code, input, output)
    }
}

/// Where the simulated HCA keeps CR space by default: the file sim-pci and
/// `crspace --sim --sim-bar` use.
#[cfg(unix)]
pub const DEFAULT_SIM_BAR: &str = "/dev/shm/mlnx_hca-sim.bar";

/// Where the simulated ConnectX-4 keeps its state by default: the file
/// `sim-pci serve` and `crspace --sim --sim-device` use.
#[cfg(unix)]
pub const DEFAULT_SIM4_DEVICE: &str = "/dev/shm/mlnx_hca-sim4.dev";

#[cfg(unix)]
fn connect(device: Option<&str>, write: bool) -> Result<SharedConnection, Failure> {
    use crspace::sim::{SimOptions, SimSession};
    let unknown = |name: &str| Failure {
        status: MLNX_HCA_ERR_NO_DEVICE,
        message: format!(
            "{name}: no such device (on this OS: \"sim\" or \"sim:FILE\", the simulated ConnectX-3; \"sim4\" or \
             \"sim4:FILE\", the simulated ConnectX-4)"
        ),
    };
    let (bar, cx4) = match device {
        None | Some("sim") => (DEFAULT_SIM_BAR, false),
        Some("sim4") => (DEFAULT_SIM4_DEVICE, true),
        Some(name) => match (name.strip_prefix("sim:"), name.strip_prefix("sim4:")) {
            (Some(path), _) if !path.is_empty() => (path, false),
            (_, Some(path)) if !path.is_empty() => (path, true),
            _ => return Err(unknown(name)),
        },
    };
    // MLNX_HCA_SIM_WRITER=PID: another simulated process holds the write
    // lease (the header's "Devices"), as `crspace --sim-writer` plays it.
    let writer_pid = match std::env::var("MLNX_HCA_SIM_WRITER") {
        Ok(text) => Some(crspace::parse_u32(&text).map_err(|_| Failure {
            status: MLNX_HCA_ERR_INVALID,
            message: format!("MLNX_HCA_SIM_WRITER={text}: not a process id"),
        })?),
        Err(_) => None,
    };
    let options = match cx4 {
        true => SimOptions { device: Some(bar.into()), writer_pid, ..SimOptions::default() },
        false => SimOptions { bar: Some(bar.into()), writer_pid, ..SimOptions::default() },
    };
    let session = SimSession::start(options)?;
    let conn = session.connect(write);
    Ok(Arc::new(SimDevice { conn, _session: session }))
}

/// The text of a C string argument, or None for NULL.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string valid for the call.
unsafe fn optional_str<'a>(text: *const c_char) -> Result<Option<&'a str>, Failure> {
    if text.is_null() {
        return Ok(None);
    }
    // SAFETY: (caller) a NUL-terminated string, alive for the call.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().map(Some).map_err(|_| invalid("the device name is not UTF-8"))
}

/// Opens `device`, for writing too if `write` is non-zero; `*out` receives it.
///
/// # Safety
/// `device` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_open(device: *const c_char, write: c_int, out: *mut *mut Device) -> c_int {
    finish((|| {
        if out.is_null() {
            return Err(invalid("mlnx_hca_open: out is NULL"));
        }
        // SAFETY: (caller) as documented.
        let name = unsafe { optional_str(device) }?;
        let conn = connect(name, write != 0)?;
        let device = Box::into_raw(Box::new(Device { conn }));
        // SAFETY: (caller) `out` is writable; checked non-null.
        unsafe { out.write(device) };
        Ok(())
    })())
}

/// Closes a device (windows keep their share of the handle).
///
/// # Safety
/// `dev` is NULL or a device `mlnx_hca_open` returned, not closed before.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_close(dev: *mut Device) {
    if !dev.is_null() {
        // SAFETY: (caller) the Box mlnx_hca_open leaked, taken back once.
        drop(unsafe { Box::from_raw(dev) });
    }
    finish(Ok(()));
}

/// The device, from a C pointer.
///
/// # Safety
/// `dev` is NULL or a live device.
unsafe fn device<'a>(dev: *const Device) -> Result<&'a Device, Failure> {
    // SAFETY: (caller) NULL or a live device, not freed during the call.
    unsafe { dev.as_ref() }.ok_or_else(|| invalid("the device is NULL"))
}

/// The window, from a C pointer.
///
/// # Safety
/// `window` is NULL or a live window.
unsafe fn window<'a>(window: *const Window) -> Result<&'a Window, Failure> {
    // SAFETY: (caller) NULL or a live window, not freed during the call.
    unsafe { window.as_ref() }.ok_or_else(|| invalid("the window is NULL"))
}

/// `FW_QUERY_CRSPACE` into `*info`.
///
/// # Safety
/// `dev` is NULL or a live device; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_query(dev: *mut Device, info: *mut MlnxHcaInfo) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let dev = unsafe { device(dev) }?;
        if info.is_null() {
            return Err(invalid("mlnx_hca_query: info is NULL"));
        }
        let q = dev.conn.query()?;
        let value = MlnxHcaInfo {
            bar0_size: q.bar0_size,
            bar1_size: q.bar1_size,
            bar2_size: q.bar2_size,
            writer_pid: q.writer_pid,
            mapping_count: q.mapping_count,
        };
        // SAFETY: (caller) writable; checked non-null.
        unsafe { info.write(value) };
        Ok(())
    })())
}

/// `mlnx_hca_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MlnxHcaInfo {
    /// CR space, bytes.
    pub bar0_size: u32,
    /// UAR, bytes.
    pub bar1_size: u32,
    /// DDR, bytes.
    pub bar2_size: u32,
    /// The lease holder, 0 if none.
    pub writer_pid: u32,
    /// This handle's live windows.
    pub mapping_count: u32,
}

// ---------------------------------------------------------------- windows

fn map(dev: &Device, offset: u32, size: u32, write: bool) -> Result<Window, Failure> {
    let conn = Arc::clone(&dev.conn);
    Ok(if write {
        Window::ReadWrite(Mapping::shared_read_write(conn, offset, size)?)
    } else {
        Window::ReadOnly(Mapping::shared_read_only(conn, offset, size)?)
    })
}

/// Maps a window; `*out` receives it.
///
/// # Safety
/// `dev` is NULL or a live device; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_map(
    dev: *mut Device,
    offset: u32,
    size: u32,
    write: c_int,
    out: *mut *mut Window,
) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let dev = unsafe { device(dev) }?;
        if out.is_null() {
            return Err(invalid("mlnx_hca_map: out is NULL"));
        }
        let window = Box::into_raw(Box::new(map(dev, offset, size, write != 0)?));
        // SAFETY: (caller) writable; checked non-null.
        unsafe { out.write(window) };
        Ok(())
    })())
}

/// Unmaps and frees a window.
///
/// # Safety
/// `window` is NULL or a window `mlnx_hca_map` returned, not unmapped before.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_unmap(window: *mut Window) -> c_int {
    finish((|| {
        if window.is_null() {
            return Ok(());
        }
        // SAFETY: (caller) the Box mlnx_hca_map leaked, taken back once.
        let window = unsafe { Box::from_raw(window) };
        match *window {
            Window::ReadOnly(m) => m.unmap()?,
            Window::ReadWrite(m) => m.unmap()?,
        }
        Ok(())
    })())
}

/// The window's first CR-space byte (0 for NULL).
///
/// # Safety
/// `window` is NULL or a live window.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_window_offset(window: *const Window) -> u32 {
    // SAFETY: (caller) as documented.
    unsafe { self::window(window) }.map_or(0, Window::offset)
}

/// The window's size in bytes (0 for NULL).
///
/// # Safety
/// `window` is NULL or a live window.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_window_size(window: *const Window) -> u32 {
    // SAFETY: (caller) as documented.
    unsafe { self::window(window) }.map_or(0, Window::size)
}

/// The addresses of `count` dwords from `addr` on, checked against the
/// window before anything is touched.
fn block_range(window: &Window, addr: u32, count: u32) -> Result<impl Iterator<Item = u32>, Failure> {
    if addr % 4 != 0 {
        return Err(Error::Unaligned { offset: addr.into() }.into());
    }
    let end = u64::from(addr) + 4 * u64::from(count);
    if count > 0 && (addr < window.offset() || end > window.end()) {
        let outside = if addr < window.offset() { addr.into() } else { window.end().max(addr.into()) };
        return Err(Error::OutsideWindow { offset: outside, start: window.offset(), end: window.end() }.into());
    }
    // CAST: the range fits u32: it lies in the window.
    Ok((0..count).map(move |i| addr + 4 * i))
}

/// Reads one dword of the window.
///
/// # Safety
/// `window` is NULL or a live window; `value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_window_read32(window: *const Window, addr: u32, value: *mut u32) -> c_int {
    // SAFETY: (caller) as documented: one dword.
    unsafe { mlnx_hca_window_read_block(window, addr, value, 1) }
}

/// Writes one dword of a read-write window.
///
/// # Safety
/// `window` is NULL or a live window.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_window_write32(window: *mut Window, addr: u32, value: u32) -> c_int {
    // SAFETY: (caller) as documented; `value` is one dword on our stack.
    unsafe { mlnx_hca_window_write_block(window, addr, &value, 1) }
}

/// Reads `count` dwords of the window into `values`.
///
/// # Safety
/// `window` is NULL or a live window; `values` is NULL or has room for
/// `count` dwords.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_window_read_block(
    window: *const Window,
    addr: u32,
    values: *mut u32,
    count: u32,
) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let window = unsafe { self::window(window) }?;
        if values.is_null() && count > 0 {
            return Err(invalid("the value buffer is NULL"));
        }
        let range = block_range(window, addr, count)?;
        if count == 0 {
            return Ok(());
        }
        // CAST: u32 fits usize on every target this library builds for.
        // SAFETY: (caller) `values` has room for `count` dwords (checked non-null).
        let out = unsafe { std::slice::from_raw_parts_mut(values, count as usize) };
        for (slot, at) in out.iter_mut().zip(range) {
            *slot = window.read(at)?;
        }
        Ok(())
    })())
}

/// Writes `count` dwords from `values` into a read-write window.
///
/// # Safety
/// `window` is NULL or a live window; `values` is NULL or holds `count`
/// dwords.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_window_write_block(
    window: *mut Window,
    addr: u32,
    values: *const u32,
    count: u32,
) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let window = unsafe { self::window(window) }?;
        let Window::ReadWrite(mapping) = window else {
            return Err(invalid("a read-only window cannot be written: map it read-write"));
        };
        if values.is_null() && count > 0 {
            return Err(invalid("the value buffer is NULL"));
        }
        let range = block_range(window, addr, count)?;
        if count == 0 {
            return Ok(());
        }
        // CAST: u32 fits usize on every target this library builds for.
        // SAFETY: (caller) `values` holds `count` dwords (checked non-null).
        let input = unsafe { std::slice::from_raw_parts(values, count as usize) };
        for (&value, at) in input.iter().zip(range) {
            mapping.write(at, value)?;
        }
        Ok(())
    })())
}

// ---------------------------------------------------------------- one-shot forms

/// The window `addr..addr + 4 * count`, checked for what the map checks.
fn one_shot(dev: &Device, addr: u32, count: u32, write: bool) -> Result<Window, Failure> {
    let size = count.checked_mul(4).ok_or(Failure::from(Error::BadLength { len: 4 * u64::from(count) }))?;
    map(dev, addr, size, write)
}

/// Reads one dword (map, read, unmap).
///
/// # Safety
/// `dev` is NULL or a live device; `value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_read32(dev: *mut Device, addr: u32, value: *mut u32) -> c_int {
    // SAFETY: (caller) as documented: one dword.
    unsafe { mlnx_hca_read_block(dev, addr, value, 1) }
}

/// Writes one dword (map read-write, write, unmap).
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_write32(dev: *mut Device, addr: u32, value: u32) -> c_int {
    // SAFETY: (caller) as documented; `value` is one dword on our stack.
    unsafe { mlnx_hca_write_block(dev, addr, &value, 1) }
}

/// Reads `count` dwords (map, read, unmap).
///
/// # Safety
/// `dev` is NULL or a live device; `values` is NULL or has room for `count`
/// dwords.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_read_block(dev: *mut Device, addr: u32, values: *mut u32, count: u32) -> c_int {
    let window = {
        // SAFETY: (caller) as documented.
        let opened = unsafe { device(dev) }.and_then(|dev| one_shot(dev, addr, count, false));
        match opened {
            Ok(window) => window,
            Err(failure) => return finish(Err(failure)),
        }
    };
    // SAFETY: `window` is alive for the call; `values` as the caller promised.
    unsafe { mlnx_hca_window_read_block(&window, addr, values, count) }
}

/// Writes `count` dwords (map read-write, write, unmap).
///
/// # Safety
/// `dev` is NULL or a live device; `values` is NULL or holds `count` dwords.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_write_block(dev: *mut Device, addr: u32, values: *const u32, count: u32) -> c_int {
    let mut window = {
        // SAFETY: (caller) as documented.
        let opened = unsafe { device(dev) }.and_then(|dev| one_shot(dev, addr, count, true));
        match opened {
            Ok(window) => window,
            Err(failure) => return finish(Err(failure)),
        }
    };
    // SAFETY: `window` is alive for the call; `values` as the caller promised.
    unsafe { mlnx_hca_window_write_block(&mut window, addr, values, count) }
}

// ---------------------------------------------------------------- the gateway (ConnectX-4 and later)

/// `mlnx_hca_device`: what `FW_QUERY_DEVICE` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MlnxHcaDevice {
    /// The PCI device id.
    pub pci_device_id: u32,
    /// The low 16 bits of CR space's dword at 0xF0014.
    pub hw_id: u32,
    /// 1: CR space is mapped (`mlnx_hca_map`); 2: through the gateway
    /// (`mlnx_hca_space_read`/`_write`).
    pub path: u32,
    /// Bit n: address space n served through the gateway.
    pub spaces: u32,
    /// The most dwords the driver moves per request (the library splits).
    pub max_count: u32,
}

/// `FW_QUERY_DEVICE` into `*out`.
///
/// # Safety
/// `dev` is NULL or a live device; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_query_device(dev: *mut Device, out: *mut MlnxHcaDevice) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let dev = unsafe { device(dev) }?;
        if out.is_null() {
            return Err(invalid("mlnx_hca_query_device: out is NULL"));
        }
        let info = crspace::gateway::query_device(dev.conn.as_ref())?;
        let value = MlnxHcaDevice {
            pci_device_id: info.pci_device_id,
            hw_id: info.hw_id,
            path: if info.gateway { crspace::abi::PATH_GATEWAY } else { crspace::abi::PATH_MAPPED },
            spaces: info.spaces,
            max_count: info.max_count,
        };
        // SAFETY: (caller) writable; checked non-null.
        unsafe { out.write(value) };
        Ok(())
    })())
}

/// `count` dwords of address space `space` from byte `addr` on, into
/// `values`, through the gateway.
///
/// # Safety
/// `dev` is NULL or a live device; `values` is NULL or has room for `count`
/// dwords.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_space_read(
    dev: *mut Device,
    space: u32,
    addr: u32,
    values: *mut u32,
    count: u32,
) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let dev = unsafe { device(dev) }?;
        if values.is_null() && count > 0 {
            return Err(invalid("mlnx_hca_space_read: values is NULL"));
        }
        if count == 0 {
            return Ok(());
        }
        // SAFETY: (caller) room for `count` dwords, not aliased during the call.
        let out = unsafe { std::slice::from_raw_parts_mut(values, count as usize) };
        crspace::gateway::read_space(dev.conn.as_ref(), space, addr, out)?;
        Ok(())
    })())
}

/// Writes `count` dwords from `values` to address space `space` from byte
/// `addr` on, through the gateway.
///
/// # Safety
/// `dev` is NULL or a live device; `values` is NULL or holds `count` dwords.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_space_write(
    dev: *mut Device,
    space: u32,
    addr: u32,
    values: *const u32,
    count: u32,
) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let dev = unsafe { device(dev) }?;
        if values.is_null() && count > 0 {
            return Err(invalid("mlnx_hca_space_write: values is NULL"));
        }
        if count == 0 {
            return Ok(());
        }
        // SAFETY: (caller) `count` dwords, alive for the call.
        let data = unsafe { std::slice::from_raw_parts(values, count as usize) };
        crspace::gateway::write_space(dev.conn.as_ref(), space, addr, data)?;
        Ok(())
    })())
}

/// Takes (`take` non-zero) or gives back the device's write lease for this
/// handle, without mapping.
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn mlnx_hca_lease(dev: *mut Device, take: c_int) -> c_int {
    finish((|| {
        // SAFETY: (caller) as documented.
        let dev = unsafe { device(dev) }?;
        crspace::gateway::lease(dev.conn.as_ref(), take != 0)?;
        Ok(())
    })())
}

// ---------------------------------------------------------------- messages

/// The general text of each status, NUL-terminated.
const TEXTS: [&str; 10] = [
    "done\0",
    "no such device, or it cannot be opened\0",
    "not allowed: a read-only handle (only administrators write), or no access to the device\0",
    "another process holds the device's write lease\0",
    "an address or length out of range: not dword aligned, past CR space or outside the window\0",
    "the device was removed\0",
    "a mapping quota is used up, or memory\0",
    "an invalid argument: a NULL pointer, a write through a read-only window, a closed handle\0",
    "the driver refused the request\0",
    "the device does not serve this (ConnectX-4 and later are not mapped; ConnectX-3 and older have no gateway)\0",
];

/// The general text of `status`.
#[no_mangle]
pub extern "C" fn mlnx_hca_strerror(status: c_int) -> *const c_char {
    let text = usize::try_from(status).ok().and_then(|i| TEXTS.get(i)).copied().unwrap_or("unknown status\0");
    text.as_ptr().cast()
}

/// The calling thread's last failure, "" after a success.
#[no_mangle]
pub extern "C" fn mlnx_hca_last_error() -> *const c_char {
    // The CString lives in the thread-local until the thread's next call
    // replaces it, which is the lifetime the header documents.
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}
