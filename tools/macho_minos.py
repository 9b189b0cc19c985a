"""The minimum macOS of Mach-O binaries, read from their load commands (standard library only).

    python tools/macho_minos.py [--max 12.0] [--require GLOB]... PATH...

PATH is a Mach-O file, a folder (searched recursively) or a wheel (its members are read
from the zip). Thin and fat (universal) files are read, 32- and 64-bit, either byte order.
Each slice's minimum macOS comes from LC_BUILD_VERSION (``minos``, macOS 10.14 and newer
toolchains) or, in older binaries, LC_VERSION_MIN_MACOSX (``version``): the same fields
delocate compares with MACOSX_DEPLOYMENT_TARGET. Files that are not Mach-O are skipped.

With ``--max`` the exit status is 1 when a slice needs a newer macOS, is built for another
platform (iOS, ...) or names no minimum, when a wheel's platform tag is newer, when a
``--require`` pattern (fnmatch, against the path inside the wheel or folder) matches no
Mach-O file, or when no Mach-O file is found at all. tools/check_packaging.sh runs it on
real macOS binaries offline; the macOS wheel build runs it on the repaired wheel.
"""

import argparse
import fnmatch
import os
import re
import struct
import sys
import zipfile

LC_REQ_DYLD = 0x80000000
LC_VERSION_MIN_MACOSX = 0x24
LC_VERSION_MIN_IPHONEOS = 0x25
LC_VERSION_MIN_TVOS = 0x2F
LC_VERSION_MIN_WATCHOS = 0x30
LC_BUILD_VERSION = 0x32

PLATFORM_MACOS = 1
PLATFORMS = {1: "macOS", 2: "iOS", 3: "tvOS", 4: "watchOS", 5: "bridgeOS", 6: "Mac Catalyst",
             7: "iOS simulator", 8: "tvOS simulator", 9: "watchOS simulator",
             10: "DriverKit", 11: "visionOS", 12: "visionOS simulator"}
VERSION_MIN_PLATFORMS = {LC_VERSION_MIN_MACOSX: 1, LC_VERSION_MIN_IPHONEOS: 2,
                         LC_VERSION_MIN_TVOS: 3, LC_VERSION_MIN_WATCHOS: 4}
CPU_TYPES = {7: "i386", 0x01000007: "x86_64", 12: "arm", 0x0100000C: "arm64",
             0x0200000C: "arm64_32", 18: "ppc", 0x01000012: "ppc64"}

MH_MAGIC, MH_MAGIC_64 = 0xFEEDFACE, 0xFEEDFACF
FAT_MAGIC, FAT_MAGIC_64 = 0xCAFEBABE, 0xCAFEBABF
# A Java class file also starts with 0xCAFEBABE (its next word is the class version, 45
# or more); no universal binary has this many slices.
MAX_FAT_ARCHS = 32


class MachOError(ValueError):
    """A file that starts like Mach-O but whose headers do not fit in it."""


def version_tuple(packed):
    """X.Y.Z packed as xxxx.yy.zz nibbles (the Mach-O encoding) -> (X, Y, Z)."""
    return (packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF)


def parse_version(text):
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))


def fmt(version):
    """(12, 0, 0) -> "12.0"; (10, 9, 5) -> "10.9.5"."""
    return ".".join(str(v) for v in (version if version[2] else version[:2]))


def _thin(data, offset, size):
    """One slice: {'arch', 'platform', 'minos', 'command'}."""
    if size < 28 or offset + size > len(data):
        raise MachOError("truncated mach_header")
    for endian in "<>":
        magic = struct.unpack_from(endian + "I", data, offset)[0]
        if magic in (MH_MAGIC, MH_MAGIC_64):
            break
    else:
        raise MachOError("not a Mach-O slice")
    cputype, _sub, _ftype, ncmds, sizeofcmds, _flags = struct.unpack_from(
        endian + "iIIIII", data, offset + 4)
    pos = offset + (32 if magic == MH_MAGIC_64 else 28)
    end = pos + sizeofcmds
    if end > offset + size:
        raise MachOError("load commands run past the slice")
    found = {"arch": CPU_TYPES.get(cputype & 0xFFFFFFFF, hex(cputype & 0xFFFFFFFF)),
             "platform": None, "minos": None, "command": None}
    for _ in range(ncmds):
        if pos + 8 > end:
            raise MachOError("truncated load command")
        cmd, cmdsize = struct.unpack_from(endian + "II", data, pos)
        if cmdsize < 8 or pos + cmdsize > end:
            raise MachOError(f"bad cmdsize {cmdsize} for load command {cmd:#x}")
        cmd &= ~LC_REQ_DYLD
        if cmd == LC_BUILD_VERSION and cmdsize >= 24:
            platform, minos = struct.unpack_from(endian + "II", data, pos + 8)
            found.update(platform=platform, minos=version_tuple(minos), command="LC_BUILD_VERSION")
        elif cmd in VERSION_MIN_PLATFORMS and cmdsize >= 16 and found["command"] is None:
            minos = struct.unpack_from(endian + "I", data, pos + 8)[0]
            found.update(platform=VERSION_MIN_PLATFORMS[cmd], minos=version_tuple(minos),
                         command="LC_VERSION_MIN_" + ("MACOSX" if cmd == LC_VERSION_MIN_MACOSX
                                                      else "OTHER"))
        pos += cmdsize
    return found


def read_slices(data):
    """The slices of a Mach-O file (bytes), or None when it is not Mach-O."""
    if len(data) < 8:
        return None
    magic = struct.unpack_from(">I", data)[0]
    if magic in (FAT_MAGIC, FAT_MAGIC_64):
        nfat = struct.unpack_from(">I", data, 4)[0]
        if not 0 < nfat <= MAX_FAT_ARCHS:
            return None  # a Java class file, not a universal binary
        entry = 32 if magic == FAT_MAGIC_64 else 20
        if 8 + nfat * entry > len(data):
            raise MachOError("truncated fat header")
        slices = []
        for i in range(nfat):
            at = 8 + i * entry
            if magic == FAT_MAGIC_64:
                _cpu, _sub, offset, size = struct.unpack_from(">iIQQ", data, at)
            else:
                _cpu, _sub, offset, size = struct.unpack_from(">iIII", data, at)
            slices.append(_thin(data, offset, size))
        return slices
    if struct.unpack_from("<I", data)[0] in (MH_MAGIC, MH_MAGIC_64) or magic in (
            MH_MAGIC, MH_MAGIC_64):
        return [_thin(data, 0, len(data))]
    return None


def iter_files(path):
    """(display name, name to match --require against, bytes) for each file under path."""
    if os.path.isdir(path):
        for root, _dirs, files in os.walk(path):
            for name in sorted(files):
                full = os.path.join(root, name)
                if os.path.isfile(full) and not os.path.islink(full):
                    rel = os.path.relpath(full, path).replace(os.sep, "/")
                    with open(full, "rb") as f:
                        yield full, rel, f.read()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield f"{path}!{info.filename}", info.filename, zf.read(info)
    else:
        with open(path, "rb") as f:
            yield path, os.path.basename(path), f.read()


def wheel_macos_tags(path):
    """The macOS versions in a wheel file name's platform tags, e.g. [(12, 0, 0)]."""
    name = os.path.basename(path)
    if not name.endswith(".whl"):
        return []
    platform_tags = name[:-4].split("-")[-1].split(".")
    return [(int(m[1]), int(m[2]), 0)
            for m in (re.match(r"macosx_(\d+)_(\d+)_", t) for t in platform_tags) if m]


def check(paths, max_version=None, require=()):
    """Print every slice; return the list of problems (empty: all good)."""
    problems = []
    matched = {pattern: False for pattern in require}
    n_macho = 0
    for path in paths:
        for tag in wheel_macos_tags(path):
            print(f"{path}: platform tag macOS {fmt(tag)}")
            if max_version is not None and tag > max_version:
                problems.append(f"{path}: platform tag needs macOS {fmt(tag)} > {fmt(max_version)}")
        for shown, rel, data in iter_files(path):
            try:
                slices = read_slices(data)
            except MachOError as exc:
                problems.append(f"{shown}: unreadable Mach-O: {exc}")
                continue
            if slices is None:
                continue
            n_macho += 1
            for pattern in require:
                if fnmatch.fnmatch(rel, pattern):
                    matched[pattern] = True
            for s in slices:
                platform = PLATFORMS.get(s["platform"], str(s["platform"]))
                minos = fmt(s["minos"]) if s["minos"] else "none"
                print(f"{shown} [{s['arch']}]: {platform} minos {minos} ({s['command']})")
                if max_version is None:
                    continue
                if s["minos"] is None:
                    problems.append(f"{shown} [{s['arch']}]: no minimum macOS load command")
                elif s["platform"] != PLATFORM_MACOS:
                    problems.append(f"{shown} [{s['arch']}]: built for {platform}, not macOS")
                elif s["minos"] > max_version:
                    problems.append(f"{shown} [{s['arch']}]: needs macOS {minos} > "
                                    f"{fmt(max_version)}")
    if n_macho == 0:
        problems.append(f"no Mach-O file in {' '.join(paths)}")
    problems += [f"no Mach-O file matches {p!r}" for p, hit in matched.items() if not hit]
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--max", type=parse_version, default=None, metavar="X.Y",
                        help="fail when a binary or the wheel tag needs a newer macOS")
    parser.add_argument("--require", action="append", default=[], metavar="GLOB",
                        help="fail unless a Mach-O file's path matches (repeatable)")
    args = parser.parse_args(argv)
    problems = check(args.paths, args.max, args.require)
    for problem in problems:
        print(f"macho_minos: FAIL: {problem}", file=sys.stderr)
    if not problems and args.max is not None:
        print(f"macho_minos: ok -- every Mach-O slice runs on macOS {fmt(args.max)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
