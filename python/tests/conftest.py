"""Makes `import mfx` work when pytest runs from a checkout without
PYTHONPATH=python (ctest sets it; this covers running pytest by hand)."""

import os
import sys

_PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PYTHON_DIR not in sys.path:
    sys.path.insert(0, _PYTHON_DIR)
