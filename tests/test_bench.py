"""The benchmark harness (``python -m cyloss bench``, ``benchmarks/harness.py``).

Smoke tests only: they run the harness on tiny inputs with two rounds and check the
structure of what it writes and that every implementation computes cyloss's value. No
timing is ever a pass/fail criterion here.
"""

import argparse
import io
import json
import math

import numpy as np
import pytest

import cyloss
from cyloss import _bench


def _libs():
    libs, _missing = _bench.load_libraries()
    return libs


def test_smoke_run_writes_json_and_markdown(tmp_path, capsys):
    status = _bench.main([
        "--filter", "mse-1e4-f32", "--rounds", "2", "--warmup", "1", "--target-ms", "0.2",
        "--no-plot", "--no-progress", "--out", str(tmp_path),
    ])
    assert status == 0, capsys.readouterr().err
    with open(tmp_path / "results.json", encoding="utf-8") as f:
        results = json.load(f)
    assert not (tmp_path / "results.png").exists()
    assert results["plot"] is None and "no-plot" in results["plot_note"]

    assert results["schema"] == _bench.SCHEMA
    assert results["mismatches"] == [] and results["errors"] == []
    assert results["settings"]["rounds"] == 2 and results["settings"]["threads"] == [1, 2]
    assert "--filter mse-1e4-f32" in results["command"]
    machine = results["machine"]
    for key in ("cpu_model", "usable_cpus", "numpy", "cyloss", "cyloss_config", "date",
                "torch", "sklearn"):
        assert key in machine
    assert "compiler_flags" in machine["cyloss_config"]

    (entry,) = results["workloads"]
    assert entry["id"] == "mse-1e4-f32" and entry["shape"] == [10_000]
    assert entry["dtype"] == "float32" and entry["n_elements"] == 10_000
    assert entry["cyloss_bitwise_equal_across_threads"] is True
    recs = {rec["id"]: rec for rec in entry["implementations"]}
    assert {"cyloss-1t", "cyloss-2t", "numpy", "read"} <= set(recs)
    assert ("torch" in recs) == (machine["torch"] is not None)
    assert ("read-torch" in recs) == (machine["torch"] is not None)
    assert "exp" not in recs  # the exp ceiling is for the cross-entropies only
    reference = recs["cyloss-1t"]["value"]
    assert recs["cyloss-2t"]["value"] == reference
    for rec in recs.values():
        assert len(rec["samples_s"]) == 2 and rec["calls_per_sample"] >= 1
        for key in ("median_s", "q1_s", "q3_s", "min_s", "max_s", "ratio_read"):
            assert math.isfinite(rec[key]) and rec[key] >= 0
        assert rec["min_s"] <= rec["median_s"] <= rec["max_s"]
        if rec["kind"] == "ceiling":
            assert rec["check"] is None
        else:
            assert rec["check"]["ok"], rec
            assert rec["value"] == pytest.approx(reference * rec["check"]["scale"],
                                                 rel=1e-4)
    assert recs["read"]["ratio_read"] == 1.0
    if "torch" in recs:
        assert recs["torch"]["ratio_torch"] == 1.0

    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert md.startswith("# cyloss benchmark")
    assert "## float32" in md and "| `mse-1e4` |" in md
    assert "cyloss 1t xread" in md and "| `mse-1e4-f32` | numpy |" in md
    assert "## Notes" in md and "MISMATCH" not in md
    # The summary is also printed.
    assert "| `mse-1e4` |" in capsys.readouterr().out


TINY = {"regression": (1000,), "binary": (1000,), "categorical": (50, 7), "sparse": (50, 7),
        "ctc": (4, 20, 6), "rows": (50, 7)}


@pytest.mark.parametrize("dtype", _bench.DTYPES)
@pytest.mark.parametrize("loss", list(_bench.LOSSES))
def test_every_implementation_computes_cylosss_value(loss, dtype):
    family = _bench.LOSSES[loss][0]
    workload = _bench.Workload(loss, TINY[family], dtype)
    data = _bench.make_data(workload)
    libs = _libs()
    if loss in _bench.ADAPTER_LOSSES:
        if dtype != "float32":
            pytest.skip("the adapter workloads are float32 only")
        libs, _missing = _bench.load_libraries(use_jax=loss == "jax_ce_step")
        needed = ["torch"] if loss == "torch_ce_step" else ["jax", "optax"]
        if any(name not in libs for name in needed):
            pytest.skip(f"{loss} needs {' and '.join(needed)}")
    impls = _bench.build_impls(workload, data, libs, [1, 2])
    ids = [impl.id for impl in impls]
    assert ids[:3] == ["cyloss-1t", "cyloss-2t", "numpy"] and "read" in ids
    assert ("exp" in ids) == (family in ("binary", "categorical", "sparse", "ctc"))
    reference = impls[0].fn()
    assert isinstance(reference, float) and math.isfinite(reference)
    # (minus a cosine is negative on this data: targets and scores point the same way)
    assert reference < 0 if loss == "cosine" else reference > 0
    for impl in impls:
        if impl.scale is None:
            impl.fn()  # a ceiling: runs, has no value to check
            continue
        value, check = _bench._check(impl, reference, dtype)
        assert check["ok"], (impl.id, value, reference * impl.scale)


@pytest.mark.parametrize("loss", sorted(_bench.GRADIENT_LOSSES))
def test_gradient_workloads_compute_cylosss_gradient(loss):
    family = _bench.LOSSES[loss][0]
    workload = _bench.Workload(loss, TINY[family], "float64")
    data = _bench.make_data(workload)
    _, _, name, kwargs, _ = _bench.LOSSES[loss]
    value, grad = cyloss.value_and_grad(name, data["y_true"], data["y_pred"], **kwargs)
    np_value, np_grad = _bench._numpy_grad_fn(workload, data["y_true"], data["y_pred"])()
    assert np_value == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(np_grad, grad, rtol=1e-10, atol=1e-15)
    torch = _libs().get("torch")
    if torch is not None:
        impls = {i.id: i for i in _bench.build_impls(workload, data, _libs(), [1])}
        with torch.no_grad():                      # as the harness runs it
            assert impls["torch"].fn() == pytest.approx(value, rel=1e-12)


def test_data_is_inside_every_domain():
    for loss in _bench.LOSSES:
        family = _bench.LOSSES[loss][0]
        w = _bench.Workload(loss, TINY[family], "float32")
        d = _bench.make_data(w, seed=3)
        assert d["y_pred"].dtype == np.float32 and d["y_pred"].flags.c_contiguous
        if family == "sparse":
            assert d["y_true"].dtype == np.int64
            assert np.array_equal(d["labels_float"], d["y_true"])
        if w.from_logits is False:
            assert d["y_pred"].min() > 0 and d["y_pred"].max() < 1
        # Deterministic for a seed.
        assert np.array_equal(d["y_pred"], _bench.make_data(w, seed=3)["y_pred"])


def test_workload_selection():
    every = _bench.select_workloads()
    catalogue = [w.id for w in every if w.loss in _bench.CATALOGUE_LOSSES]   # issue 14
    assert len(catalogue) == 12 and all("-1e7-" in i for i in catalogue)
    # 88 of issues 3 and 15; of issue 14: 12 elementwise, 30 row, 6 focal, 2 CTC,
    # 18 of the pair losses
    assert len(every) == 156 and len({w.id for w in every}) == 156
    focal = [w.id for w in every if "focal" in w.loss]                   # issue 14
    assert focal == ["bfocal_logits-1e7-f32", "cfocal_logits-10000x1000-f32",
                     "sfocal_logits-10000x1000-f32",
                     "bfocal_logits-1e7-f64", "cfocal_logits-10000x1000-f64",
                     "sfocal_logits-10000x1000-f64"]
    steps = [w.id for w in every if w.loss in _bench.ADAPTER_LOSSES]     # issue 15
    assert steps == ["torch_ce_step-10000x1000-f32", "torch_ce_step-256x32000-f32",
                     "jax_ce_step-10000x1000-f32", "jax_ce_step-256x32000-f32"]
    assert {w.dtype for w in every} == {"float32", "float64"}
    quick = _bench.select_workloads(quick=True)
    assert len(quick) == len(_bench.QUICK_IDS)
    assert {w.dtype for w in quick} == {"float32"}
    assert [w.id for w in _bench.select_workloads(filters=["mse-1e7"])] == [
        "mse-1e7-f32", "mse-1e7-f64"]
    sparse = _bench.select_workloads(dtypes=["float64"], filters=["sparse_", "cce_probs"])
    assert len(sparse) == 12 and all(w.dtype == "float64" for w in sparse)   # 3 with _grad


def test_bench_subcommand_parses():
    parser = argparse.ArgumentParser(prog="python -m cyloss")
    sub = parser.add_subparsers(dest="command")
    _bench.add_parser(sub)
    args = parser.parse_args(["bench", "--quick", "--threads", "1,4", "--dtype", "float64",
                              "--filter", "mse", "--no-plot"])
    assert args.command == "bench" and args.quick and args.threads == [1, 4]
    assert args.dtype == ["float64"] and args.filter == ["mse"] and args.no_plot
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--threads", "0"])


def test_adapter_workloads_record_the_frameworks_ratio(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    workloads = [_bench.Workload("torch_ce_step", (50, 7), "float32"),
                 _bench.Workload("jax_ce_step", (50, 7), "float32")]
    results = _bench.run_benchmark(workloads, threads=[1], rounds=2, warmup=1,
                                   target_ms=0.2, progress=False)
    assert results["mismatches"] == [] and results["errors"] == []
    torch_step, jax_step = ({rec["id"]: rec for rec in e["implementations"]}
                            for e in results["workloads"])
    assert torch_step["cyloss-1t"]["ratio_torch"] > 0 and "jax" not in torch_step
    assert jax_step["cyloss-1t"]["ratio_jax"] > 0 and "torch" not in jax_step
    assert results["machine"]["jax"] and results["machine"]["optax"]
    md = _bench.markdown(results)
    assert "cyloss 1t xjax" in md and "jax (optax)" in md


def test_list_and_no_match(capsys):
    assert _bench.main(["--list", "--quick"]) == 0
    assert "sparse_logits-10000x1000-f32" in capsys.readouterr().out
    assert _bench.main(["--filter", "no-such-workload", "--no-progress"]) == 2


def test_progress_lines_when_not_a_terminal():
    stream = io.StringIO()
    bar = _bench.Progress(10.0, 2, enabled=True, stream=stream)
    bar.update(1.0, "a")  # no \r redraws off a terminal
    bar.workload_done(5.0, "mse-1e4-f32", 0.5)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("[1/2] mse-1e4-f32") and "\r" not in text


def test_plot_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    w = _bench.Workload("bce_logits", (1000,), "float64")
    results = _bench.run_benchmark([w], rounds=2, warmup=1, target_ms=0.2, progress=False,
                                   libs={}, missing={})
    paths = _bench.write_outputs(results, tmp_path)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![time relative to the read ceiling](results.png)" in paths["md"].read_text()


def test_pair_workloads_run_at_tiny_size():
    # Issue #14's pair losses: the whole harness (data, every implementation, the checks
    # against cyloss's value) at tiny sizes, both dtypes.
    workloads = [_bench.Workload(loss, TINY[_bench.LOSSES[loss][0]], dtype)
                 for loss in sorted(_bench.PAIR_LOSSES) for dtype in _bench.DTYPES]
    results = _bench.run_benchmark(workloads, threads=[1, 2], rounds=2, warmup=1,
                                   target_ms=0.2, progress=False)
    assert results["mismatches"] == [] and results["errors"] == []
    assert len(results["workloads"]) == 2 * len(_bench.PAIR_LOSSES)
    sizes = {w.loss: w.shape for w in _bench.select_workloads(dtypes=["float64"])
             if w.loss in _bench.PAIR_LOSSES}
    assert sizes == {loss: ((10**6, 10) if _bench.LOSSES[loss][0] == "rows" else (10**7,))
                     for loss in _bench.PAIR_LOSSES}


def test_gradient_workloads_have_the_read_write_ceiling():
    """Issue 13: value and gradient against reading both inputs and writing the gradient
    once; the header names the SIMD path in force."""
    workloads = [_bench.Workload("mse_grad", (1000,), "float32"),
                 _bench.Workload("mse", (1000,), "float32")]
    results = _bench.run_benchmark(workloads, threads=[1], rounds=2, warmup=1,
                                   target_ms=0.2, progress=False)
    grad, plain = ({rec["id"]: rec for rec in e["implementations"]}
                   for e in results["workloads"])
    assert grad["readwrite"]["kind"] == "ceiling"
    assert grad["readwrite"]["ratio_readwrite"] == 1.0
    assert grad["cyloss-1t"]["ratio_readwrite"] > 0
    assert "readwrite" not in plain and "ratio_readwrite" not in plain["cyloss-1t"]
    path = cyloss.show_config(mode="dicts")["simd_path"].split(" ")[0]
    assert f"SIMD {path})" in _bench.markdown(results)
