"""Shared pytest set-up for the cyloss tests."""

import os
import sys

# The helpers (reference.py, registry.py) are imported by name; with
# --import-mode=importlib the tests directory is not on sys.path by itself.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

# In CI (CI=true) hypothesis draws the same examples every run, so that a landing is never
# decided by a lucky or unlucky draw; locally it explores freshly each time.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
