"""The expert latency table that `mfx experts` (and `mfx demo`) save: per
device, each expert's measured (tokens, seconds) points, its fit
seconds ~ a + b * tokens, its latency at the table's at_tokens, and alpha =
latency / mean latency, the weights of the latency-aware router loss.

File format (written by runtime/profile.c):
    {"format": "mfx-latency-1",
     "devices": {KEY: {"device", "target", "dim", "hidden", "at_tokens",
                       "experts": [{"name", "tokens", "seconds", "a", "b",
                                    "r2", "latency"}, ...],
                       "alpha": [...]}}}
KEY is "cpu: <model name> (<N> cores)" for a CPU."""

import ctypes
import json
import math
import os
import stat

import numpy as np

from ._lib import check, declare

FORMAT = "mfx-latency-1"

_host_key = declare("mfx_latency_host_key", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)


def host_key():
    """This machine's key in latency tables, as the C runtime computes it."""
    buf = ctypes.create_string_buffer(160)
    check(_host_key(buf, len(buf)))
    return buf.value.decode("utf-8", "replace")


def default_path():
    """$MFX_LATENCY, else ~/.cache/mfx/latency.json (where mfx experts saves)."""
    given = os.environ.get("MFX_LATENCY")
    if given:
        return given
    return os.path.join(os.path.expanduser("~"), ".cache", "mfx", "latency.json")


# As the C runtime's reader (include/mfx/runtime.h, include/mfx/router.h).
FILE_CAP = 64 << 20
ALPHA_MAX = 1e6


def _read_capped(path):
    """The text of a regular file of at most FILE_CAP bytes: a symlink to
    /dev/zero or a FIFO is refused, not read until memory runs out."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"latency table {path}: not a regular file; refusing to read it")
        if info.st_size > FILE_CAP:
            raise ValueError(f"latency table {path}: {info.st_size} bytes, larger than the cap "
                             f"of {FILE_CAP} bytes for a latency table")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(FILE_CAP + 1)
    finally:
        os.close(fd)
    if len(data) > FILE_CAP:
        raise ValueError(f"latency table {path}: more than the cap of {FILE_CAP} bytes")
    return data.decode("utf-8")


def _finite(value, low, high=math.inf, integer=False):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high
            and (not integer or float(value).is_integer()))


def _check_numbers(path, key, entry, experts):
    """The checks the C reader makes (runtime/profile.c)."""
    def bad(field, expected):
        return ValueError(f"latency table {path}, device {key!r}: \"{field}\" {expected}")
    for field in ("dim", "hidden", "at_tokens"):
        if not _finite(entry[field], 1, 2 ** 31, integer=True):
            raise bad(field, "is not an integer 1..2^31")
    for x in experts:
        if len(x["tokens"]) != len(x["seconds"]) or len(x["tokens"]) > 16:
            raise bad("seconds", "differs in length from tokens, or has more than 16 points")
        if not all(_finite(n, 1, 1e12, integer=True) for n in x["tokens"]):
            raise bad("tokens", "holds a value that is not a token count 1..1e12")
        if not all(_finite(t, 0) for t in x["seconds"]):
            raise bad("seconds", "holds a value that is not finite and >= 0")
        if not all(_finite(x[f], -math.inf) for f in ("a", "b", "r2")):
            raise bad("a", "b or r2 is not finite")
        if not _finite(x["latency"], 0) or x["latency"] <= 0:
            raise bad("latency", "is not finite and positive")


def _table(path, key, entry):
    try:
        experts = entry["experts"]
        alpha = np.asarray(entry["alpha"], dtype=np.float64)
        table = {
            "device": key,
            "target": entry["target"],
            "dim": int(entry["dim"]),
            "hidden": int(entry["hidden"]),
            "at_tokens": int(entry["at_tokens"]),
            "names": [x["name"] for x in experts],
            "latency": np.asarray([x["latency"] for x in experts], dtype=np.float64),
            "alpha": alpha,
            "experts": experts,
        }
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"latency table {path}, device {key!r}: malformed entry ({err!r})") from err
    if (alpha.shape != (len(experts),) or not 1 <= len(experts) <= 64
            or not np.all(np.isfinite(alpha)) or np.any(alpha <= 0) or np.any(alpha > ALPHA_MAX)):
        raise ValueError(f"latency table {path}, device {key!r}: alpha must hold one finite "
                         f"positive value per expert, at most {ALPHA_MAX:g}, got "
                         f"{entry['alpha']!r}")
    try:
        _check_numbers(path, key, entry, experts)
    except (KeyError, TypeError) as err:
        raise ValueError(f"latency table {path}, device {key!r}: malformed entry ({err!r})") from err
    return table


def load_latency(path=None, device=None):
    """The latency table of `device` (default: this host's key) from `path`
    (default: default_path()): the key itself, or the one key that starts
    with it ("cuda", "emulate"). Returns a dict with "alpha" (float64 [E],
    mean 1), "latency" (seconds at "at_tokens"), "names", "experts" (the
    measured points and fits), "device", "target", "dim", "hidden".
    Raises FileNotFoundError, ValueError (not a latency table) or KeyError
    naming the devices the file has."""
    path = default_path() if path is None else os.fspath(path)
    try:
        doc = json.loads(_read_capped(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"latency table {path}: not JSON ({err})") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("devices"), dict):
        raise ValueError(f"latency table {path}: no \"format\": \"{FORMAT}\" with \"devices\" "
                         "(not an mfx latency table, or a newer one)")
    key = host_key() if device is None else device
    devices = doc["devices"]
    if key not in devices and key:
        starting = [k for k in devices if k.startswith(key)]
        if len(starting) > 1:
            raise ValueError(f"latency table {path}: {key!r} starts {len(starting)} device keys "
                             f"({', '.join(map(repr, starting))}); give the whole key")
        if starting:
            key = starting[0]
    if key not in devices:
        have = ", ".join(repr(k) for k in devices) or "none"
        raise KeyError(f"latency table {path}: no table for device {key!r}; it has {have} "
                       "(measure this device with mfx experts, or pass device=)")
    return _table(path, key, devices[key])
