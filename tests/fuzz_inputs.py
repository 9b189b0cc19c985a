"""Hostile inputs and an independent oracle of errors, for tests/test_fuzz.py.

Nothing here calls cyloss. Three parts:

- values: arrays of a drawn dtype for each role an argument plays (regression values,
  targets in [0, 1], logits, probability rows, labels, weights), holding specials (NaN,
  +-inf, subnormals, +-1e300, 0, -0, 1, values just outside the valid range) among
  ordinary values; complex, object and str dtypes now and then;
- layouts: the same values as a C or F array, a strided view (steps > 1, negative steps),
  a zero-stride broadcast view, a read-only array, an ``np.memmap``, a Python list;
- the oracle, :func:`problems`: from what cyloss receives and the options, every reason
  SPEC section 5 (and the README's "Errors") gives for an exception, each with the
  exception types allowed and the names one of which the message must carry. A call
  must raise exactly when the list is not empty.

Every decision below is read off the arrays as ``np.asarray`` sees them (the draw may
change values: a list loses the dtype, a broadcast view repeats a slice), so a draw that
happens to be valid is simply a valid case.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

CATEGORICAL = "categorical_crossentropy"
SPARSE = "sparse_categorical_crossentropy"
BINARY = "binary_crossentropy"
REGRESSION = ("mean_absolute_error", "mean_squared_error", "huber", "smooth_l1", "log_cosh",
              "poisson", "mean_absolute_percentage_error",
              "mean_squared_logarithmic_error", "hinge", "squared_hinge")
LOSSES = (CATEGORICAL, SPARSE, BINARY, *REGRESSION)

#: SPEC section 3 and the README: every spelling of a reduction and its meaning.
REDUCTIONS = {"mean": "mean", "sum_over_batch_size": "mean", "auto": "mean",
              "weighted_mean": "weighted_mean", "mean_with_sample_weight": "weighted_mean",
              "sum": "sum", "none": "none", None: "none"}

#: Each loss's options besides sample_weight / reduction / n_threads (SPEC section 1).
OPTIONS = {
    CATEGORICAL: ("from_logits", "label_smoothing", "axis", "epsilon"),
    SPARSE: ("from_logits", "axis", "ignore_index", "class_weight", "label_smoothing",
             "epsilon"),
    BINARY: ("from_logits", "label_smoothing", "pos_weight", "epsilon"),
    "mean_absolute_error": (),
    "mean_squared_error": (),
    "huber": ("delta",),
    "smooth_l1": ("beta",),
    "log_cosh": (),
    "poisson": (),
    "mean_absolute_percentage_error": (),
    "mean_squared_logarithmic_error": (),
    "hinge": (),
    "squared_hinge": (),
}
DEFAULTS = {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "epsilon": 1e-7,
            "ignore_index": None, "class_weight": None, "pos_weight": None, "delta": 1.0,
            "beta": 1.0, "reduction": "mean", "n_threads": None}

seeds = st.integers(0, 2**32 - 1)

TINY = 5e-324          # the smallest subnormal
SUBNORMAL = 2.5e-310
HUGE = 1e300

# --------------------------------------------------------------------------------------
# Options: valid values (several copies weigh the draw towards them) and hostile ones.
# --------------------------------------------------------------------------------------
VALID_OPTION_VALUES = {
    "from_logits": [False, True, np.True_],
    "label_smoothing": [0.0, 0.0, 0.1, 1.0, 0, np.float32(0.25)],
    "epsilon": [1e-7, 1e-7, 1e-3, 0.25, 1e-300],
    "delta": [1.0, 1.0, 0.5, 2.5, 3, 1e-300, 1e300],
    "beta": [1.0, 1.0, 0.0, 0.5, 1e-300, 1e300],
    "reduction": ["mean", "mean", "weighted_mean", "sum", "none", "sum_over_batch_size",
                  "auto", "mean_with_sample_weight", None],
    "n_threads": [None, None, 1, 2, -1, np.int64(2), 1000],
    "ignore_index": [None, None, -100, -1, 0, 2, 2**40],
}
HOSTILE_OPTION_VALUES = {
    "from_logits": ["yes", 2, None, 0.5],
    "label_smoothing": [-0.1, 1.5, math.nan, math.inf, "0.1", True, None],
    "epsilon": [0.0, 0.5, -1e-7, math.nan, math.inf, "1e-7", None],
    "delta": [0.0, -1.0, math.inf, math.nan, "1", None],
    "beta": [-1.0, -TINY, math.inf, math.nan, "1", None],
    "reduction": ["MEAN", "avg", "", 0, b"mean"],
    "n_threads": [0, -2, 1.5, True, "2"],
    "ignore_index": [1.5, "x", True, 2**70],
    "axis": [1.0, True, None, "0"],
}


def _is_real(v):
    return (isinstance(v, (numbers.Real, np.floating, np.integer))
            and not isinstance(v, (bool, np.bool_)))


def _is_int(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def option_ok(key, value):
    """SPEC section 1 ("Options") and section 6 (threads), read for one value."""
    if key == "from_logits":
        return isinstance(value, (bool, np.bool_))
    if key == "label_smoothing":
        return _is_real(value) and 0.0 <= float(value) <= 1.0
    if key == "epsilon":
        return _is_real(value) and 0.0 < float(value) < 0.5
    if key == "delta":
        return _is_real(value) and 0.0 < float(value) < math.inf
    if key == "beta":
        return _is_real(value) and 0.0 <= float(value) < math.inf
    if key == "reduction":
        return (value is None or isinstance(value, str)) and value in REDUCTIONS
    if key == "n_threads":
        return value is None or (_is_int(value) and (value == -1 or value > 0))
    if key == "ignore_index":
        return value is None or (_is_int(value) and -2**63 <= value < 2**63)
    raise KeyError(key)


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------
FLOAT_DTYPES = [np.float64, np.float64, np.float32, np.float32, np.float16, np.longdouble]
INT_DTYPES = [np.int8, np.int32, np.int64, np.uint8]
GOOD_DTYPES = FLOAT_DTYPES * 2 + INT_DTYPES + [np.bool_]
BAD_DTYPES = [np.complex128, object, str]
DTYPES = GOOD_DTYPES * 6 + BAD_DTYPES

# Specials per role; each example draws a few of them and a rate at which they replace
# ordinary values. Values just outside a role's range are there to be rejected.
SPECIALS = {
    "real": [math.nan, math.inf, -math.inf, TINY, -TINY, SUBNORMAL, HUGE, -HUGE, 0.0,
             -0.0, 1.0, 2.0**60],
    "unit": [0.0, 1.0, -0.0, TINY, 0.5, 1.0 - 2.0**-53, math.nan, -TINY, -0.5, 1.5,
             math.inf, -math.inf, HUGE],
    "logit": [math.nan, math.inf, -math.inf, HUGE, -HUGE, 0.0, -0.0, TINY, 40.0, -40.0,
              745.0, -745.0],
    "prow": [0.0, -0.0, TINY, SUBNORMAL, HUGE, 1.0, math.nan, math.inf, -TINY, -1.0],
    "weight": [0.0, -0.0, math.nan, math.inf, -math.inf, -1.0, TINY, HUGE, 1e-300],
}


def _ordinary(rng, shape, role, scale):
    if role == "real":
        return rng.normal(0.0, scale, size=shape)
    if role == "unit":
        u = rng.random(shape)
        return np.where(rng.random(shape) < 0.5, np.round(u), u)
    if role == "logit":
        return rng.normal(0.0, 4.0, size=shape)
    # "prow" and "weight": non-negative, with exact zeros
    return np.where(rng.random(shape) < 0.15, 0.0, rng.uniform(0.0, 2.0, size=shape))


def _ordinary_int(rng, shape, role, dtype):
    info = np.iinfo(dtype)
    lo, hi = {"real": (-5, 6), "logit": (-5, 6), "unit": (0, 2)}.get(role, (0, 3))
    a = rng.integers(max(lo, info.min), hi, size=shape)
    specials = np.array([0, 1, -1, 2, info.max, info.min], dtype=np.int64)
    specials = specials[(specials >= info.min) & (specials <= info.max)]
    mask = rng.random(shape) < 0.05
    a = np.where(mask, rng.choice(specials, size=shape), a)
    return a.astype(dtype)


@dataclass
class Values:
    """How to fill one array: its dtype, the specials it may hold and their rate."""

    dtype: object
    specials: list
    rate: float
    scale: float = 1.0

    def make(self, rng, shape, role):
        dtype = np.dtype(self.dtype)
        if dtype.kind in "iu":
            return _ordinary_int(rng, shape, role, dtype)
        if dtype.kind == "b":
            return rng.random(shape) < 0.5
        a = _ordinary(rng, shape, role, self.scale)
        if self.specials and a.size:
            mask = rng.random(shape) < self.rate
            a = np.where(mask, rng.choice(np.array(self.specials), size=shape), a)
        with np.errstate(all="ignore"):
            if dtype.kind == "c":
                return (a + 0.5j).astype(dtype)
            return np.asarray(a).astype(dtype)  # float, object or str


def values(role, dtypes=DTYPES):
    """A :class:`Values` strategy for an argument playing ``role``."""
    return st.builds(
        Values,
        dtype=st.sampled_from(dtypes),
        specials=st.lists(st.sampled_from(SPECIALS[role]), max_size=4),
        rate=st.sampled_from([0.02, 0.1, 0.3, 1.0]),
        scale=st.sampled_from([1.0, 1.0, 1e3]),
    )


# --------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------
LAYOUTS = ["C", "C", "F", "strided", "broadcast", "readonly", "memmap", "list"]


class MemmapDir:
    """Where memmapped inputs live: files are unlinked once mapped (on POSIX the mapping
    stays valid), so a long run leaves nothing behind."""

    def __init__(self, path):
        self.path = path
        self.count = 0

    def memmap(self, a, order):
        self.count += 1
        name = os.path.join(self.path, f"fuzz{self.count}.dat")
        mm = np.memmap(name, mode="w+", dtype=a.dtype, shape=a.shape, order=order)
        mm[...] = a
        mm.flush()
        del mm
        out = np.memmap(name, mode="r", dtype=a.dtype, shape=a.shape, order=order)
        try:
            os.unlink(name)
        except OSError:  # Windows keeps a mapped file; the tmp dir goes at the end
            pass
        return out


def materialise(a, layout, rng, memmaps):
    """``a`` (an ndarray) as the layout says; the values may change (broadcast, list)."""
    a = np.asarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim:
        steps = [int(s) for s in rng.choice([1, 2, 3, -1, -2], size=a.ndim)]
        base = np.empty([n * abs(s) for n, s in zip(a.shape, steps)], dtype=a.dtype)
        view = base[tuple(slice(None, None, s) for s in steps)]
        view[...] = a
        return view
    if layout == "broadcast" and a.ndim:
        axes = [k for k, n in enumerate(a.shape) if n >= 1]
        if axes:
            k = int(rng.choice(axes))
            one = a[(slice(None),) * k + (slice(0, 1),)]
            return np.broadcast_to(one, a.shape)
    if layout == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return b
    if layout == "memmap" and a.size and a.dtype.kind in "biuf" and memmaps is not None:
        return memmaps.memmap(a, "F" if rng.random() < 0.3 else "C")
    if layout == "list":
        return a.tolist()
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------
@dataclass
class Problem:
    """One reason to raise: the exception types allowed and the names of which the
    message must carry at least one (matched case-insensitively)."""

    types: tuple
    names: tuple
    why: str
    data: bool = False  # found in the values (python -m cyloss eval: exit status 1, not 2)

    def __repr__(self):
        return f"<{'/'.join(t.__name__ for t in self.types)} {self.why}>"


V, T, VT = (ValueError,), (TypeError,), (ValueError, TypeError)
PRED = ("y_pred", "y_true")


def compute_dtype(y_pred):
    """SPEC section 4: float32 for float32 and float16 input, float64 otherwise."""
    if y_pred.dtype.kind == "f" and y_pred.dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_compute(a, dtype):
    """``a`` cast to the compute dtype as cyloss must read it, then to float64."""
    with np.errstate(all="ignore"):
        return np.asarray(a).astype(dtype).astype(np.float64)


def _numeric(a):
    return np.asarray(a).dtype.kind in "biuf"


@dataclass
class Call:
    """One call of a loss: the loss, its options (only those given) and the arguments as
    cyloss receives them."""

    loss: str
    options: dict
    y_true: object
    y_pred: object
    sample_weight: object = None
    layouts: dict = field(default_factory=dict)

    def option(self, key):
        return self.options.get(key, DEFAULTS[key])

    def describe(self):
        def show(x):
            a = np.asarray(x)
            return f"{type(x).__name__} {a.dtype} {a.shape}"
        return (f"{self.loss} options={self.options!r} y_true={show(self.y_true)} "
                f"y_pred={show(self.y_pred)} sample_weight="
                f"{None if self.sample_weight is None else show(self.sample_weight)} "
                f"layouts={self.layouts}")


def _squeeze_pair(t_shape, p_shape):
    if len(t_shape) == len(p_shape) + 1 and t_shape[-1] == 1:
        return t_shape[:-1], p_shape
    if len(p_shape) == len(t_shape) + 1 and p_shape[-1] == 1:
        return t_shape, p_shape[:-1]
    return t_shape, p_shape


def sample_shape(call):
    """The per-sample shape (SPEC section 2), or None when the shapes are invalid."""
    yp = np.asarray(call.y_pred)
    if call.loss in (CATEGORICAL, SPARSE):
        axis = call.option("axis")
        if yp.ndim == 0 or not _is_int(axis) or not -yp.ndim <= axis < yp.ndim:
            return None
        ax = axis % yp.ndim
        return yp.shape[:ax] + yp.shape[ax + 1:]
    t_shape, p_shape = _squeeze_pair(np.shape(call.y_true), yp.shape)
    if t_shape != p_shape:
        return None
    return p_shape[:-1] if len(p_shape) >= 2 else p_shape


def weight_shape_ok(w_shape, shape):
    """README: sample_weight broadcasts to the per-sample shape after Keras's two rules
    (a trailing axis of 1 squeezed; a weight per batch entry)."""
    w_shape, shape = tuple(w_shape), tuple(shape)
    if len(w_shape) == len(shape) + 1 and w_shape[-1] == 1:
        w_shape = w_shape[:-1]
    elif 0 < len(w_shape) < len(shape) and w_shape == shape[: len(w_shape)]:
        w_shape = w_shape + (1,) * (len(shape) - len(w_shape))
    if len(w_shape) > len(shape):
        return False
    return all(a in (1, b) for a, b in zip(w_shape[::-1], shape[::-1]))


def _option_problems(call):
    out = []
    for key, value in call.options.items():
        if key in ("axis", "class_weight", "pos_weight"):
            continue  # need the data's shape; below
        if not option_ok(key, value):
            out.append(Problem(VT, (key,), f"{key}={value!r}"))
    return out


def _weights_problems(value, name, length):
    """class_weight (1-D) and pos_weight (scalar or 1-D, or (1, ..., 1, K)): numeric,
    finite, non-negative; ``length``: the sizes it may have."""
    w = np.asarray(value)
    if w.dtype.kind not in "biuf":
        return [Problem(T, (name,), f"{name} dtype {w.dtype}")]
    out = []
    shape = w.shape
    if name == "pos_weight" and w.ndim > 1 and all(d == 1 for d in shape[:-1]):
        shape = shape[-1:]
    if len(shape) > 1 or (name == "class_weight" and len(shape) != 1):
        out.append(Problem(V, (name,), f"{name} shape {w.shape}"))
    elif shape and shape[0] not in length:
        out.append(Problem(V, (name,), f"{name} length {shape[0]} not in {length}"))
    with np.errstate(invalid="ignore"):
        f = w.astype(np.float64)
        if not (np.isfinite(f) & (f >= 0)).all():
            out.append(Problem(V, (name,), f"{name} not finite and >= 0"))
    return out


def problems(call):
    """Every reason the call must raise (empty: it must return)."""
    out = _option_problems(call)
    yt, yp = np.asarray(call.y_true), np.asarray(call.y_pred)
    for name, a in (("y_true", yt), ("y_pred", yp)):
        if not _numeric(a):
            out.append(Problem(T, (name,), f"{name} dtype {a.dtype}"))
    if call.sample_weight is not None and not _numeric(call.sample_weight):
        out.append(Problem(T, ("sample_weight",), "sample_weight dtype"))
    if "axis" in call.options and not _is_int(call.options["axis"]):
        out.append(Problem(VT, ("axis",), f"axis={call.options['axis']!r}"))
    if call.loss == SPARSE and call.option("class_weight") is not None:
        n_classes = None
        S = sample_shape(call)
        if S is not None:
            n_classes = yp.shape[call.option("axis") % yp.ndim]
        out += _weights_problems(call.option("class_weight"), "class_weight",
                                 () if n_classes is None else (n_classes,))
        if n_classes is None:  # the length cannot be checked; any shape problem raises
            out = [p for p in out if "length" not in p.why]
    if call.loss == BINARY and call.option("pos_weight") is not None:
        S = sample_shape(call)
        width = 1
        if S is not None:
            _, p_shape = _squeeze_pair(yt.shape, yp.shape)
            width = p_shape[-1] if len(p_shape) >= 2 else 1
        out += _weights_problems(call.option("pos_weight"), "pos_weight", (1, width))
    if not _numeric(yt) or not _numeric(yp):
        return out
    if call.loss in (CATEGORICAL, SPARSE):
        out += _class_problems(call, yt, yp)
    else:
        out += _elementwise_problems(call, yt, yp)
    return out


def _weight_problems(call, S):
    w = call.sample_weight
    if w is None or not _numeric(w) or weight_shape_ok(np.shape(w), S):
        return []
    return [Problem(V, ("sample_weight",), f"sample_weight {np.shape(w)} vs {S}")]


def _elementwise_problems(call, yt, yp):
    S = sample_shape(call)
    if S is None:
        return [Problem(V, PRED, f"shapes {yt.shape} and {yp.shape}")]
    out = _weight_problems(call, S)
    if call.loss == BINARY:
        dtype = compute_dtype(yp)
        y, p = as_compute(yt, dtype), as_compute(yp, dtype)
        if ((y < 0) | (y > 1)).any():
            out.append(Problem(V, ("y_true",), "target outside [0, 1]", True))
        if _from_logits(call) is False and ((p < 0) | (p > 1)).any():
            out.append(Problem(V, ("y_pred",), "probability outside [0, 1]", True))
    return out


def _from_logits(call):
    """from_logits as a bool, or None when it is not valid (a problem of its own)."""
    value = call.option("from_logits")
    return bool(value) if option_ok("from_logits", value) else None


def _class_problems(call, yt, yp):
    axis = call.option("axis")
    if not _is_int(axis):
        return []  # reported above
    if yp.ndim == 0:
        return [Problem(V, ("y_pred",), "y_pred is a scalar")]
    if not -yp.ndim <= axis < yp.ndim:
        return [Problem(V, ("axis",), f"axis {axis} for {yp.ndim} axes")]
    ax = axis % yp.ndim
    n_classes = yp.shape[ax]
    S = yp.shape[:ax] + yp.shape[ax + 1:]
    out = []
    if n_classes == 0 and math.prod(S) > 0:
        out.append(Problem(V, ("y_pred",), "no classes"))
    if call.loss == CATEGORICAL:
        if yt.shape != yp.shape:
            return out + [Problem(V, PRED, f"shapes {yt.shape} and {yp.shape}")]
    else:
        with_axis = yp.shape[:ax] + (1,) + yp.shape[ax + 1:]
        if yt.shape not in (S, with_axis):
            return out + [Problem(V, ("y_true",), f"labels {yt.shape} for {yp.shape}")]
    # The data is read only once everything else is right; its problems are listed
    # anyway (any of them is a reason to raise).
    out += _weight_problems(call, S)
    dtype = compute_dtype(yp)
    x = np.moveaxis(as_compute(yp, dtype), ax, -1)
    rows = np.ones(S, dtype=bool)  # the rows whose probabilities are read
    if call.loss == CATEGORICAL:
        y = np.moveaxis(as_compute(yt, dtype), ax, -1)
        if ((y < 0) | (y > 1)).any():
            out.append(Problem(V, ("y_true",), "target outside [0, 1]", True))
    else:
        labels = yt.reshape(S) if yt.shape != S else yt
        bad, lab = _label_problems(labels, n_classes, _ignore_index(call))
        out += bad
        if lab is None:  # labels that are not integers: refused before any row is read
            return out
        if _ignore_index(call) is not None:
            # Ignored samples are not read: SPEC says they contribute 0, and does not
            # say whether their rows must still be valid probabilities. cyloss skips
            # them; the oracle does too.
            rows = lab != _ignore_index(call)
    if _from_logits(call) is False and x.size:
        r = x[rows]
        if (r < 0).any():
            out.append(Problem(V, ("y_pred",), "negative probability", True))
        if (r == 0).all(axis=-1).any():
            out.append(Problem(V, ("y_pred",), "row sums to 0", True))
    return out


def _ignore_index(call):
    value = call.option("ignore_index")
    return value if option_ok("ignore_index", value) else None


def _label_problems(labels, n_classes, ignore_index):
    """SPEC section 2/5: integer labels (float labels only when exact integers), in
    [0, C) unless equal to ignore_index. Returns (problems, labels as int64)."""
    kind = labels.dtype.kind
    if kind == "f":
        f = labels.astype(np.float64)
        with np.errstate(invalid="ignore"):
            if not (np.isfinite(f) & (f == np.trunc(f))).all():
                return [Problem(V, ("y_true", "label"), "non-integer label", True)], None
        if (np.abs(f) >= 2.0**62).any():  # no label that large can be in range
            return [Problem(V, ("y_true", "label"), "label beyond int64", True)], None
        lab = f.astype(np.int64)
    elif kind == "u" and labels.dtype.itemsize == 8 and (labels > 2**63 - 1).any():
        return [Problem(V, ("y_true", "label"), "label beyond int64", True)], None
    else:
        lab = labels.astype(np.int64)
    counted = lab != ignore_index if ignore_index is not None else np.ones(lab.shape, bool)
    if ((lab < 0) | (lab >= n_classes))[counted].any():
        return [Problem(V, ("y_true", "label"), "label outside [0, C)", True)], lab
    return [], lab


def grad_out_problems(grad_out, y_pred):
    """README: grad_out is a writeable C-contiguous ndarray of y_pred's shape and the
    compute dtype."""
    if grad_out is None:
        return []
    if not isinstance(grad_out, np.ndarray):
        return [Problem(T, ("grad_out",), f"grad_out is a {type(grad_out).__name__}")]
    yp = np.asarray(y_pred)
    if not _numeric(yp):
        return []
    if (grad_out.shape != yp.shape or grad_out.dtype != compute_dtype(yp)
            or not grad_out.flags.c_contiguous or not grad_out.flags.writeable):
        return [Problem(V, ("grad_out",), "grad_out shape/dtype/layout")]
    return []


def message_matches(exc, found):
    """The exception is of an allowed type for one problem whose name its message
    carries."""
    text = str(exc).lower()
    return any(isinstance(exc, p.types) and any(n.lower() in text for n in p.names)
               for p in found)


# --------------------------------------------------------------------------------------
# Whole calls
# --------------------------------------------------------------------------------------
DIMS = [0, 1, 1, 2, 3, 3, 4, 7]
LABEL_DTYPES = [np.int64, np.int64, np.int32, np.int8, np.uint8, np.uint64, np.bool_,
                np.float64, np.float32]


def make_labels(rng, shape, n_classes, dtype, specials, rate):
    """Labels in [0, C) with specials (0, C - 1, C, -1, ignore_index, ...) at ``rate``."""
    labels = rng.integers(0, max(n_classes, 1), size=shape).astype(np.float64)
    if specials and labels.size:
        mask = rng.random(shape) < rate
        labels = np.where(mask, rng.choice(np.array(specials, dtype=np.float64), size=shape),
                          labels)
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dtype.kind in "iub":
            # Non-finite specials only make sense for float labels.
            labels = np.where(np.isfinite(labels), np.trunc(labels), 0.0)
            if dtype.kind == "b":
                return labels != 0
            info = np.iinfo(dtype)
            return np.clip(labels, info.min, info.max).astype(dtype)
        return labels.astype(dtype)


def _draw_options(draw, loss, hostile):
    """A subset of the loss's options (and reduction, n_threads), mostly valid values."""
    options = {}
    for key in (*OPTIONS[loss], "reduction", "n_threads"):
        if key in ("axis", "class_weight", "pos_weight") or not draw(st.booleans()):
            continue
        if hostile and draw(st.integers(0, 31)) == 0:
            options[key] = draw(st.sampled_from(HOSTILE_OPTION_VALUES[key]))
        else:
            options[key] = draw(st.sampled_from(VALID_OPTION_VALUES[key]))
    return options


def _other_shape(draw, shape):
    """A shape that is probably not ``shape``."""
    choice = draw(st.sampled_from(["drop", "add", "change"]))
    if choice == "drop" and shape:
        return shape[:-1]
    if choice == "add":
        return shape + (draw(st.sampled_from([2, 3])),)
    if shape:
        k = draw(st.integers(0, len(shape) - 1))
        return shape[:k] + (shape[k] + draw(st.sampled_from([1, 2])),) + shape[k + 1:]
    return (2,)


def _draw_weight(draw, rng, S, hostile, layout_of):
    kinds = ["none", "none", "none", "full", "full", "column", "scalar", "prefix", "ones"]
    kind = draw(st.sampled_from(kinds * 2 + (["other"] if hostile else [])))
    if kind == "none":
        return None
    if kind == "full":
        shape = S
    elif kind == "column":
        shape = S + (1,)
    elif kind == "scalar":
        shape = ()
    elif kind == "prefix":
        shape = S[: draw(st.integers(0, len(S)))]
    elif kind == "ones":
        shape = tuple(1 if draw(st.booleans()) else n for n in S)
    else:
        shape = _other_shape(draw, S)
    spec = draw(values("weight", DTYPES if hostile else GOOD_DTYPES))
    return layout_of("sample_weight", spec.make(rng, shape, "weight"))


#: Now and then axis 0 is this long (the others short), so that a call spans several
#: blocks of samples and, with n_threads > 1, several threads.
BIG = 70001


@st.composite
def calls(draw, losses=LOSSES, memmaps=None, hostile=True, layouts=LAYOUTS, big=True):
    """A :class:`Call` of one of ``losses``. ``hostile=False`` keeps dtypes numeric,
    options valid and shapes matching (the data may still hold invalid values);
    ``big=False`` keeps every axis short."""
    loss = draw(st.sampled_from(losses))
    rng = np.random.default_rng(draw(seeds))
    options = _draw_options(draw, loss, hostile)
    chosen = {}

    def layout_of(name, a):
        chosen[name] = draw(st.sampled_from(layouts))
        return materialise(a, chosen[name], rng, memmaps)

    long_axis_0 = big and draw(st.integers(0, 24)) == 0
    dims = st.sampled_from([1, 2, 3] if long_axis_0 else DIMS)
    dtypes = DTYPES if hostile else GOOD_DTYPES
    if loss in (CATEGORICAL, SPARSE):
        ndim = draw(st.sampled_from([1, 2, 2, 3] + ([0] if hostile else [])))
        shape = [draw(dims) for _ in range(ndim)]
        if long_axis_0 and ndim:
            shape[0] = BIG
        axis = -1
        if ndim and draw(st.booleans()):
            axis = draw(st.integers(-ndim, ndim - 1))
            options["axis"] = axis
        if hostile and draw(st.integers(0, 31)) == 0:
            options["axis"] = draw(st.sampled_from(
                [ndim, -ndim - 1, *HOSTILE_OPTION_VALUES["axis"]]))
        if ndim:
            if not (long_axis_0 and axis % ndim == 0):
                shape[axis % ndim] = draw(st.sampled_from([1, 2, 3, 5] * 3
                                                          + ([0] if hostile else [])))
        shape = tuple(shape)
        ax = axis % ndim if ndim else 0
        n_classes = shape[ax] if ndim else 0
        S = shape[:ax] + shape[ax + 1:]
        logits = options.get("from_logits") is True or options.get("from_logits") is np.True_
        pred = draw(values("logit" if logits else "prow", dtypes)).make(
            rng, shape, "logit" if logits else "prow")
        if not logits and ndim and pred.dtype.kind == "f" and draw(st.integers(0, 5)) == 0:
            moved = np.moveaxis(pred, ax, -1)  # a view: zero one row, an invalid input
            if moved.shape[-1] and moved.size:
                moved.reshape(-1, moved.shape[-1])[0] = 0.0
        if loss == CATEGORICAL:
            t_shape = shape if not hostile or draw(st.integers(0, 15)) else _other_shape(
                draw, shape)
            true = draw(values("unit", dtypes)).make(rng, t_shape, "unit")
        else:
            with_axis = shape[:ax] + (1,) + shape[ax + 1:] if ndim else (1,)
            t_shape = draw(st.sampled_from(
                [S] * 6 + [with_axis] * 2 + ([_other_shape(draw, S)] if hostile else [])))
            if draw(st.integers(0, 4)) == 0:
                options["ignore_index"] = draw(st.sampled_from(
                    VALID_OPTION_VALUES["ignore_index"][2:]))
            ignore = options.get("ignore_index")
            specials = [0, n_classes - 1, n_classes, -1, 2**31, -2**40, 0.5, math.nan,
                        math.inf, -0.0, HUGE]
            if _is_int(ignore) and abs(ignore) < 2**62:
                specials += [ignore] * 3
            label_dtype = draw(st.sampled_from(LABEL_DTYPES * 4 + (BAD_DTYPES if hostile else [])))
            chosen_specials = draw(st.lists(st.sampled_from(specials), max_size=3))
            rate = draw(st.sampled_from([0.05, 0.2, 1.0]))
            if np.dtype(label_dtype).kind in "biuf":
                true = make_labels(rng, t_shape, n_classes, label_dtype, chosen_specials, rate)
            else:
                true = make_labels(rng, t_shape, n_classes, np.float64, [], 0.0).astype(
                    label_dtype)
            if draw(st.integers(0, 3)) == 0:
                options["class_weight"] = _draw_class_weight(draw, rng, n_classes, hostile)
    else:
        ndim = draw(st.sampled_from([0, 1, 1, 2, 2, 3]))
        shape = tuple(draw(dims) for _ in range(ndim))
        if long_axis_0 and ndim:
            shape = (BIG,) + shape[1:]
        t_shape = shape
        variant = draw(st.sampled_from(["same"] * 12 + ["col_true", "col_pred"] * 2
                                       + (["other"] if hostile else [])))
        p_shape = shape
        if variant == "col_true":
            t_shape = shape + (1,)
        elif variant == "col_pred":
            p_shape = shape + (1,)
        elif variant == "other":
            t_shape = _other_shape(draw, shape)
        logits = options.get("from_logits") is True or options.get("from_logits") is np.True_
        if loss == BINARY:
            role_t, role_p = "unit", ("logit" if logits else "unit")
        else:
            role_t = role_p = "real"
        true = draw(values(role_t, dtypes)).make(rng, t_shape, role_t)
        pred = draw(values(role_p, dtypes)).make(rng, p_shape, role_p)
        S = shape[:-1] if len(shape) >= 2 else shape
        if loss == BINARY and draw(st.integers(0, 3)) == 0:
            width = shape[-1] if len(shape) >= 2 else 1
            options["pos_weight"] = _draw_pos_weight(draw, rng, width, hostile)
    true = layout_of("y_true", true)
    pred = layout_of("y_pred", pred)
    weight = _draw_weight(draw, rng, S, hostile, layout_of)
    return Call(loss, options, true, pred, weight, chosen)


def _draw_class_weight(draw, rng, n_classes, hostile):
    kind = draw(st.sampled_from(["ok"] * 20 + (["long", "negative", "nan", "inf", "scalar",
                                               "2d", "complex"] if hostile else [])))
    w = rng.uniform(0.0, 3.0, size=n_classes)
    if n_classes and rng.random() < 0.3:
        w[rng.integers(0, n_classes)] = 0.0
    if kind == "long":
        w = np.append(w, 1.0)
    elif kind in ("negative", "nan", "inf") and n_classes:
        w[0] = {"negative": -1.0, "nan": math.nan, "inf": math.inf}[kind]
    elif kind == "scalar":
        w = np.float64(1.0)
    elif kind == "2d":
        w = w[None, :]
    elif kind == "complex":
        w = w.astype(np.complex128)
    return w.tolist() if draw(st.booleans()) and np.ndim(w) else w


def _draw_pos_weight(draw, rng, width, hostile):
    kind = draw(st.sampled_from(["scalar", "scalar", "vector", "row", "one"] * 4
                                + (["long", "negative", "nan", "2d", "complex"]
                                   if hostile else [])))
    w = rng.uniform(0.0, 4.0, size=width)
    if kind == "scalar":
        return float(w[0]) if width else 2.5
    if kind == "row":
        return w[None, :]
    if kind == "one":
        return w[:1] if width else np.array([2.5])
    if kind == "long":
        return np.append(w, 1.0)
    if kind in ("negative", "nan") and width:
        w[-1] = -1.0 if kind == "negative" else math.nan
    elif kind == "2d":
        return np.ones((2, max(width, 1)))
    elif kind == "complex":
        return w.astype(np.complex128)
    return w
