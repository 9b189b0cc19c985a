"""Assert that the installed cyloss wheel runs with OpenMP on, on its own bundled runtime.

    python tools/assert_openmp.py [--macos-max 12.0]

Run from outside the checkout, in an environment where cyloss is the installed wheel and
threadpoolctl is installed (the test extra). It runs ``python -m cyloss`` (the tf.keras
examples and the build configuration; exit status 0) and requires its ``openmp`` line to
say True; then, from ``cyloss.show_config(mode="dicts")``: OpenMP compiled in, at least
one OpenMP thread, and an OpenMP runtime loaded from the wheel itself (cyloss.libs/ or
cyloss/.dylibs/), not from the system or another package. On macOS, ``--macos-max`` also
reads the minimum macOS of that runtime and of the extension modules (tools/macho_minos.py).
The macOS wheel test command and tools/check_packaging.sh (Linux wheel) run it.
"""

import argparse
import glob
import os
import re
import subprocess
import sys


def fail(msg):
    sys.exit(f"assert_openmp: FAIL: {msg}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--macos-max", default=None, metavar="X.Y",
                        help="on macOS, the newest minimum macOS allowed for the binaries")
    args = parser.parse_args(argv)

    run = subprocess.run([sys.executable, "-m", "cyloss"], capture_output=True, text=True)
    print(run.stdout, end="")
    print(run.stderr, end="", file=sys.stderr)
    if run.returncode != 0:
        fail(f"`python -m cyloss` exited with {run.returncode}")
    line = re.search(r"^openmp\s*:\s*(\S+)\s*$", run.stdout, re.MULTILINE)
    if line is None or line.group(1) != "True":
        fail(f"`python -m cyloss` does not report OpenMP on: {line and line.group(0)!r}")

    import cyloss

    config = cyloss.show_config(mode="dicts")
    if config["openmp"] is not True:
        fail(f"show_config()['openmp'] is {config['openmp']!r}")
    if not config["omp_max_threads"] >= 1:
        fail(f"show_config()['omp_max_threads'] is {config['omp_max_threads']!r}")
    runtimes = config["openmp_runtime"]
    if not isinstance(runtimes, list):
        fail(f"cannot list the loaded OpenMP runtimes: {runtimes!r}")
    bundled = [r for r in runtimes if r["bundled_with_cyloss"]]
    if not bundled:
        fail(f"no OpenMP runtime loaded from the wheel; loaded: {runtimes!r}")
    print(f"assert_openmp: ok -- OpenMP on, {config['omp_max_threads']} threads, runtime "
          + ", ".join(os.path.basename(r["filepath"]) for r in bundled))

    if args.macos_max and sys.platform == "darwin":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import macho_minos

        package = os.path.dirname(os.path.abspath(cyloss.__file__))
        binaries = sorted({r["filepath"] for r in bundled}
                          | set(glob.glob(os.path.join(package, "*.so")))
                          | set(glob.glob(os.path.join(package, ".dylibs", "*"))))
        problems = macho_minos.check(binaries, macho_minos.parse_version(args.macos_max),
                                     require=["libomp.dylib", "_openmp.*.so", "_loops.*.so"])
        if problems:
            fail("; ".join(problems))
        print(f"assert_openmp: ok -- the loaded libomp and the extensions run on macOS "
              f"{args.macos_max}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
