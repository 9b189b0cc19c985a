"""Calls shared by the thread and process tests: every loss case of streaming_cases, each
entry point (the loss function, ``value_and_grad``, a loss object's ``grad`` into
``grad_out``, an ``Accumulator`` fed in batches and merged), each call with its own inputs.

``make_tasks(seed)`` is deterministic, so a child process rebuilds the very same inputs
from the seed alone and only digests travel back.
"""

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

import cyloss
import streaming_cases as sc

OPERATIONS = ("call", "value_and_grad", "grad", "accumulate")
N_THREADS = (None, 1, 2)
# Elements per y_pred: tiny, small, and above _openmp.SERIAL_BELOW, so that n_threads=None
# starts an OpenMP team inside a Python thread.
SIZES = (20, 3_000, 70_000)


@dataclass
class Task:
    case: sc.Case
    operation: str
    y_true: np.ndarray
    y_pred: np.ndarray
    sample_weight: object  # ndarray or None
    reduction: str
    n_threads: object  # int or None

    def __str__(self):
        return (f"{self.operation}:{self.case.id()}:{self.y_pred.dtype}{self.y_pred.shape}:"
                f"{self.reduction}:n_threads={self.n_threads}")

    def run(self):
        y, p, w = self.y_true, self.y_pred, self.sample_weight
        if self.operation == "call":
            return self.case.function()(y, p, sample_weight=w, reduction=self.reduction,
                                        n_threads=self.n_threads, **self.case.options)
        loss = self.case.loss_object(reduction=self.reduction, n_threads=self.n_threads)
        if self.operation == "value_and_grad":
            return cyloss.value_and_grad(loss, y, p, sample_weight=w)
        if self.operation == "grad":
            grad_out = np.empty(p.shape, dtype=p.dtype)
            loss.grad(y, p, w, grad_out=grad_out)
            return grad_out
        # Two accumulators over three batches along axis 0, the second merged in.
        first, second = cyloss.Accumulator(loss), cyloss.Accumulator(loss)
        cuts = [0, len(p) // 3, 2 * len(p) // 3, len(p)]
        for acc, (lo, hi) in zip((first, first, second), itertools.pairwise(cuts)):
            acc.update(y[lo:hi], p[lo:hi], None if w is None else w[lo:hi])
        first.merge(second)
        return first.num, first.den, first.count, first.result()


def digest(result):
    """A bitwise fingerprint: float.hex of floats, dtype, shape and bytes of arrays."""
    h = hashlib.sha256()
    for part in result if isinstance(result, tuple) else (result,):
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, float):
            h.update(part.hex().encode())
        else:
            assert type(part) is int, type(part)
            h.update(str(part).encode())
        h.update(b"|")
    return h.hexdigest()


def make_tasks(seed=0):
    """Every case x operation x n_threads, each with fresh inputs of a random size,
    dtype, weighting and reduction (drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    tasks = []
    for case, operation, n_threads in itertools.product(sc.CASES, OPERATIONS, N_THREADS):
        n = max(1, int(rng.choice(SIZES)) // int(np.prod(case.tail, dtype=int)))
        dtype = np.float32 if rng.random() < 0.25 else np.float64
        y, p = sc.make_inputs(case, n, rng, dtype)
        w = sc.make_weights(case, n, rng) if rng.random() < 0.5 else None
        reductions = sc.REDUCTIONS + (() if operation == "accumulate" else ("none",))
        reduction = reductions[rng.integers(len(reductions))]
        tasks.append(Task(case, operation, y, p, w, reduction, n_threads))
    return tasks


def run_tasks(seed):
    """In a child process: ``(forked child?, digest of every task)``."""
    from cyloss import _openmp

    return _openmp.in_forked_child(), [digest(t.run()) for t in make_tasks(seed)]
