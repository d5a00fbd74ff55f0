//! `sim-pci`: runs an unmodified Linux tool (mstflint's `mstmcra`,
//! `mstregdump`, ...) with the simulated HCA as a PCI device, without
//! touching the machine's own `/sys`:
//!
//! 1. a private mount namespace (`unshare(CLONE_NEWNS)`, propagation private),
//!    in which an empty tmpfs hides `/sys/bus/pci/devices` and
//!    `/proc/bus/pci`: the simulated HCA is the only PCI device there;
//! 2. its directory, `/sys/bus/pci/devices/<BDF>/`, as mstflint's mtcr reads
//!    it: `vendor`, `device`, `class`, `config` (the configuration header,
//!    read-only) and `resource0`, a placeholder of BAR 0's size whose
//!    contents are never used;
//! 3. the tool, with `libmlnx_hca_sim_pci.so` preloaded: its `mmap` of that
//!    `resource0` becomes a map request to the simulated HCA's driver, whose
//!    CR space is the shared file `--bar` (the same as `crspace --sim
//!    --sim-bar`).
//!
//! With `--cx4` the device is the simulated ConnectX-4 instead, whose CR
//! space is behind the configuration-space gateway: its driver runs in a
//! `sim-pci serve` process (one driver, many tools, as on Windows), and the
//! tool's `/dev/<BDF>_mstconf` (the node mstflint's kernel module makes) is
//! served through it by the same preload library.
//!
//! Needs root (mount namespaces; mstflint's tools also refuse anyone else).

#[cfg(target_os = "linux")]
mod env;
#[cfg(target_os = "linux")]
mod wire;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    match linux::run() {
        Ok(never) => match never {},
        Err(why) => {
            eprintln!("sim-pci: {why}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("sim-pci: Linux only (mount namespaces, sysfs)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{env, wire};
    use crspace::sim::{SIM_BAR0_SIZE, SIM_PCI_DEVICE_ID, SIM_PCI_VENDOR_ID};
    use mlnx_hca::core::Config;
    use mlnx_hca::sim::{FirmwareAgent, SimAccess, SimHca, SIM4_PCI_DEVICE_ID};
    use rustix::mount::{mount, mount_bind, mount_change, mount_remount, MountFlags, MountPropagationFlags};
    use rustix::thread::UnshareFlags;
    use std::convert::Infallible;
    use std::ffi::OsString;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};

    const USAGE: &str = "\
usage: sim-pci [--bdf BDF] [--bar FILE] [--writer PID] [--access read|read-write] [--log FILE] COMMAND [ARG...]
       sim-pci --cx4 [--socket PATH] [--bdf BDF] COMMAND [ARG...]
       sim-pci serve [--socket PATH] [--device FILE] [--agent SEED] [--access read]
       sim-pci read [--socket PATH] SPACE OFFSET

Runs COMMAND with the simulated HCA (a ConnectX-3, PCI 15b3:1003) as the only PCI
device, at BDF (default 0000:ca:00.0), e.g.:
  sim-pci mstmcra 0000:ca:00.0 0xf0014
  sim-pci mstregdump 0000:ca:00.0

  --bar FILE       simulated CR space, shared with `crspace --sim --sim-bar FILE`
                   (default /dev/shm/mlnx_hca-sim.bar; created at power-on if missing)
  --writer PID     another process PID holds the write lease during the run
  --access read    the tool's handle may only read (a user who is not an administrator)
  --log FILE       append the driver requests the tool caused to FILE

With --cx4 the device is the simulated ConnectX-4 (PCI 15b3:1013), CR space behind
the configuration-space gateway: the tool's /dev/BDF_mstconf (mstflint's kernel
module's node) is served by the driver that `sim-pci serve` runs:
  sim-pci serve --agent 7 &
  sim-pci --cx4 mstmcra 0000:ca:00.0 0xf0014
  --socket PATH    the driver's socket (default /run/mlnx_hca-sim4.sock)

serve: runs the simulated ConnectX-4's driver until killed; each connection is a
handle (read-write for root, read-only for anyone else), closed when the tool ends.
  --device FILE    the device's state, kept across runs (default /dev/shm/mlnx_hca-sim4.dev)
  --agent SEED     a firmware agent takes the gateway at random moments (seeded)
  --access read    every handle may only read

read: one dword of an address space of the ConnectX-4 (2: CR space, 0xa: the
semaphore space, ...) through the driver, as a handle of its own: e.g. who holds
a tool lock.";

    /// The default shared CR space.
    const DEFAULT_BAR: &str = "/dev/shm/mlnx_hca-sim.bar";
    const DEFAULT_BDF: &str = "0000:ca:00.0";
    const DEFAULT_SOCKET: &str = "/run/mlnx_hca-sim4.sock";
    const DEFAULT_DEVICE: &str = "/dev/shm/mlnx_hca-sim4.dev";
    const PRELOAD: &str = "libmlnx_hca_sim_pci.so";

    #[derive(Debug)]
    struct Options {
        cx4: bool,
        socket: PathBuf,
        bdf: String,
        bar: PathBuf,
        writer: Option<String>,
        access: Option<String>,
        log: Option<PathBuf>,
        command: Vec<OsString>,
    }

    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Options, String> {
        let mut options = Options {
            cx4: false,
            socket: PathBuf::from(DEFAULT_SOCKET),
            bdf: DEFAULT_BDF.to_string(),
            bar: PathBuf::from(DEFAULT_BAR),
            writer: None,
            access: None,
            log: None,
            command: Vec::new(),
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"));
            match arg.to_str() {
                Some("--cx4") => options.cx4 = true,
                Some("--socket") => options.socket = value("--socket")?.into(),
                Some("--bdf") => options.bdf = value("--bdf")?.to_string_lossy().into_owned(),
                Some("--bar") => options.bar = value("--bar")?.into(),
                Some("--writer") => options.writer = Some(value("--writer")?.to_string_lossy().into_owned()),
                Some("--access") => options.access = Some(value("--access")?.to_string_lossy().into_owned()),
                Some("--log") => options.log = Some(value("--log")?.into()),
                Some("-h" | "--help") => return Err(USAGE.to_string()),
                Some(flag) if flag.starts_with("--") => return Err(format!("unknown option {flag}\n\n{USAGE}")),
                _ => {
                    options.command.push(arg);
                    options.command.extend(args);
                    break;
                }
            }
        }
        if options.command.is_empty() {
            return Err(format!("no COMMAND given\n\n{USAGE}"));
        }
        if !is_bdf(&options.bdf) {
            return Err(format!("--bdf {}: write a PCI address as DDDD:BB:DD.F, e.g. {DEFAULT_BDF}", options.bdf));
        }
        if let Some(pid) = &options.writer {
            if !matches!(pid.parse::<u32>(), Ok(n) if n > 0) {
                return Err(format!("--writer {pid}: give the pid of the process that holds the lease"));
            }
        }
        if let Some(access) = &options.access {
            if access != "read" && access != "read-write" {
                return Err(format!("--access {access}: use read or read-write"));
            }
        }
        if options.cx4 && (options.writer.is_some() || options.access.is_some() || options.log.is_some()) {
            return Err("--writer, --access and --log are the ConnectX-3's; the ConnectX-4's driver is \
                        `sim-pci serve`'s (its --access)"
                .to_string());
        }
        Ok(options)
    }

    /// `DDDD:BB:DD.F` in hex, as Linux names PCI devices.
    fn is_bdf(text: &str) -> bool {
        let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
        let parts: Vec<&str> = text.split([':', '.']).collect();
        matches!(parts.as_slice(), [d, b, s, f] if hex(d, 4) && hex(b, 2) && hex(s, 2) && hex(f, 1))
    }

    /// The 256-byte configuration header of the simulated HCA with PCI
    /// device id `device`: its ids, memory decoding and bus mastering on,
    /// class 0x0c06 (InfiniBand).
    fn config_space(device: u16) -> Vec<u8> {
        let mut config = vec![0u8; 256];
        config[0..2].copy_from_slice(&SIM_PCI_VENDOR_ID.to_le_bytes());
        config[2..4].copy_from_slice(&device.to_le_bytes());
        config[4..6].copy_from_slice(&0x0006u16.to_le_bytes());
        config[0x0a] = 0x06;
        config[0x0b] = 0x0c;
        config
    }

    /// The message for a failed step: what it was about, and the system's error.
    fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
        move |e| format!("{what}: {e}")
    }

    /// `sim-pci serve ...` or the launcher.
    pub fn run() -> Result<Infallible, String> {
        let mut args = std::env::args_os().skip(1).peekable();
        if args.peek().is_some_and(|a| a == "serve") {
            args.next();
            return serve(parse_serve(args)?);
        }
        if args.peek().is_some_and(|a| a == "read") {
            args.next();
            let (socket, space, offset) = parse_read(args)?;
            println!("{:#010x}", read_dword(&socket, space, offset)?);
            std::process::exit(0);
        }
        launch(parse(args)?)
    }

    fn parse_read(mut args: impl Iterator<Item = OsString>) -> Result<(PathBuf, u32, u32), String> {
        let mut socket = PathBuf::from(DEFAULT_SOCKET);
        let mut numbers = Vec::new();
        while let Some(arg) = args.next() {
            if arg == "--socket" {
                socket = args.next().ok_or("--socket needs a value")?.into();
                continue;
            }
            let text = arg.to_string_lossy();
            let number = crspace::parse_u32(&text).map_err(|e| format!("read: {text}: {e}\n\n{USAGE}"))?;
            numbers.push(number);
        }
        match numbers[..] {
            [space, offset] => Ok((socket, space, offset)),
            _ => Err(format!("read: give SPACE and OFFSET\n\n{USAGE}")),
        }
    }

    /// `FW_READ_CRSPACE_BLOCK` of one dword, on a handle of its own.
    fn read_dword(socket: &Path, space: u32, offset: u32) -> Result<u32, String> {
        let mut stream = UnixStream::connect(socket).map_err(io(socket.display()))?;
        let mut input = Vec::new();
        for word in [space, offset, 1] {
            input.extend_from_slice(&word.to_le_bytes());
        }
        wire::send_request(&mut stream, mlnx_hca::abi::FW_READ_CRSPACE_BLOCK, &input, 4)
            .and_then(|()| wire::receive_answer(&mut stream, 4))
            .map_err(io("the driver"))
            .and_then(|(status, output)| match (status, <[u8; 4]>::try_from(output.as_slice())) {
                (0, Ok(bytes)) => Ok(u32::from_le_bytes(bytes)),
                (0, Err(_)) => Err("the driver answered fewer than 4 bytes".to_string()),
                (status, _) => {
                    Err(crspace::Error::from_status("FW_READ_CRSPACE_BLOCK", crspace::Status::from_raw(status as i32))
                        .to_string())
                }
            })
    }

    #[derive(Debug)]
    struct ServeOptions {
        socket: PathBuf,
        device: PathBuf,
        agent: Option<u64>,
        read_only: bool,
    }

    fn parse_serve(mut args: impl Iterator<Item = OsString>) -> Result<ServeOptions, String> {
        let mut options = ServeOptions {
            socket: PathBuf::from(DEFAULT_SOCKET),
            device: PathBuf::from(DEFAULT_DEVICE),
            agent: None,
            read_only: false,
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"));
            match arg.to_str() {
                Some("--socket") => options.socket = value("--socket")?.into(),
                Some("--device") => options.device = value("--device")?.into(),
                Some("--agent") => {
                    let seed = value("--agent")?;
                    let seed = seed.to_str().and_then(|s| s.parse::<u64>().ok());
                    options.agent = Some(seed.ok_or("--agent: give a seed, a number")?);
                }
                Some("--access") => match value("--access")?.to_str() {
                    Some("read") => options.read_only = true,
                    Some("read-write") => options.read_only = false,
                    _ => return Err("--access: use read or read-write".to_string()),
                },
                Some("-h" | "--help") => return Err(USAGE.to_string()),
                _ => return Err(format!("serve: unknown argument {}\n\n{USAGE}", arg.to_string_lossy())),
            }
        }
        Ok(options)
    }

    /// Runs the simulated ConnectX-4's driver, serving each connection to
    /// the socket as one handle, until killed.
    fn serve(options: ServeOptions) -> Result<Infallible, String> {
        let hca = SimHca::with_device_file(&options.device, Config::DEFAULT).map_err(io(options.device.display()))?;
        let agent = std::sync::Arc::new(options.agent.map(|seed| hca.start_firmware_agent(seed)));
        match std::fs::remove_file(&options.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", options.socket.display())),
        }
        let listener = UnixListener::bind(&options.socket).map_err(io(options.socket.display()))?;
        // Root's alone: mtcr's tools run as root, and the handle's rights
        // come from the peer's credentials.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&options.socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io(options.socket.display()))?;
        eprintln!(
            "sim-pci: serving the simulated ConnectX-4 ({}) on {}{}",
            options.device.display(),
            options.socket.display(),
            options.agent.map(|seed| format!(", firmware agent seed {seed}")).unwrap_or_default()
        );
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    let (hca, agent) = (hca.clone(), agent.clone());
                    let read_only = options.read_only;
                    std::thread::spawn(move || serve_handle(&hca, stream, read_only, agent.as_ref().as_ref()));
                }
                Err(e) => eprintln!("sim-pci: accept: {e}"),
            }
        }
        Err("the socket stopped accepting".to_string())
    }

    /// One connection: a handle of the peer process (read-write for root,
    /// unless every handle is read-only), its requests, and its close when
    /// the connection ends, however the tool ended.
    fn serve_handle(hca: &SimHca, mut stream: UnixStream, read_only: bool, agent: Option<&FirmwareAgent>) {
        let Ok(peer) = rustix::net::sockopt::socket_peercred(&stream) else { return };
        let pid = peer.pid.as_raw_nonzero().get().unsigned_abs();
        let access = if read_only || !peer.uid.is_root() { SimAccess::Read } else { SimAccess::ReadWrite };
        let handle = hca.open(pid, access);
        let mut requests = 0u64;
        while let Ok(Some((code, input, output_len))) = wire::receive_request(&mut stream) {
            requests += 1;
            let mut output = vec![0u8; output_len as usize];
            let sent = match handle.ioctl(code, &input, &mut output) {
                Ok(written) => wire::send_answer(&mut stream, 0, &output[..written]),
                Err(status) => wire::send_answer(&mut stream, status as u32, &[]),
            };
            if sent.is_err() {
                break;
            }
        }
        // The handle's close: its cleanup gives back its tool locks and lease.
        drop(handle);
        let agent = agent.map(|a| format!("; the firmware agent has held the gateway {} time(s)", a.held()));
        eprintln!("sim-pci: process {pid}: handle closed after {requests} request(s){}", agent.unwrap_or_default());
    }

    /// The namespace, the device, then the tool (this process becomes it).
    fn launch(options: Options) -> Result<Infallible, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("needs root: it makes a private mount namespace (and mstflint's tools refuse anyone \
                        but root)"
                .to_string());
        }
        let exe = std::env::current_exe().map_err(io("where is sim-pci"))?;
        let preload = exe.with_file_name(PRELOAD);
        if !preload.is_file() {
            return Err(format!("{} is missing: build it with `cargo build -p sim-pci`", preload.display()));
        }
        if let Some(dir) = options.bar.parent() {
            if !options.cx4 && !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(format!("--bar {}: {} is not a directory", options.bar.display(), dir.display()));
            }
        }
        if options.cx4 && UnixStream::connect(&options.socket).is_err() {
            return Err(format!(
                "--cx4: no driver at {}: start `sim-pci serve --socket {}` first",
                options.socket.display(),
                options.socket.display()
            ));
        }
        let device = if options.cx4 { SIM4_PCI_DEVICE_ID } else { SIM_PCI_DEVICE_ID };

        // SAFETY: only CLONE_NEWNS (no CLONE_FILES), in this single-threaded
        // process before anything else runs.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }.map_err(io("unshare(CLONE_NEWNS)"))?;
        mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
            .map_err(io("making the mount namespace private"))?;
        let devices = Path::new("/sys/bus/pci/devices");
        mount("mlnx_hca_sim", devices, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, c"mode=0755")
            .map_err(io(devices.display()))?;
        let proc_pci = Path::new("/proc/bus/pci");
        if proc_pci.is_dir() {
            mount("mlnx_hca_sim", proc_pci, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, c"mode=0555")
                .map_err(io(proc_pci.display()))?;
        }

        let dir = devices.join(&options.bdf);
        std::fs::create_dir(&dir).map_err(io(dir.display()))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(io(path.display()))
        };
        write("vendor", format!("{SIM_PCI_VENDOR_ID:#06x}\n").as_bytes())?;
        write("device", format!("{device:#06x}\n").as_bytes())?;
        write("class", b"0x0c0600\n")?;
        write("config", &config_space(device))?;
        if !options.cx4 {
            // As sysfs shows it: the size of BAR 0 (a sparse file of nothing:
            // its contents are never read, only its mmap is served). A
            // ConnectX-4's BAR 0 is not CR space: no tool gets it here.
            write("resource0", b"")?;
            let resource0 = dir.join("resource0");
            std::fs::File::options()
                .write(true)
                .open(&resource0)
                .and_then(|file| file.set_len(u64::from(SIM_BAR0_SIZE)))
                .map_err(io(resource0.display()))?;
        }
        // Reading the configuration header is all a tool may do with it: a
        // tool that could not map CR space must not fall back to "pciconf"
        // access through a file that only looks like configuration space.
        let config = dir.join("config");
        mount_bind(&config, &config).map_err(io(config.display()))?;
        mount_remount(&config, MountFlags::BIND | MountFlags::RDONLY, "").map_err(io(config.display()))?;

        let mut command = std::process::Command::new(&options.command[0]);
        command.args(&options.command[1..]);
        if options.cx4 {
            command.env(env::SOCKET, &options.socket).env(env::BDF, &options.bdf);
            command.env_remove(env::RESOURCE0).env_remove(env::BAR);
        } else {
            command.env(env::RESOURCE0, dir.join("resource0")).env(env::BAR, &options.bar);
            command.env_remove(env::SOCKET).env_remove(env::BDF);
        }
        for (name, value) in [(env::WRITER, &options.writer), (env::ACCESS, &options.access)] {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        match &options.log {
            Some(log) => command.env(env::LOG, log),
            None => command.env_remove(env::LOG),
        };
        let mut ld_preload = preload.into_os_string();
        if let Some(more) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
            ld_preload.push(" ");
            ld_preload.push(more);
        }
        command.env("LD_PRELOAD", ld_preload);
        let error = command.exec();
        Err(format!("cannot run {}: {error}", PathBuf::from(&options.command[0]).display()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn addresses_and_options() {
            assert!(is_bdf("0000:ca:00.0"));
            assert!(!is_bdf("ca:00.0"));
            assert!(!is_bdf("0000:ca:00.8x"));
            let args = |a: &[&str]| parse(a.iter().map(OsString::from));
            let o = args(&["--writer", "4242", "mstmcra", "--writer", "x"]).unwrap();
            assert_eq!(o.writer.as_deref(), Some("4242"));
            assert_eq!(o.command, ["mstmcra", "--writer", "x"], "the tool's own arguments are left alone");
            assert!(args(&[]).unwrap_err().contains("no COMMAND"));
            assert!(args(&["--writer", "0", "x"]).unwrap_err().contains("the pid of the process"));
            assert!(args(&["--access", "all", "x"]).unwrap_err().contains("use read or read-write"));
            assert!(args(&["--bdf", "1:2", "x"]).unwrap_err().contains("DDDD:BB:DD.F"));
            assert!(args(&["--nope", "x"]).unwrap_err().contains("unknown option --nope"));
            let o = args(&["--cx4", "--socket", "/tmp/s", "mstmcra"]).unwrap();
            assert!(o.cx4 && o.socket == Path::new("/tmp/s"));
            assert!(args(&["--cx4", "--writer", "7", "x"]).unwrap_err().contains("ConnectX-3's"));
            let serve = |a: &[&str]| parse_serve(a.iter().map(OsString::from));
            let o = serve(&["--agent", "7", "--access", "read"]).unwrap();
            assert_eq!((o.agent, o.read_only), (Some(7), true));
            assert!(serve(&["--agent", "x"]).unwrap_err().contains("a seed"));
            assert!(serve(&["mstmcra"]).unwrap_err().contains("unknown argument"));
        }

        #[test]
        fn the_configuration_header_names_the_device() {
            let config = config_space(SIM_PCI_DEVICE_ID);
            assert_eq!(config.len(), 256);
            assert_eq!(u32::from_le_bytes(config[0..4].try_into().unwrap()), 0x1003_15b3);
            let config = config_space(SIM4_PCI_DEVICE_ID);
            assert_eq!(u32::from_le_bytes(config[0..4].try_into().unwrap()), 0x1013_15b3);
            assert_eq!(config[0x0b], 0x0c, "serial bus controller");
            assert_eq!(config[0x0a], 0x06, "InfiniBand");
        }
    }
}
