"""Python threads (SPEC section 6: every loop releases the GIL).

- 16 threads calling every loss and entry point at once, repeatedly, get exactly the
  serial results.
- The GIL really is released: another Python thread keeps running through a long call,
  and two threads do the same total work faster than one.
- ``threadpoolctl``'s OpenMP limit is obeyed (no OpenMP thread is started) and restored.

Nothing here relies on the GIL for correctness: every thread owns its inputs, outputs
and loss objects, so the tests mean the same on a free-threaded CPython.
"""

import concurrent.futures
import hashlib
import os
import random
import statistics
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import cyloss
from cyloss import _openmp
from concurrency_cases import digest, make_tasks


def test_16_threads_calling_every_entry_point_get_the_serial_results(record_property):
    tasks = make_tasks(seed=1)
    expected = [digest(task.run()) for task in tasks]
    order = list(range(len(tasks))) * 3
    random.Random(0).shuffle(order)
    record_property("concurrent_calls", len(order))
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futures = {pool.submit(lambda t: digest(t.run()), tasks[i]): i for i in order}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            assert future.result() == expected[i], str(tasks[i])


# --- the GIL is released -------------------------------------------------------------


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def scaling_ratio(call, calls=24, rounds=5):
    """Wall time of 1 thread making ``calls`` calls over that of 2 threads making half
    each: medians of ``rounds`` interleaved rounds. About 2 when ``call`` runs without
    the GIL on two free cores, about 1 when it holds it."""

    def timed(k):
        start = threading.Barrier(k + 1)

        def worker():
            start.wait()
            for _ in range(calls // k):
                call()

        threads = [threading.Thread(target=worker) for _ in range(k)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    one, two = [], []
    for _ in range(rounds):
        one.append(timed(1))
        two.append(timed(2))
    return statistics.median(one) / statistics.median(two)


def cache_resident_calls():
    """Sparse cross-entropy from logits, n_threads=1, on 4000 x 64 float64 logits (2 MiB,
    read by both threads from the shared cache): exponentials and logarithms, so the
    call is bound by the cores, not by memory bandwidth, which two threads would share
    (a streaming MSE over 16 MB scaled only 1.4x under ASan on a busy machine)."""
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(4000, 64)), rng.integers(0, 64, 4000)

    def call():
        cyloss.sparse_categorical_crossentropy(labels, logits, from_logits=True,
                                               n_threads=1)
    return call


def hashing_calls():
    """The control: SHA-256 of 4 MiB, which hashlib computes without the GIL (reading
    only, so the two threads share nothing but the input)."""
    data = bytes(4 << 20)
    return lambda: hashlib.sha256(data).digest()


def gil_holding_calls():
    """A pure-Python loop: it holds the GIL, so two threads cannot overlap."""
    def call():
        total = 0
        for i in range(20000):
            total += i * i
        return total
    return call


# A call that holds the GIL measures about 1.0x (0.7 to 1.25 seen); two free cores give
# about 2.0x, 1.3x to 2.0x one attempt to the next on a shared machine. The best of five
# attempts reaching 1.4 shows that the calls overlap; the median of three for a
# GIL-holding call stays below it (test_a_gil_holding_call_stays_below_the_threshold).
PARALLEL = 1.4


@pytest.mark.skipif(_usable_cores() < 2, reason="needs two usable cores to run in parallel")
def test_two_python_threads_run_in_parallel(record_property):
    # The machine may be busy with other work: one attempt of five reaching PARALLEL shows
    # that the calls overlap. If none does, a GIL-free control decides between "cyloss
    # holds the GIL" (the control scales) and "no two cores are free now" (it does not).
    call = cache_resident_calls()
    ratios = []
    for _ in range(5):
        ratios.append(scaling_ratio(call, calls=48))
        if ratios[-1] >= PARALLEL:
            break
    measured = ", ".join(f"{r:.2f}" for r in ratios)
    record_property("scaling_ratios", measured)
    if max(ratios) >= PARALLEL:
        return
    control = scaling_ratio(hashing_calls(), calls=40)
    record_property("control_ratio", f"{control:.2f}")
    if control < 1.7:
        pytest.skip(f"no two free cores now: 2 threads vs 1 gave {measured} for cyloss and "
                    f"{control:.2f} for GIL-free SHA-256 hashing")
    pytest.fail(f"2 threads vs 1: {measured} for cyloss, {control:.2f} for SHA-256 hashing")


@pytest.mark.skipif(_usable_cores() < 2, reason="needs two usable cores to run in parallel")
def test_a_gil_holding_call_stays_below_the_threshold(record_property):
    # The test above can fail: a call that holds the GIL does not reach PARALLEL, however
    # free the machine is (the median of three, the same measurement).
    ratios = [scaling_ratio(gil_holding_calls(), calls=48) for _ in range(3)]
    record_property("gil_ratios", ", ".join(f"{r:.2f}" for r in ratios))
    assert statistics.median(ratios) < PARALLEL, ratios


# --- the GIL is released for the whole loop ------------------------------------------


def longest_pause_of_python(call):
    """Run ``call`` once while another Python thread reads the clock in a loop; return
    the call's duration and the longest interval within it in which that thread did not
    run. A call that holds the GIL stops the thread for all of its duration; one that
    releases it lets the thread go on (on the other core, or time-sliced with the call
    on one core: pauses of milliseconds). The thread keeps only its pauses, not every
    reading: a growing list's reallocations would pause it too."""
    pauses = []
    stop = threading.Event()
    started = threading.Event()

    def clock_reader():
        last = time.perf_counter()
        started.set()
        while not stop.is_set():
            now = time.perf_counter()
            if now - last > 1e-4:
                pauses.append((last, now))
            last = now

    thread = threading.Thread(target=clock_reader)
    thread.start()
    started.wait()
    t0 = time.perf_counter()
    call()
    t1 = time.perf_counter()
    stop.set()
    thread.join()
    # The thread runs until after t1, so every pause within the call has its end.
    within = [min(end, t1) - max(begin, t0) for begin, end in pauses]
    return t1 - t0, max(within + [0.0])


LONG_CALLS = {
    # 15 to 120 ms each at full speed, n_threads=1 (no OpenMP thread to hide behind).
    "sparse_categorical_crossentropy": lambda a: cyloss.sparse_categorical_crossentropy(
        a["labels"], a["logits"], from_logits=True, n_threads=1),
    "categorical_crossentropy": lambda a: cyloss.categorical_crossentropy(
        a["onehot"], a["logits"], from_logits=True, n_threads=1),
    "mean_squared_error": lambda a: cyloss.mean_squared_error(a["y"], a["p"], n_threads=1),
    "value_and_grad": lambda a: cyloss.CategoricalCrossentropy(from_logits=True)
        .value_and_grad(a["onehot"], a["logits"]),
}


@pytest.fixture(scope="module")
def long_inputs():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 64, 60000)
    return {"logits": rng.normal(size=(60000, 64)), "labels": labels,
            "onehot": np.eye(64)[labels], "y": rng.normal(size=15 * 10**6),
            "p": rng.normal(size=15 * 10**6)}


@pytest.mark.parametrize("name", sorted(LONG_CALLS))
def test_python_threads_run_during_a_long_call(name, long_inputs, record_property):
    # Needs no second core. Pauses seen: under 5 ms against calls of 15 to 200 ms at full
    # speed; under ASan up to 24 ms against the 310 ms of value_and_grad (its 30 MB
    # gradient allocated with the GIL held). A quarter of the call leaves room for a busy
    # machine's time slices, and a GIL-holding call pauses for most of it (see below).
    results = []
    for _ in range(3):
        results.append(longest_pause_of_python(lambda: LONG_CALLS[name](long_inputs)))
        duration, pause = results[-1]
        if pause < duration / 4:
            break
    record_property("call_and_pause_ms", ", ".join(f"{d * 1e3:.1f}/{p * 1e3:.1f}"
                                                   for d, p in results))
    assert duration > 0.005, "the call is too short to tell"
    assert pause < duration / 4, results


def test_a_gil_holding_call_pauses_python_throughout():
    # The measurement can fail: builtin sum over a range runs in C holding the GIL.
    duration, pause = longest_pause_of_python(lambda: sum(range(3 * 10**6)))
    assert duration > 0.010
    assert pause > duration / 2, (duration, pause)


# --- threadpoolctl -------------------------------------------------------------------

THREAD_COUNT_SCRIPT = textwrap.dedent("""
    import numpy as np, cyloss
    from threadpoolctl import threadpool_limits

    def os_threads():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))

    y, p = np.zeros(10**6), np.full(10**6, 2.0)
    before = os_threads()
    with threadpool_limits(1, user_api="openmp"):
        limited = cyloss.mean_squared_error(y, p)       # n_threads=None: the limit decides
        inside = os_threads()
    free = cyloss.mean_squared_error(y, p)
    print(before, inside, os_threads(), limited.hex(), free.hex())
""")


def test_threadpoolctl_openmp_limit_is_obeyed_and_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if _openmp.default_threads() < 2:
        pytest.skip("n_threads=None already runs serially here: no limit to observe")
    tasks = [t for t in make_tasks(seed=2) if t.n_threads is None]
    expected = [digest(t.run()) for t in tasks]
    before = cyloss.show_config(mode="dicts")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        inside = cyloss.show_config(mode="dicts")
        team_inside = _openmp.resolve_threads(None, 10**8)
        assert [digest(t.run()) for t in tasks] == expected
    after = cyloss.show_config(mode="dicts")
    assert (inside["omp_max_threads"], inside["default_threads"], team_inside) == (1, 1, 1)
    assert _openmp.resolve_threads(None, 10**8) == before["default_threads"]
    for key in ("omp_max_threads", "default_threads"):
        assert after[key] == before[key] >= 2, key


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts threads in /proc")
def test_threadpoolctl_limit_starts_no_openmp_thread():
    # A fresh process, so that no OpenMP pool exists yet: a limited call adds no OS
    # thread; the same call after the limit starts libgomp's pool.
    pytest.importorskip("threadpoolctl")
    if _openmp.default_threads() < 2:
        pytest.skip("n_threads=None already runs serially here: no limit to observe")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", THREAD_COUNT_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, inside, after, limited, free = proc.stdout.split()
    assert int(inside) == int(before), proc.stdout
    assert int(after) > int(before), proc.stdout
    assert float.fromhex(limited) == float.fromhex(free) == 4.0
