"""mfx.MoELayer: a layer compiled by `mfx compile-layer`, its weights
written by mfx.save_moe_weights (safetensors), run on numpy arrays and
compared with numpy's own forward of the same layer and with the C
reference; the errors a person meets. Skips, saying so, when $MFX_BIN/mfx
is not built."""

import os
import subprocess

import numpy as np
import pytest

import mfx

D, H = 8, 16
KINDS = ["mult", "shift", "null"]


def mfx_program():
    path = os.path.join(os.environ.get("MFX_BIN", ""), "mfx")
    if not os.environ.get("MFX_BIN") or not os.access(path, os.X_OK):
        pytest.skip("the mfx program is not built (set MFX_BIN to the folder that holds it)")
    return path


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    d = tmp_path_factory.mktemp("moe_layer")
    art = d / "layer.mfxa"
    r = subprocess.run([mfx_program(), "compile-layer", "--dim", str(D), "--hidden", str(H),
                        "--experts", ",".join(KINDS), "--k", "2", "--buckets", "16,32",
                        "-o", str(art)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(3)
    router = rng.uniform(-1, 1, (3, D)).astype(np.float32)
    # the mult expert dense; the shift expert's weights already sign * 2^-s
    mult = (rng.uniform(-0.4, 0.4, (H, D)), rng.uniform(-0.3, 0.3, (D, H)))
    def pow2(shape):
        return (rng.choice([-1.0, 1.0], shape) * 2.0 ** -rng.integers(0, 5, shape)) / 4
    shift = (pow2((H, D)), pow2((D, H)))
    w = d / "w.safetensors"
    mfx.save_moe_weights(w, router, [mult, shift, None], KINDS, 2, router_bias=[0.0, 0.2, 0.0])
    return art, w, router, mult, shift, d


def shift_linear(xq, w):
    """shift_linear on Q16.16 integers: sum of sign * (x >> s) for weights
    w = sign * 2^-s (DeepShift's form, so the conversion is exact)."""
    s = np.where(w == 0, 0, -np.round(np.log2(np.abs(np.where(w == 0, 1, w))))).astype(np.int64)
    g = np.sign(w).astype(np.int64)
    return (g * (xq[None, :].astype(np.int64) >> s)).sum(axis=1)


def numpy_forward(x, router, bias, mult, shift):
    """The layer in numpy: top-2 of softmax(logits) + bias (mfx_router_route's
    selection bias), gates the softmax of the
    chosen logits; mult = W2 gelu(W1 x) in float; shift through Q16.16
    integers (quantize, shift_linear, GELU in Q16.16, shift_linear,
    dequantize), as docs/moe_layer.md and include/mfx/moe.h define them."""
    from math import erf
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
    q16 = lambda v: np.round(np.asarray(v, np.float64) * 65536).astype(np.int64)
    logits = x.astype(np.float64) @ router.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    score = p / p.sum(axis=1, keepdims=True) + bias
    y = np.zeros_like(x, dtype=np.float64)
    for t in range(len(x)):
        top = np.argsort(-score[t], kind="stable")[:2]
        g = np.exp(logits[t, top] - logits[t, top].max())
        g /= g.sum()
        for gate, e in zip(g, top):
            if e == 0:
                y[t] += gate * (mult[1] @ gelu(mult[0] @ x[t]))
            elif e == 1:
                h = q16(gelu(shift_linear(q16(x[t]), shift[0]) / 65536))
                y[t] += gate * shift_linear(h, shift[1]) / 65536
    return y


def test_forward_matches_numpy_and_the_reference(layer):
    art, w, router, mult, shift, _ = layer
    with mfx.MoELayer(art, w) as m:
        assert (m.dim, m.hidden, m.k, m.experts, m.buckets) == (D, H, 2, KINDS, [16, 32])
        rng = np.random.default_rng(9)
        for T in (1, 5, 16, 29, 32):
            x = rng.uniform(-1, 1, (T, D)).astype(np.float32)
            y = m.forward(x)
            assert y.shape == (T, D) and y.dtype == np.float32
            np.testing.assert_allclose(y, m.reference(x), rtol=1e-5, atol=1e-6)
            want = numpy_forward(x, router, np.array([0.0, 0.2, 0.0]), mult, shift)
            # f32 against float64, and GELU's erf within 1.5 ulp: a Q16.16
            # value can round the other way, a step of 2^-16 in the shift path
            np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_errors(layer):
    art, w, router, mult, shift, d = layer
    with mfx.MoELayer(art, w) as m:
        with pytest.raises(ValueError, match="largest bucket, 32"):
            m.forward(np.zeros((33, D), np.float32))
        with pytest.raises(ValueError, match=r"expected \[T, 8\]"):
            m.forward(np.zeros((4, D + 1), np.float32))
    bad = d / "bad.safetensors"
    mfx.save_moe_weights(bad, router[:, :4], [(mult[0][:, :4], mult[1][:4]),
                                              (shift[0][:, :4], shift[1][:4]), None], KINDS, 2)
    with pytest.raises(ValueError, match="written for dim=4, but the layer has dim=8"):
        mfx.MoELayer(art, bad)
    with pytest.raises(RuntimeError, match="no layer manifest|not an artifact|magic"):
        mfx.MoELayer(w, w)
