"""Run the reliability tests and write their figures to a Markdown report.

    python tools/reliability_report.py --out docs/reliability.md \
        [--fuzz-json PATH] [--sanitizer-log PATH]

Runs pytest on the reliability test files (cyloss must be importable: installed, or
PYTHONPATH=src after an in-place build), reads its JUnit XML (the tests record their
figures there with ``record_property``) and writes the counts per scenario, the GIL
scaling ratios, the leak growth per entry point, the machine, the versions, the date and
this command. ``--fuzz-json`` (the CYLOSS_FUZZ_REPORT file of tests/test_fuzz.py) and
``--sanitizer-log`` (the output of tools/sanitize.sh) add their sections. Exits with
pytest's status.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = {  # test file: what it covers
    "tests/test_concurrency.py": "Python threads: 16 at once, GIL release, threadpoolctl",
    "tests/test_threads.py": "n_threads: same bits for every team size; memory per call",
    "tests/test_fork.py": "child processes: fork after OpenMP, spawn, forkserver",
    "tests/test_leaks.py": "leaks: repeated calls, error paths; tracemalloc, malloc, RSS",
}
OUTCOMES = (("failure", "failed"), ("error", "error"), ("skipped", "skipped"))
# Lines of a sanitizer log that report a finding.
SANITIZER_FINDING = re.compile(
    r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:")


def run_pytest(xml_path):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-o", "junit_family=xunit1", f"--junitxml={xml_path}", *SCENARIOS]
    return subprocess.run(cmd, cwd=ROOT).returncode


def read_junit(xml_path):
    """One dict per test case: file, name, outcome, seconds, recorded properties."""
    cases = []
    for case in ET.parse(xml_path).iter("testcase"):
        outcome = next((name for tag, name in OUTCOMES if case.find(tag) is not None),
                       "passed")
        cases.append({
            "file": case.get("file"),  # junit_family=xunit1 names the file
            "name": case.get("name"),
            "outcome": outcome,
            "seconds": float(case.get("time", 0)),
            "properties": {p.get("name"): p.get("value") for p in case.iter("property")},
        })
    return cases


def machine_and_versions():
    import numpy

    import cyloss

    config = cyloss.show_config(mode="dicts")
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], text=True,
                                capture_output=True, cwd=ROOT).stdout.strip()
    except OSError:
        commit = ""
    return [
        ("CPU", f"{model}; {os.cpu_count()} logical CPUs, {usable} usable, "
                f"{config['physical_cores']} physical cores"),
        ("platform", config["platform"]),
        ("Python", f"{sys.version.split()[0]} ({platform.python_implementation()})"),
        ("NumPy", numpy.__version__),
        ("cyloss", f"{cyloss.__version__}" + (f" (git {commit})" if commit else "")),
        ("OpenMP", f"{config['openmp']}, default team {config['default_threads']}, "
                   f"SIMD path {config['simd_path']}"),
        ("compiler flags", f"`{config['compiler_flags']}`"),
    ]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def render(cases, command, fuzz, sanitizer_log):
    out = ["# cyloss reliability report", "",
           f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by",
           "", f"    {command}", ""]
    out += table(["", ""], machine_and_versions())

    out += ["", "## Scenarios", ""]
    rows = []
    for path, what in SCENARIOS.items():
        mine = [c for c in cases if c["file"] == path]
        count = {k: sum(c["outcome"] == k for c in mine)
                 for k in ("passed", "failed", "error", "skipped")}
        rows.append([f"`{path}`", what, *count.values(),
                     f"{sum(c['seconds'] for c in mine):.1f}"])
    out += table(["file", "scenario", "passed", "failed", "errors", "skipped", "seconds"],
                 rows)
    out += ["", "Thread and process cases:", ""]
    out += table(["test", "outcome", "seconds", "figures"], [
        [f"`{c['name']}`", c["outcome"], f"{c['seconds']:.1f}",
         ", ".join(f"{k} {v}" for k, v in c["properties"].items())] for c in cases
        if c["file"] in ("tests/test_concurrency.py", "tests/test_fork.py")])

    scaling = [c for c in cases if "scaling_ratios" in c["properties"]]
    out += ["", "## GIL release", ""]
    for c in scaling:
        out += [f"Wall time of one thread over two threads doing the same total work "
                f"(n_threads=1 per call; 1.7 needed, 2.0 ideal): "
                f"{c['properties']['scaling_ratios']} ({c['outcome']})."]
        if "control_ratio" in c["properties"]:
            out += ["", f"GIL-free control (SHA-256 hashing) on the same machine: "
                        f"{c['properties']['control_ratio']}."]
    if not scaling:
        out += ["Not measured (skipped or not run)."]

    out += ["", "## Leaks", "",
            "Bytes gained over the calls, after a warm-up. Bounds (tests/test_leaks.py): "
            "tracemalloc and malloc 8 bytes a call + 16 KiB, RSS 2 MiB.", ""]
    out += table(["entry point", "calls", "tracemalloc", "malloc", "RSS", "outcome"], [
        [c["name"].partition("[")[2].rstrip("]"), c["properties"]["calls"],
         c["properties"]["traced_growth_bytes"], c["properties"]["malloc_growth_bytes"],
         c["properties"]["rss_growth_bytes"], c["outcome"]]
        for c in cases if "traced_growth_bytes" in c["properties"]])

    out += ["", "## Fuzzing", ""]
    if fuzz is None:
        out += ["Not included (pass --fuzz-json)."]
    else:
        out += table(["figure", "value"], [[k, json.dumps(v)] for k, v in fuzz.items()])
    if sanitizer_log is None:
        out += ["", "## Sanitizers", "", "Not included (pass --sanitizer-log)."]
    else:
        path, text = sanitizer_log
        findings = [line for line in text.splitlines() if SANITIZER_FINDING.search(line)]
        out += ["", "## Sanitizers", "", f"`{path}`: {len(findings)} findings."]
        if findings:
            out += [""] + [f"    {line}" for line in findings[:20]]
        summary = re.findall(r"^=*\s*(\d+ passed.*?)\s*=*$", text, re.M)
        if summary:
            out += ["", f"pytest under the sanitizers: {summary[-1]}."]
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/reliability.md")
    parser.add_argument("--fuzz-json", help="CYLOSS_FUZZ_REPORT file of tests/test_fuzz.py")
    parser.add_argument("--sanitizer-log", help="output of tools/sanitize.sh")
    args = parser.parse_args(argv)
    fuzz = None
    if args.fuzz_json:
        with open(args.fuzz_json) as f:
            fuzz = json.load(f)
    sanitizer_log = None
    if args.sanitizer_log:
        with open(args.sanitizer_log, errors="replace") as f:
            sanitizer_log = (args.sanitizer_log, f.read())

    with tempfile.TemporaryDirectory() as tmp:
        xml_path = os.path.join(tmp, "junit.xml")
        status = run_pytest(xml_path)
        cases = read_junit(xml_path)
    command = "python " + shlex.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    if os.environ.get("PYTHONPATH"):
        command = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} {command}"
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write(render(cases, command, fuzz, sanitizer_log))
    print(f"wrote {args.out} (pytest exit status {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
