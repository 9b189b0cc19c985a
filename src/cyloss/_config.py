"""``cyloss.show_config()``: what was built and what will run."""

import platform
import sys

import numpy as np

from cyloss import _loops, _openmp


def _openmp_runtimes():
    """The OpenMP runtimes loaded in this process, as threadpoolctl sees them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to list the loaded runtime)"
    import os

    import cyloss

    # realpath on both sides: macOS reports /var/... paths as /private/var/... or not,
    # depending on who loaded the library.
    here = os.path.dirname(os.path.dirname(os.path.realpath(cyloss.__file__)))
    found = []
    for info in threadpool_info():
        if info.get("user_api") != "openmp":
            continue
        path = info.get("filepath") or ""
        found.append({
            "library": info.get("internal_api"),
            "filepath": path,
            "version": info.get("version"),
            "num_threads": info.get("num_threads"),
            # auditwheel/delocate/delvewheel put the wheel's copy in cyloss.libs/ (or .dylibs/)
            "bundled_with_cyloss": os.path.realpath(path).startswith(
                os.path.join(here, "cyloss")
            ),
        })
    return found


def _config():
    from cyloss import __version__

    return {
        "cyloss": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "openmp": _openmp.openmp_enabled(),
        "omp_max_threads": _openmp.omp_max_threads(),
        "physical_cores": _openmp.physical_cores(),
        "default_threads": _openmp.default_threads(),
        "serial_below_elements": _openmp.SERIAL_BELOW,
        "debug_build": _openmp.debug_build(),
        "compiler_flags": _openmp.build_flags(),
        "simd_path": _loops.simd_path(),
        "simd_available": ", ".join(_loops.simd_available()),
        "forked_child_serial": _openmp.in_forked_child(),
        "openmp_runtime": _openmp_runtimes(),
    }


def show_config(mode="stdout"):
    """Report the version, OpenMP, the thread count and the compiler flags.

    Parameters
    ----------
    mode : {"stdout", "dicts"}, default "stdout"
        Print a readable report, or return it as a dict (as ``numpy.show_config``).

    Examples
    --------
    >>> import cyloss
    >>> config = cyloss.show_config(mode="dicts")
    >>> sorted(config)[:3]
    ['compiler_flags', 'cyloss', 'debug_build']
    """
    config = _config()
    if mode == "dicts":
        return config
    if mode != "stdout":
        raise ValueError(f"mode must be 'stdout' or 'dicts'; got {mode!r}")
    width = max(len(k) for k in config)
    for key, value in config.items():
        if isinstance(value, list):
            if not value:
                print(f"{key:<{width}} : none loaded")
            for i, runtime in enumerate(value):
                label = key if i == 0 else ""
                text = ", ".join(f"{k}={v}" for k, v in runtime.items())
                print(f"{label:<{width}} : {text}")
            continue
        print(f"{key:<{width}} : {value}")
    return None
