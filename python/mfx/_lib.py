"""Loads libmfxrt.so (the mfx runtime) through ctypes and turns its status
codes into Python exceptions. Only the C library is needed at run time."""

import ctypes
import os

LIB_NAME = "libmfxrt.so"

# mfx_status values of include/mfx/runtime.h.
MFX_OK = 0
MFX_ERR_INVALID = 1
MFX_ERR_NOMEM = 5


def _candidates():
    """Where to look, in order: $MFX_LIB_DIR, then ../../build/lib relative
    to this package (a build in the source tree)."""
    paths = []
    env = os.environ.get("MFX_LIB_DIR")
    if env:
        paths.append(os.path.join(env, LIB_NAME))
    here = os.path.dirname(os.path.abspath(__file__))
    paths.append(os.path.normpath(os.path.join(here, "..", "..", "build", "lib", LIB_NAME)))
    return paths


def load():
    """Returns the loaded library or raises ImportError naming every place
    that was tried and why it failed."""
    tried = []
    for path in _candidates():
        if not os.path.exists(path):
            tried.append(f"{path} (no such file)")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as err:
            tried.append(f"{path} ({err})")
    try:
        return ctypes.CDLL(LIB_NAME)
    except OSError as err:
        tried.append(f"the system loader for {LIB_NAME} ({err})")
    raise ImportError(
        "mfx: could not load the runtime library libmfxrt.so; looked in: "
        + "; ".join(tried)
        + ". Build it (cmake --build build --target mfxrt) or set MFX_LIB_DIR "
        "to the folder that holds it."
    )


lib = load()
lib.mfx_last_error.restype = ctypes.c_char_p
lib.mfx_last_error.argtypes = []


def last_error():
    """The message of the last failure in the C library on this thread."""
    message = lib.mfx_last_error()
    return message.decode("utf-8", "replace") if message else ""


def check(status):
    """Raises for a non-zero mfx_status: ValueError for invalid input,
    MemoryError when out of memory, RuntimeError otherwise; the C message
    is the exception's text."""
    if status == MFX_OK:
        return
    message = last_error() or f"mfx status {status}"
    if status == MFX_ERR_INVALID:
        raise ValueError(message)
    if status == MFX_ERR_NOMEM:
        raise MemoryError(message)
    raise RuntimeError(message)


def c_int_arg(value, name, low=-(2 ** 31), high=2 ** 31 - 1):
    """value as a Python int for a C int parameter: an int (or numpy
    integer) in [low, high]; bools, floats and anything larger are refused
    rather than truncated."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


def declare(name, restype, *argtypes):
    """Sets the C signature of lib.<name> and returns the function."""
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn
