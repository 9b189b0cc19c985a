"""A child forked after the parent ran OpenMP loops must not hang (libgomp is not
fork-safe): cyloss runs serially there, with the same results."""

import multiprocessing as mp
import warnings

import numpy as np
import pytest

import cyloss
from cyloss import _openmp

pytestmark = pytest.mark.skipif(
    "fork" not in mp.get_all_start_methods(), reason="no fork() on this platform"
)


def _child(queue, labels, logits):
    queue.put((
        _openmp.in_forked_child(),
        cyloss.sparse_categorical_crossentropy(labels, logits, from_logits=True, n_threads=2),
        cyloss.mse(logits, logits * 0.5, n_threads=-1),
    ))


def test_forked_child_runs_serially_and_gives_the_parent_result():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 50))
    labels = rng.integers(0, 50, size=4000)
    # The parent uses a thread team first: this is what leaves libgomp's pool behind.
    expected = (
        cyloss.sparse_categorical_crossentropy(labels, logits, from_logits=True, n_threads=2),
        cyloss.mse(logits, logits * 0.5, n_threads=-1),
    )
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        # Python >= 3.12 warns that fork() in a multi-threaded process may deadlock:
        # that is exactly the case under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=_child, args=(queue, labels, logits))
        proc.start()
    proc.join(60)
    hung = proc.is_alive()
    if hung:
        proc.kill()
        proc.join()
    assert not hung, "forked child hung in an OpenMP region"
    assert proc.exitcode == 0
    forked, *values = queue.get(timeout=10)
    assert forked is True
    assert tuple(values) == expected
    assert _openmp.in_forked_child() is False
