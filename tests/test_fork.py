"""Child processes after the parent ran OpenMP loops.

A child forked after the parent ran a parallel region must not hang (GNU libgomp is not
fork-safe): cyloss runs serially there, with the same results. ``spawn`` and
``forkserver`` children start a fresh interpreter and must give the same results too.
Every loss, gradient and accumulator of concurrency_cases is compared bitwise, and a
hang fails the test after a timeout instead of hanging the run.
"""

import multiprocessing as mp
import warnings

import numpy as np
import pytest

import cyloss
from cyloss import _openmp
from concurrency_cases import digest, make_tasks, run_tasks

SEED = 4
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def serial():
    tasks = make_tasks(SEED)
    return tasks, [digest(task.run()) for task in tasks]


def _use_an_openmp_team():
    # What leaves libgomp's pool behind in the parent.
    x = np.random.default_rng(0).normal(size=(4000, 50))
    cyloss.sparse_categorical_crossentropy(np.arange(4000) % 50, x, from_logits=True,
                                           n_threads=2)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_child_process_gives_the_parent_results(method, serial, record_property):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    _use_an_openmp_team()
    ctx = mp.get_context(method)
    with warnings.catch_warnings():
        # Python >= 3.12 warns that fork() in a multi-threaded process may deadlock:
        # that is exactly the case under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        # JAX does too (a RuntimeWarning) once an earlier test started its backend in
        # this process (cyloss.jax's tests and examples).
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        with ctx.Pool(1) as pool:
            try:
                forked, digests = pool.apply_async(run_tasks, (SEED,)).get(TIMEOUT_S)
            except mp.TimeoutError:
                pytest.fail(f"{method} child hung (no result in {TIMEOUT_S} s)")
    assert forked is (method == "fork")
    tasks, expected = serial
    record_property("compared_results", len(digests))
    mismatched = [str(t) for t, got, want in zip(tasks, digests, expected) if got != want]
    assert len(digests) == len(expected) and not mismatched, mismatched
    assert _openmp.in_forked_child() is False
