"""The router losses in PyTorch (needs PyTorch).

router_loss() computes the losses of include/mfx/router.h with torch
operations on the logits' own device and dtype (float16 and bfloat16 are
computed in float32), differentiated by torch's autograd: no copy to the
host, no device synchronisation. The C implementation (mfx.router_loss) is
the reference; the tests compare the two, gradients included.

SwitchLoss, LatencyLoss and ZLoss are the C implementation wrapped as
autograd Functions (a float32 CPU copy of the logits, once differentiable):
the reference in torch form, and a cross-check on any machine.

Modules for training (mfx.moe_torch): ShiftLinear (DeepShift-PS) and MoE
(the mfx layer with the noisy gate and the latency-aware loss; export()
writes the weights file of the mfx runtime layer).

Checks that need the values of a tensor (finite logits, global counts
summing to k * tokens) are made when the tensor is on the CPU, where they
cost no synchronisation; on a GPU a non-finite logit gives a NaN loss."""

import math

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import router as _router

LOSS_KINDS = _router.LOSS_KINDS


# ---- the C reference as autograd Functions ---------------------------------

def _check_tensor(logits):
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits are a {type(logits).__name__}; expected a torch.Tensor [..., E]")
    if not logits.is_floating_point():
        raise TypeError(f"logits are {logits.dtype}; expected a floating-point dtype")


def _forward(ctx, logits, kind, k, latency, counts, tokens):
    _check_tensor(logits)
    z = logits.detach().to(device="cpu", dtype=torch.float32).numpy()
    loss, grad = _router.router_loss(z, kind=kind, k=k, latency=latency,
                                     counts=counts, tokens=tokens)
    # kept on ctx: it is neither an input nor an output of the Function
    ctx.router_grad = torch.from_numpy(np.ascontiguousarray(grad)).to(
        device=logits.device, dtype=logits.dtype)
    return torch.tensor(loss, device=logits.device, dtype=logits.dtype)


def _backward(ctx, grad_output):
    return ctx.router_grad * grad_output


def _numpy_or_none(values):
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


class SwitchLoss(torch.autograd.Function):
    """SwitchLoss.apply(logits, k=1, counts=None, tokens=None): the C code."""

    @staticmethod
    def forward(ctx, logits, k=1, counts=None, tokens=None):
        return _forward(ctx, logits, "switch", k, None, _numpy_or_none(counts), tokens)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _backward(ctx, grad_output), None, None, None


class LatencyLoss(torch.autograd.Function):
    """LatencyLoss.apply(logits, latency, k=1, counts=None, tokens=None): the
    C code; latency: per-expert latencies (any positive unit) or alpha."""

    @staticmethod
    def forward(ctx, logits, latency, k=1, counts=None, tokens=None):
        return _forward(ctx, logits, "latency", k, _numpy_or_none(latency),
                        _numpy_or_none(counts), tokens)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _backward(ctx, grad_output), None, None, None, None


class ZLoss(torch.autograd.Function):
    """ZLoss.apply(logits): mean over tokens of logsumexp(logits)^2 (the C code)."""

    @staticmethod
    def forward(ctx, logits):
        return _forward(ctx, logits, "zloss", 1, None, None, None)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _backward(ctx, grad_output)


class NoisyLoss(torch.autograd.Function):
    """NoisyLoss.apply(logits, noise_logits, noise, kind="latency", k=1,
    latency=None, load="smooth"): the C code of the noisy gate's loss
    (mfx.noisy_router_loss) with gradients for the clean and noise logits."""

    @staticmethod
    def forward(ctx, logits, noise_logits, noise=None, kind="latency", k=1, latency=None,
                load="smooth"):
        _check_tensor(logits)
        _check_tensor(noise_logits)

        def host(t):
            return None if t is None else t.detach().to(device="cpu", dtype=torch.float32).numpy()

        loss, gz, gr = _router.noisy_router_loss(host(logits), host(noise_logits), host(noise),
                                                 kind=kind, k=k, latency=_numpy_or_none(latency),
                                                 load=load)
        ctx.grads = [torch.from_numpy(g).to(device=logits.device, dtype=logits.dtype)
                     for g in (gz, gr)]
        return torch.tensor(loss, device=logits.device, dtype=logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        gz, gr = ctx.grads
        return gz * grad_output, gr * grad_output, None, None, None, None, None


# ---- the losses in torch operations ----------------------------------------

def _work_dtype(logits):
    return logits.dtype if logits.dtype == torch.float64 else torch.float32


def _rows(logits):
    """Logits [..., E] as [T, E] in the working dtype (float32 or float64)."""
    _check_tensor(logits)
    if logits.dim() < 2:
        raise ValueError(f"logits have shape {tuple(logits.shape)}; expected [..., E] with at "
                         "least 2 dimensions")
    experts = logits.shape[-1]
    tokens = logits.numel() // experts if experts else 0
    if tokens < 1 or experts < 1:
        raise ValueError(f"logits have shape {tuple(logits.shape)}; expected T >= 1 tokens and "
                         "E >= 1 experts")
    z = logits.reshape(tokens, experts).to(_work_dtype(logits))
    if z.device.type == "cpu" and not bool(torch.isfinite(z).all()):
        bad = (~torch.isfinite(z)).nonzero()[0].tolist()
        raise ValueError(f"router loss: logit {bad} is {z[bad[0], bad[1]].item()}; expected "
                         "finite values")
    return z


def _check_k(k, experts):
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"router loss: k={k!r} must be an integer (1 <= k <= E)")
    if not 1 <= int(k) <= experts:
        raise ValueError(f"router loss: k={k}; expected 1 <= k <= E={experts}")
    return int(k)


def topk_indices(scores, k):
    """The k best columns of scores [T, E] per row, best first, ties broken by
    the lower index (as the C router does); torch.topk leaves ties open."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]


def expert_counts(logits, k=1):
    """Top-k assignment counts c [E] of logits [..., E] on their device, in
    the working dtype; no gradient."""
    z = _rows(logits).detach()
    k = _check_k(k, z.shape[1])
    chosen = topk_indices(z, k).reshape(-1)
    return torch.zeros(z.shape[1], dtype=z.dtype, device=z.device).index_add_(
        0, chosen, torch.ones_like(chosen, dtype=z.dtype))


def _alpha(latency, experts, like):
    """alpha = latency / mean(latency) as a tensor on like's device."""
    if latency is None:
        raise ValueError("router loss latency: needs latency (one positive value per expert)")
    if experts < 2:
        raise ValueError(f"router loss latency: E={experts}; the unbiased variance needs E >= 2")
    if not isinstance(latency, torch.Tensor):
        latency = torch.as_tensor(np.asarray(latency, dtype=np.float64))
    lat = latency.detach().to(dtype=like.dtype, device=like.device).reshape(-1)
    if lat.numel() != experts:
        raise ValueError(f"router loss latency: latency has {lat.numel()} entries; "
                         f"expected E={experts}")
    alpha = lat / lat.mean()
    if alpha.device.type == "cpu" and not (bool(torch.isfinite(lat).all()) and bool((lat > 0).all())
                                           and bool((alpha <= _router.ALPHA_MAX).all())):
        raise ValueError(f"router loss latency: latency {lat.tolist()}; expected finite positive "
                         f"values, none more than {_router.ALPHA_MAX:g} times their mean")
    return alpha


def _global(counts, tokens, experts, k, like):
    """(counts [E] tensor, tokens) of a global batch, or (None, None)."""
    if counts is None and tokens is None:
        return None, None
    if counts is None or tokens is None:
        raise ValueError("global counts need both counts and tokens")
    c = torch.as_tensor(counts).detach().to(dtype=like.dtype, device=like.device).reshape(-1)
    if c.numel() != experts:
        raise ValueError(f"router loss: global counts have {c.numel()} entries; expected "
                         f"E={experts}")
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().to(dtype=like.dtype, device=like.device)
    if c.device.type == "cpu":
        t = float(tokens)
        total = float(c.sum())
        if not math.isfinite(t) or t <= 0:
            raise ValueError(f"router loss: global tokens={t}; expected finite and > 0")
        if not bool(torch.isfinite(c).all()) or bool((c < 0).any()):
            raise ValueError(f"router loss: global counts {c.tolist()}; expected finite, >= 0")
        if abs(total - k * t) > 1e-9 * k * t + 1e-6:
            raise ValueError(f"router loss: global counts sum to {total:g}; expected k*tokens "
                             f"= {k}*{t:g} = {k * t:g}")
    return c, tokens


def cv2(x):
    """CV^2(x) = var(x)/mean(x)^2 with the unbiased variance (x [E], E >= 2)."""
    return x.var() / x.mean() ** 2


def _process_group(distributed, group):
    """Whether to sum the counts over a process group: distributed None
    means "when torch.distributed has a process group initialised"."""
    available = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed is None:
        return available
    if distributed and not available:
        raise ValueError("router loss: distributed=True but torch.distributed has no process "
                         "group initialised (call torch.distributed.init_process_group first)")
    return bool(distributed)


def all_reduce_stats(stats, tokens, group=None):
    """Global-batch statistics: stats [E] (counts, or a smooth load) and the
    token count summed over the ranks of `group` with ONE all_reduce of an
    [E+1] buffer on stats' device. Returns (global stats, global tokens),
    both without gradient."""
    buf = torch.cat([stats.detach().reshape(-1),
                     torch.as_tensor(tokens, dtype=stats.dtype, device=stats.device).reshape(1)])
    torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.SUM, group=group)
    return buf[:-1], buf[-1]


NOISE_MIN = _router.NOISE_MIN
LOAD_KINDS = _router.LOAD_KINDS


def noise_scale(noise_logits):
    """sigma = softplus(r) + NOISE_MIN: the noisy gate's noise scale."""
    return torch.nn.functional.softplus(noise_logits) + NOISE_MIN


def noisy_logits(logits, noise_logits, noise=None):
    """h = z + eps * sigma (Shazeer et al. 2017); noise None: h = z."""
    if noise is None:
        return logits
    return logits + noise * noise_scale(noise_logits)


def _noisy_rows(logits, noise_logits, noise):
    z = _rows(logits)
    _check_tensor(noise_logits)
    if noise_logits.shape != logits.shape or (noise is not None and noise.shape != logits.shape):
        raise ValueError(f"noise logits {tuple(noise_logits.shape)} and noise "
                         f"{None if noise is None else tuple(noise.shape)} must have the "
                         f"logits' shape {tuple(logits.shape)}")
    r = _rows(noise_logits)
    eps = None if noise is None else _rows(noise)
    return z, r, eps


def _noisy_load(z, r, eps, k, load):
    """load [E] of rows z, r, eps (see noisy_load)."""
    tokens, experts = z.shape
    h = noisy_logits(z, r, eps)
    if load == "hard":
        chosen = topk_indices(h.detach(), k).reshape(-1)
        return torch.zeros(experts, dtype=z.dtype, device=z.device).index_add_(
            0, chosen, torch.ones_like(chosen, dtype=z.dtype))
    if k == experts:
        return z.new_full((experts,), float(tokens)) + 0.0 * z.sum(0)
    order = topk_indices(h.detach(), k + 1)
    top = h.gather(1, order)  # differentiable: the thresholds move with h
    in_topk = torch.zeros_like(z, dtype=torch.bool).scatter_(1, order[:, :k], True)
    threshold = torch.where(in_topk, top[:, k:k + 1], top[:, k - 1:k])
    u = (z - threshold) / noise_scale(r)
    return (0.5 * torch.erfc(-u / math.sqrt(2.0))).sum(0)


def noisy_load(logits, noise_logits, noise=None, k=1, load="smooth"):
    """The noisy gate's load [E] in torch operations (mfx.noisy_load is the
    C reference): "smooth", sum over tokens of P(expert in the token's top
    k) = Phi((z_i - k-th largest h_j, j != i) / sigma_i), differentiable in
    the clean and the noise logits; or "hard", the top-k counts of h."""
    if load not in LOAD_KINDS:
        raise ValueError(f"router load '{load}' is unknown; expected hard or smooth")
    z, r, eps = _noisy_rows(logits, noise_logits, noise)
    return _noisy_load(z, r, eps, _check_k(k, z.shape[1]), load)


def _loss(z, kind, k, latency, counts, tokens, reduce=False, group=None):
    tokens_here, experts = z.shape
    if kind == "zloss":
        if counts is not None or tokens is not None:
            raise ValueError("router loss zloss: global counts given but zloss uses no counts")
        return (torch.logsumexp(z, dim=1) ** 2).mean()
    k = _check_k(k, experts)
    alpha = _alpha(latency, experts, z) if kind == "latency" else None
    c, count_tokens = _global(counts, tokens, experts, k, z)
    if c is None:
        c, count_tokens = expert_counts(z, k), tokens_here
        if reduce:
            c, count_tokens = all_reduce_stats(c, count_tokens, group)
    p = torch.softmax(z, dim=1)
    if kind == "switch":
        return experts * (c / (k * count_tokens) * p.mean(dim=0)).sum()
    return cv2(alpha * p.sum(dim=0)) + cv2(alpha * c)


def _noisy_loss(logits, noise_logits, noise, kind, k, latency, load, reduce, group):
    if kind == "zloss":
        raise ValueError("router loss zloss: the noisy gate applies to the switch and latency "
                         "losses only (zloss has no load term)")
    if load not in LOAD_KINDS:
        raise ValueError(f"router load '{load}' is unknown; expected hard or smooth")
    z, r, eps = _noisy_rows(logits, noise_logits, noise)
    tokens, experts = z.shape
    k = _check_k(k, experts)
    alpha = _alpha(latency, experts, z) if kind == "latency" else None
    importance = torch.softmax(z, dim=1).sum(0)
    lo = _noisy_load(z, r, eps, k, load)
    count_tokens = tokens
    if reduce:
        # the other ranks' loads enter as constants: each rank differentiates its own share
        total, count_tokens = all_reduce_stats(lo, tokens, group)
        lo = lo + (total - lo.detach())
    if kind == "switch":
        return experts * (lo / (k * count_tokens) * importance / tokens).sum()
    return cv2(alpha * importance) + cv2(alpha * lo)


def router_loss(logits, kind="switch", k=1, latency=None, counts=None, tokens=None,
                distributed=None, group=None, noise_logits=None, noise=None, load="smooth"):
    """Differentiable router loss of torch logits [..., E] computed with
    torch operations on their device; see mfx.router_loss for the
    arguments (counts may be a tensor on any device). Returns a 0-d tensor
    in the logits' dtype.

    Global-batch statistics: when torch.distributed has a process group
    initialised (or distributed=True), the switch and latency losses sum
    this step's expert counts and token count over the ranks of `group`
    with one all_reduce before the loss (the probabilities stay local, as in
    mfx.RouterStats). distributed=False keeps them local; counts/tokens
    given by the caller are taken as already global.

    The noisy top-k gate (switch and latency): with noise_logits r (and
    standard normal samples noise, None for zero) the counts are replaced by
    noisy_load(logits, r, noise, k, load); load="smooth" (default) gives the
    load term a gradient, "hard" is the top-k counts of the noisy logits.
    Distributed, the load is summed over the ranks the same way."""
    if kind not in LOSS_KINDS:
        raise ValueError(f"router loss '{kind}' is unknown; expected switch, latency or zloss")
    if kind != "latency" and latency is not None:
        raise ValueError(f"router loss {kind}: latency is given but only the latency loss uses it")
    reduce = kind != "zloss" and counts is None and _process_group(distributed, group)
    if noise_logits is not None:
        if counts is not None or tokens is not None:
            raise ValueError("router loss: give noise_logits or global counts, not both (the "
                             "noisy gate's load replaces the counts)")
        return _noisy_loss(logits, noise_logits, noise, kind, k, latency, load, reduce,
                           group).to(logits.dtype)
    if noise is not None:
        raise ValueError("router loss: noise samples need noise_logits")
    z = _rows(logits)
    return _loss(z, kind, k, latency, counts, tokens, reduce, group).to(logits.dtype)


_MODULES = ("MoE", "MultExpert", "ShiftExpert", "Shift16Expert", "ShiftLinear")


def __getattr__(name):
    """mfx.torch.MoE, ShiftLinear, ...: from mfx.moe_torch, which builds on
    this module (imported on first use, so neither import order is circular)."""
    if name in _MODULES:
        from . import moe_torch
        return getattr(moe_torch, name)
    raise AttributeError(f"module 'mfx.torch' has no attribute {name!r}")
