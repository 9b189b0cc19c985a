"""CTC loss: values and gradients against torch.nn.functional.ctc_loss (float64) and
Keras 3's ctc (NumPy backend, float64), finite differences, thread invariance, bad
inputs, and the class."""

import importlib.util
import math
import os
import pickle

import numpy as np
import pytest

import cyloss

RTOL = 1e-9


def _batch(rng, n, T, C, blank=0, max_label=6, short=False, alphabet=None):
    """Random padded targets (repeats likely from a small alphabet, some empty), logits
    and lengths; with ``short`` some inputs are too short for their targets."""
    classes = [c for c in range(C) if c != blank] if alphabet is None else alphabet
    label_length = rng.integers(0, max_label + 1, size=n)
    label_length[0] = 0                         # an empty target
    if n > 1:
        label_length[1] = max_label             # the longest
    y = np.full((n, max_label), blank, dtype=np.int64)
    for i in range(n):
        y[i, :label_length[i]] = rng.choice(classes, size=label_length[i])
    if n > 2 and max_label >= 2:
        y[2, :2] = classes[0]                   # a repeated pair
        label_length[2] = max(label_length[2], 2)
    need = np.array([L + np.count_nonzero(y[i, 1:L] == y[i, :L - 1]) if L else 0
                     for i, L in enumerate(label_length)])
    logit_length = np.array([rng.integers(k, T + 1) if k <= T else T for k in need])
    if short:
        for i in range(0, n, 3):
            if need[i] > 0:
                logit_length[i] = min(T, rng.integers(0, need[i]))
    x = rng.normal(size=(n, T, C)) * 2
    return y, x, label_length, logit_length


def _torch_ctc(y, x, label_length, logit_length, blank=0, reduction="none",
               zero_infinity=False, log_probs=False, grad=False):
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=grad)
    lp = xt if log_probs else torch.log_softmax(xt, dim=-1)
    loss = torch.nn.functional.ctc_loss(
        lp.transpose(0, 1), torch.tensor(y), torch.tensor(logit_length),
        torch.tensor(label_length), blank=blank, reduction=reduction,
        zero_infinity=zero_infinity)
    if not grad:
        return loss.detach().numpy()
    loss.sum().backward()
    return loss.detach().numpy(), xt.grad.numpy()


def _close(a, b, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("blank", [0, 4])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_torch_per_sample(seed, blank, zero_infinity):
    rng = np.random.default_rng([seed, blank, zero_infinity])
    y, x, L, Tl = _batch(rng, 9, 14, 5, blank=blank, short=True,
                         alphabet=[1, 2] if seed % 2 else None)
    expected = _torch_ctc(y, x, L, Tl, blank=blank, zero_infinity=zero_infinity)
    got = cyloss.ctc(y, x, label_length=L, logit_length=Tl, blank=blank,
                     zero_infinity=zero_infinity, reduction="none")
    assert got.shape == (9,) and got.dtype == np.float64
    assert np.isinf(expected).any() != zero_infinity or not np.isinf(got).any()
    _close(got, expected)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_torch_reductions(zero_infinity):
    rng = np.random.default_rng(7)
    y, x, L, Tl = _batch(rng, 8, 12, 6)
    for ours, theirs, divide in [("sum", "sum", False), ("mean", "mean", True)]:
        expected = float(_torch_ctc(y, x, L, Tl, reduction=theirs,
                                    zero_infinity=zero_infinity))
        got = cyloss.ctc(y, x, label_length=L, logit_length=Tl, reduction=ours,
                         zero_infinity=zero_infinity, divide_by_target_length=divide)
        assert isinstance(got, float)
        assert math.isclose(got, expected, rel_tol=RTOL), (ours, got, expected)
    # cyloss's own "mean" (Keras's) averages the undivided losses
    per = _torch_ctc(y, x, L, Tl)
    assert math.isclose(cyloss.ctc(y, x, label_length=L, logit_length=Tl), per.mean(),
                        rel_tol=RTOL)


def test_torch_concatenated_targets_and_time_major_view():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    y, x, L, Tl = _batch(rng, 6, 10, 4, max_label=4)
    flat = np.concatenate([y[i, :L[i]] for i in range(6)])
    lp = torch.log_softmax(torch.tensor(x), -1).transpose(0, 1).contiguous()  # (T, N, C)
    expected = torch.nn.functional.ctc_loss(lp, torch.tensor(flat), torch.tensor(Tl),
                                            torch.tensor(L), reduction="none").numpy()
    # PyTorch's (T, N, C) log-probabilities, read in place through a transposed view
    got = cyloss.ctc(flat, lp.numpy().transpose(1, 0, 2), label_length=L, logit_length=Tl,
                     from_logits=False, reduction="none")
    _close(got, expected)
    got2 = cyloss.ctc(y, x, label_length=L, logit_length=Tl, reduction="none")
    _close(got2, expected)


def test_log_probs_used_as_given():
    # from_logits=False takes log-probabilities without renormalising, like PyTorch.
    rng = np.random.default_rng(11)
    y, x, L, Tl = _batch(rng, 5, 9, 4, max_label=3)
    expected = _torch_ctc(y, x, L, Tl, log_probs=True)
    got = cyloss.ctc(y, x, label_length=L, logit_length=Tl, from_logits=False,
                     reduction="none")
    _close(got, expected)


def test_hand_values():
    u = [[[0.0, 0.0], [0.0, 0.0]]]
    assert math.isclose(cyloss.ctc([[1]], u), -math.log(0.75), rel_tol=1e-15)
    # empty target: every frame blank
    assert math.isclose(cyloss.ctc([[0]], u), -math.log(0.25), rel_tol=1e-15)
    # repeated label needs a blank between: 3 frames, only "a - a"
    assert math.isclose(cyloss.ctc([[1, 1]], np.zeros((1, 3, 2))), 3 * math.log(2),
                        rel_tol=1e-15)
    assert cyloss.ctc([[1, 1]], u) == math.inf
    assert cyloss.ctc([[1, 1]], u, zero_infinity=True) == 0.0
    # zero frames: the empty target has probability 1
    assert cyloss.ctc([[0]], np.zeros((1, 0, 3))) == 0.0
    assert cyloss.ctc([[2]], np.zeros((1, 0, 3))) == math.inf


def test_torch_zero_length_input():
    y = np.array([[1, 2], [0, 0]])
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    L, Tl = np.array([2, 0]), np.array([0, 0])
    for zi in (False, True):
        _close(cyloss.ctc(y, x, label_length=L, logit_length=Tl, zero_infinity=zi,
                          reduction="none"),
               _torch_ctc(y, x, L, Tl, zero_infinity=zi))


def test_weights_and_reductions():
    rng = np.random.default_rng(5)
    y, x, L, Tl = _batch(rng, 6, 11, 5)
    w = rng.uniform(0.5, 2, size=6)
    per = _torch_ctc(y, x, L, Tl)
    kw = dict(label_length=L, logit_length=Tl, sample_weight=w)
    _close(cyloss.ctc(y, x, reduction="none", **kw), w * per)
    assert math.isclose(cyloss.ctc(y, x, reduction="sum", **kw), (w * per).sum(),
                        rel_tol=RTOL)
    assert math.isclose(cyloss.ctc(y, x, reduction="mean", **kw), (w * per).mean(),
                        rel_tol=RTOL)
    assert math.isclose(cyloss.ctc(y, x, reduction="weighted_mean", **kw),
                        (w * per).sum() / w.sum(), rel_tol=RTOL)
    div = per / np.maximum(L, 1)
    _close(cyloss.ctc(y, x, reduction="none", divide_by_target_length=True, **kw), w * div)


def test_float32_and_nan():
    rng = np.random.default_rng(2)
    y, x, L, Tl = _batch(rng, 5, 10, 4)
    ref = cyloss.ctc(y, x, label_length=L, logit_length=Tl, reduction="none")
    got = cyloss.ctc(y, x.astype(np.float32), label_length=L, logit_length=Tl,
                     reduction="none")
    assert got.dtype == np.float32
    _close(got, ref, rtol=1e-5)
    v, g = cyloss.CTC().value_and_grad(y, x.astype(np.float32))
    v64, g64 = cyloss.CTC().value_and_grad(y, x)
    assert g.dtype == np.float32 and math.isclose(v, v64, rel_tol=1e-5)
    _close(g, g64, rtol=1e-4, atol=1e-6)
    x[3, 0, 2] = np.nan
    got = cyloss.ctc(y, x, label_length=L, logit_length=Tl, reduction="none")
    assert np.isnan(got[3]) and not np.isnan(np.delete(got, 3)).any()


# ------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_grad_vs_torch(seed, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([seed, 99])
    y, x, L, Tl = _batch(rng, 7, 12, 5, short=True, alphabet=[1, 2, 3])
    # zero_infinity=True: torch's gradient of an infinite loss is not 0 otherwise
    xt = torch.tensor(x, requires_grad=True)
    loss = torch.nn.functional.ctc_loss(
        torch.log_softmax(xt, -1).transpose(0, 1), torch.tensor(y), torch.tensor(Tl),
        torch.tensor(L), reduction="sum" if reduction == "none" else reduction,
        zero_infinity=True)
    loss.backward()
    divide = reduction == "mean"
    value, g = cyloss.CTC(zero_infinity=True, reduction=reduction,
                          divide_by_target_length=divide).value_and_grad(
        y, x, label_length=L, logit_length=Tl)
    if reduction == "mean":
        assert math.isclose(value, float(loss.detach()), rel_tol=RTOL)
    else:
        assert math.isclose(float(np.sum(value)), float(loss.detach()), rel_tol=RTOL)
    _close(g, xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    for i in range(7):   # frames past logit_length: exactly 0
        assert not g[i, Tl[i]:].any()


@pytest.mark.parametrize("scale, T, C, max_label, atol", [
    (2.0, 200, 30, 40, 1e-12),    # the benchmark's size: the scaled recursion throughout
    (12.0, 120, 6, 20, 1e-12),    # peaked frames: alignments far apart in one frame
    # emissions below 2^-1000: the log-space recursion, whose log-probabilities of ~1e3
    # carry ~1e-13 absolute rounding (torch's as well) into gradients of order 1
    (400.0, 16, 5, 5, 1e-10),
])
def test_scaled_and_log_space_recursions_vs_torch(scale, T, C, max_label, atol):
    # _ctc.pyx computes a sequence in scaled probability space where nothing underflows and
    # in log space elsewhere; both must give torch's values and gradients.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([int(scale), T])
    y, x, L, Tl = _batch(rng, 6, T, C, max_label=max_label)
    x = x / 2 * scale
    want, want_g = _torch_ctc(y, x, L, Tl, reduction="sum", grad=True)
    value, g = cyloss.CTC(reduction="sum").value_and_grad(y, x, label_length=L,
                                                          logit_length=Tl)
    assert math.isclose(value, float(want), rel_tol=RTOL)
    _close(g, want_g, rtol=1e-8, atol=atol)
    per_sample = cyloss.ctc(y, x, label_length=L, logit_length=Tl, reduction="none")
    _close(per_sample, _torch_ctc(y, x, L, Tl))


def _central(f, x, h=1e-5):
    fd = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        def at(d):
            q = x.copy()
            q[idx] += d
            return f(q)
        fd[idx] = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
    return fd


@pytest.mark.parametrize("from_logits", [True, False])
def test_grad_finite_difference(from_logits):
    rng = np.random.default_rng(4)
    y = np.array([[1, 1, 2], [2, 0, 0], [0, 0, 0]])
    x = rng.normal(size=(3, 5, 3))
    if not from_logits:
        x = x - 1.5   # log-probabilities, not normalised
    w = np.array([0.5, 2.0, 1.5])
    loss = cyloss.CTC(from_logits=from_logits, reduction="weighted_mean")
    L, Tl = np.array([3, 1, 0]), np.array([5, 4, 3])
    _, g = loss.value_and_grad(y, x, sample_weight=w, label_length=L, logit_length=Tl)
    fd = _central(lambda q: loss(y, q, sample_weight=w, label_length=L, logit_length=Tl), x)
    _close(g, fd, rtol=1e-7, atol=1e-9)


def test_grad_infinite_loss_is_zero():
    y = np.array([[1, 1], [1, 0]])
    x = np.random.default_rng(1).normal(size=(2, 2, 3))
    for zi in (False, True):
        v, g = cyloss.CTC(zero_infinity=zi, reduction="none").value_and_grad(y, x)
        assert v[0] == (0.0 if zi else np.inf) and not g[0].any() and g[1].any()


def test_grad_out_and_module_functions():
    rng = np.random.default_rng(8)
    y, x, L, Tl = _batch(rng, 4, 8, 4)
    out = np.empty_like(x)
    v, g = cyloss.CTC().value_and_grad(y, x, grad_out=out, label_length=L,
                                       logit_length=Tl)
    assert g is out
    assert v == cyloss.ctc(y, x, label_length=L, logit_length=Tl)
    # Keras layout through the generic helpers
    yk = np.array([[1, 2, 0], [3, 0, 0]])
    xk = rng.normal(size=(2, 6, 4))
    v2, g2 = cyloss.value_and_grad("ctc", yk, xk)
    np.testing.assert_array_equal(cyloss.grad("ctc", yk, xk), g2)
    assert v2 == cyloss.ctc(yk, xk)
    with pytest.raises(NotImplementedError):
        cyloss.grad_hess("ctc", yk, xk)


# ----------------------------------------------------------------------------- Keras

def _keras_backend():
    if importlib.util.find_spec("jax") and importlib.util.find_spec("scipy"):
        return "numpy"
    return "torch"


@pytest.fixture(scope="module")
def keras():
    os.environ["KERAS_BACKEND"] = _keras_backend()
    keras = pytest.importorskip("keras")
    from keras.src.backend.common import dtypes as keras_dtypes

    # Keras 3 demotes float64 to float32 off TensorFlow; keep float64 (see test_values).
    demotion = keras_dtypes.BIT64_TO_BIT32_DTYPE
    saved = dict(demotion)
    demotion["float64"] = "float64"
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield keras
    keras.config.set_floatx(previous)
    demotion.clear()
    demotion.update(saved)


def _knp(keras, value):
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(keras.ops.convert_to_numpy(value))


@pytest.mark.parametrize("seed", range(3))
def test_keras_padded_layout(keras, seed):
    rng = np.random.default_rng([seed, 31])
    n, T, C, S = 6, 15, 5, 5
    y = np.zeros((n, S), dtype=np.int64)
    for i in range(n):
        k = rng.integers(0, S + 1) if i else 0
        y[i, :k] = rng.integers(1, 3 if seed == 1 else C, size=k)   # seed 1: many repeats
    x = rng.normal(size=(n, T, C)) * 2
    expected = _knp(keras, keras.losses.ctc(y, x))
    assert expected.dtype == np.float64
    got = cyloss.ctc(y, x, reduction="none")
    _close(got, expected)
    assert math.isclose(cyloss.CTC()(y, x), float(_knp(keras, keras.losses.CTC()(y, x))),
                        rel_tol=RTOL)


# --------------------------------------------------------------------------- threads

def test_threads_bitwise():
    rng = np.random.default_rng(9)
    y, x, L, Tl = _batch(rng, 40, 30, 7, max_label=10, short=True)
    kw = dict(label_length=L, logit_length=Tl)
    for reduction in ("mean", "sum", "none", "weighted_mean"):
        loss1 = cyloss.CTC(reduction=reduction, n_threads=1)
        loss2 = cyloss.CTC(reduction=reduction, n_threads=2)
        v1, g1 = loss1.value_and_grad(y, x, sample_weight=np.arange(40.0), **kw)
        v2, g2 = loss2.value_and_grad(y, x, sample_weight=np.arange(40.0), **kw)
        assert np.array_equal(np.asarray(v1), np.asarray(v2)) and np.array_equal(g1, g2)
        assert np.array_equal(np.asarray(loss2(y, x, np.arange(40.0), **kw)),
                              np.asarray(v1))


# ------------------------------------------------------------------------ bad inputs

BAD = [
    (dict(y_pred=np.zeros((2, 3))), "y_pred must have shape"),
    (dict(y_true=np.zeros((3, 2), dtype=int)), "y_true must have shape"),
    (dict(y_true=np.zeros((2, 2, 1), dtype=int)), "y_true must have shape"),
    (dict(y_true=[[1, 4], [1, 0]]), r"label 4 at index \(0, 1\) is outside \[0, 4\)"),
    (dict(y_true=[[1, -1], [1, 0]]), r"label -1 at index \(0, 1\)"),
    (dict(y_true=[[0, 1], [1, 0]]), r"index \(0, 0\) is the blank index 0"),
    (dict(y_true=[[1, 1.5], [1, 0]]), "integer labels"),
    (dict(blank=4), r"blank = 4 is outside \[0, 4\)"),
    (dict(blank=-1), r"blank = -1"),
    (dict(blank=1.0), "blank must be an integer"),
    (dict(label_length=[1, 3]), r"label_length\[1\] = 3 is outside \[0, 2\]"),
    (dict(label_length=[1, -1]), r"label_length\[1\] = -1"),
    (dict(label_length=[1, 1, 1]), r"label_length must have shape \(2,\)"),
    (dict(label_length=[1.5, 1]), "label_length must hold integer"),
    (dict(logit_length=[3, 4]), r"logit_length\[1\] = 4 is outside \[0, 3\]"),
    (dict(logit_length=[3, -2]), r"logit_length\[1\] = -2"),
    (dict(y_true=[1, 2, 3], label_length=[1, 1]), r"size 3 must equal sum\(label_length\)"),
    (dict(y_true=[1, 2], label_length=[1, 5]), r"label_length\[1\] = 5 is outside"),
    (dict(y_true=[1, 0], label_length=[1, 1]), r"index \(1,\) is the blank"),
    (dict(sample_weight=[1, 2, 3]), "sample_weight"),
    (dict(reduction="avg"), "reduction"),
    (dict(n_threads=0), "n_threads"),
    (dict(zero_infinity=None), "zero_infinity"),
    (dict(divide_by_target_length="yes"), "divide_by_target_length"),
    (dict(from_logits=2), "from_logits"),
]


@pytest.mark.parametrize("bad,match", BAD, ids=[m for _, m in BAD])
def test_bad_inputs(bad, match):
    args = dict(y_true=[[1, 2], [3, 0]], y_pred=np.zeros((2, 3, 4)))
    args.update(bad)
    y_true, y_pred = args.pop("y_true"), args.pop("y_pred")
    with pytest.raises(ValueError, match=match):
        cyloss.ctc(y_true, y_pred, **args)


def test_type_errors_and_padding_not_read():
    with pytest.raises(TypeError):
        cyloss.ctc([["a"]], np.zeros((1, 2, 3)))
    with pytest.raises(TypeError):
        cyloss.ctc([[1]], np.zeros((1, 2, 3), dtype=complex))
    # past label_length the padding may hold anything, even out-of-range values and NaN
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    a = cyloss.ctc([[1, 99.0], [2, np.nan]], x, label_length=[1, 1], reduction="none")
    b = cyloss.ctc([[1], [2]], x, reduction="none")
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- class

def test_class():
    loss = cyloss.CTC(blank=2, zero_infinity=True, reduction="sum")
    assert repr(loss) == "CTC(blank=2, zero_infinity=True, reduction='sum')"
    config = loss.get_config()
    assert config == {"name": "ctc", "blank": 2, "from_logits": True,
                      "zero_infinity": True, "divide_by_target_length": False,
                      "reduction": "sum", "n_threads": None}
    assert cyloss.CTC.from_config(config) == loss
    assert pickle.loads(pickle.dumps(loss)) == loss
    assert cyloss.get("ctc") == cyloss.CTC() and cyloss.get("CTC", blank=2) != cyloss.CTC()
    assert cyloss.LOSSES["ctc"] is cyloss.CTC and "ctc" in cyloss.__all__
    assert "CTC" in cyloss.__all__ and cyloss.ctc is cyloss.losses.ctc
    y, x = [[1, 0], [1, 1]], np.random.default_rng(0).normal(size=(2, 3, 3))
    assert loss(y, x) == cyloss.ctc(y, x, blank=2, zero_infinity=True, reduction="sum")
    with pytest.raises(ValueError, match="blank"):
        cyloss.CTC(blank="0")
    with pytest.raises(NotImplementedError):
        loss.grad_hess(y, x)


# ------------------------------------------------------------------------------ dask

def test_dask_matches_in_memory():
    da = pytest.importorskip("dask.array")
    import cyloss.dask

    rng = np.random.default_rng(12)
    y, x, L, Tl = _batch(rng, 11, 9, 5, short=True)
    w = rng.uniform(0.5, 2, size=11)
    kw = dict(label_length=L, logit_length=Tl, zero_infinity=True)
    for reduction in ("mean", "sum", "weighted_mean"):
        lazy = cyloss.dask.ctc(da.from_array(y, chunks=(4, 6)),
                               da.from_array(x, chunks=(3, -1, -1)),
                               sample_weight=da.from_array(w, chunks=5),
                               reduction=reduction, **kw)
        eager = cyloss.ctc(y, x, sample_weight=w, reduction=reduction, **kw)
        assert math.isclose(float(lazy.compute()), eager, rel_tol=1e-15)
    lazy = cyloss.dask.ctc(y, da.from_array(x, chunks=(3, -1, -1)), reduction="none", **kw)
    assert lazy.chunks == ((3, 3, 3, 2),)
    np.testing.assert_array_equal(lazy.compute(), cyloss.ctc(y, x, reduction="none", **kw))
    with pytest.raises(ValueError, match="chunked along axis 2"):
        cyloss.dask.ctc(y, da.from_array(x, chunks=(3, -1, 2)))
    bad = y.copy()
    bad[7, 0] = 9
    kw["label_length"] = L.copy()
    kw["label_length"][7] = 1
    with pytest.raises(ValueError, match=r"index \(1, 0\).*starts at batch index 6"):
        cyloss.dask.ctc(bad, da.from_array(x, chunks=(3, -1, -1)), **kw).compute()


# --------------------------------------------------------------------- layouts, edges

def test_layouts_dtypes_and_empty_batch():
    rng = np.random.default_rng(13)
    y, x, L, Tl = _batch(rng, 6, 9, 5)
    kw = dict(label_length=L, logit_length=Tl, reduction="none")
    ref = cyloss.ctc(y, x, **kw)
    _, gref = cyloss.CTC(reduction="none").value_and_grad(y, x, label_length=L,
                                                          logit_length=Tl)
    ro = x.copy()
    ro.setflags(write=False)
    rev = np.ascontiguousarray(x[:, ::-1, ::-1])[:, ::-1, ::-1]    # negative strides
    for view in (ro, np.asfortranarray(x), rev, x.transpose(1, 0, 2).copy().transpose(1, 0, 2)):
        np.testing.assert_array_equal(cyloss.ctc(y, view, **kw), ref)
        _, g = cyloss.CTC(reduction="none").value_and_grad(y, view, label_length=L,
                                                           logit_length=Tl)
        np.testing.assert_array_equal(g, gref)
    for labels in (y.astype(np.uint8), y.astype(np.float64), y.tolist()):
        np.testing.assert_array_equal(cyloss.ctc(labels, x, **kw), ref)
    assert cyloss.ctc(y, x.astype(np.float16), **kw).dtype == np.float32
    assert cyloss.ctc(y, np.round(x).astype(np.int32), **kw).dtype == np.float64
    empty = (np.zeros((0, 3), dtype=int), np.zeros((0, 5, 4)))
    assert cyloss.ctc(*empty) == 0.0 and cyloss.ctc(*empty, reduction="none").shape == (0,)
    assert cyloss.CTC().value_and_grad(*empty)[1].shape == (0, 5, 4)
    # no labels at all: every frame is a blank
    _close(cyloss.ctc(np.zeros((2, 0), dtype=int), np.zeros((2, 3, 4)), reduction="none"),
           [3 * math.log(4)] * 2, rtol=1e-15)


# ------------------------------------------------- brute force (no torch, no recursion)

def _brute_force(labels, logits, blank):
    """-log of the summed probability of every path of len(logits) frames that collapses
    to ``labels``: all C**T paths enumerated, in float64."""
    import itertools

    T, C = logits.shape
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        collapsed = [c for k, c in enumerate(path)
                     if c != blank and (k == 0 or path[k - 1] != c)]
        if collapsed == list(labels):
            total += math.prod(p[t, c] for t, c in enumerate(path))
    return -math.log(total) if total > 0 else math.inf


@pytest.mark.parametrize("blank", [0, 2])
def test_brute_force(blank):
    rng = np.random.default_rng([blank, 77])
    C = 3
    classes = [c for c in range(C) if c != blank]
    cases = []
    for T in range(0, 6):
        for L in range(0, 4):
            cases.append((T, list(rng.choice(classes, size=L))))
    cases.append((3, [classes[0], classes[0]]))       # repeat: needs a blank between
    cases.append((2, [classes[0], classes[0]]))       # too short
    for T, labels in cases:
        x = rng.normal(size=(1, max(T, 1), C)) * 1.5
        got = cyloss.ctc(np.array([labels + [0]]), x, label_length=[len(labels)],
                         logit_length=[T], blank=blank, reduction="none")[0]
        expected = _brute_force(labels, x[0, :T], blank)
        assert got == expected if math.isinf(expected) else math.isclose(
            got, expected, rel_tol=1e-12), (T, labels, got, expected)
