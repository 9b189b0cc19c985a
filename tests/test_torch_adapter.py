"""cyloss.torch against PyTorch's own loss modules (values, gradients, gradcheck, training).

Every reference is PyTorch's built-in module on the same tensors, or autograd through it;
nothing is compared with cyloss's own output.
"""

import warnings
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import cyloss.torch as ct  # noqa: E402
from cyloss import _adapters  # noqa: E402

nn = torch.nn
RTOL = {torch.float32: 1e-6, torch.float64: 1e-12}
DTYPES = [torch.float32, torch.float64]


def assert_close(actual, expected, dtype):
    """Relative to the largest magnitude of ``expected``: float32 sums in torch are
    themselves good to about 1e-7 of the total."""
    a = np.asarray(actual.detach(), dtype=np.float64)
    e = np.asarray(expected.detach(), dtype=np.float64)
    assert a.shape == e.shape
    scale = max(np.abs(e).max(initial=0.0), 1e-30)
    np.testing.assert_allclose(a, e, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _data(kind, dtype, seed=0, shape=(7, 5)):
    """(input, target) for one family of losses."""
    g = _gen(seed)
    if kind == "labels":
        x = torch.randn(shape, generator=g, dtype=dtype) * 2
        axis = 1 if len(shape) > 1 else 0
        t = torch.randint(0, shape[axis], shape[:axis] + shape[axis + 1:], generator=g)
        return x, t
    if kind == "probs_target":
        x = torch.randn(shape, generator=g, dtype=dtype) * 2
        t = torch.softmax(torch.randn(shape, generator=g, dtype=dtype), dim=1)
        t[0] = 0.0               # a row of zeros: soft targets need not sum to 1
        return x, t
    if kind == "logits":
        x = torch.randn(shape, generator=g, dtype=dtype) * 3
        return x, torch.rand(shape, generator=g, dtype=dtype)
    if kind == "probs":
        x = torch.rand(shape, generator=g, dtype=dtype) * 0.98 + 0.01
        return x, torch.rand(shape, generator=g, dtype=dtype)
    x = torch.randn(shape, generator=g, dtype=dtype)
    return x, torch.randn(shape, generator=g, dtype=dtype) * 1.5


def _w(n, seed=1, dtype=torch.float64):
    return torch.rand(n, generator=_gen(seed), dtype=dtype) * 2 + 0.1


# (id, cyloss class, torch class, keyword arguments (tensors built per dtype), data kind,
#  input shape)
CASES = [
    ("ce", "CrossEntropyLoss", {}, "labels", (7, 5)),
    ("ce-weight", "CrossEntropyLoss", {"weight": 5}, "labels", (7, 5)),
    ("ce-smooth", "CrossEntropyLoss", {"label_smoothing": 0.2}, "labels", (7, 5)),
    ("ce-ignore", "CrossEntropyLoss", {"ignore_index": 3}, "labels", (9, 4)),
    ("ce-all", "CrossEntropyLoss",
     {"weight": 4, "ignore_index": 1, "label_smoothing": 0.15}, "labels", (9, 4)),
    ("ce-spatial", "CrossEntropyLoss", {"weight": 3, "label_smoothing": 0.1}, "labels",
     (4, 3, 5, 2)),
    ("ce-unbatched", "CrossEntropyLoss", {"label_smoothing": 0.1}, "labels", (6,)),
    ("ce-probs", "CrossEntropyLoss", {}, "probs_target", (7, 5)),
    ("ce-probs-all", "CrossEntropyLoss", {"weight": 5, "label_smoothing": 0.3},
     "probs_target", (7, 5)),
    ("ce-probs-spatial", "CrossEntropyLoss", {"weight": 3}, "probs_target", (4, 3, 5)),
    ("bcel", "BCEWithLogitsLoss", {}, "logits", (6, 4)),
    ("bcel-weight", "BCEWithLogitsLoss", {"weight": 4}, "logits", (6, 4)),
    ("bcel-pos", "BCEWithLogitsLoss", {"pos_weight": 4}, "logits", (6, 4)),
    ("bcel-pos-scalar", "BCEWithLogitsLoss", {"pos_weight": 1}, "logits", (6, 4)),
    ("bcel-both-3d", "BCEWithLogitsLoss", {"pos_weight": 4, "weight": 4}, "logits",
     (2, 3, 4)),
    ("bcel-1d", "BCEWithLogitsLoss", {}, "logits", (11,)),
    ("bce", "BCELoss", {}, "probs", (6, 4)),
    ("bce-weight", "BCELoss", {"weight": 4}, "probs", (6, 4)),
    ("l1", "L1Loss", {}, "regression", (6, 4)),
    ("mse", "MSELoss", {}, "regression", (6, 4)),
    ("mse-3d", "MSELoss", {}, "regression", (2, 3, 4)),
    ("huber", "HuberLoss", {"delta": 0.7}, "regression", (6, 4)),
    ("smooth_l1", "SmoothL1Loss", {"beta": 0.6}, "regression", (6, 4)),
    ("smooth_l1-beta0", "SmoothL1Loss", {"beta": 0.0}, "regression", (6, 4)),
]
REDUCTIONS = ["mean", "sum", "none"]


def _kwargs(opts, dtype):
    """Integers under weight / pos_weight are sizes of a random weight tensor."""
    out = {}
    for key, value in opts.items():
        if key in ("weight", "pos_weight"):
            out[key] = _w(value, seed=len(key)).to(dtype)
        else:
            out[key] = value
    return out


def _modules(cls_name, opts, reduction, dtype):
    kw = _kwargs(opts, dtype)
    return (getattr(ct, cls_name)(reduction=reduction, **kw),
            getattr(nn, cls_name)(reduction=reduction, **kw))


def _labels_with_ignored(t, opts):
    if "ignore_index" in opts and t.dtype == torch.int64:
        t = t.clone()
        t[::3] = opts["ignore_index"]
    return t


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_and_gradient_match_torch(case, reduction, dtype):
    _, cls_name, opts, kind, shape = case
    x0, t = _data(kind, dtype, seed=zlib.crc32(case[0].encode()) % 1000, shape=shape)
    t = _labels_with_ignored(t, opts)
    ours, theirs = _modules(cls_name, opts, reduction, dtype)
    x1, x2 = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    v1, v2 = ours(x1, t), theirs(x2, t)
    assert v1.dtype == v2.dtype == dtype and v1.shape == v2.shape
    assert_close(v1, v2, dtype)
    if reduction == "none":
        g = torch.randn(v2.shape, generator=_gen(7), dtype=dtype)
        v1.backward(g)
        v2.backward(g)
    else:
        v1.backward()
        v2.backward()
    assert_close(x1.grad, x2.grad, dtype)
    if reduction != "none":      # an incoming gradient other than 1 is multiplied in
        x1.grad = x2.grad = None
        (ours(x1, t) * -2.5).backward()
        (theirs(x2, t) * -2.5).backward()
        assert_close(x1.grad, x2.grad, dtype)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradcheck_float64(case):
    _, cls_name, opts, kind, shape = case
    x, t = _data(kind, torch.float64, seed=3, shape=shape)
    t = _labels_with_ignored(t, opts)
    for reduction in ("mean", "none"):
        loss = getattr(ct, cls_name)(reduction=reduction, **_kwargs(opts, torch.float64))
        assert torch.autograd.gradcheck(lambda x: loss(x, t), (x.requires_grad_(),),
                                        eps=1e-6, atol=1e-7, rtol=1e-5)


def test_functions_equal_torch_functional():
    x, t = _data("labels", torch.float64, shape=(5, 4))
    F = nn.functional
    w = _w(4)
    assert_close(ct.cross_entropy(x, t, w, 2, "sum", 0.1),
                 F.cross_entropy(x, t, w, None, 2, None, "sum", 0.1), torch.float64)
    x, y = _data("logits", torch.float64)
    assert_close(ct.binary_cross_entropy_with_logits(x, y, None, "mean", _w(5)),
                 F.binary_cross_entropy_with_logits(x, y, None, None, None, "mean", _w(5)),
                 torch.float64)
    x, y = _data("regression", torch.float64)
    assert_close(ct.huber_loss(x, y, "none", 0.3), F.huber_loss(x, y, "none", 0.3),
                 torch.float64)
    assert_close(ct.smooth_l1_loss(x, y, beta=0.3), F.smooth_l1_loss(x, y, beta=0.3),
                 torch.float64)


def test_small_mlp_trains_along_torchs_loss_curve():
    def run(loss_fn):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 5))
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        g = _gen(1)
        X = torch.randn(64, 20, generator=g)
        y = torch.randint(0, 5, (64,), generator=g)
        curve = []
        for _ in range(50):
            opt.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            opt.step()
            curve.append(loss.item())
        return np.array(curve)

    ours = run(ct.CrossEntropyLoss(label_smoothing=0.05))
    theirs = run(nn.CrossEntropyLoss(label_smoothing=0.05))
    assert theirs[-1] < 0.5 * theirs[0]          # it did learn something
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_reads_cpu_tensors_without_copy(monkeypatch):
    seen = {}
    real = _adapters.LOSSES["cross_entropy"]

    def spy(x, t, **kw):
        seen["x"], seen["t"] = x, t
        result = real(x, t, **kw)
        seen["grad"] = result.grad
        return result

    monkeypatch.setitem(_adapters.LOSSES, "cross_entropy", spy)
    x = torch.randn(6, 4).t().contiguous().t().requires_grad_()   # F-ordered: strided
    t = torch.randint(0, 4, (6,))
    ct.CrossEntropyLoss()(x, t).backward()
    assert seen["x"].__array_interface__["data"][0] == x.data_ptr()
    assert seen["x"].strides == (4, 24)
    assert seen["t"].__array_interface__["data"][0] == t.data_ptr()
    assert_close(x.grad, torch.autograd.grad(nn.functional.cross_entropy(x, t), x)[0],
                 torch.float32)
    # loss.backward() (incoming gradient 1) on a contiguous input: cyloss's gradient
    # array becomes x.grad as it is, with no pass over it (autograd copies it only to
    # match a strided input's layout, as above).
    x = torch.randn(6, 4, requires_grad=True)
    ct.CrossEntropyLoss()(x, t).backward()
    assert x.grad.data_ptr() == seen["grad"].__array_interface__["data"][0]


def test_no_grad_computes_the_value_only():
    x, t = _data("labels", torch.float32)
    x.requires_grad_()
    with torch.no_grad():
        v = ct.CrossEntropyLoss()(x, t)
    assert v.grad_fn is None and not v.requires_grad
    assert_close(v, nn.CrossEntropyLoss()(x, t), torch.float32)
    v = ct.MSELoss()(*_data("regression", torch.float64))   # no input requires grad
    assert v.grad_fn is None


def test_retain_graph_backward_twice_accumulates():
    x, t = _data("labels", torch.float64)
    x.requires_grad_()
    v = ct.CrossEntropyLoss()(x, t)
    v.backward(retain_graph=True)
    once = x.grad.clone()
    v.backward()
    assert_close(x.grad, 2 * once, torch.float64)


def test_double_backward_is_refused():
    x, t = _data("labels", torch.float64)
    x.requires_grad_()
    (g,) = torch.autograd.grad(ct.CrossEntropyLoss()(x, t), x, create_graph=True)
    assert_close(g, torch.autograd.grad(nn.functional.cross_entropy(x, t), x)[0],
                 torch.float64)
    with pytest.raises(NotImplementedError, match="double backward.*torch.nn.functional"):
        g.sum().backward()


def test_errors_name_the_argument_and_the_fallback():
    x, t = _data("labels", torch.float32)
    meta = torch.empty((7, 5), device="meta")       # stands in for a CUDA tensor
    with pytest.raises(ValueError, match="input.*CPU.*meta.*torch.nn.functional.cross_en"):
        ct.CrossEntropyLoss()(meta.requires_grad_(), t)
    with pytest.raises(TypeError, match="input.*float32 or float64.*float16"):
        ct.CrossEntropyLoss()(x.half(), t)
    xr, yr = _data("regression", torch.float32)
    with pytest.raises(NotImplementedError, match="target requires grad.*mse_loss"):
        ct.MSELoss()(xr.requires_grad_(), yr.requires_grad_())
    with pytest.raises(NotImplementedError, match="weight requires grad"):
        ct.CrossEntropyLoss(weight=torch.ones(5, requires_grad=True))(x, t)
    with pytest.raises(ValueError, match="reduction"):
        ct.MSELoss(reduction="batchmean")
    with pytest.raises(ValueError, match="size_average"):
        ct.L1Loss(size_average=True)
    with pytest.raises(ValueError, match="target: shape"):
        ct.CrossEntropyLoss()(x, t[:3])
    with pytest.raises(ValueError, match="target: class indices.*integer"):
        ct.CrossEntropyLoss()(x, t.float())
    xr, yr = _data("regression", torch.float32)
    with pytest.raises(ValueError, match="target: shape .* differs"):
        ct.MSELoss()(xr, yr[:2])
    with pytest.raises(ValueError, match="weight: one weight per class"):
        ct.CrossEntropyLoss(weight=torch.ones(3))(x, t)
    with pytest.raises(ValueError, match="pos_weight: shape"):
        ct.BCEWithLogitsLoss(pos_weight=torch.ones(3))(*_data("logits", torch.float32))
    with pytest.raises(TypeError, match="input: expected a torch.Tensor"):
        ct.MSELoss()(np.zeros(3), torch.zeros(3))
    bad = t.clone()
    bad[0] = 9
    with pytest.raises(ValueError, match="label"):
        ct.CrossEntropyLoss()(x.requires_grad_(), bad)


def test_modules_behave_like_torch_modules():
    loss = ct.CrossEntropyLoss(weight=torch.ones(3), label_smoothing=0.1)
    assert "weight" in loss.state_dict() and "label_smoothing=0.1" in repr(loss)
    assert loss.double().weight.dtype == torch.float64
    assert isinstance(ct.HuberLoss(), nn.Module)
    assert ct.HuberLoss(reduction="sum", delta=2.0).delta == 2.0
    x, t = _data("labels", torch.float32, shape=(4, 3))
    # Positional arguments in PyTorch's order.
    assert_close(ct.CrossEntropyLoss(None, None, -100, None, "sum")(x, t),
                 nn.CrossEntropyLoss(None, None, -100, None, "sum")(x, t), torch.float32)


# --- NLLLoss and KLDivLoss (issue 14) ----------------------------------------------------

NLL_SHAPES = [(7, 5), (3, 5, 4), (5,)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", NLL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted, ignore", [(False, -100), (True, -100), (True, 2)],
                         ids=["plain", "weight", "weight-ignore2"])
def test_nll_loss_matches_torch(dtype, shape, reduction, weighted, ignore):
    x, t = _data("labels", dtype, zlib.crc32(repr((shape, weighted, ignore)).encode()), shape)
    x = torch.log_softmax(x, dim=1 if len(shape) > 1 else 0)
    if len(shape) > 1:
        t.view(-1)[::3] = -100
    weight = _w(shape[1] if len(shape) > 1 else shape[0], dtype=dtype) if weighted else None
    kw = dict(weight=weight, ignore_index=ignore, reduction=reduction)
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    if ignore == 2 and len(shape) > 1:
        t.view(-1)[::3] = 2
    mine = ct.NLLLoss(**kw)(xa, t)
    theirs = nn.NLLLoss(**kw)(xb, t)
    assert mine.dtype == theirs.dtype
    assert_close(mine, theirs, dtype)
    mine.sum().backward()
    theirs.sum().backward()
    assert_close(xa.grad, xb.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)], ids=["6x5", "3x5x4"])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(dtype, shape, reduction, log_target):
    g = _gen(zlib.crc32(repr((shape, reduction, log_target)).encode()))
    x = torch.log_softmax(torch.randn(shape, generator=g, dtype=dtype), dim=1)
    t = torch.softmax(torch.randn(shape, generator=g, dtype=dtype) * 2, dim=1)
    if log_target:
        t = torch.log(t)
    else:
        t.view(-1)[::5] = 0.0       # xlogy: a zero target contributes 0
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    mine = ct.KLDivLoss(reduction=reduction, log_target=log_target)(xa, t)
    with warnings.catch_warnings():   # PyTorch advises batchmean over mean
        warnings.simplefilter("ignore", UserWarning)
        theirs = nn.KLDivLoss(reduction=reduction, log_target=log_target)(xb, t)
    assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
    assert_close(mine, theirs, dtype)
    weights = torch.rand(mine.shape, generator=g, dtype=dtype)
    (mine * weights).sum().backward()
    (theirs * weights).sum().backward()
    assert_close(xa.grad, xb.grad, dtype)


def test_nll_and_kl_div_functions_and_errors():
    x = torch.log_softmax(torch.randn(4, 3, dtype=torch.float64), dim=1)
    t = torch.tensor([0, 2, 1, 1])
    assert torch.equal(ct.nll_loss(x, t), ct.NLLLoss()(x, t))
    with pytest.raises(ValueError, match=r"label 3 at index \(1,\)"):
        ct.nll_loss(x, torch.tensor([0, 3, 1, 1]))
    with pytest.raises(ValueError, match="target"):
        ct.nll_loss(x, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="reduction"):
        ct.KLDivLoss(reduction="avg")
    with pytest.raises(ValueError, match="size_average"):
        ct.NLLLoss(size_average=True)
    y = torch.softmax(torch.randn(4, 3, dtype=torch.float64), dim=1)
    assert torch.equal(ct.kl_div(x, y, reduction="batchmean"),
                       ct.KLDivLoss(reduction="batchmean")(x, y))
