#!/usr/bin/env python3
"""Prints the four ratios of `cargo bench --bench crspace` against their targets.

Reads criterion's `<target>/criterion/<group>/<bench>/new/estimates.json`
(the latest run of each bench) and prints one line per comparison: name, the
two times, their ratio, the target and PASS or MISS. The ratio uses the median
by default (`--stat mean` for the mean); the bracket is the ratio's range over
the two 95% confidence intervals, as a reminder of how noisy the run was.

With `--runs N` it first runs `cargo bench --bench crspace` N times itself
and reports, for each comparison, the median over the runs of each time and
of the ratio (PASS/MISS on that median ratio); the bracket is then the
ratio's range over the runs. On a shared machine, where load comes and goes
between the two arms of a comparison, this is the figure to quote.

Usage: python3 benches/report.py [--runs N] [--target-dir DIR] [--stat median|mean] [--strict]
Exit status: 0, or with --strict 1 when a comparison misses its target or has
no data (or a bench run failed).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

# (name, group, numerator bench, denominator bench, relation, target).
# The ratio is numerator / denominator; "<=" passes when ratio <= target and
# ">=" when ratio >= target.
COMPARISONS = [
    ("map+unmap 1 page: ioctl vs bare mmap", "map_unmap_page", "ioctl", "bare_mmap", "<=", 1.15),
    ("unmap: 10,000 live vs 1 live", "unmap_lookup", "live_10000", "live_1", "<=", 1.5),
    ("cleanup: 10,000 vs 1,000 mappings", "cleanup", "mappings_10000", "mappings_1000", "<=", 12.0),
    ("read 1 MiB: per-dword request vs mapping", "read_1mib", "per_dword_request", "mapping", ">=", 20.0),
]

# Shown for information, without a target.
EXTRA = [
    ("map+unmap 1 page: core alone vs bare mmap", "map_unmap_page", "core_dispatch", "bare_mmap"),
    ("unmap: 10,000 live vs 1 alone (no ballast)", "unmap_lookup", "live_10000", "live_1_alone"),
    ("cleanup, kernel alone: munmap 10,000 vs 1,000", "cleanup", "bare_munmap_10000", "bare_munmap_1000"),
    # Paired in each iteration: close minus bare munmap of as many views. 10x is linear.
    ("cleanup, the driver's share alone: 10,000 vs 1,000", "cleanup", "driver_share_10000", "driver_share_1000"),
]

CRATE_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))


def target_dir(arg):
    if arg:
        return arg
    if os.environ.get("CARGO_TARGET_DIR"):
        return os.environ["CARGO_TARGET_DIR"]
    return os.path.join(CRATE_ROOT, "target")


def estimate(root, group, bench, stat):
    """(point, lower, upper) in ns, or None when the bench has not run."""
    path = os.path.join(root, "criterion", group, bench, "new", "estimates.json")
    try:
        with open(path) as f:
            est = json.load(f)[stat]
    except (OSError, KeyError, ValueError):
        return None
    ci = est["confidence_interval"]
    return est["point_estimate"], ci["lower_bound"], ci["upper_bound"]


def collect(root, stat):
    """{(group, bench): (point, lower, upper)} for every bench named above."""
    out = {}
    for row in COMPARISONS + EXTRA:
        for bench in (row[2], row[3]):
            out[(row[1], bench)] = estimate(root, row[1], bench, stat)
    return out


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return f"{os.cpu_count()} CPUs, {model}; load average now {load}"


def run_benches(n, root):
    """Runs the benches n times; returns one estimates dict per good run."""
    runs = []
    for i in range(n):
        log = os.path.join(root, f"crspace-bench-run{i + 1}.log")
        print(f"run {i + 1}/{n}: cargo bench --bench crspace (log: {log})", flush=True)
        with open(log, "w") as f:
            cmd = ["cargo", "bench", "--bench", "crspace"]
            done = subprocess.run(cmd, cwd=CRATE_ROOT, stdout=f, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            print(f"run {i + 1} failed (exit {done.returncode}); see {log}")
            continue
        runs.append(collect(root, "median"))
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=0, help="run the benches N times first; report medians over the runs")
    ap.add_argument("--target-dir", help="cargo's target directory (default: $CARGO_TARGET_DIR or ./target)")
    ap.add_argument("--stat", choices=("median", "mean"), default="median")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed or data is missing")
    args = ap.parse_args()
    root = target_dir(args.target_dir)

    failed = False
    if args.runs > 0:
        os.makedirs(root, exist_ok=True)
        runs = run_benches(args.runs, root)
        failed |= len(runs) < args.runs
        if not runs:
            return 1
    else:
        runs = [collect(root, args.stat)]

    print(f"machine: {machine()}")
    if len(runs) > 1:
        print(f"statistic: median over {len(runs)} runs of each run's median; [ratio's range over the runs]")
    else:
        print(f"statistic: {args.stat}; ratio = first / second; [range over both 95% CIs]")
    width = max(len(c[0]) for c in COMPARISONS + EXTRA)
    for name, group, num, den, rel, target in COMPARISONS + [e + (None, None) for e in EXTRA]:
        pairs = [(r[(group, num)], r[(group, den)]) for r in runs]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            print(f"{name:<{width}}  no data ({group}/{num} or {group}/{den}: run `cargo bench --bench crspace`)")
            failed |= target is not None
            continue
        ratios = [a[0] / b[0] for a, b in pairs]
        if len(pairs) > 1:
            a_ns = statistics.median(a[0] for a, _ in pairs)
            b_ns = statistics.median(b[0] for _, b in pairs)
            ratio, lo, hi = statistics.median(ratios), min(ratios), max(ratios)
        else:
            (a, b) = pairs[0]
            a_ns, b_ns, ratio = a[0], b[0], ratios[0]
            lo, hi = a[1] / b[2], a[2] / b[1]
        line = f"{name:<{width}}  {fmt_time(a_ns):>9} vs {fmt_time(b_ns):>9}  ratio {ratio:8.3f}x [{lo:.3f}-{hi:.3f}]"
        if target is None:
            print(f"{line}  (information)")
            continue
        ok = ratio <= target if rel == "<=" else ratio >= target
        failed |= not ok
        print(f"{line}  target {rel} {target:g}x  {'PASS' if ok else 'MISS'}")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
