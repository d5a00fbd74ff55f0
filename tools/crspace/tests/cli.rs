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
    sim(&["read", "0xf0014"]).assert().success().stdout("0x000f0014 0x00a05a44\n").stderr("");
    // Decimal addresses, and --sim after the command, work the same.
    crspace().args(["read", "983060", "--sim"]).assert().success().stdout("0x000f0014 0x00a05a44\n");
}

#[test]
fn read_count_prints_one_line_per_dword() {
    sim(&["read", "0xf0010", "3"])
        .assert()
        .success()
        .stdout("0x000f0010 0x00000000\n0x000f0014 0x00a05a44\n0x000f0018 0x00000000\n");
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
        "# crspace simulated CR space: dwords that differ from power-on (0, and 0x00a05a44 at 0xf0014)\n\
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
        let value = if addr == 0xf0014 { 0x00a05a44 } else { 0 };
        assert_eq!(*line, format!("{addr:#010x} {value:#010x}"));
    }
}

#[test]
fn info_shows_bars_and_the_lease_holder() {
    sim(&["--sim-writer", "4242", "info"]).assert().success().stderr("").stdout(
        "device            simulated HCA (--sim)\n\
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
fn readers_go_on_while_another_process_writes() {
    sim(&["--sim-writer", "4242", "read", "0xf0014"]).assert().success().stdout("0x000f0014 0x00a05a44\n");
}

#[test]
fn watch_prints_each_sample_or_only_changes() {
    sim(&["watch", "0xf0014", "--interval", "1", "--count", "3"])
        .assert()
        .success()
        .stdout("0x000f0014 0x00a05a44\n".repeat(3))
        .stderr("");
    sim(&["watch", "0xf0014", "--interval", "1", "--count", "3", "--changes"])
        .assert()
        .success()
        .stdout("0x000f0014 0x00a05a44\n");
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
    sim(&["--sim-access", "read", "read", "0xf0014"]).assert().success().stdout("0x000f0014 0x00a05a44\n");
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
