"""Shared pytest set-up for the cyloss tests."""

import os
import sys

# The helpers (reference.py, registry.py) are imported by name; with
# --import-mode=importlib the tests directory is not on sys.path by itself.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
