"""What streaming costs: an Accumulator and the Dask path against one in-memory call.

``PYTHONPATH=src python benchmarks/bench_scale.py [--elements 1e8] [--repeats 5]``
(needs ``cyloss[dask]``). For each workload (mean squared error, and sparse categorical
cross-entropy from logits, on ``--elements`` float32 elements of ``y_pred``) it times:

- ``in-memory``: one call on the whole NumPy arrays (OpenMP on every allowed core);
- ``accumulator``: a ``cyloss.Accumulator`` fed ``--batches`` row slices (views, no copy)
  of the same arrays, then ``result()``;
- ``dask``: ``cyloss.dask`` on a ``dask.distributed`` ``LocalCluster`` of ``--workers``
  worker processes with one thread each (OpenMP in a worker follows the nanny's
  ``OMP_NUM_THREADS=1``), on arrays generated on and persisted in the workers, cut into
  ``--chunks`` chunks of rows; timed from building the graph to the float in the client.

Each path is timed ``--repeats`` times after one warm-up call; the report gives medians,
min and max, and each median's ratio to the in-memory median. The three values are checked
against each other (relative difference recorded). Results: a Markdown table on stdout and
JSON in ``--out`` (default ``benchmarks/results/scale.json``).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import cyloss
except ImportError:  # a checkout with an in-place build: use src/
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
    import cyloss

import numpy as np  # noqa: E402

SCHEMA = 1
N_CLASSES = 10
WIDTH = 8  # regression outputs per sample


def timed(fn, repeats):
    fn()  # warm-up (first-touch of pages, worker imports, ...)
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return float(value), times


def workloads(elements, chunks, rng_seed):
    """(name, loss object, shapes, generator of dask inputs) per workload."""
    import dask.array as da

    rows_mse = elements // WIDTH
    rows_ce = elements // N_CLASSES

    def mse_inputs():
        rng = da.random.default_rng(rng_seed)
        c = (-(-rows_mse // chunks), WIDTH)
        y_true = rng.standard_normal((rows_mse, WIDTH), dtype=np.float32, chunks=c)
        y_pred = y_true + rng.standard_normal((rows_mse, WIDTH), dtype=np.float32, chunks=c)
        return y_true, y_pred

    def ce_inputs():
        rng = da.random.default_rng(rng_seed + 1)
        r = -(-rows_ce // chunks)
        labels = rng.integers(0, N_CLASSES, rows_ce, dtype=np.int32, chunks=r)
        logits = rng.standard_normal((rows_ce, N_CLASSES), dtype=np.float32,
                                     chunks=(r, N_CLASSES))
        return labels, logits

    return [
        ("mean_squared_error", cyloss.MeanSquaredError(), mse_inputs,
         f"y_pred float32 ({rows_mse}, {WIDTH})"),
        ("sparse_categorical_crossentropy",
         cyloss.SparseCategoricalCrossentropy(from_logits=True), ce_inputs,
         f"logits float32 ({rows_ce}, {N_CLASSES}), labels int32"),
    ]


def run(args):
    import dask
    import distributed

    import cyloss.dask as cdask

    elements = int(float(args.elements))
    results = []
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        worker_threads = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
        for name, loss, make, shapes in workloads(elements, args.chunks, args.seed):
            y_true_d, y_pred_d = client.persist(make())
            distributed.wait([y_true_d, y_pred_d])
            y_true, y_pred = dask.compute(y_true_d, y_pred_d)  # the same data, local
            dask_function = getattr(cdask, type(loss)._function.__name__)
            n_rows = y_pred.shape[0]
            bounds = np.linspace(0, n_rows, args.batches + 1).astype(int)

            def in_memory():
                return loss(y_true, y_pred)

            def accumulator():
                acc = cyloss.Accumulator(loss)
                for a, b in zip(bounds[:-1], bounds[1:]):
                    acc.update(y_true[a:b], y_pred[a:b])
                return acc.result()

            def on_dask():
                return dask_function(y_true_d, y_pred_d, **_options(loss)).compute()

            row = {"loss": name, "inputs": shapes, "elements": int(y_pred.size)}
            values = {}
            for path, fn in [("in-memory", in_memory), ("accumulator", accumulator),
                             ("dask", on_dask)]:
                value, times = timed(fn, args.repeats)
                values[path] = value
                row[path] = {"median_s": statistics.median(times), "min_s": min(times),
                             "max_s": max(times), "times_s": times, "value": value}
            base = row["in-memory"]["median_s"]
            for path in ("accumulator", "dask"):
                row[path]["ratio"] = row[path]["median_s"] / base
                row[path]["rel_diff"] = abs(values[path] - values["in-memory"]) / abs(
                    values["in-memory"])
            results.append(row)
            print(f"{name}: done", file=sys.stderr)
            del y_true, y_pred, y_true_d, y_pred_d
    return results, worker_threads


def _options(loss):
    options = loss.get_config()
    options.pop("name")
    return options


def markdown(results, args):
    lines = [
        f"{args.repeats} repeats, medians; accumulator fed {args.batches} batches; Dask "
        f"on a LocalCluster of {args.workers} processes x 1 thread, {args.chunks} chunks.",
        "",
        "| loss | elements | in-memory (s) | accumulator (s) | ratio | Dask (s) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['loss']} | {r['elements']:.0e} | {r['in-memory']['median_s']:.3f} | "
            f"{r['accumulator']['median_s']:.3f} | {r['accumulator']['ratio']:.2f}x | "
            f"{r['dask']['median_s']:.3f} | {r['dask']['ratio']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_scale.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--elements", default="1e8", help="float32 elements of y_pred")
    parser.add_argument("--batches", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=64, help="Dask chunks of rows")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "scale.json"))
    args = parser.parse_args(argv)

    import dask
    import distributed

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    results, worker_threads = run(args)
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    config = cyloss.show_config(mode="dicts")
    record = {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/bench_scale.py", *(argv or sys.argv[1:])]),
        "settings": {k: getattr(args, k) for k in
                     ("elements", "batches", "chunks", "workers", "repeats", "seed")},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "cyloss": cyloss.__version__,
            "cyloss_config": config,
            "worker_OMP_NUM_THREADS": sorted(set(worker_threads.values()), key=str),
            # other processes on the machine make parallel regions wait for a core:
            # a load above the core count before the run means the numbers are noisy
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "results": results,
    }
    table = markdown(results, args)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2, default=str)
        f.write("\n")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
