"""An MoE layer compiled ahead of time (`mfx compile-layer`) with its
weights, run on numpy arrays through libmfxrt (no LLVM):

    layer = mfx.MoELayer("layer.mfxa", "weights.safetensors")
    y = layer.forward(x)               # x float32 [T, D], T <= layer.buckets[-1]
    y_ref = layer.reference(x)         # the plain-C reference of the same layer

The weights file is safetensors (docs/moe_layer.md): F32 "router.weight"
[E, D], optional "router.bias" [E], "experts.<e>.w1" [H, D] and
"experts.<e>.w2" [D, H] for each non-null expert e, and "__metadata__"
{"format": "mfx-moe-1", "dim", "hidden", "k", "experts"}.
save_moe_weights writes one from numpy arrays."""

import ctypes
import json
import struct

import numpy as np

from ._lib import c_int_arg, check, declare

_MAX_EXPERTS = 64
_KINDS = ("mult", "shift", "null", "shift16")  # mfx_expert_kind's order


class _Spec(ctypes.Structure):
    """mfx_moe_spec."""

    _fields_ = [
        ("dim", ctypes.c_int),
        ("hidden", ctypes.c_int),
        ("experts", ctypes.c_int),
        ("k", ctypes.c_int),
        ("kinds", ctypes.c_int * _MAX_EXPERTS),
        ("choose_config", ctypes.c_void_p),
        ("choose_user", ctypes.c_void_p),
        ("target", ctypes.c_char_p),
    ]


class _LoadOptions(ctypes.Structure):
    """mfx_moe_load_options."""

    _fields_ = [("device", ctypes.c_char_p), ("threads", ctypes.c_int)]


_load = declare("mfx_moe_load", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                ctypes.POINTER(_LoadOptions), ctypes.POINTER(ctypes.c_void_p))
_load_weights = declare("mfx_moe_load_weights", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)
_destroy = declare("mfx_moe_destroy", None, ctypes.c_void_p)
_get_spec = declare("mfx_moe_get_spec", ctypes.POINTER(_Spec), ctypes.c_void_p)
_bucket_count = declare("mfx_moe_bucket_count", ctypes.c_int, ctypes.c_void_p)
_bucket_at = declare("mfx_moe_bucket_at", ctypes.c_int64, ctypes.c_void_p, ctypes.c_int)
_forward = declare("mfx_moe_forward", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                   ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)
_reference = declare("mfx_moe_reference", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                     ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class MoELayer:
    """A loaded layer. One call at a time per layer; two layers may run
    side by side from two threads."""

    def __init__(self, artifact, weights=None, threads=0, device=None):
        options = _LoadOptions(device.encode() if device else None,
                               c_int_arg(threads, "threads", 0, 1024))
        handle = ctypes.c_void_p()
        check(_load(str(artifact).encode(), str(weights).encode() if weights else None,
                    ctypes.byref(options), ctypes.byref(handle)))
        self._handle = handle
        spec = _get_spec(handle).contents
        self.dim, self.hidden, self.k = spec.dim, spec.hidden, spec.k
        self.experts = [_KINDS[spec.kinds[e]] for e in range(spec.experts)]
        self.buckets = [_bucket_at(handle, i) for i in range(_bucket_count(handle))]

    def load_weights(self, path):
        """Replaces every weight from a safetensors file (checked)."""
        check(_load_weights(self._live(), str(path).encode()))

    def _live(self):
        if self._handle is None:
            raise ValueError("MoELayer: the layer was closed")
        return self._handle

    def _tokens(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim or x.shape[0] < 1:
            raise ValueError(f"MoELayer: x has shape {x.shape}; expected [T, {self.dim}] "
                             f"with T >= 1")
        if x.dtype.kind != "f":
            raise ValueError(f"MoELayer: x has dtype {x.dtype}; expected floats")
        return np.ascontiguousarray(x, dtype=np.float32)

    def forward(self, x):
        """y [T, D] float32 for x [T, D] on the layer's compiled kernels."""
        x = self._tokens(x)
        y = np.empty_like(x)
        check(_forward(self._live(), None, x.ctypes.data, x.shape[0], y.ctypes.data, None))
        return y

    def reference(self, x):
        """The same layer in plain C (routed by its own logits)."""
        x = self._tokens(x)
        y = np.empty_like(x)
        check(_reference(self._live(), x.ctypes.data, x.shape[0], None, y.ctypes.data, None))
        return y

    def close(self):
        if getattr(self, "_handle", None) is not None:
            _destroy(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def save_moe_weights(path, router_weight, experts, kinds, k, router_bias=None):
    """Writes the weights file of a layer: router_weight [E, D]; experts, one
    (w1 [H, D], w2 [D, H]) pair per expert in order (None for a null
    expert); kinds, e.g. ["mult", "shift", "null"]; k; router_bias [E] or
    None. Arrays are stored as little-endian float32."""
    router_weight = np.asarray(router_weight, dtype=np.float32)
    E, D = router_weight.shape
    if len(kinds) != E or len(experts) != E:
        raise ValueError(f"save_moe_weights: {E} experts in router_weight, "
                         f"{len(kinds)} kinds and {len(experts)} weight pairs")
    tensors = [("router.weight", router_weight)]
    if router_bias is not None:
        tensors.append(("router.bias", np.asarray(router_bias, dtype=np.float32)))
    hidden = 0
    for e, (kind, pair) in enumerate(zip(kinds, experts)):
        if kind == "null":
            continue
        w1, w2 = (np.asarray(w, dtype=np.float32) for w in pair)
        hidden = w1.shape[0]
        tensors += [(f"experts.{e}.w1", w1), (f"experts.{e}.w2", w2)]
    header = {"__metadata__": {"format": "mfx-moe-1", "dim": str(D), "hidden": str(hidden),
                               "k": str(int(k)), "experts": ",".join(kinds)}}
    offset, blobs = 0, []
    for name, t in tensors:
        data = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
