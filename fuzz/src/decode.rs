//! libFuzzer's bytes as a [`Scenario`]: quotas, then a sequence of [`Op`]s.
//!
//! The encoding is biased towards what reaches deep states: the four real
//! codes more often than near misses (one bit flipped, other method or access
//! bits) and arbitrary codes; the input block a code expects, built from
//! aligned, in-range numbers, more often than cut, padded or random ones;
//! unmaps of VAs earlier maps returned (this handle's, another's, already
//! unmapped ones), moved a little or not at all. Running out of bytes ends the
//! sequence; every byte string decodes to something.
//!
//! Layout: byte 0 picks the quotas; then each op is an opcode byte and the
//! bytes its fields need (missing ones read as 0). [`seed`] writes ops in this
//! layout for the hand-made seeds of the corpus.

use crate::harness::{Code, Fault, Input, Op, Origin, PIDS};
use crate::reference::{Access, BAR0, LEASE, MAP_RO, MAP_RW, QUERY, QUERY_DEVICE, READ_BLOCK, UNMAP, WRITE_BLOCK};

/// Most ops one input runs (the quotas and the sequence length bound the time
/// of one execution).
pub const MAX_OPS: usize = 256;

/// Quotas and steps of one input.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Live mappings per handle.
    pub per_handle: u32,
    /// Live mappings per device.
    pub per_device: u32,
    /// The steps.
    pub ops: Vec<Op>,
}

/// The quota pairs byte 0 picks from: the contract's defaults, and small ones
/// that a short sequence can reach.
pub const QUOTAS: [(u32, u32); 4] = [(64, 1024), (1, 3), (2, 5), (4, 8)];

const REAL: [u32; 4] = [MAP_RO, MAP_RW, UNMAP, QUERY];
/// The codes of ConnectX-4 and later, and the lease and device query (on the
/// simulated ConnectX-3: the block codes are the other path).
const NEWER: [u32; 4] = [READ_BLOCK, WRITE_BLOCK, LEASE, QUERY_DEVICE];

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    fn pid(&mut self) -> u32 {
        PIDS[usize::from(self.u8()) % PIDS.len()]
    }

    fn code(&mut self) -> u32 {
        let c = self.u8();
        let real = REAL[usize::from(c / 10) % 4];
        match c % 10 {
            0 | 1 => MAP_RO,
            2 | 3 => MAP_RW,
            4 | 5 => UNMAP,
            6 if (c / 10) % 2 == 0 => QUERY,
            6 => NEWER[usize::from(c / 20) % 4],
            // One bit flipped: another function, method, access, device type.
            7 => real ^ (1 << (self.u8() % 32)),
            // The same function with other method and access bits.
            8 => (real & !0xC003) | (u32::from(self.u8() & 3) << 14) | u32::from(self.u8() & 3),
            _ => self.u32(),
        }
    }

    /// A length near `block`: exact (most often), short or long.
    fn len(&mut self, block: usize) -> usize {
        let l = self.u8();
        match l % 4 {
            0 | 1 => block,
            2 => block.saturating_sub(1 + usize::from(l / 4) % block.max(1)),
            _ => block + usize::from(l / 4) % 16,
        }
    }

    fn map_input(&mut self) -> Input {
        let b = self.u8();
        let bar = match b % 8 {
            0..=4 => 0,
            5 => 1,
            6 => 2,
            _ => self.u32(),
        };
        let o = self.u8();
        let offset = match o % 4 {
            0 => u32::from(self.u8()) * 4096,
            1 => u32::from(self.u16()) * 16,
            2 => BAR0.wrapping_sub(u32::from(self.u8()) * 4),
            _ => self.u32(),
        };
        let s = self.u8();
        let size = match s % 4 {
            0 => (u32::from(self.u8() % 16) + 1) * 4,
            1 => (u32::from(self.u8()) + 1) * 4096,
            2 => BAR0.wrapping_sub(offset).wrapping_add(u32::from(self.u8() % 3) * 4).wrapping_sub(4),
            _ => self.u32(),
        };
        Input::Map { bar, offset, size, len: self.len(12) }
    }

    fn va_input(&mut self) -> Input {
        let pick = usize::from(self.u8());
        let d = self.u8();
        let delta = match d % 4 {
            0 => return Input::Own { pick },
            1 => 0,
            // CAST: a small signed step, in dwords.
            2 => i64::from(self.u8() as i8) * 4,
            // CAST: any 64-bit move.
            _ => self.u64() as i64,
        };
        Input::Va { pick, delta, len: self.len(8) }
    }

    fn op(&mut self) -> Op {
        let kind = self.u8();
        match kind % 16 {
            0 | 1 => {
                let b = self.u8();
                let access = if b & 4 != 0 { Access::ReadWrite } else { Access::Read };
                Op::Open { pid: PIDS[usize::from(b) % PIDS.len()], access }
            }
            9 => Op::Duplicate { handle: usize::from(self.u8()), pid: self.pid() },
            10 => Op::Close { handle: usize::from(self.u8()) },
            11 => {
                // The high bit of the pid byte: killed (by the process the
                // next bits name) rather than exiting.
                let b = self.u8();
                let pid = PIDS[usize::from(b) % PIDS.len()];
                let killer = (b & 0x80 != 0).then(|| PIDS[usize::from(b >> 4) % PIDS.len()]);
                Op::Terminate { pid, killer }
            }
            12 => match self.u8() % 4 {
                0 => Op::SurpriseRemove,
                _ => Op::QueryRemove,
            },
            13 => {
                let k = self.u8();
                let n = u64::from(self.u8() % 16) + 1;
                Op::Fault(match k % 3 {
                    0 => Fault::Map(n),
                    1 => Fault::Attach(n),
                    _ => Fault::Alloc(n),
                })
            }
            _ => {
                let handle = usize::from(self.u8());
                let code = self.code();
                let k = self.u8();
                // The top three bits of k all set (one in eight): a request a
                // driver forwarded (bit 4: from a system worker thread, else
                // kernel mode in the caller's process); 6 (one in eight): the
                // caller is a 32-bit process.
                let origin = match k >> 5 {
                    7 if k & 0x10 != 0 => Origin::WorkerThread,
                    7 => Origin::KernelMode,
                    6 => Origin::Caller32,
                    _ => Origin::Caller,
                };
                let natural = match code {
                    UNMAP => 1,
                    QUERY | QUERY_DEVICE => 2,
                    READ_BLOCK | WRITE_BLOCK | LEASE => 3,
                    _ => 0,
                };
                // A block request's own block: a space, an aligned offset,
                // a count around the limit, and (for a write) its values.
                let mut dwords = 0;
                let input = match if k % 8 < 5 { natural } else { k % 8 - 5 } {
                    0 => self.map_input(),
                    1 => self.va_input(),
                    3 if code == LEASE => Input::Bytes(vec![self.u8() % 3, 0, 0, 0]),
                    3 => {
                        let (space, offset, count) =
                            (u32::from(self.u8() % 12), u32::from(self.u16()) * 4, u32::from(self.u8() % 70));
                        dwords = count as usize;
                        let mut b = [space.to_le_bytes(), offset.to_le_bytes(), count.to_le_bytes()].concat();
                        if code == WRITE_BLOCK {
                            b.extend((0..count).flat_map(|i| i.to_le_bytes()));
                        }
                        Input::Bytes(b)
                    }
                    _ => {
                        let n = if k % 8 < 5 { 0 } else { usize::from(self.u8() % 32) };
                        Input::Bytes((0..n).map(|_| self.u8()).collect())
                    }
                };
                let block = match code {
                    UNMAP | WRITE_BLOCK | LEASE => 0,
                    QUERY | QUERY_DEVICE => 24,
                    READ_BLOCK => 4 * dwords,
                    _ => 8,
                };
                Op::Ioctl { handle, origin, code: Code(code), input, out_len: self.len(block) }
            }
        }
    }
}

/// Decodes any bytes into a scenario.
pub fn decode(data: &[u8]) -> Scenario {
    let mut c = Cursor { data, at: 0 };
    let (per_handle, per_device) = QUOTAS[usize::from(c.u8()) % QUOTAS.len()];
    let mut ops = Vec::new();
    while !c.done() && ops.len() < MAX_OPS {
        ops.push(c.op());
    }
    Scenario { per_handle, per_device, ops }
}

/// Runs a decoded scenario against the simulated HCA and the model; panics
/// on any divergence. Returns the statuses seen.
pub fn run(data: &[u8]) -> crate::harness::Seen {
    let scenario = decode(data);
    let mut harness = crate::harness::Harness::new(scenario.per_handle, scenario.per_device, false);
    for op in &scenario.ops {
        harness.apply(op);
    }
    harness.finish()
}

/// Writers of ops in the byte layout, for hand-made seeds. Handles and pids
/// are indexes (a handle: the order it was made in; a pid: into [`PIDS`]).
pub mod seed {
    /// Starts an input: `quotas` indexes [`QUOTAS`](super::QUOTAS).
    pub fn start(quotas: u8) -> Vec<u8> {
        vec![quotas]
    }

    /// `CreateFile` from process `pid`, read-only or read-write.
    pub fn open(s: &mut Vec<u8>, pid: u8, rw: bool) {
        s.extend([0, pid | if rw { 4 } else { 0 }]);
    }

    /// A map of whole pages `page..page + pages` (pages >= 1).
    pub fn map(s: &mut Vec<u8>, handle: u8, rw: bool, page: u8, pages: u8) {
        s.extend([2, handle, if rw { 2 } else { 0 }, 0, 0, 0, page, 1, pages - 1, 0, 0]);
    }

    /// [`map`] as a driver forwarded it: from a system worker thread
    /// (`worker`), or in kernel mode in the caller's process.
    pub fn map_forwarded(s: &mut Vec<u8>, handle: u8, rw: bool, page: u8, pages: u8, worker: bool) {
        s.extend([2, handle, if rw { 2 } else { 0 }, if worker { 0xF0 } else { 0xE0 }, 0, 0, page, 1, pages - 1, 0, 0]);
    }

    /// A map with a raw `(bar, offset, size)`, exact buffers.
    pub fn map_raw(s: &mut Vec<u8>, handle: u8, bar: u32, offset: u32, size: u32) {
        s.extend([2, handle, 0, 5, 7]);
        s.extend(bar.to_le_bytes());
        s.push(3);
        s.extend(offset.to_le_bytes());
        s.push(3);
        s.extend(size.to_le_bytes());
        s.extend([0, 0]);
    }

    /// An unmap of the `pick`th live view this handle's process mapped
    /// through it.
    pub fn unmap(s: &mut Vec<u8>, handle: u8, pick: u8) {
        s.extend([2, handle, 4, 0, pick, 0, 0]);
    }

    /// An unmap of the `pick`th VA any map returned so far (live or not,
    /// any handle's), moved by `delta` dwords.
    pub fn unmap_va(s: &mut Vec<u8>, handle: u8, pick: u8, delta: i8) {
        // CAST: the dword step as its byte.
        s.extend([2, handle, 4, 0, pick, if delta == 0 { 1 } else { 2 }]);
        if delta != 0 {
            s.push(delta as u8);
        }
        s.extend([0, 0]);
    }

    /// A query with exact buffers.
    pub fn query(s: &mut Vec<u8>, handle: u8) {
        s.extend([2, handle, 6, 0, 0]);
    }

    /// Any code with `input` bytes; `out` is the output length byte: 0 the
    /// block the code expects, `2 + 4k` short of it by `k + 1`, `3 + 4k` long by `k`.
    pub fn raw(s: &mut Vec<u8>, handle: u8, code: u32, input: &[u8], out: u8) {
        s.extend([2, handle, 9]);
        s.extend(code.to_le_bytes());
        // CAST: a seed's input is short.
        s.extend([7, input.len() as u8]);
        s.extend(input);
        s.push(out);
    }

    /// `DuplicateHandle` into process `pid`.
    pub fn duplicate(s: &mut Vec<u8>, handle: u8, pid: u8) {
        s.extend([9, handle, pid]);
    }

    /// `CloseHandle`.
    pub fn close(s: &mut Vec<u8>, handle: u8) {
        s.extend([10, handle]);
    }

    /// The process exits.
    pub fn terminate(s: &mut Vec<u8>, pid: u8) {
        s.extend([11, pid]);
    }

    /// Process `pid` is killed by process `killer` (indexes below 8).
    pub fn kill(s: &mut Vec<u8>, pid: u8, killer: u8) {
        s.extend([11, 0x80 | (killer << 4) | pid]);
    }

    /// Query-remove.
    pub fn query_remove(s: &mut Vec<u8>) {
        s.extend([12, 1]);
    }

    /// Surprise removal.
    pub fn surprise_remove(s: &mut Vec<u8>) {
        s.extend([12, 0]);
    }

    /// Arms a fault: kind 0 map, 1 attach, 2 allocation; the `n`th call (1..=16).
    pub fn fault(s: &mut Vec<u8>, kind: u8, n: u8) {
        s.extend([13, kind, n - 1]);
    }
}
