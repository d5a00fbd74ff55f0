//! The environment through which the launcher (`sim-pci`) configures the
//! preload library in the tool's process. Shared by both, so that the names
//! are written once.

/// Path of the simulated device's `resource0` in the launcher's private
/// `/sys/bus/pci/devices`: an empty placeholder file. An `mmap` of a file
/// with this file's device and inode is served by the simulated HCA.
pub const RESOURCE0: &str = "MLNX_HCA_SIM_RESOURCE0";

/// The file that holds the simulated CR space (`crspace --sim-bar`), shared
/// by every tool run and `crspace` session that names it.
pub const BAR: &str = "MLNX_HCA_SIM_BAR";

/// Another simulated process, this pid, holds the write lease for the whole
/// run (`crspace --sim-writer`).
pub const WRITER: &str = "MLNX_HCA_SIM_WRITER";

/// `read`: the tool's handle is granted read access only, as a user who is
/// not an administrator (`crspace --sim-access read`).
pub const ACCESS: &str = "MLNX_HCA_SIM_ACCESS";

/// Append one line per request the preload library sends, and one at exit,
/// to this file.
pub const LOG: &str = "MLNX_HCA_SIM_LOG";

/// The simulated ConnectX-4: the Unix socket of its driver (`sim-pci
/// serve`). Set, the tool's `/dev/<BDF>_mstconf` is served through it.
pub const SOCKET: &str = "MLNX_HCA_SIM_SOCKET";

/// The simulated device's PCI address (`DDDD:BB:DD.F`), for the node's name
/// and `MST_PARAMS`.
pub const BDF: &str = "MLNX_HCA_SIM_BDF";

/// Set (to anything): a tool that writes a non-zero value into the
/// simulated ConnectX-4's semaphore space (takes a lock) stops itself with
/// `SIGSTOP` right after its first such write, for a check that kills a
/// tool holding a lock.
#[allow(dead_code)] // the preload library's alone
pub const STOP_AT_LOCK: &str = "MLNX_HCA_SIM_STOP_AT_LOCK";
