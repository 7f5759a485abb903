"""mfx.torch.ShiftLinear and mfx.torch.MoE against their definitions:
DeepShift-PS weights (signed powers of two, straight-through gradients), the
integer shift path against a plain-Python copy of ops/moe_reference.c, the
MoE eval forward against the layer's definition (routing by the C router,
gates, GELU, Q16.16 shift experts), a short training run whose loss falls
and whose shares follow alpha, and export() -> safetensors bytes -> the
same tensors."""

import json
import math
import struct

import numpy as np
import pytest

import mfx
from mfx import safetensors_io

torch = pytest.importorskip("torch")
import mfx.moe_torch  # noqa: E402,F401  (first: neither import order is circular)
from mfx.torch import MoE, ShiftLinear  # noqa: E402


# ---- a plain-Python copy of ops/moe_reference.c ----------------------------------

def q16_from_float(x):
    """mfx_q16_from_float: round(x * 65536) to nearest even, saturated."""
    v = np.asarray(x, dtype=np.float32).astype(np.float64) * 65536.0
    return np.clip(np.rint(v), -2.0 ** 31, 2.0 ** 31 - 1).astype(np.int64)


def q16_to_float(q):
    return (np.asarray(q, dtype=np.float64) / 65536.0).astype(np.float32)


def gelu32(x):
    x = np.asarray(x, dtype=np.float32)
    erf = np.array([math.erf(float(v) * 0.70710678118654752) for v in x.reshape(-1)],
                   dtype=np.float32).reshape(x.shape)
    return (np.float32(0.5) * x * (np.float32(1.0) + erf)).astype(np.float32)


def deepshift(w):
    """mfx_deepshift_convert of float weights: (S, G)."""
    S = np.zeros(w.shape, dtype=np.int64)
    G = np.zeros(w.shape, dtype=np.int64)
    for idx, v in np.ndenumerate(w):
        if v == 0:
            continue
        p = math.floor(abs(math.log2(abs(float(v)))) + 0.5) * (1 if math.log2(abs(float(v))) >= 0 else -1)
        s = max(-p, 0)
        if s > 15:
            continue
        S[idx], G[idx] = s, 1 if v > 0 else -1
    return S, G


def shift_row(xq, S, G):
    """out[n] = sum_k G[n,k] (x[k] >> S[n,k]), wrapping in 32 bits."""
    out = np.zeros(S.shape[0], dtype=np.int64)
    for n in range(S.shape[0]):
        acc = 0
        for k in range(S.shape[1]):
            v = int(xq[k]) >> int(S[n, k])  # Python's >> is arithmetic
            acc += int(G[n, k]) * v
        out[n] = (acc + 2 ** 31) % 2 ** 32 - 2 ** 31
    return out


def q10(v):
    """Q3.10 of shift16: rint(v 2^10) (ties to even) within -8192..8191."""
    return np.clip(np.rint(np.asarray(v, dtype=np.float64) * 1024.0), -8192, 8191).astype(np.int64)


def shift16_row(xq, S, G):
    """shift_linear16 of one token: the exact sums of G (x >> S)."""
    return np.array([sum(int(G[n, k]) * (int(xq[k]) >> int(S[n, k])) for k in range(S.shape[1]))
                     for n in range(S.shape[0])], dtype=np.int64)


def reference_layer(x, tensors, kinds, k, route_logits=None):
    """ops/moe_reference.c on the exported tensors."""
    W = tensors["router.weight"].astype(np.float64)
    logits = (x.astype(np.float64) @ W.T).astype(np.float32)
    chosen, gates = mfx.route(logits if route_logits is None else route_logits,
                              tensors.get("router.bias"), k=k)
    y = np.zeros(x.shape, dtype=np.float32)
    for t in range(x.shape[0]):
        for slot in range(k):
            e = chosen[t, slot]
            if kinds[e] == "null":
                continue
            w1, w2 = tensors[f"experts.{e}.w1"], tensors[f"experts.{e}.w2"]
            if kinds[e] == "mult":
                h = gelu32((x[t].astype(np.float64) @ w1.T.astype(np.float64)).astype(np.float32))
                row = (h.astype(np.float64) @ w2.T.astype(np.float64)).astype(np.float32)
            elif kinds[e] == "shift16":
                S1, G1 = deepshift(w1)
                S2, G2 = deepshift(w2)
                h = shift16_row(q10(x[t]), S1, G1).astype(np.float32) / np.float32(1024.0)
                hq = q10(gelu32(h))
                row = (shift16_row(hq, S2, G2).astype(np.float64) / 1024.0).astype(np.float32)
            else:
                S1, G1 = deepshift(w1)
                S2, G2 = deepshift(w2)
                hq = shift_row(q16_from_float(x[t]), S1, G1)
                hq = q16_from_float(gelu32(q16_to_float(hq)))
                row = q16_to_float(shift_row(hq, S2, G2))
            y[t] += np.float32(gates[t, slot]) * row
    return y, logits


# ---- ShiftLinear ------------------------------------------------------------------

def test_shift_linear_weights_are_signed_powers_of_two():
    torch.manual_seed(0)
    dense = torch.randn(7, 13) * 0.3
    dense[0, 0] = 0.0
    dense[1, 1] = 3.0   # above 1: shift clamped to 0
    dense[2, 2] = 1e-6  # below 2^-14: shift clamped to -14
    layer = ShiftLinear(13, 7, dense)
    w = layer.weight().detach()
    nonzero = w[w != 0]
    exponents = torch.log2(nonzero.abs())
    assert torch.equal(exponents, torch.round(exponents))
    assert exponents.min() >= -14 and exponents.max() <= 0
    want = torch.sign(dense) * torch.exp2(torch.round(torch.log2(dense.abs())).clamp(-14, 0))
    torch.testing.assert_close(w, want, rtol=0, atol=0)
    assert w[0, 0] == 0 and w[1, 1] == 1.0 and w[2, 2] == 2.0 ** -14
    S, G = layer.shift_sign()
    assert S.min() >= 0 and S.max() <= 14 and set(G.unique().tolist()) <= {-1, 0, 1}
    torch.testing.assert_close(G * torch.exp2(-S.double()), w.double(), rtol=0, atol=0)
    # the mfx conversion of the exported floats gives the same (S, G)
    S_ref, G_ref = deepshift(w.numpy())
    np.testing.assert_array_equal(S_ref, S.numpy())
    np.testing.assert_array_equal(G_ref, G.numpy())


def test_shift_linear_straight_through_gradients():
    torch.manual_seed(1)
    layer = ShiftLinear(6, 5, torch.randn(5, 6) * 0.5)
    layer.train()
    x = torch.randn(4, 6, requires_grad=True)
    grad_y = torch.randn(4, 5)
    layer(x).backward(grad_y)
    W = layer.weight().detach()
    grad_W = grad_y.t() @ q16_to_float_t(x.detach())
    rounded_shift = torch.round(layer.shift.detach().clamp(-14, 0))
    torch.testing.assert_close(layer.shift.grad, grad_W * W * math.log(2.0))
    torch.testing.assert_close(layer.sign.grad, grad_W * torch.exp2(rounded_shift))
    torch.testing.assert_close(x.grad, grad_y @ W)  # straight through the Q16.16 rounding


def q16_to_float_t(x):
    return torch.round(x * 65536.0) / 65536.0


def test_shift_linear_training_keeps_parameters_in_range():
    layer = ShiftLinear(3, 2, torch.tensor([[0.9, -0.5, 0.25], [0.1, 0.0, -1.0]]))
    with torch.no_grad():
        layer.shift.add_(torch.tensor([[3.0, -20.0, 0.0], [0.0, 0.0, 0.0]]))
        layer.sign.mul_(4.0)
    layer.train()
    layer(torch.ones(1, 3))
    assert layer.shift.max() <= 0 and layer.shift.min() >= -14
    assert layer.sign.abs().max() <= 1


@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 16, 16), (9, 33, 10)])
def test_shift_linear_eval_is_the_integer_kernel(shape):
    tokens, K, N = shape
    torch.manual_seed(2)
    layer = ShiftLinear(K, N, torch.randn(N, K) * 0.4).eval()
    x = torch.randn(tokens, K) * 3.0
    x[0, 0] = -1.0 / 65536 * 2.5  # a tie in Q16.16 rounding and a negative shift
    y = layer(x)
    S, G = layer.shift_sign()
    for t in range(tokens):
        want = q16_to_float(shift_row(q16_from_float(x[t].numpy()), S.numpy(), G.numpy()))
        np.testing.assert_array_equal(y[t].numpy(), want)
    # the float path differs from the floor of each shift by under 2^-16 per term
    layer.train()
    assert (layer(x) - y).abs().max() <= K * 2.0 ** -16


def test_shift_linear_lanes16_is_the_shift_linear16_kernel(tmp_path):
    """lanes16 = F: X rounded to F fraction bits, clamped to -8192..8191, then
    exactly mfx's shift_linear16 kernel (compiled and run through mfx)."""
    import subprocess
    binary = mfx.moe_torch.mfx_binary()
    if binary is None:
        pytest.skip("no mfx command")
    tokens, K, N = 7, 37, 13
    torch.manual_seed(4)
    layer = ShiftLinear(K, N, torch.randn(N, K) * 0.4).eval()
    layer.lanes16 = 10
    x = torch.randn(tokens, K) * 3.0
    x[0, 0], x[1, 1] = 100.0, -100.0  # clamped to 8191 / 1024 and -8
    y = layer(x)
    S, G = layer.shift_sign()
    art = tmp_path / "s16.mfxa"
    subprocess.run([binary, "compile", "shift_linear16", "--dims", f"M={tokens},N={N},K={K}",
                    "-o", str(art)], check=True, capture_output=True)
    xq = np.clip(np.rint(x.numpy().astype(np.float64) * 1024.0), -8192, 8191).astype(np.int16)
    got = mfx.Module(str(art)).run(0, X=xq, S=S.numpy().astype(np.int8),
                                   G=G.numpy().astype(np.int8))["Y"]
    np.testing.assert_array_equal(y.numpy(), (got.astype(np.float64) / 1024.0).astype(np.float32))
    layer.lanes16 = None  # back to Q16.16, which differs
    assert not torch.equal(layer(x), y)


# ---- MoE ----------------------------------------------------------------------------

CONFIGS = [
    (("mult", "shift"), 1, 12, 20, False),
    (("mult", "shift", "null", "shift"), 2, 9, 17, True),
    (("shift", "mult", "mult"), 3, 16, 8, False),
    (("shift16", "mult", "shift"), 2, 10, 12, False),
]


@pytest.mark.parametrize("kinds,k,dim,hidden,bias", CONFIGS)
def test_moe_eval_forward_is_the_layer_definition(kinds, k, dim, hidden, bias):
    torch.manual_seed(3)
    moe = MoE(dim, hidden, kinds, k=k)
    if bias:
        moe.selection_bias = torch.linspace(-0.05, 0.05, len(kinds))
    moe.eval()
    x = torch.randn(23, dim)
    with torch.no_grad():
        y = moe(x).numpy()
    tensors, _ = moe.export_tensors()
    # route by torch's logits: a near tie must not decide the comparison
    logits = (x @ moe.router.weight.t()).detach().numpy()
    want, ref_logits = reference_layer(x.numpy(), tensors, kinds, k, route_logits=logits)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-6)
    # mult: float32 against double sums; shift: GELU's last bit can move one Q16.16 step
    # (shift16: one Q3.10 step, 1e-3, in about one value of 10^6: none at these seeds)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=2e-5)
    counts = moe.last_counts.numpy()
    np.testing.assert_array_equal(counts, mfx.route(logits, tensors.get("router.bias"), k=k,
                                                    return_counts=True)[2])


def test_moe_training_loss_is_the_router_loss():
    torch.manual_seed(4)
    moe = MoE(6, 8, ("mult", "shift", "null"), k=2, latency=[2.0, 1.0], noisy=False).train()
    x = torch.randn(30, 6)
    moe(x)
    z = (x @ moe.router.weight.t()).detach().numpy()
    alpha = moe.alpha.numpy()
    np.testing.assert_allclose(alpha, np.array([2.0, 1.0, 1.0]) / 1.5 * np.array([1, 1, 1]),
                               rtol=1e-6)  # null: the smallest real alpha
    want, _ = mfx.router_loss(z, "latency", k=2, latency=alpha)
    assert moe.aux_loss.item() == pytest.approx(want, rel=1e-5)
    # noisy: the smooth load enters and the noise weights get a gradient
    noisy = MoE(6, 8, ("mult", "shift"), k=1, latency=[2.0, 1.0]).train()
    torch.nn.init.normal_(noisy.noise.weight)
    noisy(x)
    noisy.aux_loss.backward()
    assert noisy.noise.weight.grad.abs().sum() > 0
    assert noisy.router.weight.grad.abs().sum() > 0


def test_moe_latency_table_and_errors(tmp_path):
    table = {"names": ["mult", "shift"], "alpha": np.array([1.5, 0.5])}
    moe = MoE(4, 4, "mult,null,shift", latency=table)
    np.testing.assert_allclose(moe.alpha.numpy(), [1.5, 0.5, 0.5])
    moe.set_latency([1.0, 3.0])
    np.testing.assert_allclose(moe.alpha.numpy(), [0.5, 0.5, 1.5])
    with pytest.raises(ValueError, match="not the layer's non-null experts"):
        MoE(4, 4, "shift,mult", latency=table)
    with pytest.raises(ValueError, match="expected 1..64"):
        MoE(4, 4, "mult,conv")
    with pytest.raises(ValueError, match="k=3"):
        MoE(4, 4, "mult,shift", k=3)
    with pytest.raises(ValueError, match="3 latencies for 2"):
        MoE(4, 4, "mult,shift", latency=[1, 2, 3])
    with pytest.raises(ValueError, match="finite positive"):
        MoE(4, 4, "mult,shift", latency=[1, 0])
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 4\]"):
        MoE(4, 4)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="no bias"):
        ShiftLinear.from_linear(torch.nn.Linear(3, 2))


def test_short_training_run_loss_falls_and_shares_follow_alpha():
    torch.manual_seed(5)
    dim = 8
    teacher = torch.nn.Sequential(torch.nn.Linear(dim, 16), torch.nn.GELU(),
                                  torch.nn.Linear(16, dim))
    x = torch.randn(256, dim)
    with torch.no_grad():
        target = teacher(x)
    moe = MoE(dim, 16, ("mult", "shift"), k=1, latency=[1.0, 3.0]).train()
    opt = torch.optim.Adam(moe.parameters(), lr=1e-2)
    losses, share_mult = [], []
    for _ in range(60):
        opt.zero_grad()
        task = torch.nn.functional.mse_loss(moe(x), target)
        (task + 0.1 * moe.aux_loss).backward()
        opt.step()
        losses.append(task.item())
        share_mult.append(mfx.moe_torch.shares(moe.last_counts)[0])
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    # alpha_mult : alpha_shift = 1 : 3 -> the loss is lowest at 3/4 of the tokens on mult
    assert np.mean(share_mult[-10:]) > 0.6


# ---- export -------------------------------------------------------------------------

def parse_by_hand(data):
    """The safetensors layout read with struct and json only."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32"
        b, e = entry["data_offsets"]
        out[name] = np.frombuffer(body[b:e], dtype="<f4").reshape(entry["shape"])
    return header, out, n


def test_export_bytes_parse_back(tmp_path):
    torch.manual_seed(6)
    moe = MoE(5, 7, ("mult", "null", "shift"), k=2)
    moe.selection_bias = torch.tensor([0.01, 0.0, -0.02])
    path = moe.export(tmp_path / "moe.safetensors")
    data = path.read_bytes()
    header, tensors, n = parse_by_hand(data)
    assert n % 8 == 0
    assert header["__metadata__"] == {"format": "mfx-moe-1", "dim": "5", "hidden": "7", "k": "2",
                                      "experts": "mult,null,shift"}
    assert sorted(tensors) == ["experts.0.w1", "experts.0.w2", "experts.2.w1", "experts.2.w2",
                               "router.bias", "router.weight"]
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert spans[-1][1] == len(data) - 8 - n
    np.testing.assert_array_equal(tensors["router.weight"], moe.router.weight.detach().numpy())
    np.testing.assert_array_equal(tensors["router.bias"], np.float32([0.01, 0.0, -0.02]))
    assert tensors["experts.0.w1"].shape == (7, 5) and tensors["experts.0.w2"].shape == (5, 7)
    np.testing.assert_array_equal(tensors["experts.0.w1"], moe.experts[0].fc1.weight.detach())
    for name, layer in (("experts.2.w1", moe.experts[2].fc1), ("experts.2.w2", moe.experts[2].fc2)):
        S, G = layer.shift_sign()
        np.testing.assert_array_equal(tensors[name], (G * torch.exp2(-S.double())).float().numpy())
    again, metadata = safetensors_io.read(path)
    assert metadata == header["__metadata__"]
    for name in tensors:
        np.testing.assert_array_equal(again[name], tensors[name])
        assert again[name].dtype == np.float32


def test_safetensors_reader_refuses_malformed_files():
    good = safetensors_io.encode({"a": np.zeros((2, 3), np.float32)}, {"format": "x"})
    with pytest.raises(ValueError, match="at least the 8-byte"):
        safetensors_io.decode(good[:5])
    with pytest.raises(ValueError, match="does not fit"):
        safetensors_io.decode(good[:-4])
    with pytest.raises(ValueError, match="header of"):
        safetensors_io.decode(struct.pack("<Q", 1 << 40) + good[8:])
    with pytest.raises(ValueError, match="not JSON"):
        safetensors_io.decode(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ValueError, match="no safetensors name"):
        safetensors_io.encode({"a": np.zeros(2, np.complex64)})


def test_export_runs_on_the_mfx_layer(tmp_path):
    """export -> mfx compile-layer + mfx.MoELayer (the runtime layer) -> the
    PyTorch eval forward, within MFX_TOLERANCE (see mfx.moe_torch)."""
    if not hasattr(mfx, "MoELayer"):
        pytest.skip("mfx.MoELayer is not in this tree (the runtime layer of issue 12, part 1)")
    from mfx import moe_torch

    torch.manual_seed(7)
    moe = MoE(12, 20, ("mult", "shift"), k=1).eval()
    x = torch.randn(40, 12)
    with torch.no_grad():
        want = moe(x).numpy()
    got = moe_torch.run_on_mfx(moe, x.numpy(), str(tmp_path), chunk=32)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= moe_torch.MFX_TOLERANCE
