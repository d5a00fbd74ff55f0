//! The driver's bookkeeping against the cost of the mapping itself (issue 6).
//!
//! Four comparisons, each a criterion group whose two arms run back to back
//! in the same process, so that their ratio holds on a noisy machine:
//!
//! 1. `map_unmap_page`: map + unmap of one page through the full IOCTL path of
//!    the simulated HCA (`ioctl`) against a bare `mmap` + `munmap` of one page
//!    of a 1 MiB memfd, made as the simulator makes its BAR 0 (`bare_mmap`).
//!    Target: `ioctl / bare_mmap <= 1.15`. `core_dispatch` (information):
//!    the same two requests straight into the core's `Device::device_control`
//!    on a platform that only does the mmap/munmap, without the simulator's
//!    I/O manager (handle table, lock, system buffer) and Verifier books:
//!    the driver's own bookkeeping alone.
//! 2. `unmap_lookup`: one unmap when the handle holds 10,000 live mappings
//!    (`live_10000`) against one unmap when it holds 1 (`live_1`). Only the
//!    unmap is timed (the map that makes the view is set up untimed, one view
//!    per iteration). In `live_1` a second handle of the same process holds
//!    the other 9,999 views, so that the process has as many VMAs and the
//!    device as many live views in both arms: the kernel's and the
//!    simulator's costs are equal and only the handle's table differs.
//!    `live_1_alone` (no ballast) is reported for information.
//!    Target: `live_10000 / live_1 <= 1.5`.
//! 3. `cleanup`: `CloseHandle` (IRP_MJ_CLEANUP and IRP_MJ_CLOSE) of a handle
//!    with 10,000 mappings against one with 1,000; only the close is timed.
//!    Target: `mappings_10000 / mappings_1000 <= 12`. For information,
//!    `bare_munmap_10000 / bare_munmap_1000`: the kernel's own munmap of as
//!    many bare views, which is not linear either (its cost per VMA grows
//!    with their number), so that the report shows how much of the ratio is
//!    the host's and how much the driver's; and `driver_share_10000 /
//!    driver_share_1000`, the driver's own part (each close minus a bare
//!    munmap of as many views, paired in one iteration): 10 when it is
//!    linear.
//! 4. `read_1mib`: reading all of BAR 0 (1 MiB) with volatile dword reads
//!    through one mapping (`mapping`) against one request per dword through
//!    the same simulated device (`per_dword_request`).
//!    Target: `per_dword_request / mapping >= 20`.
//!
//! `python3 benches/report.py` prints the four ratios from
//! `target/criterion/<group>/<bench>/new/estimates.json`;
//! `python3 benches/report.py --runs 3` runs the benches three times first and
//! reports the median of each ratio (the figure to quote on a shared machine).

use criterion::{Criterion, SamplingMode};
use memmap2::{MmapOptions, MmapRaw};
use mlnx_hca::abi::{
    Access, MapCrSpaceIn, MapCrSpaceOut, Response, UnmapCrSpaceIn, FW_MAP_CRSPACE_RO, FW_UNMAP_CRSPACE,
};
use mlnx_hca::core::{BarSizes, Config, Device, PageSpan, Platform, Requester, PAGE_SIZE};
use mlnx_hca::sim::{SimAccess, SimHandle, SimHca, SIM_BAR0_SIZE};
use std::fs::File;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The "process" the benchmarks' handles belong to.
const PID: u32 = 4242;
/// Live mappings of the large handle (comparisons 2 and 3).
const MANY: usize = 10_000;
/// Live mappings of the smaller handle of comparison 3.
const SOME: usize = 1_000;
/// Dwords in BAR 0.
const DWORDS: usize = (SIM_BAR0_SIZE / 4) as usize;
/// Quotas raised for comparisons 2 and 3 (the defaults are 64 and 1,024).
const RAISED: Config = Config { per_handle_quota: 2 * MANY as u32, per_device_quota: 4 * MANY as u32 };

/// `FW_MAP_CRSPACE_RO` of `size` bytes at `offset`, as a tool calls it; the VA.
fn map_ro(h: &SimHandle, offset: u32, size: u32) -> u64 {
    let mut out = [0u8; 8];
    let input = MapCrSpaceIn { bar_num: 0, offset, size }.to_bytes();
    let n = h.ioctl(FW_MAP_CRSPACE_RO, &input, &mut out).expect("FW_MAP_CRSPACE_RO");
    debug_assert_eq!(n, 8);
    MapCrSpaceOut::from_bytes(&out).expect("8-byte map output").va
}

/// `FW_UNMAP_CRSPACE` of a VA a map returned.
fn unmap(h: &SimHandle, va: u64) {
    let input = UnmapCrSpaceIn { va }.to_bytes();
    h.ioctl(FW_UNMAP_CRSPACE, &input, &mut []).expect("FW_UNMAP_CRSPACE");
}

/// One page of BAR 0, a different one for each `i`: consecutive views have
/// no contiguous file offsets, so the kernel never merges their VMAs and a
/// handle with N views is N VMAs.
fn nth_page(i: usize) -> u32 {
    // CAST: i % 256 < 256 pages of the 1 MiB BAR.
    (i % (SIM_BAR0_SIZE / PAGE_SIZE) as usize) as u32 * PAGE_SIZE
}

/// Maps `n` one-page views through `h`.
fn fill(h: &SimHandle, n: usize) {
    for i in 0..n {
        map_ro(h, nth_page(i), PAGE_SIZE);
    }
}

/// Shared memory like the simulator's BAR 0 (see `src/sim/platform.rs`):
/// a 1 MiB memfd.
fn bar_memfd() -> File {
    let fd = rustix::fs::memfd_create("mlnx_hca-bench", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd_create");
    let mem = File::from(fd);
    mem.set_len(u64::from(SIM_BAR0_SIZE)).expect("ftruncate");
    mem
}

/// The least platform the core can run on: a view is the mmap of the memfd,
/// an unmap its munmap. No ledger, no process contexts.
struct BarePlatform {
    mem: File,
}

impl Platform for BarePlatform {
    type View = MmapRaw;

    fn map_view(&mut self, span: PageSpan, writable: bool) -> mlnx_hca::Result<(MmapRaw, u64)> {
        let mut options = MmapOptions::new();
        // CAST: a span of the 1 MiB BAR fits usize.
        options.offset(span.byte_offset()).len(span.byte_len() as usize);
        let map = if writable { options.map_raw(&self.mem) } else { options.map_raw_read_only(&self.mem) };
        let map = map.map_err(|_| mlnx_hca::Status::INSUFFICIENT_RESOURCES)?;
        // CAST: the address is the VA the caller gets.
        let va = map.as_ptr() as u64;
        Ok((map, va))
    }

    fn unmap_view(&mut self, view: MmapRaw) {
        drop(view);
    }

    fn keep_system_awake(&mut self, _awake: bool) {}
}

/// 1. Map + unmap of one page: the full IOCTL path against a bare mmap + munmap.
fn map_unmap_page(c: &mut Criterion) {
    let hca = SimHca::new();
    let h = hca.open(PID, SimAccess::Read);
    let mem = bar_memfd();
    let mut g = c.benchmark_group("map_unmap_page");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4)).sample_size(60);
    g.bench_function("bare_mmap", |b| {
        b.iter(|| {
            // What the simulator's platform does for a read-only view of page 0.
            let view = MmapOptions::new()
                .offset(0)
                .len(PAGE_SIZE as usize)
                .map_raw_read_only(&mem)
                .expect("mmap of the memfd");
            black_box(view.as_ptr());
            drop(view);
        })
    });
    g.bench_function("ioctl", |b| {
        b.iter(|| {
            let va = map_ro(&h, 0, PAGE_SIZE);
            unmap(&h, black_box(va));
        })
    });
    let mut device = Device::new(BarePlatform { mem: bar_memfd() }, Config::DEFAULT);
    device.start(BarSizes { bar0: SIM_BAR0_SIZE, bar1: 0, bar2: 0 });
    let ca = device.open().expect("a context");
    g.bench_function("core_dispatch", |b| {
        b.iter(|| {
            let input = MapCrSpaceIn { bar_num: 0, offset: 0, size: PAGE_SIZE }.to_bytes();
            let va = match device.device_control(ca, Requester::user(PID), Access::READ, FW_MAP_CRSPACE_RO, &input, 8) {
                Ok(Response::Map(out)) => out.va,
                other => panic!("map: {other:?}"),
            };
            let input = UnmapCrSpaceIn { va: black_box(va) }.to_bytes();
            device.device_control(ca, Requester::user(PID), Access::READ, FW_UNMAP_CRSPACE, &input, 0).expect("unmap");
        })
    });
    g.finish();
    assert_eq!(device.close(ca), 0);
    assert_eq!(hca.live_views(), 0);
}

/// Time of `iters` unmaps of a view mapped (untimed) just before each, so
/// the handle holds exactly its other views plus that one when it unmaps.
fn timed_unmaps(h: &SimHandle, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let va = map_ro(h, 0, PAGE_SIZE);
        let start = Instant::now();
        unmap(h, black_box(va));
        total += start.elapsed();
    }
    total
}

/// 2. Unmap with 10,000 live views in the handle against 1.
fn unmap_lookup(c: &mut Criterion) {
    let hca = SimHca::with_config(RAISED);
    let mut g = c.benchmark_group("unmap_lookup");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50);
    {
        let h = hca.open(PID, SimAccess::Read);
        fill(&h, MANY - 1);
        g.bench_function("live_10000", |b| b.iter_custom(|iters| timed_unmaps(&h, iters)));
        h.close();
    }
    {
        let h = hca.open(PID, SimAccess::Read);
        let ballast = hca.open(PID, SimAccess::Read);
        fill(&ballast, MANY - 1);
        g.bench_function("live_1", |b| b.iter_custom(|iters| timed_unmaps(&h, iters)));
        ballast.close();
        h.close();
    }
    {
        let h = hca.open(PID, SimAccess::Read);
        g.bench_function("live_1_alone", |b| b.iter_custom(|iters| timed_unmaps(&h, iters)));
        h.close();
    }
    g.finish();
    assert_eq!(hca.live_views(), 0);
}

/// Time of `iters` closes of a handle that holds `n` views (mapped untimed).
fn timed_closes(hca: &SimHca, n: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let h = hca.open(PID, SimAccess::Read);
        fill(&h, n);
        let start = Instant::now();
        h.close();
        total += start.elapsed();
    }
    total
}

/// Time of `iters` munmaps of `n` bare one-page views of `mem` (mapped
/// untimed, the same pages as [`fill`]), in a scattered order as a hash
/// table drains: what the kernel alone costs for a cleanup of `n` views.
fn timed_bare_unmaps(mem: &File, n: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut views: Vec<MmapRaw> = (0..n)
            .map(|i| {
                MmapOptions::new()
                    .offset(u64::from(nth_page(i)))
                    .len(PAGE_SIZE as usize)
                    .map_raw_read_only(mem)
                    .expect("mmap of the memfd")
            })
            .collect();
        // CAST: the address as a number, to scatter the order.
        views.sort_unstable_by_key(|v| (v.as_ptr() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let start = Instant::now();
        drop(views);
        total += start.elapsed();
    }
    total
}

/// The driver's own share of a cleanup of `n` views: each iteration times a
/// close of a handle with `n` views and, right after it, the host's munmap of
/// `n` bare views, and counts the difference (at least 0, which if anything
/// overstates the driver). Paired this way, load that comes and goes on a
/// shared machine falls on both halves, which separate benches cannot ensure.
fn timed_driver_share(hca: &SimHca, mem: &File, n: usize, iters: u64) -> Duration {
    (0..iters).map(|_| timed_closes(hca, n, 1).saturating_sub(timed_bare_unmaps(mem, n, 1))).sum()
}

/// 3. Cleanup of a handle with 10,000 views against one with 1,000.
fn cleanup(c: &mut Criterion) {
    let hca = SimHca::with_config(RAISED);
    let mut g = c.benchmark_group("cleanup");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    g.bench_function("mappings_1000", |b| b.iter_custom(|iters| timed_closes(&hca, SOME, iters)));
    g.bench_function("mappings_10000", |b| b.iter_custom(|iters| timed_closes(&hca, MANY, iters)));
    // Information: the kernel alone, munmap of as many bare views.
    let mem = bar_memfd();
    g.bench_function("bare_munmap_1000", |b| b.iter_custom(|iters| timed_bare_unmaps(&mem, SOME, iters)));
    g.bench_function("bare_munmap_10000", |b| b.iter_custom(|iters| timed_bare_unmaps(&mem, MANY, iters)));
    // Information: the driver's own share, paired within each iteration.
    g.bench_function("driver_share_1000", |b| b.iter_custom(|iters| timed_driver_share(&hca, &mem, SOME, iters)));
    g.bench_function("driver_share_10000", |b| b.iter_custom(|iters| timed_driver_share(&hca, &mem, MANY, iters)));
    g.finish();
    assert_eq!(hca.live_views(), 0);
}

/// Sum of every dword of a view of all of BAR 0, read as a tool reads CR space.
fn read_view(va: u64) -> u32 {
    let base = std::ptr::with_exposed_provenance::<u32>(usize::try_from(va).expect("a VA of this process"));
    let mut sum = 0u32;
    for i in 0..DWORDS {
        // `va` starts a live read-only view of the whole 1 MiB BAR 0, which
        // this handle unmaps only after the benchmark. The device may change
        // a dword at any time, hence the volatile read.
        // SAFETY: the view is page aligned and `i < DWORDS`: inside, aligned.
        let dword = unsafe { std::ptr::read_volatile(base.wrapping_add(i)) };
        // CR space is big-endian: a tool swaps every dword it reads.
        sum = sum.wrapping_add(u32::from_be(dword));
    }
    sum
}

/// 4. 1 MiB of CR space through one mapping against one request per dword.
fn read_1mib(c: &mut Criterion) {
    let hca = SimHca::new();
    let h = hca.open(PID, SimAccess::Read);
    let va = map_ro(&h, 0, SIM_BAR0_SIZE);
    assert_eq!(va % u64::from(PAGE_SIZE), 0, "a view of offset 0 starts on a page");
    for i in (0..SIM_BAR0_SIZE).step_by(PAGE_SIZE as usize) {
        hca.write_dword(i, i);
    }
    let by_requests = |h: &SimHandle| {
        let mut sum = 0u32;
        for i in 0..DWORDS {
            // CAST: i < 2^18, a dword index of the 1 MiB BAR.
            sum = sum.wrapping_add(h.read_dword_via_request(i as u32 * 4).expect("read_dword_via_request"));
        }
        sum
    };
    assert_eq!(read_view(va), by_requests(&h), "both paths read the same CR space");
    let mut g = c.benchmark_group("read_1mib");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    g.bench_function("mapping", |b| b.iter(|| read_view(black_box(va))));
    g.bench_function("per_dword_request", |b| b.iter(|| by_requests(&h)));
    g.finish();
    unmap(&h, va);
}

/// What `criterion_main!` would write, without an undocumented `pub fn`:
/// the four groups in one run, then criterion's summary.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    map_unmap_page(&mut c);
    unmap_lookup(&mut c);
    cleanup(&mut c);
    read_1mib(&mut c);
    c.final_summary();
}
