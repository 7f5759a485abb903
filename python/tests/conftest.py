"""Makes `import mfx` work when pytest runs from a checkout without
PYTHONPATH=python (ctest sets it; this covers running pytest by hand)."""

import os
import sys

_PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PYTHON_DIR not in sys.path:
    sys.path.insert(0, _PYTHON_DIR)

# The sanitizer tree (MFX_TEST_QUICK=1, set by CMake there) hunts memory
# errors in mfx's C code. Tests marked `whole_model` train or run PyTorch
# models end to end (several processes, minutes under ASan) through the
# same libmfxrt.so entry points that the other tests drive one by one; the
# release tree runs them.
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "whole_model: skipped in the sanitizer tree")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MFX_TEST_QUICK") != "1":
        return
    skip = pytest.mark.skip(reason="whole-model test: run by the release tree")
    for item in items:
        if "whole_model" in item.keywords:
            item.add_marker(skip)
