//! The configuration-space gateway of ConnectX-4 and later: CR space and the
//! other address spaces, one dword at a time, through the vendor-specific
//! capability (PCI capability id 9) in the device's configuration space.
//!
//! Facts (mstflint's mtcr, `mtcr_ul_com.c`; Linux mlx5 `lib/pci_vsc.c`): the
//! registers are offsets from the capability: +0x4 CTRL (bits 15:0 the
//! address space, bits 31:29 its status, 0 = not supported), +0x8 COUNTER (a
//! ticket on every read), +0xC SEMAPHORE (0 = free), +0x10 ADDR (bits 29:0
//! the address, bit 31 the flag), +0x14 DATA (the value, no byte swap).
//!
//! - Semaphore: read SEMAPHORE until it is 0 (pausing between tries), read
//!   COUNTER for a ticket, write the ticket to SEMAPHORE and read it back:
//!   it is ours only if it reads our ticket. Released by writing 0. At most
//!   [`TRIES`] tries or [`WAIT_BUDGET_US`] of pauses, whichever ends first:
//!   then `STATUS_IO_TIMEOUT`.
//! - Space: read-modify-write CTRL's low 16 bits, then its status bits must
//!   be non-zero, else `STATUS_NOT_SUPPORTED`.
//! - Read: ADDR = address with the flag clear, poll until the flag is 1,
//!   read DATA. Write: DATA, then ADDR = address with the flag set, poll
//!   until it is 0. A flag that does not change within the same bound is
//!   `STATUS_IO_DEVICE_ERROR`. A block takes the semaphore once.
//!
//! The bound is in tries and in time because a pause is as long as the
//! platform's timer makes it: mtcr's 2048 tries of `usleep(1000)` are about
//! 2.3 s on Linux, but 2048 waits of "1 ms" on Windows, whose timer ticks
//! every 15.6 ms by default, would be 32 s with the device's lock held.
//!
//! Everything here runs with the device's lock held (one tool at a time
//! per device on the driver's side); the semaphore arbitrates with the
//! firmware and with anything else that uses the gateway. ConnectX-8 changed
//! the protocol (syndrome bits): out of scope.

use crate::abi::space;
use crate::status::{Result, Status};

/// PCI capability id of the vendor-specific capability.
pub const VSC_CAPABILITY_ID: u32 = 0x09;
/// CTRL: the address space (15:0) and its status (31:29).
pub const CTRL: u32 = 0x4;
/// COUNTER: a ticket on every read.
pub const COUNTER: u32 = 0x8;
/// SEMAPHORE: 0 when free, the holder's ticket when taken.
pub const SEMAPHORE: u32 = 0xC;
/// ADDR: the address (29:0) and the flag (31).
pub const ADDR: u32 = 0x10;
/// DATA: the value.
pub const DATA: u32 = 0x14;
/// The flag of ADDR.
pub const ADDR_FLAG: u32 = 1 << 31;
/// The address bits of ADDR.
pub const ADDR_MASK: u32 = (1 << 30) - 1;
/// How far the status field of CTRL is shifted.
pub const STATUS_SHIFT: u32 = 29;
/// Most tries for the semaphore, and most polls for the flag.
pub const TRIES: u32 = 2048;
/// Most time spent pausing for the semaphore, or for the flag, in
/// microseconds: 2 s, about what mtcr waits.
pub const WAIT_BUDGET_US: u32 = 2_000_000;

/// The device's configuration space, as the platform reaches it: dword
/// reads and writes at a byte offset, and a pause of about a millisecond.
pub trait ConfigSpace {
    /// The dword at configuration-space byte offset `offset` (a multiple of 4).
    fn read(&mut self, offset: u32) -> Result<u32>;
    /// Writes the dword at `offset`.
    fn write(&mut self, offset: u32, value: u32) -> Result<()>;
    /// Waits about a millisecond before the next try; answers how long it
    /// really waited, in microseconds (a timer's tick can make it longer).
    fn pause(&mut self) -> u32;
}

/// Tries left for one wait: [`TRIES`] of them, or [`WAIT_BUDGET_US`] of pauses.
struct Patience {
    tries: u32,
    waited_us: u32,
}

impl Patience {
    const fn new() -> Self {
        Patience { tries: 0, waited_us: 0 }
    }

    /// Pauses before another try; `false` when the bound is reached (no pause then).
    fn pause<C: ConfigSpace + ?Sized>(&mut self, cfg: &mut C) -> bool {
        self.tries += 1;
        if self.tries >= TRIES || self.waited_us >= WAIT_BUDGET_US {
            return false;
        }
        self.waited_us = self.waited_us.saturating_add(cfg.pause());
        true
    }
}

/// A found gateway: where its capability is and which spaces it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gateway {
    base: u32,
    spaces: u32,
}

impl Gateway {
    /// Walks the capability list from 0x34 for the vendor-specific
    /// capability; `Ok(None)` if there is none. Bounded: at most 48 entries
    /// (the 192 bytes of a header's capability area hold no more), each
    /// pointer inside 0x40..0x100, so a broken list cannot loop.
    pub fn find<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<Option<u32>> {
        let mut at = cfg.read(0x34)? & 0xFC;
        for _ in 0..48 {
            if !(0x40..0x100).contains(&at) {
                return Ok(None);
            }
            let header = cfg.read(at)?;
            if header & 0xFF == VSC_CAPABILITY_ID {
                return Ok(Some(at));
            }
            at = (header >> 8) & 0xFC;
        }
        Ok(None)
    }

    /// The gateway at capability offset `base`, with the spaces of the
    /// contract it reports supported (each selected under the semaphore).
    pub fn probe<C: ConfigSpace + ?Sized>(cfg: &mut C, base: u32) -> Result<Gateway> {
        let unprobed = Gateway { base, spaces: 0 };
        let spaces = unprobed.with_semaphore(cfg, |g, cfg| {
            let mut spaces = 0;
            for s in space::ALL {
                match g.select(cfg, s) {
                    Ok(()) => spaces |= 1 << s,
                    Err(Status::NOT_SUPPORTED) => {}
                    Err(status) => return Err(status),
                }
            }
            Ok(spaces)
        })?;
        Ok(Gateway { base, spaces })
    }

    /// A gateway as already probed (a platform that remembers it).
    pub const fn new(base: u32, spaces: u32) -> Gateway {
        Gateway { base, spaces }
    }

    /// The capability's offset in configuration space.
    pub const fn base(&self) -> u32 {
        self.base
    }

    /// Bit n set: space n is supported.
    pub const fn spaces(&self) -> u32 {
        self.spaces
    }

    /// Whether `space` is supported.
    pub const fn supports(&self, space: u32) -> bool {
        space < 32 && self.spaces & (1 << space) != 0
    }

    /// What mstflint's mtcr requires before it uses the gateway at all:
    /// spaces 1, 2 and 0xA all supported.
    pub const fn usable(&self) -> bool {
        self.supports(space::ICMD_EXT) && self.supports(space::CR) && self.supports(space::SEMAPHORE)
    }

    /// Reads `out.len()` dwords of `space` from byte `offset` on.
    pub fn read<C: ConfigSpace + ?Sized>(&self, cfg: &mut C, space: u32, offset: u32, out: &mut [u32]) -> Result<()> {
        self.with_semaphore(cfg, |g, cfg| {
            g.select(cfg, space)?;
            for (i, slot) in out.iter_mut().enumerate() {
                // CAST: a block is at most MAX_BLOCK_DWORDS long.
                let address = offset + 4 * i as u32;
                cfg.write(g.base + ADDR, address & ADDR_MASK)?;
                g.wait_flag(cfg, true)?;
                *slot = cfg.read(g.base + DATA)?;
            }
            Ok(())
        })
    }

    /// Writes `data` to `space` from byte `offset` on.
    pub fn write<C: ConfigSpace + ?Sized>(&self, cfg: &mut C, space: u32, offset: u32, data: &[u32]) -> Result<()> {
        self.with_semaphore(cfg, |g, cfg| {
            g.select(cfg, space)?;
            for (i, &value) in data.iter().enumerate() {
                // CAST: a block is at most MAX_BLOCK_DWORDS long.
                let address = offset + 4 * i as u32;
                cfg.write(g.base + DATA, value)?;
                cfg.write(g.base + ADDR, (address & ADDR_MASK) | ADDR_FLAG)?;
                g.wait_flag(cfg, false)?;
            }
            Ok(())
        })
    }

    /// A tool lock's release: under one hold of the semaphore, writes 0 to
    /// the dword at `offset` of `space` if it still holds `value` (the
    /// writer's); answers whether it did.
    pub fn release_if<C: ConfigSpace + ?Sized>(
        &self,
        cfg: &mut C,
        space: u32,
        offset: u32,
        value: u32,
    ) -> Result<bool> {
        self.with_semaphore(cfg, |g, cfg| {
            g.select(cfg, space)?;
            cfg.write(g.base + ADDR, offset & ADDR_MASK)?;
            g.wait_flag(cfg, true)?;
            if cfg.read(g.base + DATA)? != value {
                return Ok(false);
            }
            cfg.write(g.base + DATA, 0)?;
            cfg.write(g.base + ADDR, (offset & ADDR_MASK) | ADDR_FLAG)?;
            g.wait_flag(cfg, false)?;
            Ok(true)
        })
    }

    /// Runs `f` holding the gateway's semaphore, and releases it whatever
    /// `f` answered (a release that fails is the only error then).
    fn with_semaphore<C: ConfigSpace + ?Sized, T>(
        &self,
        cfg: &mut C,
        f: impl FnOnce(&Gateway, &mut C) -> Result<T>,
    ) -> Result<T> {
        self.take(cfg)?;
        let result = f(self, cfg);
        let released = cfg.write(self.base + SEMAPHORE, 0);
        match (result, released) {
            (Ok(value), Ok(())) => Ok(value),
            (Err(status), _) | (Ok(_), Err(status)) => Err(status),
        }
    }

    /// The ticket protocol (module docs).
    fn take<C: ConfigSpace + ?Sized>(&self, cfg: &mut C) -> Result<()> {
        let mut patience = Patience::new();
        loop {
            if cfg.read(self.base + SEMAPHORE)? == 0 {
                let ticket = cfg.read(self.base + COUNTER)?;
                cfg.write(self.base + SEMAPHORE, ticket)?;
                match cfg.read(self.base + SEMAPHORE) {
                    Ok(held) if held == ticket => return Ok(()),
                    Ok(_) => {}
                    Err(status) => {
                        // Our ticket may have landed: look once more and
                        // give it back if it did, so that a failed read
                        // does not lock the firmware and every tool out.
                        // (Writing 0 blindly could free another holder's.)
                        if cfg.read(self.base + SEMAPHORE) == Ok(ticket) {
                            let _ = cfg.write(self.base + SEMAPHORE, 0);
                        }
                        return Err(status);
                    }
                }
                // Someone else's ticket won the race: wait for its release.
            }
            if !patience.pause(cfg) {
                return Err(Status::IO_TIMEOUT);
            }
        }
    }

    /// Selects `space` in CTRL and checks that the device supports it.
    fn select<C: ConfigSpace + ?Sized>(&self, cfg: &mut C, space: u32) -> Result<()> {
        let ctrl = cfg.read(self.base + CTRL)?;
        cfg.write(self.base + CTRL, (ctrl & !0xFFFF) | (space & 0xFFFF))?;
        if cfg.read(self.base + CTRL)? >> STATUS_SHIFT == 0 {
            return Err(Status::NOT_SUPPORTED);
        }
        Ok(())
    }

    /// Polls ADDR until its flag is `set`.
    fn wait_flag<C: ConfigSpace + ?Sized>(&self, cfg: &mut C, set: bool) -> Result<()> {
        let mut patience = Patience::new();
        loop {
            if (cfg.read(self.base + ADDR)? & ADDR_FLAG != 0) == set {
                return Ok(());
            }
            if !patience.pause(cfg) {
                return Err(Status::IO_DEVICE_ERROR);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// A scripted device: a capability list with the gateway at 0x60, the
    /// gateway's registers, spaces as maps, and faults to order.
    struct Scripted {
        config: BTreeMap<u32, u32>,
        spaces: BTreeMap<u32, BTreeMap<u32, u32>>,
        supported: u32,
        counter: u32,
        /// The semaphore reads taken before it shows free (a firmware holder).
        held_for: u32,
        /// On our ticket write, another ticket lands instead (lost races).
        races_lost: u32,
        /// The flag never changes.
        stuck: bool,
        /// Semaphore reads that fail right after a ticket is written.
        readbacks_failing: u32,
        /// A ticket was just written to the semaphore.
        ticket_written: bool,
        pauses: u32,
        /// What each pause says it waited, in microseconds.
        pause_us: u32,
        semaphore_writes: Vec<u32>,
        log: Vec<(char, u32, u32)>,
    }

    const BASE: u32 = 0x60;

    impl Scripted {
        fn new(supported: &[u32]) -> Self {
            let mut config = BTreeMap::new();
            config.insert(0x34, 0x40);
            config.insert(0x40, 0x6001); // power management, next 0x60
            config.insert(BASE, 0x0009); // vendor specific, end of list
            Scripted {
                config,
                spaces: BTreeMap::new(),
                supported: supported.iter().fold(0, |m, s| m | 1 << s),
                counter: 100,
                held_for: 0,
                races_lost: 0,
                stuck: false,
                readbacks_failing: 0,
                ticket_written: false,
                pauses: 0,
                pause_us: 1000,
                semaphore_writes: Vec::new(),
                log: Vec::new(),
            }
        }

        fn space(&self) -> u32 {
            self.config.get(&(BASE + CTRL)).copied().unwrap_or(0) & 0xFFFF
        }
    }

    impl ConfigSpace for Scripted {
        fn read(&mut self, offset: u32) -> Result<u32> {
            if offset == BASE + SEMAPHORE && self.ticket_written && self.readbacks_failing > 0 {
                self.readbacks_failing -= 1;
                self.log.push(('r', offset, u32::MAX));
                return Err(Status::IO_DEVICE_ERROR);
            }
            self.ticket_written = false;
            let value = match offset.checked_sub(BASE) {
                Some(COUNTER) => {
                    self.counter += 1;
                    self.counter
                }
                Some(SEMAPHORE) if self.held_for > 0 => {
                    self.held_for -= 1;
                    0xF00D
                }
                _ => self.config.get(&offset).copied().unwrap_or(0),
            };
            self.log.push(('r', offset, value));
            Ok(value)
        }

        fn write(&mut self, offset: u32, value: u32) -> Result<()> {
            self.log.push(('w', offset, value));
            match offset.checked_sub(BASE) {
                Some(SEMAPHORE) => {
                    self.semaphore_writes.push(value);
                    self.ticket_written = value != 0;
                    // A lost race: another ticket lands instead of ours, and
                    // its holder lets go at our next pause.
                    let value = if value != 0 && self.races_lost > 0 {
                        self.races_lost -= 1;
                        0xBEEF
                    } else {
                        value
                    };
                    self.config.insert(offset, value);
                }
                Some(CTRL) => {
                    let status = if self.supported & (1 << (value & 0xFFFF)) != 0 { 1 } else { 0 };
                    self.config.insert(offset, (value & 0xFFFF) | (status << STATUS_SHIFT));
                }
                Some(ADDR) => {
                    let space = self.space();
                    let address = value & ADDR_MASK;
                    let flag = if self.stuck {
                        value & ADDR_FLAG
                    } else if value & ADDR_FLAG == 0 {
                        let data = self.spaces.entry(space).or_default().get(&address).copied().unwrap_or(0);
                        self.config.insert(BASE + DATA, data);
                        ADDR_FLAG
                    } else {
                        let data = self.config.get(&(BASE + DATA)).copied().unwrap_or(0);
                        self.spaces.entry(space).or_default().insert(address, data);
                        0
                    };
                    self.config.insert(offset, address | flag);
                }
                _ => {
                    self.config.insert(offset, value);
                }
            }
            Ok(())
        }

        fn pause(&mut self) -> u32 {
            self.pauses += 1;
            // The holder of a lost race lets go after a while.
            if self.config.get(&(BASE + SEMAPHORE)) == Some(&0xBEEF) {
                self.config.insert(BASE + SEMAPHORE, 0);
            }
            self.pause_us
        }
    }

    fn found(cfg: &mut Scripted) -> Gateway {
        let base = Gateway::find(cfg).unwrap().expect("the capability");
        Gateway::probe(cfg, base).unwrap()
    }

    #[test]
    fn finds_the_capability_and_the_spaces_it_reports() {
        let mut cfg = Scripted::new(&[1, 2, 3, 0xA]);
        let g = found(&mut cfg);
        assert_eq!(g.base(), BASE);
        assert_eq!(g.spaces(), (1 << 1) | (1 << 2) | (1 << 3) | (1 << 0xA));
        assert!(g.usable() && !g.supports(space::ND_CR) && !g.supports(40));
        assert_eq!(cfg.config[&(BASE + SEMAPHORE)], 0, "the probe released the semaphore");
    }

    #[test]
    fn a_list_without_the_capability_or_a_broken_one_finds_nothing() {
        let mut cfg = Scripted::new(&[2]);
        cfg.config.insert(BASE, 0x0005); // MSI, not vendor specific
        assert_eq!(Gateway::find(&mut cfg), Ok(None));
        cfg.config.insert(BASE, 0x6005); // points at itself: a loop
        assert_eq!(Gateway::find(&mut cfg), Ok(None), "bounded");
        cfg.config.insert(0x34, 0x10); // inside the header
        assert_eq!(Gateway::find(&mut cfg), Ok(None));
    }

    #[test]
    fn blocks_round_trip_and_take_the_semaphore_once() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        cfg.semaphore_writes.clear();
        g.write(&mut cfg, space::CR, 0x100, &[1, 2, 0xDEAD_BEEF]).unwrap();
        let mut out = [0u32; 3];
        g.read(&mut cfg, space::CR, 0x100, &mut out).unwrap();
        assert_eq!(out, [1, 2, 0xDEAD_BEEF]);
        assert_eq!(cfg.spaces[&space::CR][&0x108], 0xDEAD_BEEF, "no byte swap: the gateway carries values");
        // Two blocks: two tickets written, two releases.
        assert_eq!(cfg.semaphore_writes.len(), 4);
        assert_eq!(cfg.semaphore_writes.iter().filter(|&&v| v == 0).count(), 2);
        // The address space selected is CR (2) for both.
        assert_eq!(cfg.space(), space::CR);
    }

    #[test]
    fn a_space_the_device_lacks_is_not_supported_and_releases_the_semaphore() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        let mut out = [0u32; 1];
        assert_eq!(g.read(&mut cfg, space::ICMD, 0, &mut out), Err(Status::NOT_SUPPORTED));
        assert_eq!(cfg.config[&(BASE + SEMAPHORE)], 0);
    }

    #[test]
    fn a_busy_semaphore_is_waited_for_and_a_lost_race_retried() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        cfg.held_for = 5;
        cfg.races_lost = 2;
        cfg.pauses = 0;
        g.write(&mut cfg, space::CR, 0, &[7]).unwrap();
        assert!(cfg.pauses >= 5 + 2, "it waited: {} pauses", cfg.pauses);
        assert_eq!(cfg.spaces[&space::CR][&0], 7);
        assert_eq!(cfg.config[&(BASE + SEMAPHORE)], 0);
    }

    #[test]
    fn a_semaphore_that_stays_taken_times_out_and_touches_nothing() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        cfg.held_for = u32::MAX;
        cfg.pause_us = 100; // short pauses: the bound in tries ends it
        cfg.log.clear();
        assert_eq!(g.write(&mut cfg, space::CR, 0, &[7]), Err(Status::IO_TIMEOUT));
        assert!(cfg.log.iter().all(|&(op, at, _)| op == 'r' && at == BASE + SEMAPHORE), "only looked");
        assert_eq!(cfg.log.len() as u32, TRIES, "{TRIES} looks");
        assert_eq!(cfg.pauses, TRIES - 1, "a pause between looks");
    }

    #[test]
    fn long_pauses_end_the_wait_by_time_not_by_tries() {
        // Windows's default timer: a "1 ms" wait is a 15.6 ms tick.
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        cfg.held_for = u32::MAX;
        cfg.pauses = 0;
        cfg.pause_us = 15_625;
        assert_eq!(g.write(&mut cfg, space::CR, 0, &[7]), Err(Status::IO_TIMEOUT));
        assert_eq!(cfg.pauses, WAIT_BUDGET_US.div_ceil(15_625), "2 s of pauses, then no more");
        cfg.held_for = 0;
        cfg.stuck = true;
        cfg.pauses = 0;
        let mut out = [0u32; 1];
        assert_eq!(g.read(&mut cfg, space::CR, 0, &mut out), Err(Status::IO_DEVICE_ERROR));
        assert_eq!(cfg.pauses, WAIT_BUDGET_US.div_ceil(15_625));
    }

    #[test]
    fn a_flag_that_never_moves_is_a_device_error_and_the_semaphore_is_released() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        cfg.stuck = true;
        let mut out = [0u32; 2];
        assert_eq!(g.read(&mut cfg, space::CR, 0, &mut out), Err(Status::IO_DEVICE_ERROR));
        assert_eq!(cfg.config[&(BASE + SEMAPHORE)], 0);
        assert_eq!(g.write(&mut cfg, space::CR, 0, &[1]), Err(Status::IO_DEVICE_ERROR));
    }

    #[test]
    fn a_failed_look_at_the_ticket_just_written_gives_it_back_only_if_it_landed() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        let mut out = [0u32; 1];
        cfg.readbacks_failing = 1;
        assert_eq!(g.read(&mut cfg, space::CR, 0, &mut out), Err(Status::IO_DEVICE_ERROR));
        assert_eq!(cfg.config[&(BASE + SEMAPHORE)], 0, "ours, seen at the second look: given back");
        cfg.readbacks_failing = 1;
        cfg.races_lost = 1;
        assert_eq!(g.read(&mut cfg, space::CR, 0, &mut out), Err(Status::IO_DEVICE_ERROR));
        assert_eq!(cfg.config[&(BASE + SEMAPHORE)], 0xBEEF, "another holder's ticket is not ours to free");
        cfg.readbacks_failing = 2;
        assert_eq!(g.read(&mut cfg, space::CR, 0, &mut out), Err(Status::IO_DEVICE_ERROR));
        assert_eq!(cfg.semaphore_writes.last(), Some(&cfg.counter), "unseen: nothing written after the ticket");
    }

    #[test]
    fn a_lock_is_released_only_if_it_still_holds_the_writers_value() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        g.write(&mut cfg, space::SEMAPHORE, 0x40, &[0x1234]).unwrap();
        assert_eq!(g.release_if(&mut cfg, space::SEMAPHORE, 0x40, 0x9999), Ok(false));
        assert_eq!(cfg.spaces[&space::SEMAPHORE][&0x40], 0x1234, "someone else's value stays");
        assert_eq!(g.release_if(&mut cfg, space::SEMAPHORE, 0x40, 0x1234), Ok(true));
        assert_eq!(cfg.spaces[&space::SEMAPHORE][&0x40], 0);
        assert_eq!(cfg.config[&(BASE + SEMAPHORE)], 0);
    }

    #[test]
    fn addresses_keep_their_low_30_bits() {
        let mut cfg = Scripted::new(&[1, 2, 0xA]);
        let g = found(&mut cfg);
        g.write(&mut cfg, space::CR, 0x3FFF_FFFC, &[5]).unwrap();
        assert_eq!(cfg.spaces[&space::CR][&0x3FFF_FFFC], 5);
    }
}
