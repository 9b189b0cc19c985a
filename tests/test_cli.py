"""python -m cyloss: SPEC section 7's examples beside tf.keras's published values."""

import math
import subprocess
import sys

import cyloss
from cyloss.__main__ import SEED_EXAMPLES


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "cyloss", *args], capture_output=True, text=True, timeout=120
    )


def test_demo_prints_every_seed_example_and_the_build():
    proc = run_cli()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text, *_ in SEED_EXAMPLES:
        assert text in out
    # Published tf.keras figures from SPEC section 7, typed here independently.
    for published in ("1.1769392", "0.5108256", "1.0000000", "0.5000000", "0.1800000"):
        assert published in out
    assert f"cyloss {cyloss.__version__}" in out
    assert "openmp" in out and "compiler_flags" in out


def test_config_command_prints_only_the_build():
    proc = run_cli("config")
    assert proc.returncode == 0, proc.stderr
    assert "compiler_flags" in proc.stdout
    assert "huber" not in proc.stdout


def test_unknown_command_is_an_error():
    proc = run_cli("frobnicate")
    assert proc.returncode != 0
    assert "invalid choice" in proc.stderr


def test_seed_table_matches_spec():
    # SPEC section 7 figures, independent of the CLI's own table.
    spec = {
        "categorical_crossentropy": 1.1769392,
        "binary_crossentropy": -math.log(0.6),
        "mean_absolute_error": 1.0,
        "mean_squared_error": 0.5,
        "huber": 0.18,
    }
    for _, name, args, published, _ in SEED_EXAMPLES:
        assert math.isclose(published, spec[name], abs_tol=5e-8)
        assert math.isclose(getattr(cyloss, name)(*args), spec[name], abs_tol=5e-8)
