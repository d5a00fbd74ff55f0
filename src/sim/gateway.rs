//! The simulated ConnectX-4 in shared memory: the device itself
//! (`core::simulated::gateway`, the same one the Windows test device keeps in
//! pool memory) over a memory region that several simulated drivers (in
//! several processes, for tools under sim-pci) and a firmware agent use at
//! once, as on real hardware.

use crate::abi::space;
use crate::core::gateway::{ConfigSpace, ADDR, COUNTER, CTRL, SEMAPHORE};
pub use crate::core::simulated::gateway::DEVICE_BYTES;
use crate::core::simulated::gateway::{Cells, EmulatedGateway, GatewayFaults, GATEWAY_BASE};
use crate::status::Result;
use memmap2::MmapRaw;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The device's dwords in a (possibly shared) mapping.
#[derive(Debug)]
struct MappedCells(MmapRaw);

impl MappedCells {
    fn cell(&self, at: u32) -> &AtomicU32 {
        assert!(at % 4 == 0 && at + 4 <= DEVICE_BYTES, "device region access at {at:#x}");
        // SAFETY: `at` is a dword-aligned offset inside the mapping (checked;
        // the mapping is page aligned and at least DEVICE_BYTES long), which
        // lives as long as `self`; every access to the region, in every
        // process that maps it, is atomic.
        let ptr = self.0.as_mut_ptr().wrapping_add(at as usize).cast::<u32>();
        // SAFETY: as above, for the dword at `ptr`.
        unsafe { AtomicU32::from_ptr(ptr) }
    }
}

impl Cells for MappedCells {
    fn load(&self, at: u32) -> u32 {
        self.cell(at).load(Ordering::SeqCst)
    }

    fn store(&self, at: u32, value: u32) {
        self.cell(at).store(value, Ordering::SeqCst);
    }

    fn compare_exchange(&self, at: u32, current: u32, new: u32) -> bool {
        self.cell(at).compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    fn fetch_add(&self, at: u32, n: u32) -> u32 {
        self.cell(at).fetch_add(n, Ordering::SeqCst)
    }
}

/// One simulated ConnectX-4's shared state.
#[derive(Debug)]
pub(crate) struct GatewayDevice {
    cells: MappedCells,
    /// Faults of this process's view of the device (tests arm them).
    semaphore_stuck: AtomicBool,
    flag_stuck: AtomicBool,
}

impl GatewayDevice {
    /// The device in `mem` (at least [`DEVICE_BYTES`], shared or private);
    /// powered on if `fresh`.
    pub fn new(mem: MmapRaw, fresh: bool, pci_device_id: u16, hw_id: u32) -> std::io::Result<GatewayDevice> {
        if mem.len() < DEVICE_BYTES as usize {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the device region is too small"));
        }
        let device = GatewayDevice {
            cells: MappedCells(mem),
            semaphore_stuck: AtomicBool::new(false),
            flag_stuck: AtomicBool::new(false),
        };
        if fresh {
            device.device().power_on(crate::core::simulated::SIM_PCI_VENDOR_ID, pci_device_id, hw_id);
        }
        Ok(device)
    }

    fn device(&self) -> EmulatedGateway<'_, MappedCells> {
        let faults = GatewayFaults {
            semaphore_stuck: self.semaphore_stuck.load(Ordering::SeqCst),
            flag_stuck: self.flag_stuck.load(Ordering::SeqCst),
        };
        EmulatedGateway::new(&self.cells, faults)
    }

    /// The device's dword in a space (tests, tools' second opinion).
    pub fn read_space(&self, space: u32, offset: u32) -> u32 {
        self.device().read_space(space, offset)
    }

    /// Sets a dword of a space directly (tests).
    pub fn write_space(&self, space: u32, offset: u32, value: u32) {
        self.device().write_space(space, offset, value)
    }

    /// Arms or clears the faults: the semaphore never free, the flag never
    /// moving.
    pub fn set_faults(&self, semaphore_stuck: bool, flag_stuck: bool) {
        self.semaphore_stuck.store(semaphore_stuck, Ordering::SeqCst);
        self.flag_stuck.store(flag_stuck, Ordering::SeqCst);
    }

    /// Whether anyone holds the gateway's semaphore now.
    pub fn semaphore_taken(&self) -> bool {
        self.device().semaphore_taken()
    }

    /// How many tickets the gateway's counter has handed out.
    pub fn tickets(&self) -> u32 {
        self.device().tickets()
    }

    /// A configuration-space read, with the gateway's reactions.
    pub fn config_read(&self, offset: u32) -> u32 {
        self.device().config_read(offset)
    }

    /// A configuration-space write, with the gateway's reactions.
    pub fn config_write(&self, offset: u32, value: u32) {
        self.device().config_write(offset, value)
    }
}

/// The driver's way to configuration space in the simulator (what
/// `BUS_INTERFACE_STANDARD`'s GetBusData/SetBusData are on Windows).
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    pub device: Arc<GatewayDevice>,
    /// How long a pause waits (the driver's "about 1 ms").
    pub pause: Duration,
}

impl ConfigSpace for SimConfig {
    fn read(&mut self, offset: u32) -> Result<u32> {
        Ok(self.device.config_read(offset))
    }

    fn write(&mut self, offset: u32, value: u32) -> Result<()> {
        self.device.config_write(offset, value);
        Ok(())
    }

    fn pause(&mut self) -> u32 {
        let start = std::time::Instant::now();
        std::thread::sleep(self.pause);
        u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX)
    }
}

/// A firmware agent: a thread that takes the gateway's semaphore at random
/// moments, selects a space of its own and reads through the gateway while
/// holding it, then lets go, as the device's firmware does. Stops when
/// dropped.
pub struct FirmwareAgent {
    stop: Arc<AtomicBool>,
    held: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FirmwareAgent {
    pub(crate) fn start(device: Arc<GatewayDevice>, seed: u64) -> FirmwareAgent {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicU64::new(0));
        let (flag, count) = (stop.clone(), held.clone());
        let thread = std::thread::spawn(move || {
            let mut rng = seed | 1;
            let mut next = || {
                // xorshift64: the agent's moments, repeatable for a seed.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(next() % 400));
                let ticket = device.config_read(GATEWAY_BASE + COUNTER);
                if device.config_read(GATEWAY_BASE + SEMAPHORE) != 0 {
                    continue;
                }
                device.config_write(GATEWAY_BASE + SEMAPHORE, ticket);
                if device.config_read(GATEWAY_BASE + SEMAPHORE) != ticket {
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                // Its own space and a read of its own, while it holds the gateway.
                let own = [space::ICMD, space::SEMAPHORE, space::CR][(next() % 3) as usize];
                device.config_write(GATEWAY_BASE + CTRL, own);
                device.config_write(GATEWAY_BASE + ADDR, (next() as u32 % 0x1000) & !3);
                std::thread::sleep(Duration::from_micros(next() % 200));
                device.config_write(GATEWAY_BASE + SEMAPHORE, 0);
            }
        });
        FirmwareAgent { stop, held, thread: Some(thread) }
    }

    /// How many times the agent has held the gateway so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Stops the agent; answers how many times it held the gateway.
    pub fn stop(mut self) -> u64 {
        self.halt();
        self.held()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FirmwareAgent {
    fn drop(&mut self) {
        self.halt();
    }
}
