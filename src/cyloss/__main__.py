"""Command line: ``python -m cyloss [demo|config|eval|bench]``.

``demo`` (the default) prints the tf.keras examples of SPEC section 7, cyloss's value
beside the published tf.keras value, then the build configuration. ``config`` prints
only the configuration. ``eval`` computes a loss over ``.npy`` files in chunks
(``_cli_eval.py``). ``bench`` runs the benchmark harness (``_bench.py``).
"""

import argparse
import sys

# (call as text, function name, args, kwargs, published tf.keras value, note)
SEED_EXAMPLES = [
    ("categorical_crossentropy([[0,1,0],[0,0,1]], [[.05,.95,0],[.1,.8,.1]])",
     "categorical_crossentropy",
     ([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]), 1.1769392, ""),
    ("binary_crossentropy([[0],[1]], [[.4],[.6]])",
     "binary_crossentropy", ([[0], [1]], [[0.4], [0.6]]), 0.5108256,
     "-ln 0.6; tf.keras 2 printed 0.5108254 (epsilon added inside the log twice)"),
    ("mean_absolute_error([[0.],[0.]], [[1.],[1.]])",
     "mean_absolute_error", ([[0.0], [0.0]], [[1.0], [1.0]]), 1.0, ""),
    ("mean_squared_error([[0.],[1.]], [[1.],[1.]])",
     "mean_squared_error", ([[0.0], [1.0]], [[1.0], [1.0]]), 0.5, ""),
    ("huber([[0],[1]], [[0.6],[0.4]])",
     "huber", ([[0], [1]], [[0.6], [0.4]]), 0.18, ""),
]


def demo(out=sys.stdout):
    """Print each seed example with cyloss's value and tf.keras's; return the worst gap."""
    import cyloss

    worst = 0.0
    width = max(len(text) for text, *_ in SEED_EXAMPLES)
    print(f"cyloss {cyloss.__version__}: the tf.keras examples cyloss replaces\n", file=out)
    print(f"{'call':<{width}}  {'cyloss':>12}  {'tf.keras':>10}", file=out)
    for text, name, args, published, note in SEED_EXAMPLES:
        value = getattr(cyloss, name)(*args)
        worst = max(worst, abs(value - published))
        line = f"{text:<{width}}  {value:>12.7f}  {published:>10.7f}"
        print(line + (f"  ({note})" if note else ""), file=out)
    print(file=out)
    return worst


def _demo_command(args):
    import cyloss

    status = 0
    if args.command in (None, "demo"):
        worst = demo()
        # The published values carry 7 decimals.
        if worst > 5e-8:
            print(f"MISMATCH: largest gap to tf.keras {worst:.3g}", file=sys.stderr)
            status = 1
    cyloss.show_config()
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cyloss",
        description="cyloss: deep-learning losses for NumPy, in Cython with OpenMP.",
    )
    # One subparser per command, each with its handler; no command means demo.
    commands = parser.add_subparsers(dest="command", title="commands")
    commands.add_parser(
        "demo", help="(default) SPEC's tf.keras examples, then the build configuration"
    ).set_defaults(handler=_demo_command)
    commands.add_parser(
        "config", help="the build configuration only"
    ).set_defaults(handler=_demo_command)
    from cyloss import _bench, _cli_eval

    _cli_eval.add_parser(commands)
    _bench.add_parser(commands).set_defaults(handler=_bench.run)
    args = parser.parse_args(argv)
    return getattr(args, "handler", _demo_command)(args)


if __name__ == "__main__":
    sys.exit(main())
