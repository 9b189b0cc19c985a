"""The cyloss benchmark harness: ``python benchmarks/harness.py [--quick] [...]``.

A thin wrapper around :mod:`cyloss._bench` (which ``python -m cyloss bench`` also runs, so
an installed cyloss can benchmark itself without this repository). Results go to
``benchmarks/results/`` by default: ``results.json``, ``results.md``, ``results.png``.
``python benchmarks/harness.py --help`` lists the flags.

From a checkout without installing: ``PYTHONPATH=src python benchmarks/harness.py``.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import cyloss  # noqa: F401
except ImportError:  # a checkout with an in-place build: use src/
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from cyloss._bench import (  # noqa: E402,F401  (re-exported for programmatic use)
    Workload,
    all_workloads,
    bench_workload,
    main,
    make_data,
    markdown,
    run_benchmark,
    select_workloads,
    write_outputs,
)

if __name__ == "__main__":
    sys.exit(main(default_out=os.path.join(HERE, "results"),
                  prog="python benchmarks/harness.py"))
