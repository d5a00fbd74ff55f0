//! The simulated HCA (`mlnx_hca::sim`) as a backend, and the sessions the
//! CLI's `--sim` mode builds around it.
//!
//! The simulated HCA runs the driver's real core; its BAR 0 is shared memory
//! and every view a real `mmap` with real page protections, so a
//! [`Mapping`](crate::Mapping) over a [`SimConnection`] reads and writes
//! memory exactly as it would a driver's view on Windows.
//!
//! A simulated HCA lives as long as the process that made it. A
//! [`SimSession`] adds what a command-line session needs on top:
//! CR space carried from one run to the next in a state file, another
//! process holding the write lease, a user who is not an administrator, a
//! device removed under the tool.

#![forbid(unsafe_code)]

use crate::abi::{MapCrSpaceIn, FW_MAP_CRSPACE_RW};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::number::parse_u32;
use crate::status::Status;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use mlnx_hca::core::Config;
pub use mlnx_hca::sim::{
    SimAccess, SimHandle, SimHca, SimModel, SIM4_DEVICE_ID, SIM4_PCI_DEVICE_ID, SIM_BAR0_SIZE, SIM_BAR1_SIZE,
    SIM_BAR2_SIZE, SIM_DEVICE_ID, SIM_DEVICE_ID_OFFSET, SIM_PCI_DEVICE_ID, SIM_PCI_VENDOR_ID,
};

/// An open handle on a simulated HCA, as one simulated process.
pub struct SimConnection {
    handle: SimHandle,
}

impl SimConnection {
    /// Opens `hca` as this process (its real pid), granted `access`.
    pub fn open(hca: &SimHca, access: SimAccess) -> SimConnection {
        Self::open_as(hca, std::process::id(), access)
    }

    /// Opens `hca` as simulated process `pid`, granted `access`.
    pub fn open_as(hca: &SimHca, pid: u32, access: SimAccess) -> SimConnection {
        SimConnection { handle: hca.open(pid, access) }
    }

    /// The simulator's handle (its pid, `duplicate`, ...).
    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }
}

impl Connection for SimConnection {
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, Status> {
        self.handle.ioctl(code, input, output).map_err(Status::from_raw)
    }
}

/// How a [`SimSession`] sets up its simulated HCA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// Load CR space from this file when the session starts, and write it
    /// back on [`SimSession::save`]. A missing file is a fresh HCA.
    pub state: Option<PathBuf>,
    /// Keep CR space in this file, shared live with every other process
    /// that uses it (other sessions, mstflint's tools under
    /// `tools/sim-pci`): see [`SimHca::with_bar_file`]. Exclusive of
    /// `state`.
    pub bar: Option<PathBuf>,
    /// The simulated ConnectX-4 instead, whose whole state (configuration
    /// space, the gateway, every address space) is this file, shared live
    /// with every other process that uses it (`sim-pci serve --device`): see
    /// [`SimHca::with_device_file`]. Exclusive of `state` and `bar`.
    pub device: Option<PathBuf>,
    /// Another simulated process with this pid holds the write lease for the
    /// whole session (it maps a dword read-write at offset 0; on the
    /// ConnectX-4 it takes the lease with `FW_LEASE_CRSPACE`).
    pub writer_pid: Option<u32>,
    /// The most the tool's handle is granted: [`SimAccess::Read`] plays a
    /// user who is not an administrator, whose handle can only read.
    pub max_access: SimAccess,
    /// Surprise-remove the HCA as soon as the tool's handle is open.
    pub removed: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            state: None,
            bar: None,
            device: None,
            writer_pid: None,
            max_access: SimAccess::ReadWrite,
            removed: false,
        }
    }
}

/// A simulated HCA set up for one run of a tool.
pub struct SimSession {
    hca: SimHca,
    /// The other process's handle that holds the lease, if asked for.
    writer: Option<SimHandle>,
    options: SimOptions,
}

/// First line of a state file.
const STATE_HEADER: &str =
    "# crspace simulated CR space: device values of the dwords that differ from power-on (0, and 0x000101f5 at 0xf0014)";

impl SimSession {
    /// A started simulated HCA with `options` applied: CR space loaded, the
    /// other writer holding the lease.
    pub fn start(options: SimOptions) -> Result<SimSession> {
        let hca = match (&options.device, &options.bar) {
            (Some(path), _) => SimHca::with_device_file(path, Config::DEFAULT)
                .map_err(|source| Error::File { path: path.clone(), source })?,
            (None, Some(path)) => SimHca::with_bar_file(path, Config::DEFAULT)
                .map_err(|source| Error::File { path: path.clone(), source })?,
            (None, None) => SimHca::new(),
        };
        if let Some(path) = &options.state {
            load_state(&hca, path)?;
        }
        let writer = match options.writer_pid {
            Some(pid) => Some(take_lease(&hca, pid)?),
            None => None,
        };
        Ok(SimSession { hca, writer, options })
    }

    /// Opens the tool's handle, as this process: read-write only if `write`
    /// and the options let this user write. With `removed`, the HCA is then
    /// surprise-removed, so every request on the handle fails as on a
    /// removed device.
    pub fn connect(&self, write: bool) -> SimConnection {
        let access = match (write, self.options.max_access) {
            (true, SimAccess::ReadWrite) => SimAccess::ReadWrite,
            _ => SimAccess::Read,
        };
        let conn = SimConnection::open(&self.hca, access);
        if self.options.removed {
            self.hca.surprise_remove();
        }
        conn
    }

    /// The simulated HCA.
    pub fn hca(&self) -> &SimHca {
        &self.hca
    }

    /// The pid of the other process holding the lease, if there is one.
    pub fn writer_pid(&self) -> Option<u32> {
        self.writer.as_ref().map(SimHandle::pid)
    }

    /// Writes CR space to the state file, if the session has one: one
    /// `0xADDR 0xVALUE` line (the format of `crspace dump`) per dword that
    /// differs from power-on. The file is replaced whole, never half written.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.options.state else { return Ok(()) };
        let file_error = |source| Error::File { path: path.clone(), source };
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let mut out = BufWriter::new(fs::File::create(&tmp).map_err(file_error)?);
        writeln!(out, "{STATE_HEADER}").map_err(file_error)?;
        for offset in (0..SIM_BAR0_SIZE).step_by(4) {
            let value = self.hca.read_dword(offset);
            if value != power_on(offset) {
                writeln!(out, "{offset:#010x} {value:#010x}").map_err(file_error)?;
            }
        }
        out.into_inner().map_err(|e| file_error(e.into_error()))?.sync_all().map_err(file_error)?;
        fs::rename(&tmp, path).map_err(file_error)
    }
}

/// The value of a CR-space dword when the simulated HCA starts.
fn power_on(offset: u32) -> u32 {
    if offset == SIM_DEVICE_ID_OFFSET {
        SIM_DEVICE_ID
    } else {
        0
    }
}

/// Writes the dwords of a state file into CR space, from the device's side.
fn load_state(hca: &SimHca, path: &Path) -> Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::File { path: path.to_path_buf(), source }),
    };
    for (index, line) in text.lines().enumerate() {
        let bad = |what: String| Error::BadStateFile { path: path.to_path_buf(), line: index + 1, what };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(addr), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad(format!("expected 'ADDR VALUE', found '{line}'")));
        };
        let addr = parse_u32(addr).map_err(&bad)?;
        let value = parse_u32(value).map_err(&bad)?;
        if addr % 4 != 0 || addr >= SIM_BAR0_SIZE {
            return Err(bad(format!("{addr:#x} is not a dword of CR space (0..{SIM_BAR0_SIZE:#x})")));
        }
        hca.write_dword(addr, value);
    }
    Ok(())
}

/// Another simulated process maps one dword read-write and so holds the
/// write lease until its handle closes.
fn take_lease(hca: &SimHca, pid: u32) -> Result<SimHandle> {
    let handle = hca.open(pid, SimAccess::ReadWrite);
    if hca.model() == SimModel::ConnectX4 {
        handle
            .ioctl(crate::abi::FW_LEASE_CRSPACE, &1u32.to_le_bytes(), &mut [])
            .map_err(|status| Error::from_status("FW_LEASE_CRSPACE", Status::from_raw(status)))?;
        return Ok(handle);
    }
    let map = MapCrSpaceIn { bar_num: 0, offset: 0, size: 4 };
    handle
        .ioctl(FW_MAP_CRSPACE_RW, &map.to_bytes(), &mut [0u8; 8])
        .map_err(|status| Error::from_status("FW_MAP_CRSPACE_RW", Status::from_raw(status)))?;
    Ok(handle)
}
