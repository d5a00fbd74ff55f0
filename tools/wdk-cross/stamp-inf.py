#!/usr/bin/python3
"""stamp-inf.py -- what the WDK's stampinf does to an .inx, for a Linux build.

    stamp-inf.py [--arch amd64] [--date MM/DD/YYYY] [--version A.B.C.D] IN.inx OUT.inf

Reads IN.inx (UTF-16 LE with BOM, as windows-drivers-rs samples ship INX
files; UTF-8 is accepted too), then:
  * replaces every $ARCH$ with the architecture (stampinf -a; default amd64),
  * sets [Version] DriverVer = date,version (stampinf -d / -v), adding the line
    if the section has none,
  * sets [Version] CatalogFile = <OUT basename>.cat if the section has one
    (stampinf -c),
and writes OUT.inf as UTF-16 LE with BOM and CRLF line ends, as stampinf does.

Defaults: --date is today, or the date of $SOURCE_DATE_EPOCH when set (so a
rebuild of the same sources stamps the same bytes); --version is the
`version` of the [package] in the Cargo.toml two levels above this script
with a fourth component 0 (0.1.0 -> 0.1.0.0).

The output is only rewritten when its bytes change (keeps timestamps stable
for incremental builds). Exit status 0 on success, 2 on a malformed input.
"""

import argparse
import datetime
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def die(msg):
    print(f"stamp-inf: {msg}", file=sys.stderr)
    sys.exit(2)


def read_text(path):
    data = open(path, "rb").read()
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le")
    if data.startswith(b"\xfe\xff"):
        die(f"{path}: UTF-16 big endian is not an INF encoding")
    return data.decode("utf-8-sig")


def package_version():
    text = open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8").read()
    section = None
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^\[([^\]]+)\]$", line)
        if m:
            section = m.group(1).strip()
            continue
        m = re.match(r'^version\s*=\s*"([0-9]+)\.([0-9]+)\.([0-9]+)[^"]*"', line)
        if section == "package" and m:
            return "{}.{}.{}.0".format(*m.groups())
    die("no [package] version in Cargo.toml")


def default_date():
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    day = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).date()
        if epoch
        else datetime.date.today()
    )
    return day.strftime("%m/%d/%Y")


def stamp(text, arch, date, version, catalog):
    lines = text.replace("\r\n", "\n").split("\n")
    out = []
    section = None
    version_seen = False
    driver_ver_done = False

    def leave_section():
        nonlocal driver_ver_done
        if section == "version" and not driver_ver_done:
            # stampinf adds DriverVer when [Version] lacks it; keep it inside
            # the section (before trailing blank lines).
            at = len(out)
            while at > 0 and out[at - 1].strip() == "":
                at -= 1
            out.insert(at, f"DriverVer   = {date},{version}")
            driver_ver_done = True

    for line in lines:
        line = line.replace("$ARCH$", arch)
        m = re.match(r"^\s*\[([^\]]+)\]", line)
        if m:
            leave_section()
            section = m.group(1).strip().lower()
            version_seen |= section == "version"
            out.append(line)
            continue
        if section == "version":
            key = line.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if key == "driverver" and "=" in line:
                out.append(f"DriverVer   = {date},{version}")
                driver_ver_done = True
                continue
            if key == "catalogfile" and "=" in line:
                out.append(f"CatalogFile = {catalog}")
                continue
        out.append(line)
    leave_section()
    if not version_seen:
        die("no [Version] section")
    return "\r\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--date", default=None, help="MM/DD/YYYY")
    ap.add_argument("--version", default=None, help="A.B.C.D")
    ap.add_argument("inx")
    ap.add_argument("inf")
    args = ap.parse_args()
    date = args.date or default_date()
    version = args.version or package_version()
    if not re.fullmatch(r"\d\d/\d\d/\d{4}", date):
        die(f"--date {date!r} is not MM/DD/YYYY")
    if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", version):
        die(f"--version {version!r} is not A.B.C.D")
    catalog = os.path.splitext(os.path.basename(args.inf))[0] + ".cat"
    text = stamp(read_text(args.inx), args.arch, date, version, catalog)
    if "$" in re.sub(r'"\$WINDOWS NT\$"', "", text, flags=re.IGNORECASE):
        die("unresolved $...$ placeholder left after stamping")
    data = b"\xff\xfe" + text.encode("utf-16-le")
    try:
        if open(args.inf, "rb").read() == data:
            return
    except FileNotFoundError:
        pass
    tmp = args.inf + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.inf)


if __name__ == "__main__":
    main()
