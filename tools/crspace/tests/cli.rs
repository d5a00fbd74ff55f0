//! The `crspace` binary against the simulated HCA: what a person sees on
//! stdout and stderr, and the exit code, for each command and each error.

#![cfg(unix)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn crspace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crspace"))
}

/// `crspace ARGS...`
fn plain(args: &[&str]) -> Command {
    let mut cmd = crspace();
    cmd.args(args);
    cmd
}

/// `crspace --sim ARGS...`
fn sim(args: &[&str]) -> Command {
    let mut cmd = crspace();
    cmd.arg("--sim").args(args);
    cmd
}

/// A session whose CR space lives in a state file, as in the README.
struct Session {
    _dir: TempDir,
    state: PathBuf,
}

impl Session {
    fn new() -> Session {
        let dir = TempDir::new().unwrap();
        let state = dir.path().join("hca.state");
        Session { _dir: dir, state }
    }

    fn run(&self, args: &[&str]) -> Command {
        let mut cmd = sim(&["--sim-state", self.state.to_str().unwrap()]);
        cmd.args(args);
        cmd
    }

    fn write(&self, addr: &str, value: &str) {
        self.run(&["write", addr, value]).assert().success().stdout("").stderr("");
    }
}

/// The command fails with exit code 1, nothing on stdout, and exactly this
/// one line on stderr.
fn fails_with(mut cmd: Command, message: &str) {
    cmd.assert().code(1).stdout("").stderr(format!("crspace: {message}\n"));
}

/// The command is refused as a usage error (exit code 2) mentioning `text`.
fn usage_error(mut cmd: Command, text: &str) {
    let out = cmd.assert().code(2).stdout("").get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(text), "stderr {stderr:?} lacks {text:?}");
}

#[test]
fn read_prints_the_device_id() {
    sim(&["read", "0xf0014"]).assert().success().stdout("0x000f0014 0x000101f5\n").stderr("");
    // Decimal addresses, and --sim after the command, work the same.
    crspace().args(["read", "983060", "--sim"]).assert().success().stdout("0x000f0014 0x000101f5\n");
}

#[test]
fn read_count_prints_one_line_per_dword() {
    sim(&["read", "0xf0010", "3"])
        .assert()
        .success()
        .stdout("0x000f0010 0x00000000\n0x000f0014 0x000101f5\n0x000f0018 0x00000000\n");
}

#[test]
fn write_then_read_back() {
    let session = Session::new();
    session.write("0x100", "0xdeadbeef");
    session.run(&["read", "0x100"]).assert().success().stdout("0x00000100 0xdeadbeef\n").stderr("");
    session.write("0x100", "42");
    session
        .run(&["read", "0xfc", "3"])
        .assert()
        .success()
        .stdout("0x000000fc 0x00000000\n0x00000100 0x0000002a\n0x00000104 0x00000000\n");
    assert_eq!(
        std::fs::read_to_string(&session.state).unwrap(),
        "# crspace simulated CR space: device values of the dwords that differ from power-on (0, and 0x000101f5 at 0xf0014)\n\
         0x00000100 0x0000002a\n"
    );
    // Without the state file every run is a fresh HCA.
    sim(&["read", "0x100"]).assert().success().stdout("0x00000100 0x00000000\n");
}

#[test]
fn dump_prints_every_dword_of_the_range() {
    let session = Session::new();
    session.write("0xf0000", "0x11111111");
    session.write("0xf0008", "0x22222222");
    session.write("0xf001c", "0xcafef00d");
    session.write("0xf0020", "0x33333333"); // just past the range
    session.write("0xf0014", "0x00a05a45"); // over the device id
    let expected = "\
0x000f0000 0x11111111
0x000f0004 0x00000000
0x000f0008 0x22222222
0x000f000c 0x00000000
0x000f0010 0x00000000
0x000f0014 0x00a05a45
0x000f0018 0x00000000
0x000f001c 0xcafef00d
";
    session.run(&["dump", "0xf0000", "0x20"]).assert().success().stdout(expected).stderr("");

    let file = session.state.with_file_name("dump.txt");
    session.run(&["dump", "0xf0000", "32", "-o", file.to_str().unwrap()]).assert().success().stdout("").stderr("");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
}

#[test]
fn dump_of_all_of_cr_space() {
    // stderr is not a terminal here: no progress bar, nothing but the lines.
    let out = sim(&["dump", "0", "0x100000"]).assert().success().stderr("").get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 0x100000 / 4);
    for (index, line) in lines.iter().enumerate() {
        let addr = index * 4;
        let value = if addr == 0xf0014 { 0x000101f5 } else { 0 };
        assert_eq!(*line, format!("{addr:#010x} {value:#010x}"));
    }
}

#[test]
fn info_shows_bars_and_the_lease_holder() {
    sim(&["--sim-writer", "4242", "info"]).assert().success().stderr("").stdout(
        "device            simulated HCA (--sim): PCI 15b3:1003\n\
         hardware id       0x01f5 (ConnectX-3), revision 0x01\n\
         BAR 0 (CR space)  1 MiB (0x00100000)\n\
         BAR 1 (UAR)       8 MiB (0x00800000)\n\
         BAR 2 (DDR)       256 MiB (0x10000000)\n\
         write lease       held by process 4242\n\
         this handle       0 mapping(s)\n",
    );
    let out = sim(&["info"]).assert().success().get_output().stdout.clone();
    assert!(String::from_utf8(out).unwrap().contains("write lease       none\n"));
}

#[test]
fn bit_fields_read_and_write_only_their_bits() {
    sim(&["read", "0xf0014.0:16"]).assert().success().stdout("0x000f0014.0:16 0x000001f5\n").stderr("");
    sim(&["read", "0xf0014.16:8"]).assert().success().stdout("0x000f0014.16:8 0x00000001\n");
    let session = Session::new();
    session.write("0x100", "0x12345678");
    session.write("0x100.8:8", "0xab");
    session.run(&["read", "0x100"]).assert().success().stdout("0x00000100 0x1234ab78\n");
    session.write("0x100.31:1", "0");
    session.run(&["read", "0x100"]).assert().success().stdout("0x00000100 0x1234ab78\n");
    session.write("0x100.28:4", "0x9");
    session.run(&["read", "0x100"]).assert().success().stdout("0x00000100 0x9234ab78\n");
    // Refused before the device is touched: nothing changes, no lease is taken.
    usage_error(session.run(&["write", "0x100.8:8", "0x100"]), "value 0x100 does not fit in 8 bit(s) (at most 0xff)");
    usage_error(session.run(&["read", "0x100.30:8"]), "bit field 30:8 is past bit 31");
    usage_error(session.run(&["write", "0x100.32:1", "0"]), "bit field 32:1 is past bit 31");
    usage_error(session.run(&["read", "0x100.0:8", "2"]), "a bit field (0x00000100.0:8) reads one dword: drop COUNT");
    usage_error(session.run(&["read", "0x100.8"]), "ADDR.BIT:LEN");
    session.run(&["read", "0x100"]).assert().success().stdout("0x00000100 0x9234ab78\n");
    fails_with(session.run(&["write", "0x102.0:8", "1"]), "offset 0x102 is not dword aligned");
}

#[test]
fn value_prints_only_the_value_as_mcra_does() {
    sim(&["read", "--value", "0xf0014"]).assert().success().stdout("0x000101f5\n").stderr("");
    sim(&["read", "--value", "0xf0014.0:16"]).assert().success().stdout("0x000001f5\n");
    sim(&["read", "--value", "0xf0010", "3"]).assert().success().stdout("0x00000000\n0x000101f5\n0x00000000\n");
    // What scripts do with it: int(output, 16).
    let out = sim(&["read", "--value", "0xf0014"]).output().unwrap().stdout;
    let text = String::from_utf8(out).unwrap();
    assert_eq!(u32::from_str_radix(text.trim().trim_start_matches("0x"), 16), Ok(0x0001_01F5));
}

#[test]
fn a_shared_bar_file_is_one_cr_space_for_every_run() {
    let dir = TempDir::new().unwrap();
    let bar = dir.path().join("hca.bar");
    let bar = bar.to_str().unwrap();
    sim(&["--sim-bar", bar, "write", "0x100", "0xfeedf00d"]).assert().success().stdout("").stderr("");
    sim(&["--sim-bar", bar, "read", "0x100"]).assert().success().stdout("0x00000100 0xfeedf00d\n");
    sim(&["--sim-bar", bar, "read", "0xf0014"]).assert().success().stdout("0x000f0014 0x000101f5\n");
    // The file holds CR space as the bus does: big-endian.
    let raw = std::fs::read(bar).unwrap();
    assert_eq!(raw.len(), 1 << 20);
    assert_eq!(raw[0x100..0x104], [0xfe, 0xed, 0xf0, 0x0d]);
    sim(&["read", "0x100"]).assert().success().stdout("0x00000100 0x00000000\n");
    usage_error(sim(&["--sim-bar", bar, "--sim-state", "x", "read", "0"]), "cannot be used with");
    usage_error(plain(&["--sim-bar", bar, "read", "0"]), "--sim-bar configures the simulated HCA: add --sim");
    std::fs::write(dir.path().join("small"), b"12").unwrap();
    let small = dir.path().join("small");
    fails_with(
        sim(&["--sim-bar", small.to_str().unwrap(), "read", "0"]),
        &format!("{}: {} is not a simulated BAR 0: 2 bytes, not 1048576", display(&small), display(&small)),
    );
}

#[test]
fn readers_go_on_while_another_process_writes() {
    sim(&["--sim-writer", "4242", "read", "0xf0014"]).assert().success().stdout("0x000f0014 0x000101f5\n");
}

#[test]
fn watch_prints_each_sample_or_only_changes() {
    sim(&["watch", "0xf0014", "--interval", "1", "--count", "3"])
        .assert()
        .success()
        .stdout("0x000f0014 0x000101f5\n".repeat(3))
        .stderr("");
    sim(&["watch", "0xf0014", "--interval", "1", "--count", "3", "--changes"])
        .assert()
        .success()
        .stdout("0x000f0014 0x000101f5\n");
}

#[test]
fn unaligned_addresses_are_refused() {
    fails_with(sim(&["read", "0x100003"]), "offset 0x100003 is not dword aligned");
    fails_with(sim(&["write", "0x102", "1"]), "offset 0x102 is not dword aligned");
    fails_with(sim(&["dump", "0x2", "4"]), "offset 0x2 is not dword aligned");
    fails_with(sim(&["watch", "0xf0015", "--count", "1"]), "offset 0xf0015 is not dword aligned");
    fails_with(sim(&["dump", "0", "6"]), "length 0x6 is not a non-zero multiple of 4 bytes");
}

#[test]
fn ranges_past_cr_space_are_refused() {
    let past = "offset 0x100000 is past the end of CR space (1 MiB)";
    fails_with(sim(&["read", "0x100000"]), past);
    fails_with(sim(&["read", "0xffffc", "2"]), past);
    fails_with(sim(&["dump", "0xff000", "0x2000"]), past);
    fails_with(sim(&["dump", "0", "0x200000000"]), past);
    fails_with(sim(&["read", "0", "0x200000000"]), past);
    fails_with(sim(&["read", "0", "0x4000000000000000"]), past);
    fails_with(sim(&["write", "0x100000", "1"]), past);
    fails_with(sim(&["read", "0xfffffffc"]), "offset 0xfffffffc is past the end of CR space (1 MiB)");
    // The last dword is fine.
    sim(&["read", "0xffffc"]).assert().success().stdout("0x000ffffc 0x00000000\n");
}

#[test]
fn busy_names_the_process_holding_the_lease() {
    let session = Session::new();
    fails_with(
        session.run(&["--sim-writer", "4242", "write", "0x100", "5"]),
        "busy: process 4242 holds the write lease",
    );
    session.run(&["read", "0x100"]).assert().success().stdout("0x00000100 0x00000000\n");
}

#[test]
fn a_read_only_handle_cannot_write() {
    let session = Session::new();
    fails_with(
        session.run(&["--sim-access", "read", "write", "0x100", "5"]),
        "read-only handle: run as Administrator to write",
    );
    session.run(&["read", "0x100"]).assert().success().stdout("0x00000100 0x00000000\n");
    // Reading needs no more than read access.
    sim(&["--sim-access", "read", "read", "0xf0014"]).assert().success().stdout("0x000f0014 0x000101f5\n");
}

#[test]
fn a_removed_device_says_so() {
    let removed = "the device was removed: close the tools using it and retry once the HCA is back";
    fails_with(sim(&["--sim-removed", "read", "0xf0014"]), removed);
    fails_with(sim(&["--sim-removed", "info"]), removed);
    fails_with(sim(&["--sim-removed", "write", "0x100", "1"]), removed);
}

#[test]
fn without_sim_there_is_no_device_on_this_os() {
    fails_with(plain(&["read", "0xf0014"]), "no mlnx_hca device on this OS: use --sim");
    fails_with(plain(&["--device", r"\\.\mlnx_hca1", "info"]), "no mlnx_hca device on this OS: use --sim");
}

#[test]
fn usage_errors_exit_with_2() {
    usage_error(sim(&["read", "0", "0"]), "must be at least 1");
    usage_error(sim(&["read", "0xzz"]), "'0xzz' is not a number");
    usage_error(sim(&["write", "0x100", "0x100000000"]), "does not fit in 32 bits");
    usage_error(plain(&["--sim-writer", "4242", "info"]), "--sim-writer configures the simulated HCA: add --sim");
    usage_error(sim(&["--sim-writer", "0", "info"]), "pid 0 means 'nobody'");
    usage_error(sim(&["--device", "x", "info"]), "cannot be used with");
    usage_error(sim(&[]), "Usage");
}

#[test]
fn a_bad_state_file_is_reported_with_its_line() {
    let session = Session::new();
    std::fs::write(&session.state, "# comment\n0x100 0x5\n0x101 0x6\n").unwrap();
    let message = format!("{}:3: 0x101 is not a dword of CR space (0..0x100000)", display(&session.state));
    fails_with(session.run(&["read", "0x100"]), &message);
    std::fs::write(&session.state, "0x100\n").unwrap();
    let message = format!("{}:1: expected 'ADDR VALUE', found '0x100'", display(&session.state));
    fails_with(session.run(&["read", "0x100"]), &message);
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// `crspace --sim --sim-device FILE ARGS...`: the simulated ConnectX-4.
fn cx4(device: &Path, args: &[&str]) -> Command {
    let mut cmd = sim(&["--sim-device", device.to_str().unwrap()]);
    cmd.args(args);
    cmd
}

#[test]
fn a_connectx4_is_read_and_written_through_its_gateway() {
    let dir = TempDir::new().unwrap();
    let dev = dir.path().join("cx4.dev");
    cx4(&dev, &["read", "0xf0014"]).assert().success().stdout("0x000f0014 0x00000209\n");
    cx4(&dev, &["write", "0x100", "0xdeadbeef"]).assert().success().stdout("").stderr("");
    cx4(&dev, &["write", "0x104.8:8", "0xab"]).assert().success().stdout("").stderr("");
    // No byte swap: the gateway carries values, and the next run sees them.
    cx4(&dev, &["read", "0x100", "2"]).assert().success().stdout("0x00000100 0xdeadbeef\n0x00000104 0x0000ab00\n");
    cx4(&dev, &["read", "--value", "0x104.8:8"]).assert().success().stdout("0x000000ab\n");
    cx4(&dev, &["dump", "0xf0010", "8"]).assert().success().stdout("0x000f0010 0x00000000\n0x000f0014 0x00000209\n");
    // A dump longer than one request (64 dwords) and than one block of output.
    let out = cx4(&dev, &["dump", "0", "0x2000"]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 0x800);
    assert_eq!(text.lines().nth(0x40), Some("0x00000100 0xdeadbeef"));
    // A value written into the semaphore space is a tool lock: the driver
    // gives it back when the run's handle closes.
    cx4(&dev, &["--space", "0xa", "write", "0x10", "7"]).assert().success();
    cx4(&dev, &["--space", "0xa", "read", "0x10"]).assert().success().stdout("0x00000010 0x00000000\n");
    cx4(&dev, &["watch", "0xf0014", "--count", "2", "--interval", "1"])
        .assert()
        .success()
        .stdout("0x000f0014 0x00000209\n0x000f0014 0x00000209\n");
}

#[test]
fn info_of_a_connectx4_names_its_path_and_spaces() {
    let dir = TempDir::new().unwrap();
    let dev = dir.path().join("cx4.dev");
    let out = cx4(&dev, &["info"]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("hardware id       0x0209 (ConnectX-4)"), "{text}");
    assert!(text.contains("through the configuration-space gateway"), "{text}");
    assert!(text.contains("0x2 CR space") && text.contains("0xa semaphores"), "{text}");
    assert!(text.contains("never mapped"), "{text}");
}

#[test]
fn a_connectx4_refuses_what_it_cannot_do_and_says_why() {
    let dir = TempDir::new().unwrap();
    let dev = dir.path().join("cx4.dev");
    let path = dev.to_str().unwrap();
    usage_error(cx4(&dev, &["--space", "5", "read", "0"]), "this device serves spaces 0x1 ICMD (extended), 0x2");
    usage_error(sim(&["--space", "0xa", "read", "0"]), "maps CR space and has no other address spaces");
    usage_error(plain(&["--sim-device", path, "read", "0"]), "--sim-device configures the simulated HCA: add --sim");
    fails_with(
        cx4(&dev, &["read", "0x3ffffffc", "2"]),
        "0x3ffffffc..0x40000004 reaches past the gateway's addresses (1 GiB)",
    );
    fails_with(cx4(&dev, &["--sim-writer", "4242", "write", "0", "1"]), "busy: process 4242 holds the write lease");
    fails_with(
        cx4(&dev, &["--sim-access", "read", "--space", "0xa", "read", "0"]),
        "reading address space 0xa has effects on the device: only administrators may (open the device for write, \
         run as Administrator)",
    );
    fails_with(
        cx4(&dev, &["--sim-access", "read", "write", "0", "1"]),
        "read-only handle: run as Administrator to write",
    );
    cx4(&dev, &["--sim-writer", "4242", "read", "0xf0014"]).assert().success().stdout("0x000f0014 0x00000209\n");
}
