"""Offline checks of the macOS wheel configuration (issue 16), run by check_packaging.sh.

    python tools/check_macos_wheels.py WORKDIR

The macOS wheels promise macOS 12.0 on x86_64 and arm64. Without a Mac, this checks:

1. the [tool.cibuildwheel.macos] options as the pinned cibuildwheel resolves them, for
   every macOS identifier: MACOSX_DEPLOYMENT_TARGET at most 12.0, no Homebrew, libomp from
   tools/macos_libomp.sh with CPPFLAGS/LDFLAGS (and an rpath) pointing at it, delocate as
   the repair command followed by macho_minos.py at the same target, and a test command
   that runs the suite and assert_openmp.py (`python -m cyloss`, OpenMP ON) at that target,
   and README's platform table stating that target for both architectures;
2. tools/macos_libomp.sh pins one llvm-openmp version, one package per architecture with
   its SHA-256, and checks the unpacked libomp against the same target;
3. tools/macho_minos.py against macholib (the version cibuildwheel installs for delocate)
   on delocate's Mach-O test files: thin and fat, x86_64, arm64 and i386, LC_BUILD_VERSION
   and LC_VERSION_MIN_MACOSX; 12.0 passes the 12.0 limit and 12.1 fails it;
4. the libomp that scikit-learn's macOS wheels vendor (the same conda-forge llvm-openmp
   11.1.0 packages) through macho_minos.py, delocate's own minimum-version check at
   MACOSX_DEPLOYMENT_TARGET, and the configured repair-step command: accepted as it is,
   rejected once its minimum macOS is patched to 15.0 (what Homebrew's libomp has on a
   macos-15 runner), and a wheel tagged macOS 15 is rejected.

What only a macOS runner proves (README, "Building wheels"): that the download and its
SHA-256 match, that Apple clang compiles and links against this libomp, that delocate
vendors it and the repaired wheel's own Mach-O files pass, and that the wheel imports and
runs its tests on the runner.
"""

import dataclasses
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import macho_minos  # noqa: E402

# The oldest macOS the wheels promise on both architectures (README, issue 16).
PROMISED = (12, 0, 0)
# scikit-learn's macOS wheels vendor conda-forge's llvm-openmp 11.1.0 (the packages that
# tools/macos_libomp.sh pins): a real libomp of each architecture to read offline.
SKLEARN = "scikit-learn==1.9.1"
SKLEARN_LIBOMP = "sklearn/.dylibs/libomp.dylib"
# A Cython extension of scikit-learn's that links libomp: the stand-in for cyloss's own.
SKLEARN_EXT = "sklearn/utils/_openmp_helpers.cpython-312-darwin.so"
HOMEBREW_MINOS = (15, 0, 0)
ARCHS = {"arm64": "macosx_12_0_arm64", "x86_64": "macosx_10_13_x86_64"}

failures = []


def check(ok, msg):
    print(("ok -- " if ok else "FAIL -- ") + msg)
    if not ok:
        failures.append(msg)


def section(title):
    print(f"\n--- {title}")


# ---------------------------------------------------------------------------------------
def resolved_macos_options():
    """{identifier: BuildOptions} for every macOS identifier, as cibuildwheel resolves them.

    cibuildwheel's Options API is internal: pinned (wheels.yml), a new release that moves
    it fails here loudly rather than checking nothing.
    """
    from cibuildwheel.options import CommandLineArguments, compute_options

    idents = subprocess.run(
        ["cibuildwheel", "--print-build-identifiers", "--platform", "macos"],
        cwd=REPO, check=True, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CIBW_")},
    ).stdout.split()
    args = dataclasses.replace(CommandLineArguments.defaults(), platform="macos",
                               config_file=str(REPO / "pyproject.toml"), package_dir=REPO)
    opts = compute_options("macos", args, {})
    return {ident: opts.build_options(ident) for ident in idents}


def check_config():
    section("[tool.cibuildwheel.macos] as cibuildwheel resolves it")
    options = resolved_macos_options()
    check(len(options) >= 2 and any(i.endswith("arm64") for i in options)
          and any(i.endswith("x86_64") for i in options),
          f"macOS identifiers for both architectures: {' '.join(options)}")
    targets = set()
    for ident, b in options.items():
        # $(...) in a value is shown, not run: it is meant for the macOS runner.
        env = b.environment.as_dictionary(
            prev_environment={}, executor=lambda cmd, _env: "$(" + " ".join(cmd) + ")")
        target = env.get("MACOSX_DEPLOYMENT_TARGET")
        problems = []
        if target is None:
            problems.append("no MACOSX_DEPLOYMENT_TARGET")
        elif macho_minos.parse_version(target) > PROMISED:
            problems.append(f"MACOSX_DEPLOYMENT_TARGET {target} > {macho_minos.fmt(PROMISED)}")
        targets.add(target)
        everything = " ".join([b.before_all, b.before_build or "", b.repair_command,
                               b.test_command or "", b.before_test or "", *env.values()])
        if re.search(r"\bbrew\b", everything):
            problems.append("Homebrew is still used")
        if env.get("CYLOSS_OPENMP") != "required":
            problems.append("CYLOSS_OPENMP is not 'required'")
        m = re.fullmatch(r'bash \{project\}/tools/macos_libomp\.sh "?\$(\w+)"?', b.before_all)
        prefix = env.get(m.group(1)) if m else None
        if not prefix:
            problems.append(f"before-all is not tools/macos_libomp.sh $PREFIX: {b.before_all!r}")
        else:
            cppflags = shlex.split(env.get("CPPFLAGS", ""))
            ldflags = shlex.split(env.get("LDFLAGS", ""))
            for flag, flags, name in [(f"-I{prefix}/include", cppflags, "CPPFLAGS"),
                                      (f"-L{prefix}/lib", ldflags, "LDFLAGS"),
                                      (f"-Wl,-rpath,{prefix}/lib", ldflags, "LDFLAGS")]:
                if flag not in flags:
                    problems.append(f"{name} lacks {flag}: {env.get(name)!r}")
        steps = b.repair_command.split(" && ")
        if not steps[0].startswith("delocate-wheel --require-archs {delocate_archs} "):
            problems.append(f"the repair command does not start with delocate: {steps[0]!r}")
        macho = [s for s in steps if "tools/macho_minos.py" in s]
        if not macho or f"--max {target}" not in macho[0] \
                or "--require 'cyloss/.dylibs/libomp.dylib'" not in macho[0]:
            problems.append(f"no macho_minos.py --max {target} of the vendored libomp after "
                            f"delocate: {b.repair_command!r}")
        tests = (b.test_command or "").split(" && ")
        if "pytest {project}/tests" not in tests:
            problems.append(f"the test command does not run the suite: {b.test_command!r}")
        if f"python {{project}}/tools/assert_openmp.py --macos-max {target}" not in tests:
            problems.append(f"the test command does not run assert_openmp.py at {target}")
        check(not problems, f"{ident}: target {target}, libomp prefix {prefix}"
              + ("" if not problems else ": " + "; ".join(problems)))
    check(len(targets) == 1, f"one deployment target for every macOS wheel: {sorted(targets)}")
    return options, targets.pop() if len(targets) == 1 else None


def check_readme(target):
    section("README: the platform table's minimum macOS")
    row = [line for line in (REPO / "README.md").read_text().splitlines()
           if line.startswith("| macOS |")]
    for arch in ["x86_64", "arm64"]:
        check(len(row) == 1 and f"{arch} (macOS {target} or newer)" in row[0],
              f"README's macOS row says {arch} (macOS {target} or newer)")


# ---------------------------------------------------------------------------------------
def check_libomp_script(target):
    section("tools/macos_libomp.sh: the pinned llvm-openmp")
    text = (REPO / "tools/macos_libomp.sh").read_text()
    version = re.findall(r'^llvm_openmp_version="(\d+\.\d+\.\d+)"$', text, re.MULTILINE)
    check(len(version) == 1, f"one exact llvm-openmp version: {version}")
    pins = re.findall(r'package="(osx-(?:arm)?64)/llvm-openmp-\$\{llvm_openmp_version\}-(\w+)'
                      r'\.tar\.bz2"\s+sha256="([0-9a-f]{64})"', text)
    check(sorted(p[0] for p in pins) == ["osx-64", "osx-arm64"],
          "one package with a SHA-256 per architecture: "
          + ", ".join(f"{sub}/llvm-openmp-{version[0] if version else '?'}-{build}"
                      for sub, build, _ in pins))
    check('shasum -a 256 --check' in text, "the download is checked against its SHA-256")
    check(f"macho_minos.py\" --max {target} " in text,
          f"the unpacked libomp is read against the wheels' target {target}")
    check(not re.search(r"\bbrew\b", text), "no Homebrew")
    check(subprocess.run(["bash", "-n", str(REPO / "tools/macos_libomp.sh")]).returncode == 0,
          "bash -n tools/macos_libomp.sh")


# ---------------------------------------------------------------------------------------
def macholib_minos(path):
    """[(arch, (major, minor, patch))] for each slice, read by macholib."""
    from macholib.mach_o import CPU_TYPE_NAMES, LC_BUILD_VERSION, LC_VERSION_MIN_MACOSX
    from macholib.MachO import MachO

    out = []
    for header in MachO(str(path)).headers:
        minos = None
        for cmd in header.commands:
            if cmd[0].cmd == LC_BUILD_VERSION:
                minos = cmd[1].minos
            elif cmd[0].cmd == LC_VERSION_MIN_MACOSX:
                minos = cmd[1].version
        name = CPU_TYPE_NAMES.get(header.header.cputype, "?").lower()
        out.append((name, macho_minos.version_tuple(minos) if minos is not None else None))
    return out


def ours_minos(data):
    return [(s["arch"].lower(), s["minos"]) for s in macho_minos.read_slices(data)]


def check_reader():
    section("tools/macho_minos.py against macholib on delocate's Mach-O test files")
    import delocate
    import macholib

    data_dir = Path(delocate.__file__).parent / "tests" / "data"
    print(f"delocate {delocate.__version__}, macholib {macholib.__version__}: {data_dir}")
    files = sorted(p for p in data_dir.iterdir()
                   if p.is_file() and macho_minos.read_slices(p.read_bytes()) is not None)
    kinds = set()
    for path in files:
        ours, theirs = ours_minos(path.read_bytes()), macholib_minos(path)
        kinds.update(s["command"] for s in macho_minos.read_slices(path.read_bytes()))
        kinds.update(a for a, _ in ours)
        if len(ours) > 1:
            kinds.add("fat")
        check(ours == theirs, f"{path.name}: {ours == theirs and ours or (ours, theirs)}")
    for kind in ["LC_BUILD_VERSION", "LC_VERSION_MIN_MACOSX", "fat", "x86_64", "arm64", "i386"]:
        check(kind in kinds, f"the test files include {kind}")
    check(macho_minos.read_slices((data_dir / "binary_example.bin").read_bytes()) is None,
          "a file that is not Mach-O is skipped")
    limit = macho_minos.fmt(PROMISED)
    for name, want in [("libam1_12.dylib", 0), ("liba_12.dylib", 0), ("liba_both.dylib", 0),
                       ("liba_12_1.dylib", 1)]:
        rc = macho_minos.main(["--max", limit, str(data_dir / name)])
        check(rc == want, f"macho_minos.py --max {limit} {name}: exit status {rc}")


# ---------------------------------------------------------------------------------------
def patch_minos(data, minos):
    """A copy of a thin Mach-O whose minimum macOS (either load command) is `minos`."""
    out = bytearray(data)
    magic = struct.unpack_from("<I", out)[0]
    assert magic == macho_minos.MH_MAGIC_64, "a thin little-endian 64-bit Mach-O"
    ncmds = struct.unpack_from("<I", out, 16)[0]
    pos, patched = 32, 0
    packed = minos[0] << 16 | minos[1] << 8 | minos[2]
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", out, pos)
        if cmd == macho_minos.LC_BUILD_VERSION:
            struct.pack_into("<I", out, pos + 12, packed)
            patched += 1
        elif cmd == macho_minos.LC_VERSION_MIN_MACOSX:
            struct.pack_into("<I", out, pos + 8, packed)
            patched += 1
        pos += size
    assert patched == 1, patched
    return bytes(out)


def fake_members(libomp, ext):
    """A repaired cyloss wheel's files; scikit-learn's extension stands in for cyloss's."""
    return {"cyloss/__init__.py": b"",
            "cyloss/_openmp.cpython-312-darwin.so": ext,
            "cyloss/_loops.cpython-312-darwin.so": ext,
            "cyloss/.dylibs/libomp.dylib": libomp}


def fake_wheel(folder, tag, libomp, ext):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"cyloss-0.1.0-cp312-cp312-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in fake_members(libomp, ext).items():
            zf.writestr(name, data)
    return path


def check_vendored_libomp(work, options, target):
    section(f"{SKLEARN}'s vendored libomp (conda-forge llvm-openmp 11.1.0), at target {target}")
    from delocate.delocating import DelocationError, _check_and_update_wheel_name
    from packaging.version import Version

    limit = macho_minos.parse_version(target)
    repair = next(iter(options.values())).repair_command
    macho_step = next(s for s in repair.split(" && ") if "tools/macho_minos.py" in s)
    dl = work / "sklearn"
    for arch, platform_tag in ARCHS.items():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "--platform", platform_tag,
                        "--python-version", "3.12", "--dest", str(dl / arch), SKLEARN],
                       check=True)
        (wheel,) = (dl / arch).glob("*.whl")
        rc = macho_minos.main(["--max", target, "--require", SKLEARN_LIBOMP, str(wheel)])
        check(rc == 0, f"{wheel.name}: every Mach-O file and the tag at most {target}")
        libomp = zipfile.ZipFile(wheel).read(SKLEARN_LIBOMP)
        ext = zipfile.ZipFile(wheel).read(SKLEARN_EXT)
        ours = ours_minos(libomp)
        (dl / arch / "libomp.dylib").write_bytes(libomp)
        check(ours == macholib_minos(dl / arch / "libomp.dylib")
              and len(ours) == 1 and ours[0][0] == arch and ours[0][1] <= limit,
              f"{arch} libomp: {ours} (macholib agrees), at most {target}")

        for label, lib, want_ok in [
                ("as it is", libomp, True),
                (f"patched to minos {macho_minos.fmt(HOMEBREW_MINOS)}",
                 patch_minos(libomp, HOMEBREW_MINOS), False)]:
            # delocate-wheel's own check (MACOSX_DEPLOYMENT_TARGET), on the unpacked wheel
            unpacked = work / "delocate" / arch / label.replace(" ", "_")
            for member, data in fake_members(lib, ext).items():
                (unpacked / member).parent.mkdir(parents=True, exist_ok=True)
                (unpacked / member).write_bytes(data)
            name = f"cyloss-0.1.0-cp312-cp312-macosx_{target.replace('.', '_')}_{arch}.whl"
            try:
                new = _check_and_update_wheel_name(Path(name), unpacked, Version(target))
                verdict = f"accepts, tag {new.name.rsplit('-', 1)[1]}"
                ok = new.name == name
            except DelocationError as exc:
                verdict, ok = f"rejects: {str(exc).splitlines()[0]}", False
            check(ok == want_ok, f"delocate at MACOSX_DEPLOYMENT_TARGET={target}, {arch} "
                  f"libomp {label}: {verdict}")
            # the configured repair step after delocate, on a repaired wheel
            dest = work / "repaired" / arch / label.replace(" ", "_")
            fake_wheel(dest, f"macosx_{target.replace('.', '_')}_{arch}", lib, ext)
            rc = run_step(macho_step, dest)
            check((rc == 0) == want_ok, f"the repair step's macho_minos.py, {arch} libomp "
                  f"{label}: exit status {rc}")
        dest = work / "repaired" / arch / "tagged_15"
        fake_wheel(dest, f"macosx_15_0_{arch}", libomp, ext)
        rc = run_step(macho_step, dest)
        check(rc != 0, f"the repair step's macho_minos.py, a wheel tagged macOS 15: "
              f"exit status {rc}")


def run_step(command, dest):
    """Run one configured repair step as cibuildwheel would, with this interpreter."""
    cmd = (command.replace("{project}", str(REPO)).replace("{dest_dir}", shlex.quote(str(dest))))
    assert cmd.startswith("python ")
    cmd = shlex.quote(sys.executable) + cmd[len("python"):]
    return subprocess.run(cmd, shell=True).returncode


def main():
    work = Path(sys.argv[1]).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    options, target = check_config()
    if target is None:
        sys.exit("check_macos_wheels: FAIL: no single deployment target")
    check_readme(target)
    check_libomp_script(target)
    check_reader()
    check_vendored_libomp(work, options, target)
    if failures:
        print(f"\ncheck_macos_wheels: {len(failures)} FAILED:", *failures, sep="\n  ")
        return 1
    print(f"\ncheck_macos_wheels: all checks passed (target macOS {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
