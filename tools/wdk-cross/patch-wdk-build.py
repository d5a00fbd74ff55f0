#!/usr/bin/env python3
"""Make a pristine copy of wdk-build 0.6.0 compile and run on a Linux host.

Usage: patch-wdk-build.py DIR

DIR is a copy of the crate as published on crates.io (build.sh extracts it
from the private cargo registry). The copy is then used through
`[patch.crates-io] wdk-build = { path = DIR }`; the registry copy is never
touched.

wdk-build is a *build* dependency, so "host" below means the machine running
cargo. Published 0.6.0 assumes a Windows host in four places:

  1. Cargo.toml: an unconditional dependency on the `windows` crate (registry
     access), which does not build on Linux.
     -> made a `cfg(windows)` target dependency.
  2. src/utils.rs: `detect_wdk_content_root()` falls back to reading
     KitsRoot10 from the registry through `windows`.
     -> the `use windows::...`, the two registry look-ups and the helper
        function are `#[cfg(windows)]`; on Linux the `WDKContentRoot`
        environment variable (set by build.sh) is the only source.
  3. src/utils.rs: the non-Windows `set_var`/`remove_var` are
     `compile_error!` stubs (the crate refuses to build on Linux).
     -> they call `std::env::{set_var, remove_var}` (build scripts and
        cargo-make tasks are single-threaded at that point, which is the same
        argument the Windows variants rely on).
  4. src/cargo_make.rs: `std::os::windows::fs::symlink_file` (cargo-make flow
     only, but it must compile).
     -> a small helper that uses the Unix symlink on Unix hosts.

Every change is either `cfg(windows)`-neutral or only replaces code that is
compiled on non-Windows hosts, so the patched crate behaves exactly like the
original on Windows. Run on a Windows host, this script does nothing.

Each edit asserts that it matched exactly as often as expected, so a
different wdk-build version fails loudly instead of being half-patched.
A marker file makes a second run on the same DIR a no-op.
"""

import hashlib
import os
import re
import sys

EXPECTED_VERSION = "0.6.0"
MARKER = ".wdk-cross-patched"


def die(msg):
    sys.exit("patch-wdk-build: " + msg)


def replace(text, old, new, count=1, what=""):
    """Replace `old` by `new`, asserting exactly `count` occurrences."""
    found = text.count(old)
    if found != count:
        die("%s: expected %d occurrence(s) of %r, found %d" % (what, count, old, found))
    return text.replace(old, new)


def edit(root, rel, fn):
    """Apply fn to a file's text, keeping its line endings (utils.rs is CRLF)."""
    path = os.path.join(root, rel)
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8")
    crlf = "\r\n" in raw
    text = raw.replace("\r\n", "\n")
    new = fn(text, rel)
    if new == text:
        die(rel + ": edit changed nothing")
    if crlf:
        new = new.replace("\n", "\r\n")
    with open(path, "wb") as f:
        f.write(new.encode("utf-8"))
    print("patch-wdk-build: patched", rel)


def patch_cargo_toml(s, what):
    # Both the normal and the dev dependency on `windows` become Windows-only.
    s = replace(s, "\n[dependencies.windows]\n",
                "\n[target.'cfg(windows)'.dependencies.windows]\n", what=what)
    s = replace(s, "\n[dev-dependencies.windows]\n",
                "\n[target.'cfg(windows)'.dev-dependencies.windows]\n", what=what)
    return s


NON_WINDOWS_SET_VAR = re.compile(
    r'(#\[cfg\(not\(target_os = "windows"\)\)\]\n'
    r'pub fn set_var<K, V>\()_key: K, _value: V(\)\n'
    r'where\n    K: AsRef<OsStr>,\n    V: AsRef<OsStr>,\n\{\n)'
    r'    compile_error!\([^;]*\);\n')
NON_WINDOWS_REMOVE_VAR = re.compile(
    r'(#\[cfg\(not\(target_os = "windows"\)\)\]\n'
    r'pub fn remove_var<K>\()_key: K(\)\n'
    r'where\n    K: AsRef<OsStr>,\n\{\n)'
    r'    compile_error!\([^;]*\);\n')


def patch_utils(s, what):
    # (2) registry fallback only on Windows hosts
    s = replace(s, "    ffi::{CStr, OsStr},\n", "    ffi::OsStr,\n", what=what)
    s = replace(s, "\nuse windows::{\n",
                "\n#[cfg(windows)]\nuse std::ffi::CStr;\n\n#[cfg(windows)]\nuse windows::{\n",
                what=what)
    s = replace(s, "\n    if let Some(path) = read_registry_key_string_value(\n",
                "\n    #[cfg(windows)] // wdk-cross: no registry on a non-Windows host\n"
                "    if let Some(path) = read_registry_key_string_value(\n",
                count=2, what=what)
    s = replace(s, "\nfn read_registry_key_string_value(\n",
                "\n#[cfg(windows)]\nfn read_registry_key_string_value(\n", what=what)
    # (3) real set_var/remove_var instead of compile_error! on non-Windows hosts
    s, n = NON_WINDOWS_SET_VAR.subn(
        r"\1key: K, value: V\2"
        "    // wdk-cross: SAFETY: called from single-threaded build scripts/cargo-make tasks\n"
        "    unsafe { env::set_var(key, value) }\n", s)
    if n != 1:
        die("%s: non-Windows set_var stub not found (%d)" % (what, n))
    s, n = NON_WINDOWS_REMOVE_VAR.subn(
        r"\1key: K\2"
        "    // wdk-cross: SAFETY: called from single-threaded build scripts/cargo-make tasks\n"
        "    unsafe { env::remove_var(key) }\n", s)
    if n != 1:
        die("%s: non-Windows remove_var stub not found (%d)" % (what, n))
    if "compile_error!" in s:
        die(what + ": a compile_error! is left")
    return s


def patch_cargo_make(s, what):
    # (4) portable symlink for the cargo-make flow
    s = replace(s, "std::os::windows::fs::symlink_file(", "wdk_cross_symlink_file(",
                count=2, what=what)
    return s + """
/// wdk-cross: `std::os::windows::fs::symlink_file` on Windows hosts, a plain
/// symlink on Unix hosts (the published crate only compiles on Windows).
fn wdk_cross_symlink_file(
    original: impl AsRef<Path>,
    link: impl AsRef<Path>,
) -> std::io::Result<()> {
    #[cfg(windows)]
    return std::os::windows::fs::symlink_file(original, link);
    #[cfg(unix)]
    return std::os::unix::fs::symlink(original, link);
}
"""


def main():
    if len(sys.argv) != 2:
        die("usage: patch-wdk-build.py DIR")
    root = sys.argv[1]
    if os.name == "nt":
        print("patch-wdk-build: Windows host, nothing to patch")
        return
    manifest = os.path.join(root, "Cargo.toml")
    if not os.path.isfile(manifest):
        die(manifest + " not found")

    with open(os.path.abspath(__file__), "rb") as f:
        me = hashlib.sha256(f.read()).hexdigest()
    marker = os.path.join(root, MARKER)
    if os.path.exists(marker):
        with open(marker) as f:
            if f.read().strip() == me:
                print("patch-wdk-build: already patched:", root)
                return
        die(root + " was patched by another version of this script; start from a pristine copy")

    with open(manifest) as f:
        m = re.search(r'^name = "wdk-build"\nversion = "([^"]+)"', f.read(), re.M)
    if not m:
        die(manifest + " is not wdk-build's manifest")
    if m.group(1) != EXPECTED_VERSION:
        die("written for wdk-build %s, found %s: review the edits" % (EXPECTED_VERSION, m.group(1)))

    edit(root, "Cargo.toml", patch_cargo_toml)
    edit(root, "src/utils.rs", patch_utils)
    edit(root, "src/cargo_make.rs", patch_cargo_make)
    with open(marker, "w") as f:
        f.write(me + "\n")
    print("patch-wdk-build: done:", root)


if __name__ == "__main__":
    main()
