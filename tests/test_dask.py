"""cyloss.dask: lazy chunked losses equal the in-memory call, on threads and on a real
dask.distributed cluster of two worker processes."""

import doctest
import math
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import cyloss
import reference
from streaming_cases import (
    CASES, CLASS_WEIGHT, REDUCTIONS, case_params, make_inputs, make_weights, one_shot,
    sample_shape,
)

da = pytest.importorskip("dask.array", reason="the Dask tests need cyloss[dask]")
import cyloss.dask as cd  # noqa: E402

RTOL = 1e-12  # the bound; chunked float64 sums agree to ~1e-15 in practice
N = 120


def dask_function(case):
    return getattr(cd, case.loss)


def chunk_inputs(case, y_true, y_pred, rows=(17, 40, 1, 62)):
    """y_pred chunked along axis 0 (and along a spare non-class axis when there is one);
    y_true chunked differently on purpose (cyloss.dask rechunks it)."""
    chunks = [rows] + [-1] * (y_pred.ndim - 1)
    if case.kind != "elementwise" and y_pred.ndim == 3:
        spare = 2 if case.options.get("axis", -1) % 3 == 1 else 1
        chunks[spare] = 2
    elif case.kind == "elementwise" and y_pred.ndim == 3:
        chunks[1] = 1  # not the last axis, over which each sample is averaged
    yp = da.from_array(y_pred, chunks=tuple(chunks))
    yt = da.from_array(y_true, chunks=30)
    return yt, yp


def seed(*parts):
    return zlib.crc32(repr(parts).encode())


# --- threaded scheduler: every loss and option ----------------------------------------

@pytest.mark.parametrize("weights", ["none", "numpy", "dask"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", case_params())
def test_equals_the_in_memory_call(case, reduction, weights):
    rng = np.random.default_rng(seed(case.id(), reduction, weights))
    y_true, y_pred = make_inputs(case, N, rng)
    w = None if weights == "none" else make_weights(case, N, rng)
    expected = one_shot(case, y_true, y_pred, w, reduction)
    yt, yp = chunk_inputs(case, y_true, y_pred)
    sw = da.from_array(w, chunks=25) if weights == "dask" else w
    lazy = dask_function(case)(yt, yp, sample_weight=sw, reduction=reduction, **case.options)
    assert isinstance(lazy, da.Array) and lazy.shape == () and lazy.dtype == np.float64
    assert lazy.npartitions == 1
    value = lazy.compute(scheduler="threads")
    assert isinstance(value, float)
    assert math.isclose(value, expected, rel_tol=RTOL, abs_tol=0.0)


@pytest.mark.parametrize("case", case_params())
def test_reduction_none_is_chunked_like_the_samples(case):
    rng = np.random.default_rng(seed(case.id(), "none"))
    y_true, y_pred = make_inputs(case, N, rng)
    w = make_weights(case, N, rng)
    yt, yp = chunk_inputs(case, y_true, y_pred)
    lazy = dask_function(case)(yt, yp, sample_weight=w, reduction="none", **case.options)
    expected = one_shot(case, y_true, y_pred, w, "none")
    assert lazy.shape == sample_shape(case, N) == expected.shape
    axis = case.options.get("axis", -1) % y_pred.ndim
    if case.kind == "elementwise":
        axis = y_pred.ndim - 1
    per_sample_chunks = yp.chunks[:axis] + yp.chunks[axis + 1:]
    if y_pred.ndim == 1:
        per_sample_chunks = yp.chunks
    assert lazy.chunks == per_sample_chunks
    assert lazy.dtype == expected.dtype
    # the same kernel on the same elements: identical values
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), expected)


def test_float32_input():
    rng = np.random.default_rng(1)
    case = CASES[5]  # sparse, logits, ignore_index, class_weight
    y_true, y_pred = make_inputs(case, 500, rng, dtype=np.float32)
    yp = da.from_array(y_pred, chunks=(64, 5))
    for reduction in REDUCTIONS:
        expected = one_shot(case, y_true, y_pred, None, reduction)
        lazy = cd.sparse_categorical_crossentropy(y_true, yp, reduction=reduction,
                                                  **case.options)
        assert math.isclose(lazy.compute(scheduler="threads"), expected, rel_tol=RTOL)
    none = cd.sparse_categorical_crossentropy(y_true, yp, reduction="none", **case.options)
    assert none.dtype == np.float32


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinge_label_rule_is_decided_over_all_chunks(name):
    # Keras converts 0/1 labels to -1/1 only when the whole y_true is 0/1: one -1 in the
    # last chunk keeps every chunk's 0s as they are (each chunk alone would convert).
    rng = np.random.default_rng(seed(name, "rule"))
    y = rng.integers(0, 2, size=(N, 3)).astype(np.float64)
    p = rng.normal(0.0, 1.5, size=(N, 3))
    values = []
    for last in (1.0, -1.0):
        y[-1, -1] = last
        yt, yp = da.from_array(y, chunks=(30, 3)), da.from_array(p, chunks=(40, 3))
        function, lazy = getattr(cyloss, name), getattr(cd, name)
        expected = function(y, p, reduction="none")
        np.testing.assert_array_equal(
            lazy(yt, yp, reduction="none").compute(scheduler="threads"), expected)
        np.testing.assert_allclose(expected, getattr(reference, name)(y, p, reduction="none"),
                                   rtol=1e-15)
        for reduction in REDUCTIONS:
            assert math.isclose(lazy(yt, yp, reduction=reduction).compute(scheduler="threads"),
                                function(y, p, reduction=reduction), rel_tol=RTOL)
        values.append(expected[0])
    assert values[0] != values[1]


def test_independent_formulas():
    rng = np.random.default_rng(2)
    # weighted MSE, Keras's "mean": sum w_i mean_k e_ik^2 / n
    y, p = rng.normal(size=(300, 6)), rng.normal(size=(300, 6))
    w = rng.uniform(0, 2, 300)
    expected = (w * ((p - y) ** 2).mean(axis=1)).sum() / 300
    lazy = cd.mse(da.from_array(y, chunks=(50, 6)), da.from_array(p, chunks=(70, 6)),
                  sample_weight=w)
    assert math.isclose(lazy.compute(scheduler="threads"), expected, rel_tol=1e-13)
    # sparse logits, ignored labels, class weights, PyTorch's weighted mean
    logits = rng.normal(0, 2, (400, 5))
    labels = rng.integers(0, 5, 400)
    labels[rng.random(400) < 0.3] = -100
    cw = np.array(CLASS_WEIGHT)
    keep = labels != -100
    m = logits.max(axis=1)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=1))
    nll = lse[keep] - logits[keep, labels[keep]]
    v = cw[labels[keep]]
    lazy = cd.sparse_categorical_crossentropy(
        da.from_array(labels, chunks=64), da.from_array(logits, chunks=(64, 5)),
        from_logits=True, ignore_index=-100, class_weight=cw, reduction="weighted_mean")
    assert math.isclose(lazy.compute(scheduler="threads"), (v * nll).sum() / v.sum(),
                        rel_tol=1e-13)


def test_aliases_and_public_names():
    assert cd.mae is cd.mean_absolute_error and cd.mse is cd.mean_squared_error
    assert cd.UNSUPPORTED == ()
    for name in cyloss.LOSSES:
        assert name in cd.__all__ and callable(getattr(cd, name))


def test_import_cyloss_does_not_import_dask():
    code = ("import sys, cyloss; "
            "bad = [m for m in sys.modules if m == 'dask' or m.startswith('dask.')]; "
            "assert not bad, bad; import cyloss.dask; assert 'dask.array' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_docstring_examples():
    result = doctest.testmod(cd, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --- shapes and errors ------------------------------------------------------------------

def test_keras_shapes_and_weight_broadcasts():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(40, 1))
    p = rng.normal(size=(40,))
    # (n, 1) against (n,) in either order; weights (n, 1), (n,), scalar, one per entry
    for yt, yp in [(y, p), (p[:, None], y[:, 0])]:
        for w in [rng.uniform(size=(40, 1)), rng.uniform(size=40), 2.5, None]:
            lazy = cd.huber(da.from_array(yt, chunks=7), da.from_array(yp, chunks=9),
                            sample_weight=w, reduction="sum")
            expected = cyloss.huber(yt, yp, sample_weight=w, reduction="sum")
            assert math.isclose(lazy.compute(scheduler="threads"), expected, rel_tol=RTOL)
    y3, p3 = rng.normal(size=(10, 3, 4)), rng.normal(size=(10, 3, 4))
    for w in [rng.uniform(size=10), rng.uniform(size=(10, 3)), rng.uniform(size=(3,)),
              rng.uniform(size=(10, 1))]:
        lazy = cd.mae(y3, da.from_array(p3, chunks=(4, 2, 4)), sample_weight=w,
                      reduction="none")
        np.testing.assert_array_equal(lazy.compute(scheduler="threads"),
                                      cyloss.mae(y3, p3, sample_weight=w, reduction="none"))
    # sparse labels with a class axis of 1
    labels = rng.integers(0, 4, (12, 1))
    probs = rng.uniform(0.1, 1, (12, 4))
    lazy = cd.sparse_categorical_crossentropy(labels, da.from_array(probs, chunks=(5, 4)))
    assert math.isclose(lazy.compute(scheduler="threads"),
                        cyloss.sparse_categorical_crossentropy(labels, probs), rel_tol=RTOL)


def test_empty_and_single_sample_inputs():
    assert float(cd.mse(da.zeros((0, 3)), da.zeros((0, 3))).compute()) == 0.0
    assert cd.mse(da.zeros((0, 3)), da.zeros((0, 3)), reduction="none").shape == (0,)
    assert float(cd.mae(np.float64(1.0), np.float64(3.0)).compute()) == 2.0
    none = cd.mae(np.float64(1.0), np.float64(3.0), reduction="none")
    assert none.shape == () and float(none.compute()) == 2.0
    assert float(cd.categorical_crossentropy([0.0, 1.0], [0.5, 0.5]).compute()) == \
        cyloss.categorical_crossentropy([0.0, 1.0], [0.5, 0.5])


@pytest.mark.parametrize("function, y_pred, axis_text", [
    (cd.mse, da.zeros((6, 4), chunks=(3, 2)), r"axis 1 \(the last axis"),
    (cd.binary_crossentropy, da.zeros((6, 2, 4), chunks=(3, 2, 3)),
     r"axis 2 \(the last axis, over which each sample's loss is the mean\)"),
    (lambda yt, yp: cd.categorical_crossentropy(yt, yp, axis=1),
     da.ones((6, 4, 2), chunks=(3, 2, 2)), r"axis 1 \(the class axis\): chunks \(2, 2\)"),
])
def test_chunked_reduced_axis_is_refused(function, y_pred, axis_text):
    with pytest.raises(ValueError, match=axis_text) as info:
        function(da.zeros(y_pred.shape), y_pred)
    assert "chunks (" in str(info.value) and "rechunk" in str(info.value)


def test_sparse_chunked_class_axis_is_refused():
    with pytest.raises(ValueError, match=r"axis 1 \(the class axis\): chunks \(3, 2\)"):
        cd.sparse_categorical_crossentropy(np.zeros(4, dtype=int),
                                           da.ones((4, 5), chunks=(2, 3)))


def test_errors_are_raised_when_the_graph_is_built():
    y, p = da.zeros((6, 4), chunks=3), da.zeros((6, 4), chunks=(3, 4))
    with pytest.raises(ValueError, match="delta"):
        cd.huber(y, p, delta=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        cd.mse(y, p, reduction="avg")
    with pytest.raises(ValueError, match="same shape"):
        cd.mse(da.zeros((6, 3)), p)
    with pytest.raises(ValueError, match=r"class_weight must have one weight per class"):
        cd.sparse_categorical_crossentropy(np.zeros(6, dtype=int), p, class_weight=[1, 2])
    with pytest.raises(ValueError, match="pos_weight"):
        cd.binary_crossentropy(y, p, pos_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="sample_weight of shape"):
        cd.mse(y, p, sample_weight=np.ones(5))
    with pytest.raises(TypeError, match="numeric"):
        cd.mse(y, da.from_array(np.array([["a"] * 4] * 6)))
    unknown = y[y[:, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        cd.mse(unknown, unknown)


def test_data_errors_name_the_chunk():
    labels = da.from_array(np.array([0, 1, 2, 9, 1, 0]), chunks=2)
    probs = da.ones((6, 3), chunks=(2, 3))
    lazy = cd.sparse_categorical_crossentropy(labels, probs)  # builds fine
    with pytest.raises(ValueError, match=r"label 9 at index \(1,\).*starts at \(2, 0\)"):
        lazy.compute(scheduler="threads")


# --- a real dask.distributed cluster: two worker processes ---------------------------

# The cluster is started once for this module and closed after its last test. With
# dask/distributed 2026.8 neither start nor shutdown emits a warning, so none is
# filtered: under the suite's -W error a new shutdown warning fails loudly here, and
# should then be ignored by a filterwarnings mark on these tests only, by category and
# message.


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id()) for c in CASES[1::2]])
def test_distributed_cluster(client, case):
    rng = np.random.default_rng(seed(case.id(), "cluster"))
    y_true, y_pred = make_inputs(case, N, rng)
    w = make_weights(case, N, rng)
    yt, yp = chunk_inputs(case, y_true, y_pred)
    sw = da.from_array(w, chunks=33)
    for reduction in REDUCTIONS:
        lazy = dask_function(case)(yt, yp, sample_weight=sw, reduction=reduction,
                                   **case.options)
        expected = one_shot(case, y_true, y_pred, w, reduction)
        assert math.isclose(client.compute(lazy).result(), expected, rel_tol=RTOL)
    none = dask_function(case)(yt, yp, sample_weight=sw, reduction="none", **case.options)
    np.testing.assert_array_equal(client.compute(none).result(),
                                  one_shot(case, y_true, y_pred, w, "none"))


def test_distributed_sample_chunked_losses(client):
    # The chunk tasks of the three-array losses and of CTC travel to other processes
    # (their arguments pickled): the private reduction must survive the trip.
    rng = np.random.default_rng(11)
    name, options, arrays, weight = _sample_losses(rng)[0]
    lazy = cd.margin_ranking(*[_chunk_rows(a) for a in arrays], sample_weight=weight,
                             reduction="weighted_mean", **options)
    expected = cyloss.margin_ranking(*arrays, sample_weight=weight,
                                     reduction="weighted_mean", **options)
    assert math.isclose(client.compute(lazy).result(), expected, rel_tol=1e-14)
    logits = rng.normal(size=(6, 12, 5))
    labels = rng.integers(1, 5, (6, 3))
    lazy = cd.ctc(da.from_array(labels, chunks=(2, 3)),
                  da.from_array(logits, chunks=(2, 12, 5)))
    assert math.isclose(client.compute(lazy).result(), cyloss.ctc(labels, logits),
                        rel_tol=1e-14)


def test_cluster_is_two_worker_processes(client):
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    # a big enough graph runs on both workers
    rng = np.random.default_rng(5)
    y, p = rng.normal(size=(20_000, 8)), rng.normal(size=(20_000, 8))
    lazy = cd.huber(da.from_array(y, chunks=(500, 8)), da.from_array(p, chunks=(500, 8)),
                    delta=0.7)
    future = client.compute(lazy)
    assert math.isclose(future.result(), cyloss.huber(y, p, delta=0.7), rel_tol=RTOL)


def test_accumulators_travel_between_processes(client):
    # Accumulator states computed in the worker processes, pickled back and merged.
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 5, 1000)
    logits = rng.normal(size=(1000, 5))
    loss = cyloss.SparseCategoricalCrossentropy(from_logits=True, class_weight=CLASS_WEIGHT,
                                                reduction="weighted_mean")

    def part(a, b):
        return cyloss.Accumulator(loss).update(labels[a:b], logits[a:b])

    futures = [client.submit(part, a, a + 250, pure=False) for a in range(0, 1000, 250)]
    total = cyloss.Accumulator(loss)
    for acc in client.gather(futures):
        total.merge(acc)
    assert total.count == 1000
    assert math.isclose(total.result(), loss(labels, logits), rel_tol=1e-14)



# --- issue #14: the three-array losses and dice/tversky, chunked along axis 0 -------------

def _sample_losses(rng, n=97):
    """(name, options, arrays, weight, chunked): arrays in the loss's order with samples
    along axis 0; `chunked` is each array's chunking (None: passed as NumPy)."""
    sign = lambda *shape: np.where(rng.random(shape) < 0.5, -1.0, 1.0)  # noqa: E731
    x, z = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    y = rng.normal(size=(n, 4))
    soft = rng.random((n, 3, 4))
    hard = np.round(rng.random((n, 3, 4)))
    return [
        ("margin_ranking", {"margin": 0.2}, (sign(n, 4), x, z), rng.random(n)),
        ("margin_ranking", {}, (sign(n, 1), x[:, 0], z[:, 0]), rng.random(n)),
        ("margin_ranking", {}, (sign(4), x, z), None),      # one label per column
        ("gaussian_nll", {"full": True}, (y, x, rng.uniform(0.1, 2, (n, 4))), rng.random(n)),
        ("gaussian_nll", {}, (y, x, rng.uniform(0.1, 2, n)), None),   # one per row
        ("gaussian_nll", {"eps": 1e-3}, (y, x, rng.uniform(0.1, 2, (n, 1))), None),
        ("cosine_embedding", {"margin": 0.1}, (sign(n), x, z), rng.random(n)),
        ("triplet_margin", {"swap": True, "p": 1.5}, (y, y + 0.3 * x, z), rng.random(n)),
        ("dice", {"axis": -1}, (hard, soft), rng.random((n, 3))),
        ("dice", {"axis": (1, 2)}, (hard, soft), rng.random(n)),
        ("tversky", {"alpha": 0.3, "beta": 0.7, "axis": (2,)}, (hard, soft), None),
    ]


def _chunk_rows(a, size=13):
    return da.from_array(a, chunks=(size,) + a.shape[1:]) if np.ndim(a) else a


@pytest.mark.parametrize("reduction", ["mean", "weighted_mean", "sum", "none"])
def test_three_array_and_overlap_losses_equal_the_in_memory_call(reduction):
    rng = np.random.default_rng(zlib.crc32(f"samples/{reduction}".encode()))
    for name, options, arrays, weight in _sample_losses(rng):
        expected = getattr(cyloss, name)(*arrays, sample_weight=weight,
                                         reduction=reduction, **options)
        lazy_arrays = [_chunk_rows(a) if np.ndim(a) and a.shape[0] == arrays[1].shape[0]
                       else a for a in arrays]
        lazy = getattr(cd, name)(*lazy_arrays,
                                 sample_weight=None if weight is None
                                 else _chunk_rows(weight, 29),
                                 reduction=reduction, **options)
        assert isinstance(lazy, da.Array)
        got = lazy.compute(scheduler="threads")
        if reduction == "none":
            assert lazy.shape == expected.shape and lazy.chunks[0][0] == 13
            np.testing.assert_array_equal(got, expected)   # the same rows, the same loop
        else:
            assert math.isclose(got, expected, rel_tol=1e-14), (name, options)


def test_three_array_losses_independent_formula():
    # margin ranking from its definition, chunked, against float64 NumPy.
    rng = np.random.default_rng(7)
    y = np.where(rng.random(300) < 0.5, -1.0, 1.0)
    a, b = rng.normal(size=300), rng.normal(size=300)
    expected = np.maximum(0.0, -y * (a - b) + 0.3).mean()
    got = cd.margin_ranking(da.from_array(y, chunks=50), da.from_array(a, chunks=64), b,
                            margin=0.3).compute()
    assert math.isclose(got, expected, rel_tol=1e-13)


def test_sample_chunking_rules():
    x = da.ones((8, 4), chunks=(4, 2))
    with pytest.raises(ValueError, match=r"input1 is chunked along axis 1.*rechunk"):
        cd.margin_ranking(1.0, x, x)
    with pytest.raises(ValueError, match="axis=None sums over every axis"):
        cd.dice(x, x)
    with pytest.raises(ValueError, match="sums over axis 0"):
        cd.tversky(x.rechunk((4, 4)), x.rechunk((4, 4)), axis=(0, 1))
    with pytest.raises(ValueError, match="no axis of samples"):
        cd.triplet_margin(da.ones(4, chunks=2), da.ones(4, chunks=2), da.ones(4, chunks=2))
    # a data error names the chunk's first sample, at compute time
    var = np.ones((8, 4))
    var[5, 2] = -1.0
    lazy = cd.gaussian_nll(x.rechunk((4, 4)), x.rechunk((4, 4)), da.from_array(var, chunks=4))
    with pytest.raises(ValueError, match=r"var must be non-negative.*starts at sample 4"):
        lazy.compute(scheduler="sync")
