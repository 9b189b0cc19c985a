"""The docstring examples, run against the installed, compiled package."""

import doctest

import pytest

import cyloss
import cyloss._config
import cyloss.accumulate
import cyloss.losses
import cyloss.objectives

MODULES = [cyloss.losses, cyloss._config, cyloss.accumulate, cyloss.objectives]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_every_public_function_has_an_example():
    for name in cyloss.__all__:
        obj = getattr(cyloss, name)
        if callable(obj) and not isinstance(obj, type):
            assert ">>>" in (obj.__doc__ or ""), name
    for cls in cyloss.LOSSES.values():
        assert ">>>" in (cls.__doc__ or ""), cls.__name__
