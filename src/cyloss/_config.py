"""``cyloss.show_config()``: what was built and what will run."""

import platform
import sys

import numpy as np

from cyloss import _openmp


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
        print(f"{key:<{width}} : {value}")
    return None
