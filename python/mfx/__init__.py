"""mfx: Python face of the mfx runtime (libmfxrt.so), loaded with ctypes.

The library is looked up in $MFX_LIB_DIR, then ../../build/lib relative to
this package, then by the system loader; ImportError names each place tried.
Arrays go in and out as numpy arrays; errors from the C library raise
ValueError (bad input) carrying its message.

Router losses and balancing (include/mfx/router.h):
    router_loss(logits, kind="switch"|"latency"|"zloss", k=1, latency=None,
                counts=None, tokens=None) -> (loss, grad)
    route(logits, bias, k) -> (experts [T,k], gates [T,k])
    update_bias(bias, counts, u) -> new bias
    fit_latency(ns, secs) -> (a, b, r2)
    latency_alpha(latency), expert_counts(logits, k), RouterStats(experts, k)
    noisy_logits(logits, noise_logits, noise=None) -> h (noisy top-k gate)
    noisy_load(logits, noise_logits, noise=None, k=1, load="smooth"|"hard") -> [E]
    noisy_router_loss(logits, noise_logits, noise=None, kind="latency", k=1,
                      latency=None, load="smooth") -> (loss, grad, grad_noise)
With PyTorch installed, mfx.torch offers the losses as autograd Functions.

Expert latency tables (include/mfx/moe.h, saved by `mfx experts`):
    load_latency(path=None, device=None) -> dict with "alpha", "latency", ...
Artifacts (include/mfx/artifact.h, written by `mfx compile`):
    Module(path).run(name_or_index, **inputs) -> {output name: array}"""

from ._lib import last_error
from .latency import host_key, load_latency
from .module import Module
from .moe_layer import MoELayer, save_moe_weights
from .router import (
    LOAD_KINDS,
    LOSS_KINDS,
    RouterStats,
    expert_counts,
    fit_latency,
    latency_alpha,
    noisy_load,
    noisy_logits,
    noisy_router_loss,
    route,
    router_loss,
    update_bias,
)

__all__ = [
    "LOAD_KINDS",
    "LOSS_KINDS",
    "Module",
    "MoELayer",
    "save_moe_weights",
    "host_key",
    "load_latency",
    "RouterStats",
    "expert_counts",
    "fit_latency",
    "last_error",
    "latency_alpha",
    "noisy_load",
    "noisy_logits",
    "noisy_router_loss",
    "route",
    "router_loss",
    "update_bias",
]
