"""The router losses as torch.autograd.Function subclasses (needs PyTorch).

forward runs the C code on a detached float32 CPU copy of the logits
(floating point, [..., E], any device that holds data) and returns the loss
in the logits' dtype on their device; backward returns the saved dL/dlogits
times grad_output. The gradient is not itself differentiable (no double
backward)."""

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import router as _router


def _forward(ctx, logits, kind, k, latency, counts, tokens):
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits are a {type(logits).__name__}; expected a torch.Tensor [..., E]")
    if not logits.is_floating_point():
        raise TypeError(f"logits are {logits.dtype}; expected a floating-point dtype")
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
    """SwitchLoss.apply(logits, k=1, counts=None, tokens=None)."""

    @staticmethod
    def forward(ctx, logits, k=1, counts=None, tokens=None):
        return _forward(ctx, logits, "switch", k, None, _numpy_or_none(counts), tokens)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _backward(ctx, grad_output), None, None, None


class LatencyLoss(torch.autograd.Function):
    """LatencyLoss.apply(logits, latency, k=1, counts=None, tokens=None);
    latency: per-expert latencies (any positive unit) or alpha."""

    @staticmethod
    def forward(ctx, logits, latency, k=1, counts=None, tokens=None):
        return _forward(ctx, logits, "latency", k, _numpy_or_none(latency),
                        _numpy_or_none(counts), tokens)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _backward(ctx, grad_output), None, None, None, None


class ZLoss(torch.autograd.Function):
    """ZLoss.apply(logits): mean over tokens of logsumexp(logits)^2."""

    @staticmethod
    def forward(ctx, logits):
        return _forward(ctx, logits, "zloss", 1, None, None, None)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _backward(ctx, grad_output)


def router_loss(logits, kind="switch", k=1, latency=None, counts=None, tokens=None):
    """Differentiable router loss of torch logits [..., E]; see
    mfx.router_loss for the arguments."""
    if kind == "switch":
        return SwitchLoss.apply(logits, k, counts, tokens)
    if kind == "latency":
        return LatencyLoss.apply(logits, latency, k, counts, tokens)
    if kind == "zloss":
        return ZLoss.apply(logits)
    raise ValueError(f"router loss '{kind}' is unknown; expected switch, latency or zloss")
