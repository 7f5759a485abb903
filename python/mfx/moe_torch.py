"""Training modules for ShiftAddViT's mixture-of-experts MLP (needs PyTorch);
reached as mfx.torch.ShiftLinear, mfx.torch.MoE.

ShiftLinear is DeepShift-PS as ShiftAddViT uses it: a shift and a sign
parameter per weight, initialised from a dense weight (shift = log2|w|,
sign = sign(w)), the weight sign * 2^shift with the shift clamped to
[-14, 0] and both rounded with a straight-through estimator, the input
rounded to Q16.16 (straight through too). In eval mode (or exact=True) it
runs the integer arithmetic of mfx's shift_linear kernel: Q16.16 input,
G * (x >> S) with an arithmetic shift, accumulated in wrapping 32 bits.

MoE is the layer of include/mfx/moe.h (ops/moe_reference.c): logits x W_r^T,
top-k of softmax(logits) (+ a selection bias) with ties to the lower index,
gates = softmax over the k selected logits, experts linear -> GELU -> linear
without biases ("mult"), the same through ShiftLinear ("shift"; "shift16":
on 16-bit lanes in Q3.10, Shift16Expert), or nothing ("null"). Training adds the noisy top-k gate (noise logits x W_n^T, Gaussian
noise scaled by softplus) and the latency-aware router loss with alpha from
a latency table (mfx.load_latency). export() writes the weights file the
mfx runtime layer reads (safetensors, format "mfx-moe-1")."""

import os
import shutil
import subprocess

import numpy as np
import torch
from torch import nn

from . import safetensors_io
from .torch import noise_scale, router_loss, topk_indices

SHIFT_MIN, SHIFT_MAX = -14, 0
Q16_SCALE = 65536.0
EXPERT_KINDS = ("mult", "shift", "shift16", "null")
FORMAT = "mfx-moe-1"


def ste_round(x):
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def q16_round(x):
    """x rounded to Q16.16 (ties to even, saturated to the int32 range) as
    floats, straight through backward."""
    q = torch.round(x * Q16_SCALE).clamp(-2.0 ** 31, 2.0 ** 31 - 1) / Q16_SCALE
    return x + (q - x).detach()


def gelu(x):
    """GELU in the order of mfx_gelu: 0.5 x (1 + erf(x / sqrt 2))."""
    return 0.5 * x * (1.0 + torch.erf(x * 0.70710678118654752))


class ShiftLinear(nn.Module):
    """y = x_q W^T with W = sign * 2^shift (DeepShift-PS), no bias.

    ShiftLinear(in_features, out_features, weight=None, exact=None):
    weight, a dense [out, in] weight to start from (default: nn.Linear's
    initialisation); exact None means the integer path in eval mode and the
    float straight-through path in training."""

    def __init__(self, in_features, out_features, weight=None, exact=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        if weight is None:
            weight = nn.Linear(in_features, out_features, bias=False).weight.detach()
        weight = torch.as_tensor(weight, dtype=torch.float32)
        if weight.shape != (self.out_features, self.in_features):
            raise ValueError(f"ShiftLinear: weight {tuple(weight.shape)}; expected "
                             f"[{out_features}, {in_features}]")
        if not bool(torch.isfinite(weight).all()):
            raise ValueError("ShiftLinear: the dense weight has non-finite values")
        shift = torch.log2(weight.abs().clamp_min(2.0 ** (SHIFT_MIN - 1)))
        self.shift = nn.Parameter(shift.clamp(SHIFT_MIN, SHIFT_MAX))
        self.sign = nn.Parameter(torch.sign(weight))
        self.exact = exact
        # None: the integer path is shift_linear's Q16.16; F: shift_linear16's
        # 16-bit lanes with F fraction bits (forward_lanes16)
        self.lanes16 = None

    @classmethod
    def from_linear(cls, linear, exact=None):
        if linear.bias is not None:
            raise ValueError("ShiftLinear: the mfx shift expert has no bias; got a Linear with one")
        return cls(linear.in_features, linear.out_features, linear.weight.detach(), exact)

    def _clamp_(self):
        with torch.no_grad():
            self.shift.clamp_(SHIFT_MIN, SHIFT_MAX)
            self.sign.clamp_(-1.0, 1.0)

    def weight(self):
        """sign * 2^shift with straight-through rounding: signed powers of
        two 2^-14..1, or zero."""
        shift = ste_round(self.shift.clamp(SHIFT_MIN, SHIFT_MAX))
        sign = ste_round(self.sign.clamp(-1.0, 1.0))
        return sign * torch.exp2(shift)

    def shift_sign(self):
        """(S, G) of mfx's shift_linear: int64 S = -round(shift) in 0..14,
        G = round(sign) in {-1, 0, 1} (G = 0 gives S = 0)."""
        with torch.no_grad():
            g = torch.round(self.sign.clamp(-1.0, 1.0)).long()
            s = -torch.round(self.shift.clamp(SHIFT_MIN, SHIFT_MAX)).long()
            return torch.where(g == 0, torch.zeros_like(s), s), g

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"ShiftLinear: input [..., {x.shape[-1]}]; expected "
                             f"[..., {self.in_features}]")
        exact = (not self.training) if self.exact is None else self.exact
        if exact:
            return self.forward_q16(x) if self.lanes16 is None else self.forward_lanes16(x)
        if self.training:
            self._clamp_()
        return torch.nn.functional.linear(q16_round(x), self.weight().to(x.dtype))

    def forward_q16(self, x):
        """The integer path of mfx's shift_linear (no gradient): Q16.16 x,
        sum_k G[n,k] (x_k >> S[n,k]) wrapping in 32 bits, back to float32."""
        s, g = self.shift_sign()
        rows = x.detach().reshape(-1, self.in_features)
        xq = torch.round(rows.double() * Q16_SCALE).clamp(-2.0 ** 31, 2.0 ** 31 - 1).long()
        chunk = max(1, (1 << 22) // max(1, self.in_features * self.out_features))
        pieces = []
        for start in range(0, xq.shape[0], chunk):
            part = xq[start:start + chunk, None, :] >> s[None]  # arithmetic shift
            acc = (part * g[None]).sum(-1)
            acc = torch.remainder(acc + 2 ** 31, 2 ** 32) - 2 ** 31  # wrap to int32
            pieces.append((acc.double() / Q16_SCALE).float())
        out = torch.cat(pieces) if pieces else xq.new_zeros((0, self.out_features)).float()
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def forward_lanes16(self, x):
        """The integer path of mfx's shift_linear16 (no gradient): x in i16
        with F = self.lanes16 fraction bits, rounded and clamped to
        -8192..8191, the exact sum of G[n,k] (x_k >> S[n,k]), back to float32."""
        s, g = self.shift_sign()
        scale = 2.0 ** int(self.lanes16)
        rows = x.detach().reshape(-1, self.in_features)
        xq = torch.round(rows.double() * scale).clamp(-8192, 8191).long()
        chunk = max(1, (1 << 22) // max(1, self.in_features * self.out_features))
        pieces = [((xq[i:i + chunk, None, :] >> s[None]) * g[None]).sum(-1).double() / scale
                  for i in range(0, xq.shape[0], chunk)]
        out = torch.cat(pieces).float() if pieces else xq.new_zeros((0, self.out_features)).float()
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class MultExpert(nn.Module):
    """linear -> GELU -> linear in float, no biases (w1 [H, D], w2 [D, H])."""

    kind = "mult"

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.fc2(gelu(self.fc1(x)))

    def weights(self):
        return self.fc1.weight.detach(), self.fc2.weight.detach()


class ShiftExpert(nn.Module):
    """The same through ShiftLinear: Q16.16 activations, power-of-two weights."""

    kind = "shift"

    def __init__(self, dim, hidden, w1=None, w2=None):
        super().__init__()
        self.fc1 = ShiftLinear(dim, hidden, w1)
        self.fc2 = ShiftLinear(hidden, dim, w2)

    def forward(self, x):
        return self.fc2(gelu(self.fc1(x)))

    def weights(self):
        """The exact floats sign * 2^shift of both layers."""
        with torch.no_grad():
            return self.fc1.weight().detach(), self.fc2.weight().detach()


class Shift16Expert(ShiftExpert):
    """The same on shift_linear16's 16-bit lanes (mfx's shift16 expert): in
    eval mode both layers run forward_lanes16 with 10 fraction bits, so the
    expert is XQ = q10(x), H = the exact sum, HQ = q10(gelu(H 2^-10)),
    y = sum 2^-10 with q10(v) = round(v 2^10) (ties to even) clamped to
    -8192..8191: mfx's arithmetic (docs/moe_layer.md), GELU's erf aside."""

    kind = "shift16"

    def __init__(self, dim, hidden, w1=None, w2=None):
        super().__init__(dim, hidden, w1, w2)
        self.fc1.lanes16 = self.fc2.lanes16 = 10


def _alpha_of(latency, kinds, null_alpha):
    """alpha [E] (mean 1 over the real experts) from None (all 1), a
    sequence of per-expert latencies (one per expert, or one per non-null
    expert) or a latency table dict of mfx.load_latency (its experts
    matched to the layer's non-null experts by name, in order)."""
    real = [i for i, kind in enumerate(kinds) if kind != "null"]
    if latency is None:
        values = np.ones(len(real))
    elif isinstance(latency, dict):
        names = list(latency.get("names", []))
        want = [kinds[i] for i in real]
        if names != want:
            raise ValueError(f"MoE: the latency table's experts {names} are not the layer's "
                             f"non-null experts {want} (measure them with mfx experts "
                             f"--experts {','.join(want)})")
        values = np.asarray(latency["alpha"], dtype=np.float64)
    else:
        values = np.asarray(latency.detach().cpu() if isinstance(latency, torch.Tensor)
                            else latency, dtype=np.float64).reshape(-1)
        if values.size == len(kinds) and len(kinds) != len(real):
            values = values[real]
        if values.size != len(real):
            raise ValueError(f"MoE: {values.size} latencies for {len(real)} non-null experts "
                             f"(of {len(kinds)})")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"MoE: latencies {values.tolist()}; expected finite positive values")
    values = values / values.mean()
    alpha = np.empty(len(kinds))
    alpha[real] = values
    alpha[[i for i in range(len(kinds)) if i not in real]] = (
        values.min() if null_alpha is None else float(null_alpha))
    return alpha


class MoE(nn.Module):
    """The mfx MoE layer for training.

    MoE(dim, hidden, experts=("mult", "shift"), k=1, latency=None,
        loss="latency", load="smooth", noisy=True, null_alpha=None)
    experts: kinds, "mult", "shift", "shift16" or "null" (a string "mult,shift" too).
    latency: per-expert latencies or the dict of mfx.load_latency; alpha =
        latency / mean (None: all equal, a plain balance loss).
    loss: "latency" (ShiftAddViT) or "switch"; load: "smooth" (the noisy
        gate's smooth load, with a gradient) or "hard" (top-k counts).
    noisy: the noisy top-k gate in training (eval routes by the clean
        logits, as the mfx layer does).
    null_alpha: a null expert's alpha (default: the smallest real one).

    forward(x [..., D]) -> y [..., D]; in training mode it also sets
    self.aux_loss (the router loss of this batch) and self.last_counts
    (tokens per expert, a float tensor [E])."""

    def __init__(self, dim, hidden, experts=("mult", "shift"), k=1, latency=None,
                 loss="latency", load="smooth", noisy=True, null_alpha=None):
        super().__init__()
        kinds = tuple(experts.split(",")) if isinstance(experts, str) else tuple(experts)
        bad = [kind for kind in kinds if kind not in EXPERT_KINDS]
        if bad or not 1 <= len(kinds) <= 64:
            raise ValueError(f"MoE: experts {list(kinds)}; expected 1..64 of {EXPERT_KINDS}")
        if not 1 <= int(k) <= len(kinds):
            raise ValueError(f"MoE: k={k}; expected 1 <= k <= E={len(kinds)}")
        if loss not in ("latency", "switch"):
            raise ValueError(f"MoE: loss {loss!r}; expected 'latency' or 'switch'")
        if loss == "latency" and len(kinds) < 2:
            raise ValueError("MoE: the latency loss needs E >= 2 experts")
        if load not in ("smooth", "hard"):
            raise ValueError(f"MoE: load {load!r}; expected 'smooth' or 'hard'")
        self.dim, self.hidden, self.k, self.kinds = int(dim), int(hidden), int(k), kinds
        self.loss_kind, self.load, self.noisy, self.null_alpha = loss, load, bool(noisy), null_alpha
        self.router = nn.Linear(dim, len(kinds), bias=False)
        self.noise = nn.Linear(dim, len(kinds), bias=False)
        nn.init.zeros_(self.noise.weight)  # Shazeer et al.: noise weights start at zero
        self.experts = nn.ModuleList(
            MultExpert(dim, hidden) if kind == "mult" else
            ShiftExpert(dim, hidden) if kind == "shift" else
            Shift16Expert(dim, hidden) if kind == "shift16" else nn.Identity()
            for kind in kinds)
        self.register_buffer("alpha", torch.tensor(_alpha_of(latency, kinds, null_alpha),
                                                   dtype=torch.float32))
        self.selection_bias = None  # [E] tensor: DeepSeek-V3's bias, selection only
        self.aux_loss = None
        self.last_counts = None

    def set_latency(self, latency):
        """New alpha from latencies or a latency table (see the class)."""
        self.alpha.copy_(torch.tensor(_alpha_of(latency, self.kinds, self.null_alpha)))

    def route(self, x2):
        """(logits z, chosen [T, k], gates [T, k], noise logits, noise) of
        tokens x2 [T, D]; noise parts are None outside noisy training."""
        z = self.router(x2)
        r = eps = None
        h = z
        if self.training and self.noisy:
            r = self.noise(x2)
            eps = torch.randn_like(z)
            h = z + eps * noise_scale(r)
        score = torch.softmax(h.detach().float(), dim=1)
        if self.selection_bias is not None:
            score = score + self.selection_bias.to(score)
        chosen = topk_indices(score, self.k)
        gates = torch.softmax(h.gather(1, chosen), dim=1)
        return z, chosen, gates, r, eps

    def forward(self, x):
        if x.shape[-1] != self.dim:
            raise ValueError(f"MoE: input [..., {x.shape[-1]}]; expected [..., {self.dim}]")
        x2 = x.reshape(-1, self.dim)
        z, chosen, gates, r, eps = self.route(x2)
        y = torch.zeros_like(x2)
        for e, expert in enumerate(self.experts):
            if self.kinds[e] == "null":
                continue
            rows, slots = (chosen == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            out = expert(x2[rows])
            y = y.index_add(0, rows, gates[rows, slots].unsqueeze(1).to(out.dtype) * out)
        self.last_counts = torch.bincount(chosen.reshape(-1), minlength=len(self.kinds)).float()
        if self.training:
            latency = self.alpha.to(z.dtype) if self.loss_kind == "latency" else None
            self.aux_loss = router_loss(z, self.loss_kind, k=self.k, latency=latency,
                                        noise_logits=r, noise=eps,
                                        load=self.load if r is not None else "smooth")
        return y.reshape(x.shape)

    def export_tensors(self):
        """{name: float32 numpy array} and the metadata of export()."""
        tensors = {"router.weight": self.router.weight.detach().float().cpu().numpy()}
        if self.selection_bias is not None:
            tensors["router.bias"] = self.selection_bias.detach().float().cpu().numpy()
        for e, expert in enumerate(self.experts):
            if self.kinds[e] == "null":
                continue
            w1, w2 = expert.weights()
            tensors[f"experts.{e}.w1"] = w1.float().cpu().numpy()
            tensors[f"experts.{e}.w2"] = w2.float().cpu().numpy()
        metadata = {"format": FORMAT, "dim": str(self.dim), "hidden": str(self.hidden),
                    "k": str(self.k), "experts": ",".join(self.kinds)}
        return tensors, metadata

    def export(self, path):
        """Writes the weights file of the mfx runtime layer: safetensors with
        router.weight F32 [E, D], router.bias F32 [E] when a selection bias
        is set, experts.<e>.w1 F32 [H, D] and experts.<e>.w2 F32 [D, H] for
        each non-null expert e (its index in the layer; a shift expert's
        weights as the exact floats sign * 2^shift) and __metadata__ format
        "mfx-moe-1", dim, hidden, k, experts (decimal strings, kinds joined
        by commas)."""
        tensors, metadata = self.export_tensors()
        safetensors_io.write(path, tensors, metadata)
        return path

    def extra_repr(self):
        return (f"dim={self.dim}, hidden={self.hidden}, experts={','.join(self.kinds)}, "
                f"k={self.k}, loss={self.loss_kind}, load={self.load}, noisy={self.noisy}")


def mfx_binary():
    """The mfx command: $MFX_BIN/mfx, ../../build/bin/mfx next to this
    package, or mfx on the PATH; None when there is none."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.environ.get("MFX_BIN"), os.path.join(here, "..", "..", "build", "bin")):
        if folder and os.access(os.path.join(folder, "mfx"), os.X_OK):
            return os.path.normpath(os.path.join(folder, "mfx"))
    return shutil.which("mfx")


def run_on_mfx(moe, x, workdir, chunk=128, mfx=None):
    """Runs moe's eval forward on mfx kernels: exports the weights, builds
    the layer with `mfx compile-layer` (buckets 32 and `chunk` tokens per
    expert, CPU) and runs mfx.MoELayer on x [T, D] in chunks of `chunk`
    tokens. Returns y [T, D] (float32 numpy). Raises RuntimeError when this
    tree has no runtime layer (mfx.MoELayer, issue 12 part 1) or no mfx."""
    import mfx as mfx_py

    if not hasattr(mfx_py, "MoELayer"):
        raise RuntimeError("mfx.MoELayer is not in this tree: the runtime MoE layer (issue 12, "
                           "part 1: mfx compile-layer, the weights reader) is needed to run the "
                           "exported layer on mfx kernels")
    binary = mfx or mfx_binary()
    if binary is None:
        raise RuntimeError("no mfx binary (build it, or set MFX_BIN to the folder holding it)")
    weights = moe.export(os.path.join(workdir, "moe.safetensors"))
    artifact = os.path.join(workdir, "moe.mfxa")
    buckets = sorted({min(32, chunk), chunk})
    cmd = [binary, "compile-layer", "--dim", str(moe.dim), "--hidden", str(moe.hidden),
           "--experts", ",".join(moe.kinds), "--k", str(moe.k),
           "--buckets", ",".join(map(str, buckets)), "--target", "cpu", "-o", artifact]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    layer = mfx_py.MoELayer(artifact, weights)
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    return np.concatenate([np.asarray(layer.forward(x[i:i + chunk]), dtype=np.float32)
                           for i in range(0, x.shape[0], chunk)])


# The largest |mfx layer - PyTorch eval forward| accepted: a Q16.16 step is
# 2^-16 = 1.5e-5; GELU (erff against torch.erf) may differ in the last bit,
# which can move one hidden activation of a shift expert by one Q16.16 step
# and an output by a few; the mult expert's float32 sums differ in order.
# Either way far below 1e-4, while a wrong weight, gate or route is >> 1e-3.
MFX_TOLERANCE = 1e-4


def shares(counts):
    """Token shares [E] (numpy) of counts."""
    c = np.asarray(counts.detach().cpu() if isinstance(counts, torch.Tensor) else counts,
                   dtype=np.float64)
    return c / max(c.sum(), 1.0)


__all__ = ["MoE", "MultExpert", "ShiftExpert", "Shift16Expert", "ShiftLinear", "gelu", "q16_round", "ste_round",
           "shares"]
