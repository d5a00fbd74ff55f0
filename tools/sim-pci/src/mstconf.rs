//! The simulated ConnectX-4 as mstflint's kernel module shows a ConnectX-4
//! to mtcr: the device node `/dev/<BDF>_mstconf` and its ioctls, served
//! through the driver's own block requests (`FW_READ_CRSPACE_BLOCK`,
//! `FW_WRITE_CRSPACE_BLOCK`, `FW_QUERY_DEVICE`) on a handle of the
//! simulated driver in the `sim-pci serve` process ([`crate::wire`]).
//!
//! Facts (mstflint 4.21, `mtcr_ul_com.c` and `kernel/mst.h`, checked
//! against Debian's binaries): for a BDF name mtcr tries
//! `access("/dev/<BDF>_mstcr")`, then `access("/dev/<BDF>_mstconf")`; with
//! the second it opens it (`open64`, `O_RDWR | O_SYNC`), asks `MST_PARAMS`
//! (a non-zero `vendor_specific_cap` makes it use the gateway's spaces,
//! CR space first) and then sends, each with `{address_space, offset}`:
//! `MST_READ4`, `MST_WRITE4` (one dword) and `PCICONF_READ4_BUFFER`,
//! `PCICONF_WRITE4_BUFFER` (up to 256 bytes). The module takes the
//! gateway's semaphore, selects the space and moves the dwords for each
//! request, which is exactly what one block request of the driver does.
//! Values are the device's, no byte swap. A block returns its size; a
//! failure is -1 with an `errno`.
//!
//! Only this process's own descriptor of the node is served; every other
//! `access`, `open`, `ioctl` and `close` goes to the C library.

use crate::wire;
use libc::{c_int, c_ulong, c_void};
use mlnx_hca::abi::{
    space, FW_QUERY_DEVICE, FW_READ_CRSPACE_BLOCK, FW_WRITE_CRSPACE_BLOCK, MAX_BLOCK_DWORDS, PATH_GATEWAY,
};
use mlnx_hca::status::Status;
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock};

/// `_IOR(0xD0, 1, struct mst_params)`: 40 bytes.
pub const MST_PARAMS: c_ulong = 0x8028_D001;
/// `_IOR(0xD1, 1, struct mst_read4_st)`: `{address_space, offset, data}`.
pub const MST_READ4: c_ulong = 0x800C_D101;
/// `_IOW(0xD1, 2, struct mst_write4_st)`.
pub const MST_WRITE4: c_ulong = 0x400C_D102;
/// `_IOR(0xD2, 3, struct mst_read4_buffer_st)`: `{address_space, offset,
/// size, data[64]}`, 268 bytes.
pub const PCICONF_READ4_BUFFER: c_ulong = 0x810C_D203;
/// `_IOW(0xD2, 4, struct mst_write4_buffer_st)`.
pub const PCICONF_WRITE4_BUFFER: c_ulong = 0x410C_D204;

/// What the served node is: its path, the socket of the driver, the BDF.
struct Node {
    path: Vec<u8>,
    socket: std::path::PathBuf,
    bdf: [u32; 4],
}

/// The node this process serves, from the environment the launcher set
/// (`MLNX_HCA_SIM_SOCKET`, `MLNX_HCA_SIM_BDF`); `None`: none.
fn node() -> Option<&'static Node> {
    static NODE: OnceLock<Option<Node>> = OnceLock::new();
    NODE.get_or_init(|| {
        let socket = std::env::var_os(crate::env::SOCKET)?;
        let bdf_text = std::env::var(crate::env::BDF).ok()?;
        let parts: Vec<u32> =
            bdf_text.split([':', '.']).map(|p| u32::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
        let bdf: [u32; 4] = parts.try_into().ok()?;
        Some(Node { path: format!("/dev/{bdf_text}_mstconf").into_bytes(), socket: socket.into(), bdf })
    })
    .as_ref()
}

/// Whether `path` names the served node.
pub fn is_node(path: *const libc::c_char) -> bool {
    let Some(node) = node() else { return false };
    if path.is_null() {
        return false;
    }
    // SAFETY: the caller's NUL-terminated path (the C library's contract).
    unsafe { CStr::from_ptr(path) }.to_bytes() == node.path
}

/// This process's open descriptors of the node: each a connection to the
/// driver, i.e. a handle. The lock also keeps one request at a time on a
/// connection.
static OPEN: Mutex<Option<HashMap<c_int, UnixStream>>> = Mutex::new(None);

fn open_set() -> std::sync::MutexGuard<'static, Option<HashMap<c_int, UnixStream>>> {
    OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `open` of the node: a new handle (a connection); its descriptor, or
/// `Err(errno)`.
pub fn open() -> Result<c_int, c_int> {
    let node = node().ok_or(libc::ENOENT)?;
    let stream = UnixStream::connect(&node.socket).map_err(|e| {
        eprintln!(
            "mlnx_hca sim-pci: cannot reach the simulated ConnectX-4's driver at {}: {e} (is `sim-pci serve` \
             running?)",
            node.socket.display()
        );
        libc::ENODEV
    })?;
    let fd = stream.as_raw_fd();
    open_set().get_or_insert_with(HashMap::new).insert(fd, stream);
    Ok(fd)
}

/// `close` of a descriptor: whether it was one of the node's, now
/// forgotten here (either way the caller closes it with the C library's
/// `close`: for the node's, that ends the connection, the handle's close).
/// The connection leaves the set as a raw descriptor: dropping it here
/// would call `close`, i.e. this library again, under the set's lock.
pub fn forget(fd: c_int) -> bool {
    use std::os::fd::IntoRawFd;
    let stream = open_set().as_mut().and_then(|set| set.remove(&fd));
    stream.map(IntoRawFd::into_raw_fd).is_some()
}

/// Whether `fd` is one of the node's.
pub fn is_open(fd: c_int) -> bool {
    open_set().as_ref().is_some_and(|set| set.contains_key(&fd))
}

/// One request on the connection `fd`: the driver's status and output.
fn request(fd: c_int, code: u32, input: &[u8], output_len: u32) -> Result<Vec<u8>, c_int> {
    let mut set = open_set();
    let stream = set.as_mut().and_then(|s| s.get_mut(&fd)).ok_or(libc::EBADF)?;
    let answer =
        wire::send_request(stream, code, input, output_len).and_then(|()| wire::receive_answer(stream, output_len));
    match answer {
        Ok((0, output)) => Ok(output),
        Ok((status, _)) => Err(errno_of(Status::from_raw(status as i32))),
        Err(e) => {
            eprintln!("mlnx_hca sim-pci: the connection to the driver broke: {e}");
            Err(libc::EIO)
        }
    }
}

/// The `errno` a tool sees for a driver status (the module's, where it has
/// one: `EBUSY`, `EOPNOTSUPP`, `ENODEV`), with a line on stderr in the
/// driver's words: mtcr's own messages only show `strerror`.
fn errno_of(status: Status) -> c_int {
    let errno = match status {
        Status::DEVICE_BUSY | Status::IO_TIMEOUT => libc::EBUSY,
        Status::NOT_SUPPORTED => libc::EOPNOTSUPP,
        Status::ACCESS_DENIED => libc::EACCES,
        Status::INVALID_PARAMETER | Status::BUFFER_TOO_SMALL => libc::EINVAL,
        Status::DELETE_PENDING => libc::ENODEV,
        Status::FILE_CLOSED => libc::EBADF,
        _ => libc::EIO,
    };
    eprintln!(
        "mlnx_hca sim-pci: the driver refused: {} (0x{:08x}): {}",
        status.name().unwrap_or("an unnamed status"),
        status.raw() as u32,
        status.explanation()
    );
    errno
}

/// `MLNX_HCA_SIM_STOP_AT_LOCK` set: the tool has just written a lock value
/// into the semaphore space for the first time; it stops itself (`SIGSTOP`)
/// right there, once, so that a check can kill it while it holds the lock,
/// at a moment it knows rather than guesses (or let it go on with
/// `SIGCONT`).
fn stop_if_asked(offset: u32, value: u32) {
    static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if std::env::var_os(crate::env::STOP_AT_LOCK).is_none() || STOPPED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    eprintln!(
        "mlnx_hca sim-pci: process {} wrote {value:#x} to the semaphore space at {offset:#x}: stopping ({})",
        std::process::id(),
        crate::env::STOP_AT_LOCK
    );
    // SAFETY: raise() has no preconditions; the process stops until SIGCONT or SIGKILL.
    unsafe { libc::raise(libc::SIGSTOP) };
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn block_in(space: u32, offset: u32, count: u32) -> [u8; 12] {
    let mut input = [0u8; 12];
    input[0..4].copy_from_slice(&space.to_le_bytes());
    input[4..8].copy_from_slice(&offset.to_le_bytes());
    input[8..12].copy_from_slice(&count.to_le_bytes());
    input
}

/// An `ioctl` on one of the node's descriptors: the value the C call
/// returns, or `Err(errno)`.
///
/// # Safety
/// `arg` points to the request's structure (its size is in `request`), as
/// the C library's `ioctl` would require.
pub unsafe fn ioctl(fd: c_int, request_code: c_ulong, arg: *mut c_void) -> Result<c_int, c_int> {
    // The structure's size, from the request code's size field (_IOC_SIZE).
    let size = ((request_code >> 16) & 0x3FFF) as usize;
    let known =
        matches!(request_code, MST_PARAMS | MST_READ4 | MST_WRITE4 | PCICONF_READ4_BUFFER | PCICONF_WRITE4_BUFFER);
    if !known {
        return Err(libc::EINVAL); // the module's "incorrect opcode"
    }
    if arg.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: (caller) `arg` holds the request's structure, `size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(arg.cast::<u8>(), size) };
    match request_code {
        MST_PARAMS => {
            let out = request(fd, FW_QUERY_DEVICE, &[], 24)?;
            if out.len() != 24 {
                return Err(libc::EIO);
            }
            let (device, path, spaces) = (u32_at(&out, 0), u32_at(&out, 8), u32_at(&out, 12));
            let need = (1 << space::ICMD_EXT) | (1 << space::CR) | (1 << space::SEMAPHORE);
            // The capability's offset is the driver's business: mtcr only
            // asks whether it is there (non-zero), and uses the gateway then.
            let vsc = if path == PATH_GATEWAY && spaces & need == need { 0x60 } else { 0 };
            let node = node().ok_or(libc::ENODEV)?;
            let fields = [node.bdf[0], node.bdf[1], node.bdf[2], node.bdf[3], 0, device, 0x15B3, 0, 0, vsc];
            for (i, value) in fields.iter().enumerate() {
                bytes[4 * i..4 * i + 4].copy_from_slice(&value.to_le_bytes());
            }
            Ok(0)
        }
        MST_READ4 => {
            let out = request(fd, FW_READ_CRSPACE_BLOCK, &block_in(u32_at(bytes, 0), u32_at(bytes, 4), 1), 4)?;
            bytes[8..12].copy_from_slice(out.get(..4).ok_or(libc::EIO)?);
            Ok(0)
        }
        MST_WRITE4 => {
            let (space, offset, value) = (u32_at(bytes, 0), u32_at(bytes, 4), u32_at(bytes, 8));
            let mut input = block_in(space, offset, 1).to_vec();
            input.extend_from_slice(&bytes[8..12]);
            request(fd, FW_WRITE_CRSPACE_BLOCK, &input, 0)?;
            if space == space::SEMAPHORE && value != 0 {
                stop_if_asked(offset, value);
            }
            Ok(0)
        }
        _ => {
            // The buffer forms: {address_space, offset, int size, data[64]}.
            let len = u32_at(bytes, 8) as i32;
            if len < 0 || len % 4 != 0 || len as u32 > 4 * MAX_BLOCK_DWORDS {
                return Err(libc::EINVAL);
            }
            let count = len as u32 / 4;
            if count == 0 {
                return Ok(0);
            }
            let head = block_in(u32_at(bytes, 0), u32_at(bytes, 4), count);
            if request_code == PCICONF_READ4_BUFFER {
                let out = request(fd, FW_READ_CRSPACE_BLOCK, &head, 4 * count)?;
                if out.len() != len as usize {
                    return Err(libc::EIO);
                }
                bytes[12..12 + out.len()].copy_from_slice(&out);
            } else {
                let mut input = head.to_vec();
                input.extend_from_slice(&bytes[12..12 + len as usize]);
                request(fd, FW_WRITE_CRSPACE_BLOCK, &input, 0)?;
            }
            Ok(len)
        }
    }
}
