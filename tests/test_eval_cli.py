"""python -m cyloss eval: losses over .npy files, in chunks, with bounded memory."""

import io
import json
import math
import os
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

import cyloss
from cyloss.__main__ import main
from streaming_cases import (
    CLASS_WEIGHT, REDUCTIONS, case_params, exact, make_inputs, make_weights, one_shot,
    sample_shape,
)

# The command feeds a cyloss.Accumulator, so its value agrees with the one-shot call to
# rounding: within 1e-15 (see tests/test_accumulate.py).
STREAM_RTOL = 1e-15
ONE_SHOT_RTOL = 1e-15
N = 120


def flags(options):
    out = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out += [flag, ",".join(map(repr, value))]
        else:
            out += [flag, repr(value)]
    return out


def save(tmp_path, **arrays):
    paths = {}
    for name, array in arrays.items():
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], array)
    return paths


def run_main(capsys, *argv):
    status = main(["eval", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *argv):
    status, out, err = run_main(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


def cli(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "cyloss", "eval", *argv],
                          capture_output=True, text=True, timeout=120, **kwargs)


# --- every loss and option, in-process ----------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", case_params())
def test_equals_the_in_memory_call(tmp_path, capsys, case, reduction, weighted):
    rng = np.random.default_rng(zlib.crc32(f"{case.id()}{reduction}{weighted}".encode()))
    y_true, y_pred = make_inputs(case, N, rng)
    w = make_weights(case, N, rng) if weighted else None
    paths = save(tmp_path, y_true=y_true, y_pred=y_pred,
                 **({"w": w} if weighted else {}))
    argv = [case.loss, "--y-true", paths["y_true"], "--y-pred", paths["y_pred"],
            "--reduction", reduction, "--chunk-size", "7", *flags(case.options)]
    if weighted:
        argv += ["--sample-weight", paths["w"]]
    record = run_json(capsys, *argv)
    expected = one_shot(case, y_true, y_pred, w, reduction)
    assert math.isclose(record["value"], exact(case, y_true, y_pred, w, reduction),
                        rel_tol=STREAM_RTOL)
    assert math.isclose(record["value"], expected, rel_tol=ONE_SHOT_RTOL)
    assert record["chunks"] == math.ceil(N / 7)
    assert record["reduction"] == reduction and record["loss"] == case.loss
    assert record["n_samples"] == math.prod(sample_shape(case, N))
    # the plain output is the same value, printed to round-trip
    status, out, _ = run_main(capsys, *argv)
    assert status == 0 and float(out) == record["value"]


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinge_label_rule_is_decided_over_the_whole_file(tmp_path, capsys, name):
    # Keras converts 0/1 labels to -1/1 only when all of y_true is 0/1: a -1 in the last
    # chunk only keeps the 0s of every chunk (a first pass over y_true decides).
    rng = np.random.default_rng(zlib.crc32(f"{name}rule".encode()))
    y = rng.integers(0, 2, size=(N, 3)).astype(np.float64)
    p = rng.normal(0.0, 1.5, size=(N, 3))
    values = []
    for last in (1.0, -1.0):
        y[-1, -1] = last
        paths = save(tmp_path, y_true=y, y_pred=p)
        record = run_json(capsys, name, "--y-true", paths["y_true"], "--y-pred",
                          paths["y_pred"], "--chunk-size", "7")
        expected = getattr(cyloss, name)(y, p)
        assert math.isclose(record["value"], expected, rel_tol=ONE_SHOT_RTOL)
        values.append(record["value"])
    assert values[0] != values[1]


def test_independent_formula_weighted_mse(tmp_path, capsys):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(1000, 3)).astype(np.float32)
    p = rng.normal(size=(1000, 3)).astype(np.float32)
    w = rng.uniform(0, 2, (1000, 1))
    paths = save(tmp_path, y=y, p=p, w=w)
    per_sample = ((p.astype(np.float64) - y) ** 2).mean(axis=1)
    for reduction, expected in [("weighted_mean", (w[:, 0] * per_sample).sum() / w.sum()),
                                ("sum", (w[:, 0] * per_sample).sum())]:
        record = run_json(capsys, "mse", "--y-true", paths["y"], "--y-pred", paths["p"],
                          "--sample-weight", paths["w"], "--reduction", reduction,
                          "--chunk-size", "64")
        assert math.isclose(record["value"], expected, rel_tol=1e-13)
        assert record["sum_weights"] == pytest.approx(w.sum(), rel=1e-14)


def test_independent_formula_sparse_ignore_and_class_weight(tmp_path, capsys):
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (500, 5))
    labels = rng.integers(0, 5, 500).astype(np.int16)
    labels[rng.random(500) < 0.3] = -1
    cw = np.array(CLASS_WEIGHT)
    keep = labels != -1
    m = logits.max(axis=1)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=1))
    nll = lse[keep] - logits[keep, labels[keep]]
    v = cw[labels[keep]]
    paths = save(tmp_path, labels=labels, logits=logits, cw=cw)
    for cw_flag in [paths["cw"], ",".join(map(str, CLASS_WEIGHT))]:
        record = run_json(capsys, "sparse_categorical_crossentropy", "--y-true",
                          paths["labels"], "--y-pred", paths["logits"], "--from-logits",
                          "--ignore-index", "-1", "--class-weight", cw_flag,
                          "--reduction", "mean_with_sample_weight", "--chunk-size", "33")
        assert math.isclose(record["value"], (v * nll).sum() / v.sum(), rel_tol=1e-13)
        assert record["n_counted"] == keep.sum() and record["n_samples"] == 500
        assert record["reduction"] == "weighted_mean"
        assert record["options"]["ignore_index"] == -1


# --- layouts --------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_class_axis_0_chunks_along_axis_1(tmp_path, capsys, loss):
    rng = np.random.default_rng(3)
    probs = rng.uniform(0.1, 1.0, (4, 90))
    if loss == "sparse_categorical_crossentropy":
        y_true = rng.integers(0, 4, 90)
    else:
        y_true = np.eye(4)[rng.integers(0, 4, 90)].T
    w = rng.uniform(size=90)
    expected = getattr(cyloss, loss)(y_true, probs, axis=0, sample_weight=w)
    for order in ["C", "F"]:
        paths = save(tmp_path, y=np.asarray(y_true, order=order),
                     p=np.asarray(probs, order=order), w=w)
        record = run_json(capsys, loss, "--y-true", paths["y"], "--y-pred", paths["p"],
                          "--sample-weight", paths["w"], "--axis", "0", "--chunk-size", "8")
        assert record["chunks"] == 12
        assert math.isclose(record["value"], expected, rel_tol=ONE_SHOT_RTOL)


def test_fortran_order_dtypes_and_weight_broadcasts(tmp_path, capsys):
    rng = np.random.default_rng(4)
    y = rng.integers(-3, 3, (60, 5, 4)).astype(np.int8)
    p = np.asfortranarray(rng.normal(size=(60, 5, 4)).astype(np.float16))
    for w in [rng.uniform(size=60), rng.uniform(size=(60, 5)), rng.uniform(size=(5,)),
              rng.uniform(size=(60, 5, 1)), rng.uniform(size=(1, 5)), np.float64(3.0)]:
        paths = save(tmp_path, y=y, p=p, w=w)
        record = run_json(capsys, "huber", "--delta", "0.5", "--y-true", paths["y"],
                          "--y-pred", paths["p"], "--sample-weight", paths["w"],
                          "--chunk-size", "11", "--reduction", "sum")
        expected = cyloss.huber(y, p, delta=0.5, sample_weight=w, reduction="sum")
        assert math.isclose(record["value"], expected, rel_tol=ONE_SHOT_RTOL)
        assert record["y_pred_dtype"] == "float16"


def test_keras_trailing_axis_and_pos_weight_file(tmp_path, capsys):
    rng = np.random.default_rng(5)
    y = (rng.random((80, 1)) < 0.5).astype(np.float32)
    p = rng.normal(size=(80,))
    paths = save(tmp_path, y=y, p=p, pw=np.array([3.0]))
    for pw in ["3", paths["pw"]]:
        record = run_json(capsys, "binary_crossentropy", "--y-true", paths["y"],
                          "--y-pred", paths["p"], "--from-logits", "--pos-weight", pw,
                          "--label-smoothing", "0.1", "--chunk-size", "9")
        expected = cyloss.binary_crossentropy(y, p, from_logits=True, pos_weight=3.0,
                                              label_smoothing=0.1)
        assert math.isclose(record["value"], expected, rel_tol=ONE_SHOT_RTOL)


def test_default_chunking_and_names(tmp_path, capsys):
    rng = np.random.default_rng(6)
    y, p = rng.normal(size=(3000, 4)), rng.normal(size=(3000, 4))
    paths = save(tmp_path, y=y, p=p)
    for name in ["mse", "mean_squared_error", "MeanSquaredError"]:
        record = run_json(capsys, name, "--y-true", paths["y"], "--y-pred", paths["p"],
                          "--reduction", "sum_over_batch_size", "--n-threads", "1")
        assert record["loss"] == "mean_squared_error" and record["chunks"] == 1
        assert record["value"] == cyloss.mse(y, p)
        assert record["seconds"] >= 0 and record["y_pred_shape"] == [3000, 4]


def test_empty_files_and_nan(tmp_path, capsys):
    paths = save(tmp_path, y=np.zeros((0, 3)), p=np.zeros((0, 3)))
    assert run_json(capsys, "mae", "--y-true", paths["y"], "--y-pred", paths["p"])["value"] == 0.0
    paths = save(tmp_path, y=np.array([0.0, np.nan]), p=np.zeros(2))
    record = run_json(capsys, "mae", "--y-true", paths["y"], "--y-pred", paths["p"])
    assert record["value"] is None and record["nonfinite"] == "nan"
    status, out, _ = run_main(capsys, "mae", "--y-true", paths["y"], "--y-pred", paths["p"])
    assert status == 0 and out.strip() == "nan"


# --- errors ---------------------------------------------------------------------------------

def test_usage_errors(tmp_path, capsys):
    paths = save(tmp_path, y=np.zeros((4, 3)), p=np.ones((4, 3)) / 3, bad_y=np.zeros((5, 3)),
                 labels=np.array([0, 1, 7, 2]))
    (tmp_path / "text.npy").write_text("not an array")
    yp = ["--y-pred", paths["p"]]
    cases = [
        (["nope", "--y-true", paths["y"], *yp], "unknown loss 'nope'"),
        (["mse", "--y-true", paths["y"], *yp, "--delta", "2"],
         "mean_squared_error does not take --delta"),
        (["mse", "--y-true", paths["y"], *yp, "--reduction", "none"], "--reduction none"),
        (["mse", "--y-true", paths["y"], *yp, "--reduction", "avg"], "reduction must be"),
        (["huber", "--y-true", paths["y"], *yp, "--delta", "-1"], "delta must be"),
        (["mse", "--y-true", str(tmp_path / "missing.npy"), *yp], "--y-true: cannot read"),
        (["mse", "--y-true", str(tmp_path / "text.npy"), *yp], "is not a .npy file"),
        (["mse", "--y-true", paths["bad_y"], *yp], "same shape"),
        (["sparse_categorical_crossentropy", "--y-true", paths["labels"], *yp,
          "--class-weight", "1,x"], "--class-weight must be a comma-separated list"),
        (["sparse_categorical_crossentropy", "--y-true", paths["labels"], *yp,
          "--class-weight", "1,2"], "class_weight must have one weight per class"),
        (["mse", "--y-true", paths["y"], *yp, "--sample-weight", paths["bad_y"]],
         "sample_weight of shape (5, 3)"),
    ]
    for argv, message in cases:
        status, out, err = run_main(capsys, *argv)
        assert status == 2, (argv, err)
        assert out == "" and message in err and err.startswith("python -m cyloss eval: error:")


def test_data_errors_name_the_chunk(tmp_path, capsys):
    paths = save(tmp_path, labels=np.array([0, 1, 2, 0, 1, 7, 2]), p=np.ones((7, 3)))
    status, out, err = run_main(capsys, "sparse_categorical_crossentropy", "--y-true",
                                paths["labels"], "--y-pred", paths["p"], "--chunk-size", "3")
    assert status == 1 and out == ""
    assert "label 7 at index (2,)" in err and "chunk of samples 3:6 along axis 0" in err


def test_argparse_errors():
    proc = cli("mse", "--y-true", "a.npy", "--y-pred", "b.npy", "--chunk-size", "0")
    assert proc.returncode == 2 and "expected a positive integer" in proc.stderr
    proc = cli("mse", "--y-pred", "b.npy")
    assert proc.returncode == 2 and "--y-true" in proc.stderr


# --- the real entry point, the progress bar, and a file bigger than the chunks ----------------

def test_subprocess_json(tmp_path):
    rng = np.random.default_rng(7)
    y, p = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    paths = save(tmp_path, y=y, p=p)
    proc = cli("smooth_l1", "--beta", "0.5", "--y-true", paths["y"], "--y-pred", paths["p"],
               "--json", "--chunk-size", "16")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert set(record) >= {"value", "loss", "reduction", "n_samples", "seconds"}
    assert math.isclose(record["value"], cyloss.smooth_l1(y, p, beta=0.5),
                        rel_tol=ONE_SHOT_RTOL)
    assert proc.stderr == ""  # stderr is a pipe, not a terminal: no progress bar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def read_pty(argv):
    """Run ``python -m cyloss eval argv`` with stderr on a pseudo-terminal: (stdout, stderr)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cyloss", "eval", *argv],
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO once the child's end is closed (Linux)
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    return out.decode(), b"".join(chunks).decode()


def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    paths = save(tmp_path, y=np.zeros((500, 2)), p=np.ones((500, 2)))
    argv = ["mae", "--y-true", paths["y"], "--y-pred", paths["p"], "--chunk-size", "50"]
    full_bar = "100.0% |" + "#" * 30 + "| 500/500 rows"
    # in-process, stderr replaced by a stream that says it is a terminal
    for extra, shown in [([], True), (["--no-progress"], False)]:
        terminal = FakeTerminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert main(["eval", *argv, *extra]) == 0
        monkeypatch.undo()
        text = terminal.getvalue()
        assert (full_bar in text and text.endswith("\n")) if shown else text == ""
    assert capsys.readouterr().out.split() == ["1.0", "1.0"]
    # the real command on a pseudo-terminal (POSIX; Windows has no openpty)
    if hasattr(os, "openpty"):
        for extra, shown in [([], True), (["--no-progress"], False)]:
            out, err = read_pty([*argv, *extra])
            assert float(out) == 1.0
            assert (full_bar in err and err.endswith("\n")) if shown else err == ""


# Peak memory of `python -m cyloss ...` itself. POSIX: a small launcher process runs the
# command and reports its child's ru_maxrss (the child is forked from the launcher, not
# from pytest: Linux counts the pages that a fork shares before exec in the child's
# peak). Windows: PeakWorkingSetSize of the child's process handle.
LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call([sys.executable, '-m', 'cyloss', *sys.argv[1:]])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(f'PEAK_RSS_BYTES {peak if sys.platform == "darwin" else peak * 1024}')
sys.exit(code)
"""


def run_measured(argv, timeout=300):
    """``(returncode, stdout, stderr, peak resident bytes)`` of ``python -m cyloss argv``."""
    if os.name != "nt":
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], capture_output=True,
                              text=True, timeout=timeout)
        err, _, peak = proc.stderr.rpartition("PEAK_RSS_BYTES ")
        return proc.returncode, proc.stdout, err, int(peak)
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):  # PROCESS_MEMORY_COUNTERS
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
            (name, ctypes.c_size_t) for name in (
                "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage",
                "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")]

    proc = subprocess.Popen([sys.executable, "-m", "cyloss", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=timeout)
    counters = Counters(cb=ctypes.sizeof(Counters))
    psapi = ctypes.WinDLL("psapi")
    psapi.GetProcessMemoryInfo.argtypes = [wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD]
    assert psapi.GetProcessMemoryInfo(int(proc._handle), ctypes.byref(counters), counters.cb)
    return proc.returncode, out, err, counters.PeakWorkingSetSize


def test_memory_measurement_sees_a_big_chunk(tmp_path):
    # The measurement can fail: a single chunk of a 200 MB file is resident all at once,
    # default chunks are not.
    rows = 2**20
    path = tmp_path / "p.npy"
    try:
        write_npy(path, (rows * 25, 2), np.float32, (np.ones((rows, 2)) for _ in range(25)))
        argv = ["eval", "mae", "--y-true", str(path), "--y-pred", str(path)]
        code, out, err, peak = run_measured([*argv, "--chunk-size", str(rows * 25)])
        assert code == 0 and float(out) == 0.0, err
        assert peak > 200e6
        code, out, err, peak = run_measured(argv)
        assert code == 0 and float(out) == 0.0, err
        assert peak < 150e6
    finally:
        path.unlink(missing_ok=True)


def write_npy(path, shape, dtype, chunks):
    """Write a .npy file chunk by chunk (the header, then the raw rows)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
              "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for chunk in chunks:
            f.write(np.ascontiguousarray(chunk, dtype=dtype).data)


def test_file_larger_than_memory_budget(tmp_path):
    # 2 GiB of float32 predictions and 0.5 GiB of int8 targets, made chunk by chunk
    # (cyclic shifts of one random block, so that every chunk differs), with the float64
    # reference computed in NumPy from the same chunks as they are written.
    rows, width, n_chunks = 2**21, 8, 32
    n = rows * n_chunks
    rng = np.random.default_rng(8)
    base_p = rng.random((rows * width,), dtype=np.float32)
    base_y = rng.integers(-2, 3, rows * width, dtype=np.int8)
    diff = np.empty(rows * width)
    sq_sum = []
    shifts = [(7919 * k + 13 * k * k) % (rows * width) for k in range(n_chunks)]

    def predictions():
        for k in range(n_chunks):
            yield np.roll(base_p, shifts[k])

    def targets():
        for k in range(n_chunks):
            y = np.roll(base_y, 3 * shifts[k] + 1)
            np.subtract(np.roll(base_p, shifts[k]), y, out=diff, dtype=np.float64)
            sq_sum.append(float(diff @ diff))
            yield y

    p_path, y_path = tmp_path / "y_pred.npy", tmp_path / "y_true.npy"
    try:
        write_npy(p_path, (n, width), np.float32, predictions())
        write_npy(y_path, (n, width), np.int8, targets())
        size = p_path.stat().st_size + y_path.stat().st_size
        assert size > 2.5e9
        expected = math.fsum(sq_sum) / width / n
        code, out, err, peak = run_measured(["eval", "mse", "--y-true", str(y_path),
                                             "--y-pred", str(p_path), "--json"])
        assert code == 0, err
        record = json.loads(out)
        # Per-element arithmetic may run in float32 (SPEC 4): ~1e-6 relative at worst.
        assert math.isclose(record["value"], expected, rel_tol=1e-6)
        assert record["n_samples"] == n and record["chunks"] > 50
        assert peak < 400e6, f"peak RSS {peak / 2**20:.0f} MiB for {size / 2**30:.1f} GiB"
    finally:
        for path in (p_path, y_path):
            path.unlink(missing_ok=True)
