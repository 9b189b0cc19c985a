"""OpenMP facts and the thread-count policy of SPEC section 6.

``resolve_threads(n_threads, work)`` turns the user's ``n_threads`` into the team size
one loop runs with. Results never depend on it (the loops reduce in fixed blocks), only
the speed does.
"""

import os

# Below this many elements a loop runs serially: starting a team costs more than it saves.
SERIAL_BELOW = 1 << 16
# A team larger than this only adds start-up cost (and an absurd request such as
# n_threads=10**6 must not make the OpenMP runtime abort the process).
MAX_TEAM = 256


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(CYLOSS_OPENMP_ENABLED)


def debug_build():
    """True when built with CYLOSS_DEBUG=1 (bounds checking on)."""
    return bool(CYLOSS_BUILD_DEBUG)


def build_flags():
    """The C compiler flags the extension was built with."""
    return CYLOSS_BUILD_FLAGS.decode("ascii", "replace")


def omp_max_threads():
    """OpenMP's current thread limit (OMP_NUM_THREADS, threadpoolctl, ...)."""
    return int(omp_get_max_threads())


def _usable_cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _count_physical_cores():
    cpus = _usable_cpus()
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(base + "core_id") as f:
                core = f.read().strip()
            with open(base + "physical_package_id") as f:
                package = f.read().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return max(1, len(cores))


_PHYSICAL = None


def physical_cores():
    """Physical cores this process may run on (logical CPUs where topology is unknown)."""
    global _PHYSICAL
    if _PHYSICAL is None:
        _PHYSICAL = _count_physical_cores()
    return _PHYSICAL


def all_cores():
    """Every CPU this process may run on: what ``n_threads=-1`` uses."""
    return max(1, len(_usable_cpus()))


def default_threads():
    """The team size ``n_threads=None`` uses for a large input."""
    if not CYLOSS_OPENMP_ENABLED:
        return 1
    return max(1, min(int(omp_get_max_threads()), physical_cores()))


# GNU libgomp is not fork-safe: a child forked after the parent ran a parallel region
# inherits a thread pool whose threads do not exist and hangs in its first parallel
# region. A forked child therefore runs every loop serially (the results are the same).
_forked_child = False


def _after_fork_in_child():
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def in_forked_child():
    """True in a process forked from one that imported cyloss (loops then run serially)."""
    return _forked_child


def resolve_threads(n_threads, Py_ssize_t work):
    """Team size for a loop over ``work`` elements; ``n_threads`` already validated."""
    if not CYLOSS_OPENMP_ENABLED or _forked_child:
        return 1
    if n_threads is None:
        if work < SERIAL_BELOW:
            return 1
        k = default_threads()
    elif n_threads == -1:
        k = all_cores()
    else:
        k = n_threads
    return int(min(k, MAX_TEAM))   # in Python: n_threads may be any size
