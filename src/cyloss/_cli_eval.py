"""``python -m cyloss eval``: one loss over ``.npy`` files of any size, in chunks.

The files are memory-mapped and read in chunks of samples (along the first per-sample
axis: axis 0, or axis 1 of ``y_pred`` when the class axis is 0). Each chunk maps the
files afresh and unmaps them when it is done, so the pages the process has read leave
its resident set after every chunk: memory stays bounded by the chunk size whatever the
file size (the kernel's page cache, which is not the process's memory, may keep the file
cached). The chunks feed a :class:`cyloss.Accumulator`, so the value is the one
in-memory call's, to rounding.
"""

import argparse
import inspect
import json
import math
import os
import sys
import time

import numpy as np

from cyloss import _chunking
from cyloss import _validation as V
from cyloss import losses as _losses
from cyloss.accumulate import Accumulator
from cyloss.losses import _ALIASES, ELEMENTWISE, LOSSES, get

#: Bytes of input (all files together) read per chunk when --chunk-size is not given.
CHUNK_BYTES = 32 * 2**20

def _param_options():
    """The flags of the elementwise losses' parameters, from their table (one flag per
    parameter name, whichever losses share it)."""
    users = {}
    for e in ELEMENTWISE:
        if e.param is not None:
            users.setdefault(e.param.name, []).append(e)
    options = []
    for name, entries in users.items():
        p = entries[0].param
        whose = "/".join(e.function for e in entries)
        options.append((f"--{name.replace('_', '-')}", name, float, name[0].upper(),
                        f"{whose}'s {name} ({p.domain}; default {p.default:g})"))
    return options


# (flag, keyword, type, metavar, help): every option of the loss classes.
_OPTIONS = [
    ("--from-logits", "from_logits", None, None, "y_pred holds logits (cross-entropies)"),
    ("--log-input", "log_input", None, None,
     "y_pred holds log-probabilities (kl_divergence)"),
    ("--log-target", "log_target", None, None,
     "y_true holds log-probabilities (kl_divergence)"),
    ("--label-smoothing", "label_smoothing", float, "S", "label smoothing in [0, 1]"),
    ("--axis", "axis", int, "AXIS", "class axis of y_pred (categorical, sparse; default -1)"),
    ("--ignore-index", "ignore_index", int, "LABEL",
     "label whose samples are ignored (sparse)"),
    ("--class-weight", "class_weight", str, "W",
     "per-class weights (sparse, multilabel soft margin): a comma list such as 0.5,2,1 or a .npy file"),
    ("--pos-weight", "pos_weight", str, "W",
     "weight of the positive term (binary): a number, a comma list or a .npy file"),
    *_param_options(),
    ("--alpha", "alpha", float, "A", "focal losses' alpha (in [0, 1]; default 0.25)"),
    ("--gamma", "gamma", float, "G", "focal losses' gamma (>= 0; default 2)"),
    ("--apply-class-balancing", "apply_class_balancing", None, None,
     "binary focal: weigh positives by alpha, negatives by 1 - alpha"),
    ("--epsilon", "epsilon", float, "EPS",
     "probability clip of the cross-entropies (default 1e-7)"),
    ("--full", "full", None, None, "poisson_nll: add Stirling's term"),
    ("--eps", "eps", float, "EPS", "poisson_nll's eps (default 1e-8)"),
    ("--margin", "margin", float, "M", "hinge_embedding's margin (default 1)"),
    ("--reduction", "reduction", str, "R",
     "mean (default; alias sum_over_batch_size, auto), weighted_mean "
     "(alias mean_with_sample_weight) or sum"),
    ("--n-threads", "n_threads", int, "K", "OpenMP threads per chunk (-1: every core)"),
]


class UsageError(Exception):
    """An error in the command's arguments or files, found before any data is read."""


def add_parser(subparsers):
    """Add the ``eval`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "eval",
        help="compute a loss over .npy files, memory-mapped and in chunks",
        description=(
            "Compute a loss over .npy files of any size with bounded memory: the files "
            "are memory-mapped and read in chunks of samples, and the chunks' float64 "
            "sums are accumulated. Prints the value (or one JSON object with --json)."
        ),
        epilog=(
            "example:\n  python -m cyloss eval sparse_categorical_crossentropy "
            "--y-true labels.npy \\\n      --y-pred logits.npy --from-logits "
            "--ignore-index -100 --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    aliases = {name: alias for alias, name in _ALIASES.items()}
    names = [f"{n} ({aliases[n]})" if n in aliases else n for n in LOSSES]
    p.add_argument("loss", metavar="LOSS",
                   help=f"a loss name or alias: {', '.join(names)}, or a class name")
    p.add_argument("--y-true", required=True, metavar="FILE",
                   help=".npy file of targets (labels for sparse cross-entropy)")
    p.add_argument("--y-pred", required=True, metavar="FILE",
                   help=".npy file of predictions")
    p.add_argument("--sample-weight", metavar="FILE",
                   help=".npy file of sample weights (broadcast as in the Python API)")
    group = p.add_argument_group("loss options (each only for the losses that take it)")
    for flag, dest, type_, metavar, help_ in _OPTIONS:
        if type_ is None:
            group.add_argument(flag, dest=dest, action="store_true",
                               default=argparse.SUPPRESS, help=help_)
        else:
            group.add_argument(flag, dest=dest, type=type_, default=argparse.SUPPRESS,
                               metavar=metavar, help=help_)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object: value, loss, reduction, n_samples, ...")
    out.add_argument("--chunk-size", type=_positive_int, metavar="N",
                     help="samples per chunk (default: about "
                          f"{CHUNK_BYTES // 2**20} MiB of input per chunk)")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar (it is shown only when stderr is a terminal)")
    p.set_defaults(handler=run)
    return p


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# --- .npy files ---------------------------------------------------------------------------

class NpyFile:
    """The header of a ``.npy`` file; :meth:`mapped` maps its data read-only."""

    def __init__(self, path, name):
        self.path, self.name = path, name
        fmt = np.lib.format
        try:
            with open(path, "rb") as f:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = fmt.read_array_header_2_0(f)
                else:  # (3, 0): a utf-8 header, no public reader
                    shape, fortran, dtype = fmt._read_array_header(f, version)
                self.offset = f.tell()
                size = os.fstat(f.fileno()).st_size
        except OSError as exc:
            raise UsageError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UsageError(f"{name}: {path!r} is not a .npy file: {exc}") from None
        if dtype.hasobject:
            raise UsageError(f"{name}: {path!r} holds Python objects (dtype {dtype}); "
                             "eval reads numeric arrays only")
        self.shape, self.dtype, self.fortran = tuple(shape), dtype, bool(fortran)
        self.nbytes = math.prod(self.shape) * dtype.itemsize
        if self.offset + self.nbytes > size:
            raise UsageError(f"{name}: {path!r} is truncated: its header promises "
                             f"{self.nbytes} bytes of data, the file holds "
                             f"{size - self.offset}")

    def mapped(self):
        """The whole array, memory-mapped read-only (unmapped when the last reference goes)."""
        if self.nbytes == 0:
            return np.empty(self.shape, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                         shape=self.shape, order="F" if self.fortran else "C")


def _weights_option(text, name):
    """A comma list of numbers or a .npy file, for --class-weight and --pos-weight."""
    if text.endswith(".npy") or os.path.isfile(text):
        try:
            return np.load(text, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{name}: cannot load {text!r}: {exc}") from None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list of numbers or a .npy "
                         f"file; got {text!r}") from None
    return values[0] if name == "--pos-weight" and len(values) == 1 else values


# --- progress -----------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on a terminal stream, redrawn at most 10 times a second."""

    WIDTH = 30

    def __init__(self, total, stream, enabled):
        self.total, self.stream, self.enabled = total, stream, enabled
        self.start = self._last = time.perf_counter()
        self._shown = False

    def update(self, done, force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        frac = done / self.total if self.total else 1.0
        filled = int(round(self.WIDTH * frac))
        elapsed = now - self.start
        eta = f"  ETA {elapsed * (1 - frac) / frac:.0f} s" if 0 < frac < 1 else ""
        self.stream.write(
            f"\r{100 * frac:5.1f}% |{'#' * filled}{'.' * (self.WIDTH - filled)}| "
            f"{done:,}/{self.total:,} rows  {elapsed:.1f} s{eta}   "
        )
        self.stream.flush()
        self._shown = True

    def close(self, done=None):
        if not self.enabled:
            return
        if done is not None:
            self.update(done, force=True)
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


# --- the command --------------------------------------------------------------------------

def _build_loss(args):
    try:
        cls = type(get(args.loss))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from cyloss._pairs import NOT_CHUNKED
    if cls._defaults["name"] in NOT_CHUNKED:
        raise UsageError(f"eval cannot compute {cls._defaults['name']} in chunks of "
                         "samples (three input arrays, or sums over every axis)")
    accepted = inspect.signature(cls.__init__).parameters
    options = {}
    for flag, dest, *_ in _OPTIONS:
        if not hasattr(args, dest):
            continue
        if dest not in accepted:
            takes = [f for f, d, *_ in _OPTIONS if d in accepted]
            raise UsageError(f"{cls._defaults['name']} does not take {flag}; its options: "
                             f"{', '.join(takes)}")
        value = getattr(args, dest)
        if dest in ("class_weight", "pos_weight"):
            value = _weights_option(value, flag)
        options[dest] = value
    if options.get("reduction") == "none":
        raise UsageError("--reduction none gives one value per sample; eval prints one "
                         "number: use mean, weighted_mean or sum")
    try:
        return cls(**options)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _chunk_rows(lay, files, chunk_size):
    if chunk_size is not None:
        return chunk_size
    per_row = sum(f.nbytes for f, axis in files if axis is not None) / max(lay.n_rows, 1)
    return max(1, int(CHUNK_BYTES // per_row)) if per_row else max(lay.n_rows, 1)


def _whole_array_param(loss, lay, y_true, y_pred, rows):
    """For a loss whose parameter comes from the whole of y_true (Keras's hinge rule):
    that parameter, from a first pass over the chunks of y_true (the smallest chunk
    answer, see losses._param_of); None for the other losses."""
    if not getattr(type(loss), "_prepared", False):
        return None
    param = 1.0
    for start in range(0, max(lay.n_rows, 1), rows):
        stop = min(start + rows, lay.n_rows)
        yp = _chunking.take(y_pred.mapped(), lay.y_pred_axis, start, stop)
        yt = _chunking.take(y_true.mapped(), lay.y_true_axis, start, stop)
        param = min(param, _losses._param_of(type(loss)._kind, yt, yp))
        del yp, yt
        if param == 0.0:
            break
    return param


def _update(acc, param, yt, yp, w):
    """acc.update(yt, yp, w), with a whole-array parameter fixed when there is one."""
    if param is None:
        acc.update(yt, yp, w)
        return
    options = acc.loss._call_options()
    options["reduction"] = V.PARTIAL
    acc._add(*_losses._with_param(type(acc.loss)._kind, param, yt, yp, sample_weight=w,
                                  **options))


def evaluate(loss, y_true, y_pred, sample_weight=None, chunk_size=None, progress=None):
    """The accumulated loss over ``NpyFile`` inputs: ``(accumulator, layout, n_chunks)``."""
    acc = Accumulator(loss)  # raises for reduction="none" before any data is read
    try:
        lay = _chunking.layout(
            loss, y_true.shape, y_true.dtype, y_pred.shape, y_pred.dtype,
            None if sample_weight is None else sample_weight.shape,
            None if sample_weight is None else sample_weight.dtype,
        )
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    files = [(y_pred, lay.y_pred_axis), (y_true, lay.y_true_axis)]
    if sample_weight is not None:
        files.append((sample_weight, lay.weight_axis))
    rows = _chunk_rows(lay, files, chunk_size)
    param = _whole_array_param(loss, lay, y_true, y_pred, rows)
    progress = progress or Progress(0, sys.stderr, False)
    progress.total = lay.n_rows
    n_chunks = 0
    for start in range(0, max(lay.n_rows, 1), rows):
        stop = min(start + rows, lay.n_rows)
        # Fresh maps per chunk, dropped at the end of the iteration: their pages leave
        # this process's resident set (munmap) before the next chunk is read.
        yp = _chunking.take(y_pred.mapped(), lay.y_pred_axis, start, stop)
        yt = _chunking.take(y_true.mapped(), lay.y_true_axis, start, stop)
        w = None
        if sample_weight is not None:
            w = sample_weight.mapped().reshape(lay.weight_shape)
            w = _chunking.take(w, lay.weight_axis, start, stop)
        try:
            _update(acc, param, yt, yp, w)
        except ValueError as exc:
            if lay.y_pred_axis is None:
                raise
            raise ValueError(
                f"{exc} [index within the chunk of samples {start}:{stop} along axis "
                f"{lay.y_pred_axis} of y_pred]"
            ) from None
        del yp, yt, w
        n_chunks += 1
        progress.update(stop)
    progress.close(lay.n_rows)
    return acc, lay, n_chunks


def run(args):
    """Run ``eval`` for parsed arguments; returns the exit status (0, 1 data, 2 usage)."""
    prog = "python -m cyloss eval"
    progress = None
    try:
        loss = _build_loss(args)
        y_true = NpyFile(args.y_true, "--y-true")
        y_pred = NpyFile(args.y_pred, "--y-pred")
        weight = NpyFile(args.sample_weight, "--sample-weight") if args.sample_weight else None
        start = time.perf_counter()
        progress = Progress(0, sys.stderr, not args.no_progress and sys.stderr.isatty())
        acc, lay, n_chunks = evaluate(loss, y_true, y_pred, weight, args.chunk_size, progress)
        seconds = time.perf_counter() - start
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:  # found in the data, chunk by chunk
        if progress is not None:
            progress.close()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    value = acc.result()
    if not args.json:
        print(repr(value))
        return 0
    config = loss.get_config()
    record = {
        "value": value if math.isfinite(value) else None,
        "loss": type(loss)._function.__name__,
        "reduction": loss.reduction,
        "n_samples": math.prod(lay.sample_shape),
        "n_counted": acc.count,
        "sum_weights": acc.den,
        "seconds": round(seconds, 6),
        "chunks": n_chunks,
        "options": {k: v for k, v in config.items()
                    if k not in ("name", "reduction", "n_threads")},
        "y_pred_shape": list(y_pred.shape),
        "y_pred_dtype": str(y_pred.dtype),
    }
    if not math.isfinite(value):
        record["nonfinite"] = repr(value)  # JSON has no NaN or infinity
    print(json.dumps(record))
    return 0

