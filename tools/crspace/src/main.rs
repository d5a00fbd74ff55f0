//! `crspace`: read, write, dump and watch an mlnx_hca HCA's CR space, in the
//! habits of mstflint's `mcra` and `mstdump`. See `tools/crspace/README.md`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use crspace::abi::space;
use crspace::gateway::{self, DeviceInfo};
use crspace::{Bytes, Connection, CrAddress, DeviceId, Error, Mapping, WatchOptions, DEVICE_ID_OFFSET};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Read, write, dump and watch the CR space (BAR 0) of a Mellanox HCA
/// through the mlnx_hca driver.
#[derive(Debug, Parser)]
#[command(name = "crspace", version, max_term_width = 100)]
#[command(after_help = "Numbers are hex (0xf0014) or decimal (983060). Addresses are CR-space byte offsets \
and must be dword aligned; `read` and `write` also take a bit field, ADDR.BIT:LEN (0xf0014.0:16). Values are \
the device's (CR space is big-endian; crspace swaps). On a ConnectX-3 and older CR space is mapped; on a \
ConnectX-4 and later it is read and written through the configuration-space gateway, whose other address \
spaces --space names. Errors go to stderr; the exit code is 0 on success, 1 on an error, 2 on a usage error.")]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// Which device: the real one (Windows) or the simulated HCA.
#[derive(Debug, Args)]
struct Target {
    /// Use the simulated HCA, a ConnectX-3 (PCI 15b3:1003): 1 MiB of CR
    /// space, zero except the device id 0x000101f5 at 0xf0014. A fresh one
    /// every run, unless --sim-state.
    #[arg(long, global = true)]
    sim: bool,

    /// The address space of the gateway (ConnectX-4 and later): 2 CR space
    /// (the default), 6 CR space read without side effects, 1 and 3 ICMD,
    /// 0xa the semaphores (tool locks). `info` lists the device's.
    #[arg(long, global = true, value_name = "N", value_parser = crspace::parse_u32)]
    space: Option<u32>,

    /// The simulated HCA is a ConnectX-4 (PCI 15b3:1013, CR space behind
    /// the gateway) whose state is FILE, shared live with `sim-pci serve
    /// --device FILE` and other runs: created at power-on if missing.
    #[arg(long, global = true, value_name = "FILE", conflicts_with_all = ["sim_state", "sim_bar"])]
    sim_device: Option<PathBuf>,

    /// The device to open (Windows) [default: \\.\mlnx_hca0]
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "sim")]
    device: Option<String>,

    /// Carry the simulated CR space across runs in FILE: loaded at start (a
    /// missing file is a fresh HCA), saved after `write`. One `0xADDR
    /// 0xVALUE` line per dword that differs from power-on.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "sim_bar")]
    sim_state: Option<PathBuf>,

    /// Keep the simulated CR space in FILE (1 MiB, e.g. under /dev/shm),
    /// shared live with every other run and with mstflint's tools under
    /// tools/sim-pci: created at power-on if missing.
    #[arg(long, global = true, value_name = "FILE")]
    sim_bar: Option<PathBuf>,

    /// Another simulated process PID holds the write lease during this run.
    #[arg(long, global = true, value_name = "PID", value_parser = parse_pid)]
    sim_writer: Option<u32>,

    /// The most access the simulated device grants this tool's handle:
    /// `read` plays a user who is not an administrator.
    #[arg(long, global = true, value_name = "ACCESS")]
    sim_access: Option<SimAccessArg>,

    /// Surprise-remove the simulated HCA once this tool's handle is open.
    #[arg(long, global = true)]
    sim_removed: bool,
}

impl Target {
    /// The first `--sim-*` option given without `--sim`. (Checked here, not
    /// with clap's `requires`, which does not see a global `--sim` written
    /// before the subcommand.)
    fn sim_option_without_sim(&self) -> Option<&'static str> {
        if self.sim {
            return None;
        }
        [
            (self.sim_state.is_some(), "--sim-state"),
            (self.sim_bar.is_some(), "--sim-bar"),
            (self.sim_device.is_some(), "--sim-device"),
            (self.sim_writer.is_some(), "--sim-writer"),
            (self.sim_access.is_some(), "--sim-access"),
            (self.sim_removed, "--sim-removed"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SimAccessArg {
    /// GENERIC_READ only.
    Read,
    /// GENERIC_READ | GENERIC_WRITE (an administrator).
    ReadWrite,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read COUNT dwords from ADDR: one `0xADDR 0xVALUE` line each.
    Read {
        /// CR-space byte offset, dword aligned; ADDR.BIT:LEN reads only
        /// those bits of the dword (0xf0014.0:16: the hardware id).
        #[arg(value_parser = CrAddress::parse)]
        addr: CrAddress,
        /// Dwords to read [default: 1].
        #[arg(value_parser = parse_count)]
        count: Option<u64>,
        /// Print only the value(s), one per line, as `mcra` prints a read
        /// (for scripts: int(output, 16)).
        #[arg(long)]
        value: bool,
    },
    /// Write VALUE to the dword at ADDR, holding the write lease only for
    /// this write. ADDR.BIT:LEN writes only those bits (read-modify-write).
    Write {
        /// CR-space byte offset, dword aligned, or ADDR.BIT:LEN.
        #[arg(value_parser = CrAddress::parse)]
        addr: CrAddress,
        /// The value: 32 bits, or as many as the bit field has.
        #[arg(value_parser = crspace::parse_u32)]
        value: u32,
    },
    /// Dump LEN bytes from START: one `0xADDR 0xVALUE` line per dword.
    Dump {
        /// CR-space byte offset, dword aligned.
        #[arg(value_parser = crspace::parse_u32)]
        start: u32,
        /// Bytes, a non-zero multiple of 4.
        #[arg(value_parser = parse_number)]
        len: u64,
        /// Write the dump to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Show the device, its BAR sizes, the write lease's holder and this handle's mappings.
    Info,
    /// Print the dword at ADDR every interval (or only when it changes).
    Watch {
        /// CR-space byte offset, dword aligned.
        #[arg(value_parser = crspace::parse_u32)]
        addr: u32,
        /// Milliseconds between samples.
        #[arg(long, value_name = "MS", default_value = "1000", value_parser = parse_number)]
        interval: u64,
        /// Stop after N samples (default: run until interrupted).
        #[arg(long, value_name = "N", value_parser = parse_count)]
        count: Option<u64>,
        /// Print only the first sample and those that differ from the last printed.
        #[arg(long)]
        changes: bool,
    },
}

impl Command {
    /// Whether the command opens the device for write.
    fn writes(&self) -> bool {
        matches!(self, Command::Write { .. })
    }
}

/// Dumps at least this large show a progress bar (on a terminal).
const PROGRESS_MIN_BYTES: u64 = 64 << 10;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Device(#[from] Error),
    #[cfg(not(windows))]
    #[error("no mlnx_hca device on this OS: use --sim")]
    NoDevice,
    #[cfg(not(unix))]
    #[error("the simulated HCA (--sim) runs on Linux and other Unix systems only")]
    NoSim,
    #[error("writing the output: {0}")]
    Output(#[from] io::Error),
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(option) = cli.target.sim_option_without_sim() {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!("{option} configures the simulated HCA: add --sim"),
            )
            .exit();
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `crspace dump ... | head`: the reader has what it wanted.
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        // Found only once the arguments were combined: a usage error all the same.
        Err(e @ CliError::Usage(_)) => {
            eprintln!("crspace: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("crspace: {e}");
            if let CliError::Device(Error::Open { source, .. }) = &e {
                if source.kind() == io::ErrorKind::NotFound {
                    eprintln!("crspace: choose another device with --device PATH, or use --sim");
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    // A write, or a read of a space whose reads have effects (ICMD, the
    // semaphores), which the driver serves on a handle opened for write.
    let write = cli.command.writes() || cli.target.space.is_some_and(|n| !space::readable_by_any(n));
    if cli.target.sim {
        return run_sim(cli, write);
    }
    run_device(cli, write)
}

#[cfg(unix)]
fn run_sim(cli: &Cli, write: bool) -> Result<(), CliError> {
    use crspace::sim::{SimAccess, SimOptions, SimSession};
    let target = &cli.target;
    let options = SimOptions {
        state: target.sim_state.clone(),
        bar: target.sim_bar.clone(),
        device: target.sim_device.clone(),
        writer_pid: target.sim_writer,
        max_access: match target.sim_access {
            Some(SimAccessArg::Read) => SimAccess::Read,
            Some(SimAccessArg::ReadWrite) | None => SimAccess::ReadWrite,
        },
        removed: target.sim_removed,
    };
    let session = SimSession::start(options)?;
    let conn = session.connect(write);
    let device = match &target.sim_device {
        Some(path) => format!(
            "simulated ConnectX-4 (--sim --sim-device {}): PCI {:04x}:{:04x}",
            path.display(),
            crspace::sim::SIM_PCI_VENDOR_ID,
            crspace::sim::SIM4_PCI_DEVICE_ID
        ),
        None => format!(
            "simulated HCA (--sim{}): PCI {:04x}:{:04x}",
            target.sim_bar.as_ref().map(|p| format!(" --sim-bar {}", p.display())).unwrap_or_default(),
            crspace::sim::SIM_PCI_VENDOR_ID,
            crspace::sim::SIM_PCI_DEVICE_ID
        ),
    };
    let result = execute(&cli.command, &conn, &device, target.space);
    drop(conn);
    result?;
    if write {
        session.save()?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn run_sim(_: &Cli, _: bool) -> Result<(), CliError> {
    Err(CliError::NoSim)
}

#[cfg(windows)]
fn run_device(cli: &Cli, write: bool) -> Result<(), CliError> {
    let path = cli.target.device.as_deref().unwrap_or(crspace::DEFAULT_DEVICE);
    let handle = crspace::windows::DeviceHandle::open(path, write)?;
    execute(&cli.command, &handle, path, cli.target.space)
}

#[cfg(not(windows))]
fn run_device(_: &Cli, _: bool) -> Result<(), CliError> {
    Err(CliError::NoDevice)
}

fn execute(command: &Command, conn: &dyn Connection, device: &str, space: Option<u32>) -> Result<(), CliError> {
    // Which path the device takes: a mapped BAR 0, or the gateway's blocks
    // in a space it serves.
    let gateway = gateway_of(conn)?;
    let space = match (&gateway, space) {
        (Some(info), Some(n)) if !info.supports(n) => {
            return Err(CliError::Usage(format!(
                "--space {n:#x}: this device serves spaces {} through its gateway",
                space_list(info)
            )))
        }
        (None, Some(n)) if n != space::CR => {
            return Err(CliError::Usage(format!(
                "--space {n:#x}: this HCA (ConnectX-3 or older) maps CR space and has no other address spaces"
            )))
        }
        (_, n) => n.unwrap_or(space::CR),
    };
    let via = gateway.map(|_| space);
    match *command {
        Command::Read { addr, count, value } => read(conn, via, addr, count, value),
        Command::Write { addr, value } => write(conn, via, addr, value),
        Command::Dump { start, len, ref output } => dump(conn, via, start, len, output.as_ref()),
        Command::Info => info(conn, device, gateway.as_ref()),
        Command::Watch { addr, interval, count, changes } => {
            let options = WatchOptions { interval: Duration::from_millis(interval), count, changes_only: changes };
            watch(conn, via, addr, &options)
        }
    }
}

/// The device's gateway, or `None` for a device whose CR space is mapped
/// (also a driver that predates `FW_QUERY_DEVICE`).
fn gateway_of(conn: &dyn Connection) -> Result<Option<DeviceInfo>, CliError> {
    match gateway::query_device(conn) {
        Ok(info) => Ok(info.gateway.then_some(info)),
        Err(Error::Driver { status, .. }) if status == crspace::Status::INVALID_DEVICE_REQUEST => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// "0x1 ICMD (extended), 0x2 CR space, ...".
fn space_list(info: &DeviceInfo) -> String {
    info.space_list().map(|n| format!("{n:#x} {}", gateway::space_name(n))).collect::<Vec<_>>().join(", ")
}

/// `count` dwords from `start` of a gateway space, `out` called with each
/// block of values in turn (at most 1024 dwords at a time).
fn for_each_block(
    conn: &dyn Connection,
    space: u32,
    start: u32,
    count: u64,
    mut out: impl FnMut(u32, &[u32]) -> Result<(), CliError>,
) -> Result<(), CliError> {
    if start % 4 != 0 {
        return Err(Error::Unaligned { offset: start.into() }.into());
    }
    let end = u64::from(start) + 4 * count;
    if end > 1 << 30 {
        return Err(Error::PastGateway { offset: start.into(), end }.into());
    }
    let mut block = vec![0u32; 1024];
    let mut at = start;
    let mut left = count;
    while left > 0 {
        // CAST: at most 1024.
        let n = left.min(1024) as usize;
        gateway::read_space(conn, space, at, &mut block[..n])?;
        out(at, &block[..n])?;
        // CAST: inside the gateway's 30 bits (checked above).
        at += 4 * n as u32;
        left -= n as u64;
    }
    Ok(())
}

fn read(
    conn: &dyn Connection,
    via: Option<u32>,
    addr: CrAddress,
    count: Option<u64>,
    value_only: bool,
) -> Result<(), CliError> {
    if !addr.field.is_whole() && count.is_some() {
        return Err(CliError::Usage(format!("a bit field ({addr}) reads one dword: drop COUNT")));
    }
    let count = count.unwrap_or(1);
    if let Some(space) = via {
        let mut out = BufWriter::new(io::stdout().lock());
        for_each_block(conn, space, addr.offset, count, |at, values| {
            for (i, &dword) in values.iter().enumerate() {
                let value = addr.field.extract(dword);
                // CAST: i < 1024.
                let offset = at + 4 * i as u32;
                if value_only {
                    writeln!(out, "{value:#010x}")?;
                } else {
                    writeln!(out, "{} {value:#010x}", CrAddress { offset, field: addr.field })?;
                }
            }
            Ok(())
        })?;
        out.flush()?;
        return Ok(());
    }
    // A count whose bytes overflow reaches past the end like any too large one
    // (the largest multiple of 4, not a length that only looks unaligned).
    let size = window_size(conn, addr.offset, count.checked_mul(4).unwrap_or(u64::MAX - 3))?;
    let mapping = Mapping::read_only(conn, addr.offset, size)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for offset in dword_offsets(addr.offset, size) {
        let value = addr.field.extract(mapping.read(offset)?);
        if value_only {
            writeln!(out, "{value:#010x}")?;
        } else {
            writeln!(out, "{} {value:#010x}", CrAddress { offset, field: addr.field })?;
        }
    }
    out.flush()?;
    Ok(())
}

fn write(conn: &dyn Connection, via: Option<u32>, addr: CrAddress, value: u32) -> Result<(), CliError> {
    // Checked before the device is touched: a value too wide for its field.
    addr.field.insert(0, value).map_err(CliError::Usage)?;
    if let Some(space) = via {
        // The write lease for the read-modify-write, as a read-write
        // mapping holds it: no other tool writes in between.
        gateway::lease(conn, true)?;
        let result = (|| -> Result<(), CliError> {
            let mut dword = [value];
            if !addr.field.is_whole() {
                gateway::read_space(conn, space, addr.offset, &mut dword)?;
                dword[0] = addr.field.insert(dword[0], value).map_err(CliError::Usage)?;
            }
            gateway::write_space(conn, space, addr.offset, &dword)?;
            Ok(())
        })();
        let given_back = gateway::lease(conn, false);
        result?;
        given_back?;
        return Ok(());
    }
    let mapping = Mapping::read_write(conn, addr.offset, 4)?;
    let dword = if addr.field.is_whole() { value } else { mapping.read(addr.offset)? };
    mapping.write(addr.offset, addr.field.insert(dword, value).map_err(CliError::Usage)?)?;
    // Ends the lease now, and says so if the driver disagrees.
    mapping.unmap()?;
    Ok(())
}

fn dump(
    conn: &dyn Connection,
    via: Option<u32>,
    start: u32,
    len: u64,
    output: Option<&PathBuf>,
) -> Result<(), CliError> {
    if let Some(space) = via {
        if len == 0 || len % 4 != 0 {
            return Err(Error::BadLength { len }.into());
        }
        let mut sink = open_output(output)?;
        for_each_block(conn, space, start, len / 4, |at, values| {
            for (i, value) in values.iter().enumerate() {
                // CAST: i < 1024.
                writeln!(sink, "{:#010x} {value:#010x}", at + 4 * i as u32).map_err(|e| output_error(output, e))?;
            }
            Ok(())
        })?;
        sink.flush().map_err(|e| output_error(output, e))?;
        return Ok(());
    }
    let size = window_size(conn, start, len)?;
    let mapping = Mapping::read_only(conn, start, size)?;
    let progress = (io::stderr().is_terminal() && u64::from(size) >= PROGRESS_MIN_BYTES).then(|| {
        let bar = ProgressBar::new(size.into());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut sink = open_output(output)?;
    let file_error = |source: io::Error| output_error(output, source);
    for (index, offset) in dword_offsets(start, size).enumerate() {
        writeln!(sink, "{offset:#010x} {:#010x}", mapping.read(offset)?).map_err(file_error)?;
        if let Some(bar) = &progress {
            if index % 1024 == 1023 {
                bar.inc(4096);
            }
        }
    }
    sink.flush().map_err(file_error)?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(())
}

/// The dump's sink: FILE, or stdout.
fn open_output(output: Option<&PathBuf>) -> Result<Box<dyn Write>, CliError> {
    Ok(match output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|source| Error::File { path: path.clone(), source })?;
            Box::new(BufWriter::new(file))
        }
        None => Box::new(BufWriter::new(io::stdout().lock())),
    })
}

/// A failed write of the dump, named by its file.
fn output_error(output: Option<&PathBuf>, source: io::Error) -> CliError {
    match output {
        Some(path) => Error::File { path: path.clone(), source }.into(),
        None => source.into(),
    }
}

fn info(conn: &dyn Connection, device: &str, gateway: Option<&DeviceInfo>) -> Result<(), CliError> {
    let info = conn.query()?;
    let dword = match gateway {
        Some(_) => {
            let mut dword = [0];
            gateway::read_space(conn, space::CR, DEVICE_ID_OFFSET, &mut dword)?;
            dword[0]
        }
        None => Mapping::read_only(conn, DEVICE_ID_OFFSET, 4)?.read(DEVICE_ID_OFFSET)?,
    };
    let id = DeviceId::from_dword(dword);
    let lease = match info.writer_pid {
        0 => "none".to_string(),
        pid => format!("held by process {pid}"),
    };
    let mut out = io::stdout().lock();
    writeln!(out, "device            {device}")?;
    writeln!(out, "hardware id       {id}")?;
    match gateway {
        Some(g) => {
            writeln!(out, "CR space          through the configuration-space gateway (BAR 0 is not CR space)")?;
            writeln!(out, "address spaces    {}", space_list(g))?;
            writeln!(out, "BAR 0             {} ({:#010x}), never mapped", Bytes(info.bar0_size), info.bar0_size)?;
        }
        None => writeln!(out, "BAR 0 (CR space)  {} ({:#010x})", Bytes(info.bar0_size), info.bar0_size)?,
    }
    writeln!(out, "BAR 1 (UAR)       {} ({:#010x})", Bytes(info.bar1_size), info.bar1_size)?;
    writeln!(out, "BAR 2 (DDR)       {} ({:#010x})", Bytes(info.bar2_size), info.bar2_size)?;
    writeln!(out, "write lease       {lease}")?;
    writeln!(out, "this handle       {} mapping(s)", info.mapping_count)?;
    Ok(())
}

fn watch(conn: &dyn Connection, via: Option<u32>, addr: u32, options: &WatchOptions) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    if let Some(space) = via {
        let read = || {
            let mut dword = [0];
            gateway::read_space(conn, space, addr, &mut dword).map(|()| dword[0])
        };
        return crspace::watch_with(read, options, |value| -> Result<(), CliError> {
            writeln!(out, "{addr:#010x} {value:#010x}")?;
            out.flush()?;
            Ok(())
        });
    }
    let mapping = Mapping::read_only(conn, addr, 4)?;
    crspace::watch(&mapping, addr, options, |value| -> Result<(), CliError> {
        writeln!(out, "{addr:#010x} {value:#010x}")?;
        out.flush()?;
        Ok(())
    })
}

/// The size in bytes of a window of `len` bytes at `addr`, as the map
/// request's `u32`: refuses an unaligned start, a length that is not whole
/// dwords, and (asking the device for its size) a window that cannot fit.
fn window_size(conn: &dyn Connection, addr: u32, len: u64) -> Result<u32, CliError> {
    if addr % 4 != 0 {
        return Err(Error::Unaligned { offset: addr.into() }.into());
    }
    if len == 0 || len % 4 != 0 {
        return Err(Error::BadLength { len }.into());
    }
    match u32::try_from(len) {
        Ok(size) => Ok(size),
        Err(_) => {
            let bar0_size = conn.query()?.bar0_size;
            Err(Error::PastEnd { offset: addr.max(bar0_size).into(), bar0_size }.into())
        }
    }
}

/// The offset of each dword of a mapped window (which lies inside CR space,
/// so no offset overflows).
fn dword_offsets(start: u32, size: u32) -> impl Iterator<Item = u32> {
    (0..size / 4).map(move |index| start + 4 * index)
}

fn parse_number(text: &str) -> Result<u64, String> {
    crspace::parse_u64(text)
}

fn parse_count(text: &str) -> Result<u64, String> {
    match crspace::parse_u64(text)? {
        0 => Err("must be at least 1".to_string()),
        n => Ok(n),
    }
}

fn parse_pid(text: &str) -> Result<u32, String> {
    match crspace::parse_u32(text)? {
        0 => Err("pid 0 means 'nobody': give the simulated writer a real pid".to_string()),
        n => Ok(n),
    }
}
