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
import os

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
    if alpha.shape != (len(experts),) or not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError(f"latency table {path}, device {key!r}: alpha must hold one finite "
                         f"positive value per expert, got {entry['alpha']!r}")
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
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as err:
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
