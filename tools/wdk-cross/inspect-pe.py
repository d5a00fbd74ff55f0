#!/usr/bin/python3
"""Inspect (and optionally check) a kernel driver image.

Usage: inspect-pe.py [--check] [--import NAME]... FILE.sys

Prints machine, subsystem, characteristics, entry point, checksum, sections,
imports and exports. With --check (build.sh uses it after every build) it
fails unless the image is what Windows loads as a WDM driver:
  PE32+, AMD64, subsystem native (1), entry point = the exported DriverEntry,
  FORCE_INTEGRITY set (/INTEGRITYCHECK; PsSetCreateProcessNotifyRoutineEx
  refuses drivers without it), NX_COMPAT, DYNAMIC_BASE, valid checksum,
  imports only from ntoskrnl.exe / HAL.dll, and every --import NAME imported.

Needs pefile: Debian's python3-pefile is installed for /usr/bin/python3
(hence the shebang; a pyenv python3 earlier on PATH does not see it).
"""
import argparse
import sys

import pefile

ALLOWED_DLLS = {"ntoskrnl.exe", "hal.dll"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--import", dest="imports", action="append", default=[])
    ap.add_argument("file")
    args = ap.parse_args()

    pe = pefile.PE(args.file)
    oh, fh = pe.OPTIONAL_HEADER, pe.FILE_HEADER
    exports = {}
    if hasattr(pe, "DIRECTORY_ENTRY_EXPORT"):
        exports = {e.address: (e.name or b"").decode() for e in pe.DIRECTORY_ENTRY_EXPORT.symbols}
    imports = {}
    for d in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        imports[d.dll.decode()] = sorted((i.name or b"#%d" % i.ordinal).decode() for i in d.imports)
    entry = exports.get(oh.AddressOfEntryPoint, "?")
    dllch = [n for n, v in pefile.dll_characteristics if oh.DllCharacteristics & v]
    filech = [n for n, v in pefile.image_characteristics if fh.Characteristics & v]
    checksum = pe.generate_checksum()

    print("file:", args.file)
    print("format: %s  machine: %s" % ("PE32+" if oh.Magic == 0x20B else hex(oh.Magic),
                                       pefile.MACHINE_TYPE.get(fh.Machine, hex(fh.Machine))))
    print("subsystem:", oh.Subsystem, pefile.SUBSYSTEM_TYPE.get(oh.Subsystem, ""))
    print("file characteristics: 0x%x %s" % (fh.Characteristics, filech))
    print("dll characteristics: 0x%x %s" % (oh.DllCharacteristics, dllch))
    print("entry point: RVA 0x%x = %s" % (oh.AddressOfEntryPoint, entry))
    print("checksum: header 0x%x, computed 0x%x" % (oh.CheckSum, checksum))
    print("size of image: 0x%x" % oh.SizeOfImage)
    print("sections:", " ".join(s.Name.rstrip(b"\0").decode() for s in pe.sections))
    for dll, names in imports.items():
        print("imports from %s (%d): %s" % (dll, len(names), " ".join(names)))
    print("exports:", " ".join(sorted(exports.values())))

    if not args.check:
        return
    errors = []
    def expect(cond, msg):
        if not cond:
            errors.append(msg)
    expect(oh.Magic == 0x20B, "not PE32+")
    expect(fh.Machine == 0x8664, "machine is not AMD64")
    expect(oh.Subsystem == 1, "subsystem is not native (1)")
    expect(entry == "DriverEntry", "entry point is %s, not DriverEntry" % entry)
    expect("IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY" in dllch, "FORCE_INTEGRITY not set")
    expect("IMAGE_DLLCHARACTERISTICS_NX_COMPAT" in dllch, "NX_COMPAT not set")
    expect("IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE" in dllch, "DYNAMIC_BASE not set")
    expect(oh.CheckSum == checksum, "checksum 0x%x != 0x%x" % (oh.CheckSum, checksum))
    bad = [d for d in imports if d.lower() not in ALLOWED_DLLS]
    expect(not bad, "imports from %s" % bad)
    imported = {n for names in imports.values() for n in names}
    missing = [n for n in args.imports if n not in imported]
    expect(not missing, "not imported: %s" % missing)
    if errors:
        sys.exit("inspect-pe: %s: %s" % (args.file, "; ".join(errors)))
    print("check: OK")


if __name__ == "__main__":
    main()
