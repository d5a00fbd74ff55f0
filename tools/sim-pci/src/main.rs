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
//! Needs root (mount namespaces; mstflint's tools also refuse anyone else).

#[cfg(target_os = "linux")]
mod env;

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
    use super::env;
    use crspace::sim::{SIM_BAR0_SIZE, SIM_PCI_DEVICE_ID, SIM_PCI_VENDOR_ID};
    use rustix::mount::{mount, mount_bind, mount_change, mount_remount, MountFlags, MountPropagationFlags};
    use rustix::thread::UnshareFlags;
    use std::convert::Infallible;
    use std::ffi::OsString;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};

    const USAGE: &str = "\
usage: sim-pci [--bdf BDF] [--bar FILE] [--writer PID] [--access read|read-write] [--log FILE] COMMAND [ARG...]

Runs COMMAND with the simulated HCA (a ConnectX-3, PCI 15b3:1003) as the only PCI
device, at BDF (default 0000:ca:00.0), e.g.:
  sim-pci mstmcra 0000:ca:00.0 0xf0014
  sim-pci mstregdump 0000:ca:00.0

  --bar FILE       simulated CR space, shared with `crspace --sim --sim-bar FILE`
                   (default /dev/shm/mlnx_hca-sim.bar; created at power-on if missing)
  --writer PID     another process PID holds the write lease during the run
  --access read    the tool's handle may only read (a user who is not an administrator)
  --log FILE       append the driver requests the tool caused to FILE";

    /// The default shared CR space.
    const DEFAULT_BAR: &str = "/dev/shm/mlnx_hca-sim.bar";
    const DEFAULT_BDF: &str = "0000:ca:00.0";
    const PRELOAD: &str = "libmlnx_hca_sim_pci.so";

    #[derive(Debug)]
    struct Options {
        bdf: String,
        bar: PathBuf,
        writer: Option<String>,
        access: Option<String>,
        log: Option<PathBuf>,
        command: Vec<OsString>,
    }

    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Options, String> {
        let mut options = Options {
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
        Ok(options)
    }

    /// `DDDD:BB:DD.F` in hex, as Linux names PCI devices.
    fn is_bdf(text: &str) -> bool {
        let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
        let parts: Vec<&str> = text.split([':', '.']).collect();
        matches!(parts.as_slice(), [d, b, s, f] if hex(d, 4) && hex(b, 2) && hex(s, 2) && hex(f, 1))
    }

    /// The 256-byte configuration header of the simulated HCA: its ids,
    /// memory decoding and bus mastering on, class 0x0c06 (InfiniBand).
    fn config_space() -> Vec<u8> {
        let mut config = vec![0u8; 256];
        config[0..2].copy_from_slice(&SIM_PCI_VENDOR_ID.to_le_bytes());
        config[2..4].copy_from_slice(&SIM_PCI_DEVICE_ID.to_le_bytes());
        config[4..6].copy_from_slice(&0x0006u16.to_le_bytes());
        config[0x0a] = 0x06;
        config[0x0b] = 0x0c;
        config
    }

    /// The message for a failed step: what it was about, and the system's error.
    fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
        move |e| format!("{what}: {e}")
    }

    /// The namespace, the device, then the tool (this process becomes it).
    pub fn run() -> Result<Infallible, String> {
        let options = parse(std::env::args_os().skip(1))?;
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
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(format!("--bar {}: {} is not a directory", options.bar.display(), dir.display()));
            }
        }

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
        write("device", format!("{SIM_PCI_DEVICE_ID:#06x}\n").as_bytes())?;
        write("class", b"0x0c0600\n")?;
        write("config", &config_space())?;
        // As sysfs shows it: the size of BAR 0 (a sparse file of nothing:
        // its contents are never read, only its mmap is served).
        write("resource0", b"")?;
        let resource0 = dir.join("resource0");
        std::fs::File::options()
            .write(true)
            .open(&resource0)
            .and_then(|file| file.set_len(u64::from(SIM_BAR0_SIZE)))
            .map_err(io(resource0.display()))?;
        // Reading the configuration header is all a tool may do with it: a
        // tool that could not map CR space must not fall back to "pciconf"
        // access through a file that only looks like configuration space.
        let config = dir.join("config");
        mount_bind(&config, &config).map_err(io(config.display()))?;
        mount_remount(&config, MountFlags::BIND | MountFlags::RDONLY, "").map_err(io(config.display()))?;

        let mut command = std::process::Command::new(&options.command[0]);
        command.args(&options.command[1..]);
        command.env(env::RESOURCE0, dir.join("resource0")).env(env::BAR, &options.bar);
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
        }

        #[test]
        fn the_configuration_header_names_a_connectx3() {
            let config = config_space();
            assert_eq!(config.len(), 256);
            assert_eq!(u32::from_le_bytes(config[0..4].try_into().unwrap()), 0x1003_15b3);
            assert_eq!(config[0x0b], 0x0c, "serial bus controller");
            assert_eq!(config[0x0a], 0x06, "InfiniBand");
        }
    }
}
