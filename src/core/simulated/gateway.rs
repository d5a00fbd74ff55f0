//! The simulated ConnectX-4's device side, defined once: its configuration
//! space with the vendor-specific capability (the gateway), and the address
//! spaces behind it. The Linux simulator keeps the device in shared memory
//! (several simulated drivers and a firmware agent at once, across
//! processes); the Windows layer's root test device for the ConnectX-4
//! (`root\mlnx_hca_sim4`) keeps it in pool memory. Both hold it as dwords
//! that are only ever touched atomically ([`Cells`]), so whoever writes a
//! register runs the device's reaction, as on the hardware.
//!
//! The registers behave as `core::gateway` expects a ConnectX-4's to (facts
//! from mstflint's mtcr and Linux's `pci_vsc.c`): SEMAPHORE takes a ticket
//! only while it is 0 and frees on 0; COUNTER hands out a new ticket on
//! every read; CTRL selects a space and reports its status; writing ADDR
//! moves a dword between DATA and the selected space and toggles the flag.
//! The semaphore space (0xA) keeps a written value only if the dword was 0
//! or the value is 0: how its locks behave for the tools that take them
//! (write your id, read it back), a model of ours (the tools' use is
//! documented, the hardware's rule is not).

use crate::abi::space;
use crate::core::gateway::{ADDR, ADDR_FLAG, ADDR_MASK, COUNTER, CTRL, DATA, SEMAPHORE, STATUS_SHIFT};

/// Where the gateway's capability is in configuration space.
pub const GATEWAY_BASE: u32 = 0x60;
/// Bytes of configuration space (PCIe's extended space).
pub const CONFIG_BYTES: u32 = 4096;
/// Bytes kept of CR space and of each ICMD space (CR space: at least 2 MiB,
/// which holds everything ConnectX4.csv dumps, up to 0x11FDCC; ICMD's
/// mailbox is at 1 MiB).
pub const SPACE_BYTES: u32 = 2 << 20;
/// Bytes kept of the semaphore space.
pub const SEMAPHORE_SPACE_BYTES: u32 = 64 << 10;
const CR_AT: u32 = CONFIG_BYTES;
const ICMD_EXT_AT: u32 = CR_AT + SPACE_BYTES;
const ICMD_AT: u32 = ICMD_EXT_AT + SPACE_BYTES;
const SEMAPHORE_SPACE_AT: u32 = ICMD_AT + SPACE_BYTES;
/// Bytes of the whole device: configuration space, then each space.
pub const DEVICE_BYTES: u32 = SEMAPHORE_SPACE_AT + SEMAPHORE_SPACE_BYTES;
/// What a semaphore read shows when the fault "never free" is armed.
const STUCK_TICKET: u32 = 0xF1F1_F1F1;

/// The device's dwords: `DEVICE_BYTES / 4` of them, each touched only with
/// these atomic operations (byte offsets, multiples of 4).
pub trait Cells {
    /// The dword at byte `at`.
    fn load(&self, at: u32) -> u32;
    /// Sets it.
    fn store(&self, at: u32, value: u32);
    /// Sets it to `new` if it is `current`; answers whether it did.
    fn compare_exchange(&self, at: u32, current: u32, new: u32) -> bool;
    /// Adds `n` and answers the old value.
    fn fetch_add(&self, at: u32, n: u32) -> u32;
}

/// A slice of atomics is the cells of a device kept in ordinary memory
/// (the Windows test device's pool block).
impl Cells for [core::sync::atomic::AtomicU32] {
    fn load(&self, at: u32) -> u32 {
        self[(at / 4) as usize].load(core::sync::atomic::Ordering::SeqCst)
    }

    fn store(&self, at: u32, value: u32) {
        self[(at / 4) as usize].store(value, core::sync::atomic::Ordering::SeqCst);
    }

    fn compare_exchange(&self, at: u32, current: u32, new: u32) -> bool {
        use core::sync::atomic::Ordering::SeqCst;
        self[(at / 4) as usize].compare_exchange(current, new, SeqCst, SeqCst).is_ok()
    }

    fn fetch_add(&self, at: u32, n: u32) -> u32 {
        self[(at / 4) as usize].fetch_add(n, core::sync::atomic::Ordering::SeqCst)
    }
}

/// Faults to arm on a simulated device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayFaults {
    /// The semaphore is never free (a firmware that holds it forever).
    pub semaphore_stuck: bool,
    /// The flag never moves (a hung device).
    pub flag_stuck: bool,
}

/// The device in `cells`: configuration space and the spaces behind the
/// gateway.
pub struct EmulatedGateway<'a, C: Cells + ?Sized> {
    cells: &'a C,
    faults: GatewayFaults,
}

impl<'a, C: Cells + ?Sized> EmulatedGateway<'a, C> {
    /// The device over `cells` with `faults` armed.
    pub fn new(cells: &'a C, faults: GatewayFaults) -> Self {
        EmulatedGateway { cells, faults }
    }

    /// Power-on state: a configuration header with a capability list
    /// (power management at 0x40, then the gateway at 0x60), and CR space
    /// holding `hw_id` at 0xF0014 (the rest zero, as the cells start).
    pub fn power_on(&self, vendor_id: u16, pci_device_id: u16, hw_id: u32) {
        let c = self.cells;
        c.store(0, u32::from(vendor_id) | (u32::from(pci_device_id) << 16));
        c.store(0x04, 0x0010_0006); // status: capability list; memory space, bus master
        c.store(0x08, 0x0207_0000); // class: network controller, InfiniBand
        c.store(0x34, 0x40);
        c.store(0x40, 0x0003_6001); // power management, next 0x60
        c.store(GATEWAY_BASE, 0x0018_0009); // vendor specific, length 0x18, end of list
        self.write_space(space::CR, 0xF0014, hw_id);
    }

    /// The byte offset in the cells of `offset` of `space`, if kept (ND_CR
    /// is CR space, read without effects).
    fn space_at(space: u32, offset: u32) -> Option<u32> {
        let (base, bytes) = match space {
            space::CR | space::ND_CR => (CR_AT, SPACE_BYTES),
            space::ICMD_EXT => (ICMD_EXT_AT, SPACE_BYTES),
            space::ICMD => (ICMD_AT, SPACE_BYTES),
            space::SEMAPHORE => (SEMAPHORE_SPACE_AT, SEMAPHORE_SPACE_BYTES),
            _ => return None,
        };
        (offset % 4 == 0 && offset < bytes).then_some(base + offset)
    }

    /// The device's dword in a space: 0 for an address it does not keep.
    pub fn read_space(&self, space: u32, offset: u32) -> u32 {
        Self::space_at(space, offset).map_or(0, |at| self.cells.load(at))
    }

    /// Sets a dword of a space directly (the device's own side).
    pub fn write_space(&self, space: u32, offset: u32, value: u32) {
        if let Some(at) = Self::space_at(space, offset) {
            self.cells.store(at, value);
        }
    }

    /// Whether anyone holds the gateway's semaphore.
    pub fn semaphore_taken(&self) -> bool {
        self.cells.load(GATEWAY_BASE + SEMAPHORE) != 0
    }

    /// How many tickets the counter has handed out (each try to take the
    /// semaphore draws one), without drawing one.
    pub fn tickets(&self) -> u32 {
        self.cells.load(GATEWAY_BASE + COUNTER)
    }

    /// A configuration-space read, with the gateway's reactions.
    pub fn config_read(&self, offset: u32) -> u32 {
        if offset >= CONFIG_BYTES || offset % 4 != 0 {
            return u32::MAX;
        }
        match offset.checked_sub(GATEWAY_BASE) {
            Some(COUNTER) => {
                // A ticket, never 0 (0 means free).
                let ticket = self.cells.fetch_add(offset, 1).wrapping_add(1);
                if ticket == 0 {
                    self.cells.fetch_add(offset, 1).wrapping_add(1)
                } else {
                    ticket
                }
            }
            Some(SEMAPHORE) if self.faults.semaphore_stuck => STUCK_TICKET,
            _ => self.cells.load(offset),
        }
    }

    /// A configuration-space write, with the gateway's reactions.
    pub fn config_write(&self, offset: u32, value: u32) {
        if offset >= CONFIG_BYTES || offset % 4 != 0 {
            return;
        }
        match offset.checked_sub(GATEWAY_BASE) {
            Some(SEMAPHORE) => {
                if value == 0 {
                    self.cells.store(offset, 0);
                } else if !self.faults.semaphore_stuck {
                    // Taken only while free: a second ticket does not stick.
                    self.cells.compare_exchange(offset, 0, value);
                }
            }
            Some(CTRL) => {
                let space = value & 0xFFFF;
                let status = u32::from(space::ALL.contains(&space));
                self.cells.store(offset, space | (status << STATUS_SHIFT));
            }
            Some(ADDR) => {
                let address = value & ADDR_MASK;
                if self.faults.flag_stuck {
                    self.cells.store(offset, value);
                    return;
                }
                let space = self.cells.load(GATEWAY_BASE + CTRL) & 0xFFFF;
                if value & ADDR_FLAG == 0 {
                    self.cells.store(GATEWAY_BASE + DATA, self.read_space(space, address));
                    self.cells.store(offset, address | ADDR_FLAG);
                } else {
                    self.store_space(space, address, self.cells.load(GATEWAY_BASE + DATA));
                    self.cells.store(offset, address);
                }
            }
            Some(DATA) => self.cells.store(offset, value),
            // COUNTER, the header and the capability list: read-only.
            _ => {}
        }
    }

    /// A write through the gateway: ND_CR is read-only; a semaphore keeps a
    /// value only if it was free or the value frees it.
    fn store_space(&self, space: u32, address: u32, value: u32) {
        if space == space::ND_CR {
            return;
        }
        let Some(at) = Self::space_at(space, address) else { return };
        if space == space::SEMAPHORE && value != 0 {
            self.cells.compare_exchange(at, 0, value);
        } else {
            self.cells.store(at, value);
        }
    }
}
