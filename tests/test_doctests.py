"""The docstring examples, run against the installed, compiled package."""

import doctest
import importlib
import subprocess
import sys

import pytest

import cyloss
import cyloss._config
import cyloss._pairs
import cyloss.accumulate
import cyloss.losses
import cyloss.objectives
import cyloss._sequence

MODULES = [cyloss.losses, cyloss._pairs, cyloss._config, cyloss.accumulate, cyloss.objectives,
           cyloss._sequence]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("name", ["cyloss.torch", "cyloss.jax"])
def test_framework_adapter_examples(name):
    """The adapters' examples run where their framework is installed (CI installs both)."""
    pytest.importorskip(name.split(".")[1])
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
    for public in module.__all__:
        assert ">>>" in (getattr(module, public).__doc__ or ""), public


def test_import_cyloss_imports_no_framework():
    code = ("import sys, cyloss; "
            "print(sorted({'torch', 'jax', 'optax'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_every_public_function_has_an_example():
    for name in cyloss.__all__:
        obj = getattr(cyloss, name)
        if callable(obj) and not isinstance(obj, type):
            assert ">>>" in (obj.__doc__ or ""), name
    for cls in cyloss.LOSSES.values():
        assert ">>>" in (cls.__doc__ or ""), cls.__name__
