"""Router losses and balancing schemes of a mixture-of-experts layer, on
numpy arrays, computed by the C runtime (include/mfx/router.h).

Logits are [..., E] (any leading shape, flattened to tokens); the losses
return (loss, dL/dlogits) with the gradient in the shape of the logits."""

import ctypes

import numpy as np

from ._lib import c_int_arg, check, declare

LOSS_KINDS = ("switch", "latency", "zloss")
ALPHA_MAX = 1e6  # MFX_ROUTER_ALPHA_MAX
LOAD_KINDS = ("hard", "smooth")
NOISE_MIN = 1e-2  # MFX_ROUTER_NOISE_MIN

_c_double_p = ctypes.POINTER(ctypes.c_double)
_c_float_p = ctypes.POINTER(ctypes.c_float)
_c_int32_p = ctypes.POINTER(ctypes.c_int32)


class _Counts(ctypes.Structure):
    """mfx_router_counts."""

    _fields_ = [
        ("counts", _c_double_p),
        ("experts", ctypes.c_int),
        ("tokens", ctypes.c_double),
    ]


_ALLREDUCE = ctypes.CFUNCTYPE(ctypes.c_int, _c_double_p, ctypes.c_int, ctypes.c_void_p)

_loss_from_name = declare(
    "mfx_router_loss_from_name", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)
)
_loss = declare(
    "mfx_router_loss", ctypes.c_int,
    ctypes.c_int, _c_float_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int,
    _c_double_p, ctypes.c_int, ctypes.POINTER(_Counts), _c_double_p, _c_float_p,
)
_expert_counts = declare(
    "mfx_router_expert_counts", ctypes.c_int,
    _c_float_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int, _c_double_p,
)
_route = declare(
    "mfx_router_route", ctypes.c_int,
    _c_float_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int, _c_float_p,
    _c_int32_p, _c_float_p, _c_double_p,
)
_update_bias = declare(
    "mfx_router_update_bias", ctypes.c_int,
    _c_float_p, _c_double_p, ctypes.c_int, ctypes.c_double,
)
_latency_fit = declare(
    "mfx_router_latency_fit", ctypes.c_int,
    _c_double_p, _c_double_p, ctypes.c_int, _c_double_p, _c_double_p, _c_double_p,
)
_latency_alpha = declare(
    "mfx_router_latency_alpha", ctypes.c_int, _c_double_p, ctypes.c_int, _c_double_p
)
_load_from_name = declare(
    "mfx_router_load_from_name", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)
)
_noisy_logits = declare(
    "mfx_router_noisy_logits", ctypes.c_int,
    _c_float_p, _c_float_p, _c_float_p, ctypes.c_int64, ctypes.c_int, _c_float_p,
)
_noisy_load = declare(
    "mfx_router_noisy_load", ctypes.c_int,
    ctypes.c_int, _c_float_p, _c_float_p, _c_float_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int,
    _c_double_p,
)
_noisy_loss = declare(
    "mfx_router_noisy_loss", ctypes.c_int,
    ctypes.c_int, ctypes.c_int, _c_float_p, _c_float_p, _c_float_p, ctypes.c_int64,
    ctypes.c_int, ctypes.c_int, _c_double_p, ctypes.c_int, _c_double_p, _c_float_p, _c_float_p,
)
_stats_create = declare(
    "mfx_router_stats_create", ctypes.c_int,
    ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
)
_stats_destroy = declare("mfx_router_stats_destroy", None, ctypes.c_void_p)
_stats_add = declare(
    "mfx_router_stats_add", ctypes.c_int,
    ctypes.c_void_p, _c_float_p, ctypes.c_int64, ctypes.c_int,
)
_stats_add_counts = declare(
    "mfx_router_stats_add_counts", ctypes.c_int,
    ctypes.c_void_p, _c_double_p, ctypes.c_int, ctypes.c_double,
)
_stats_allreduce = declare(
    "mfx_router_stats_allreduce", ctypes.c_int, ctypes.c_void_p, _ALLREDUCE, ctypes.c_void_p
)
_stats_reset = declare("mfx_router_stats_reset", None, ctypes.c_void_p)
_stats_counts = declare("mfx_router_stats_counts", _Counts, ctypes.c_void_p)


def _ptr(array, ctype):
    return array.ctypes.data_as(ctypes.POINTER(ctype))


def _logits_2d(logits):
    """Logits as a contiguous float32 [T, E] array."""
    z = np.ascontiguousarray(logits, dtype=np.float32)
    if z.ndim < 2:
        raise ValueError(f"logits have shape {z.shape}; expected [..., E] with at least 2 dimensions")
    return z.reshape(int(np.prod(z.shape[:-1])), z.shape[-1])


def _vector(values, name, dtype=np.float64):
    v = np.ascontiguousarray(values, dtype=dtype)
    if v.ndim != 1:
        raise ValueError(f"{name} has shape {v.shape}; expected a 1-D per-expert array")
    return v


def _kind_code(kind):
    if not isinstance(kind, str):
        raise ValueError(f"router loss kind {kind!r}; expected one of {', '.join(LOSS_KINDS)}")
    code = ctypes.c_int()
    check(_loss_from_name(kind.encode("utf-8"), ctypes.byref(code)))
    return code.value


def latency_alpha(latency):
    """alpha_i = latency_i / mean_j latency_j (latencies finite, > 0)."""
    lat = _vector(latency, "latency")
    alpha = np.empty_like(lat)
    check(_latency_alpha(_ptr(lat, ctypes.c_double), lat.size, _ptr(alpha, ctypes.c_double)))
    return alpha


def _global_counts(counts, tokens):
    if counts is None and tokens is None:
        return None, None
    if counts is None or tokens is None:
        raise ValueError("global counts need both counts and tokens (e.g. RouterStats.counts and .tokens)")
    c = _vector(counts, "counts")
    return c, _Counts(_ptr(c, ctypes.c_double), c.size, float(tokens))


def router_loss(logits, kind="switch", k=1, latency=None, counts=None, tokens=None):
    """The router loss `kind` of logits [..., E] and its gradient.

    kind: "switch" (E * sum_i c_i/(kT) P_i, 1 at perfect balance),
          "latency" (CV^2(alpha I) + CV^2(alpha c), ShiftAddViT) or
          "zloss" (mean_t logsumexp(z_t)^2).
    k: top-k of the switch and latency losses (1 <= k <= E).
    latency: per-expert latencies (seconds, or any positive unit), required by
          "latency" only. They become alpha = latency / mean(latency); the loss
          is invariant to scaling, so passing alpha itself gives the same loss.
    counts, tokens: global-batch counts [E] and their token count (see
          RouterStats) used instead of the local counts; P and I stay local.
    Returns (loss: float, grad: float32 array shaped like logits).
    Raises ValueError with the C library's message on bad input."""
    code = _kind_code(kind)
    # k reaches C as an int: a bool, a fraction or a value past int32 would
    # silently become another k (2**32+1 -> 1).
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"router_loss: k={k!r} must be an integer (1 <= k <= E)")
    if not -2**31 <= int(k) <= 2**31 - 1:  # the C library checks 1 <= k <= E
        raise ValueError(f"router_loss: k={k} is out of range (1 <= k <= E)")
    shape = np.shape(logits)
    z = _logits_2d(logits)
    alpha = None if latency is None else latency_alpha(latency)
    counts_array, global_counts = _global_counts(counts, tokens)  # keeps the array alive
    loss = ctypes.c_double()
    grad = np.empty(z.shape, dtype=np.float32)
    check(_loss(
        code, _ptr(z, ctypes.c_float), z.shape[0], z.shape[1], c_int_arg(k, "k"),
        None if alpha is None else _ptr(alpha, ctypes.c_double),
        0 if alpha is None else alpha.size,
        None if global_counts is None else ctypes.byref(global_counts),
        ctypes.byref(loss), _ptr(grad, ctypes.c_float),
    ))
    return loss.value, grad.reshape(shape)


def _load_code(load):
    if not isinstance(load, str):
        raise ValueError(f"router load {load!r}; expected one of {', '.join(LOAD_KINDS)}")
    code = ctypes.c_int()
    check(_load_from_name(load.encode("utf-8"), ctypes.byref(code)))
    return code.value


def _noisy_inputs(logits, noise_logits, noise):
    """(z, r, eps or None) as float32 [T, E] arrays of one shape."""
    z = _logits_2d(logits)
    r = _logits_2d(noise_logits)
    if np.shape(noise_logits) != np.shape(logits):
        raise ValueError(f"noise logits have shape {np.shape(noise_logits)}; expected the "
                         f"logits' shape {np.shape(logits)}")
    if noise is None:
        return z, r, None
    if np.shape(noise) != np.shape(logits):
        raise ValueError(f"noise samples have shape {np.shape(noise)}; expected the logits' "
                         f"shape {np.shape(logits)}")
    return z, r, _logits_2d(noise)


def _opt_ptr(array):
    return None if array is None else _ptr(array, ctypes.c_float)


def noisy_logits(logits, noise_logits, noise=None):
    """The noisy top-k gate's logits h = z + eps * (softplus(r) + NOISE_MIN)
    (Shazeer et al. 2017) of clean logits z, noise logits r and standard
    normal samples eps (None: zero), all shaped [..., E]; float32."""
    shape = np.shape(logits)
    z, r, eps = _noisy_inputs(logits, noise_logits, noise)
    h = np.empty(z.shape, dtype=np.float32)
    check(_noisy_logits(_ptr(z, ctypes.c_float), _ptr(r, ctypes.c_float), _opt_ptr(eps),
                        z.shape[0], z.shape[1], _ptr(h, ctypes.c_float)))
    return h.reshape(shape)


def noisy_load(logits, noise_logits, noise=None, k=1, load="smooth"):
    """Per-expert load [E] (float64) of the noisy gate: "smooth", the sum
    over tokens of the probability that the expert is in the token's top k
    (Phi((z_i - threshold)/sigma_i)), or "hard", the top-k counts of h."""
    z, r, eps = _noisy_inputs(logits, noise_logits, noise)
    out = np.empty(z.shape[1], dtype=np.float64)
    check(_noisy_load(_load_code(load), _ptr(z, ctypes.c_float), _ptr(r, ctypes.c_float),
                      _opt_ptr(eps), z.shape[0], z.shape[1], c_int_arg(k, "k"),
                      _ptr(out, ctypes.c_double)))
    return out


def noisy_router_loss(logits, noise_logits, noise=None, kind="latency", k=1, latency=None,
                      load="smooth"):
    """The switch or latency loss of the noisy top-k gate: the counts are
    replaced by noisy_load(..., load); P and I stay the softmax of the clean
    logits. Returns (loss, dL/dlogits, dL/dnoise_logits), the gradients
    float32 shaped like the logits (the hard load gives zero for the noise)."""
    code = _kind_code(kind)
    shape = np.shape(logits)
    z, r, eps = _noisy_inputs(logits, noise_logits, noise)
    alpha = None if latency is None else latency_alpha(latency)
    loss = ctypes.c_double()
    grad_z = np.empty(z.shape, dtype=np.float32)
    grad_r = np.empty(z.shape, dtype=np.float32)
    check(_noisy_loss(
        code, _load_code(load), _ptr(z, ctypes.c_float), _ptr(r, ctypes.c_float), _opt_ptr(eps),
        z.shape[0], z.shape[1], c_int_arg(k, "k"),
        None if alpha is None else _ptr(alpha, ctypes.c_double),
        0 if alpha is None else alpha.size, ctypes.byref(loss),
        _ptr(grad_z, ctypes.c_float), _ptr(grad_r, ctypes.c_float),
    ))
    return loss.value, grad_z.reshape(shape), grad_r.reshape(shape)


def expert_counts(logits, k=1):
    """Top-k assignment counts c [E] (float64) of logits [..., E]."""
    z = _logits_2d(logits)
    counts = np.empty(z.shape[1], dtype=np.float64)
    check(_expert_counts(_ptr(z, ctypes.c_float), z.shape[0], z.shape[1], c_int_arg(k, "k"),
                         _ptr(counts, ctypes.c_double)))
    return counts


def route(logits, bias=None, k=1, return_counts=False):
    """Auxiliary-loss-free routing (DeepSeek-V3): selects the top-k experts
    per token by p + bias (p = softmax(logits)), ties to the lower index; the
    gates are the unbiased p of the selected experts renormalised over them.
    Returns (experts int32 [T, k], gates float32 [T, k]) and, with
    return_counts, the counts [E] of this selection."""
    z = _logits_2d(logits)
    tokens, experts = z.shape
    b = None if bias is None else _vector(bias, "bias", np.float32)
    if b is not None and b.size != experts:
        raise ValueError(f"bias has {b.size} entries; expected E={experts}")
    k = c_int_arg(k, "k")
    width = k if 0 <= k <= experts else 0  # the C call refuses k outside 1..E
    chosen = np.empty((tokens, width), dtype=np.int32)
    gates = np.empty((tokens, width), dtype=np.float32)
    counts = np.empty(experts, dtype=np.float64)
    check(_route(_ptr(z, ctypes.c_float), tokens, experts, k,
                 None if b is None else _ptr(b, ctypes.c_float),
                 _ptr(chosen, ctypes.c_int32), _ptr(gates, ctypes.c_float),
                 _ptr(counts, ctypes.c_double)))
    if return_counts:
        return chosen, gates, counts
    return chosen, gates


def update_bias(bias, counts, u):
    """Once per step: returns a new float32 bias with
    bias_i + u * sign(mean(counts) - counts_i)."""
    b = np.array(bias, dtype=np.float32, copy=True).reshape(-1)
    c = _vector(counts, "counts")
    if c.size != b.size:
        raise ValueError(f"counts has {c.size} entries; expected one per expert (E={b.size})")
    check(_update_bias(_ptr(b, ctypes.c_float), _ptr(c, ctypes.c_double), b.size, float(u)))
    return b


def fit_latency(ns, secs):
    """Least squares fit secs ~ a + b*n. Returns (a, b, r2)."""
    n = _vector(ns, "ns")
    s = _vector(secs, "secs")
    if n.size != s.size:
        raise ValueError(f"ns has {n.size} points and secs {s.size}; expected the same number")
    a, b, r2 = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
    check(_latency_fit(_ptr(n, ctypes.c_double), _ptr(s, ctypes.c_double), n.size,
                       ctypes.byref(a), ctypes.byref(b), ctypes.byref(r2)))
    return a.value, b.value, r2.value


class RouterStats:
    """Global-batch statistics: sums top-k counts over the micro-batches of a
    step and, with allreduce, over data-parallel ranks. Reset per step."""

    def __init__(self, experts, k=1):
        handle = ctypes.c_void_p()
        check(_stats_create(c_int_arg(experts, "experts"), c_int_arg(k, "k"),
                            ctypes.byref(handle)))
        self._handle = handle
        self.experts = int(experts)
        self.k = int(k)

    def __del__(self):
        self.close()

    def close(self):
        handle = getattr(self, "_handle", None)
        if handle:
            _stats_destroy(handle)
            self._handle = None

    def _live(self):
        if not self._handle:
            raise ValueError("RouterStats is closed")
        return self._handle

    def add(self, logits):
        """Adds the top-k counts of one micro-batch of logits [..., E]."""
        z = _logits_2d(logits)
        check(_stats_add(self._live(), _ptr(z, ctypes.c_float), z.shape[0], z.shape[1]))

    def add_counts(self, counts, tokens):
        c = _vector(counts, "counts")
        check(_stats_add_counts(self._live(), _ptr(c, ctypes.c_double), c.size, float(tokens)))

    def allreduce(self, fn):
        """Sums over ranks: fn(buf) gets a float64 array [E+1] (counts, then
        tokens) and either sums it in place or returns the summed array,
        e.g. torch.distributed.all_reduce on a tensor made from it."""
        raised = []

        def callback(buf, n, _user):
            try:
                view = np.ctypeslib.as_array(buf, shape=(n,))
                result = fn(view)
                if result is not None:
                    view[:] = np.asarray(result, dtype=np.float64).reshape(n)
                return 0
            except BaseException as err:  # re-raised below, after C returns
                raised.append(err)
                return 1

        status = _stats_allreduce(self._live(), _ALLREDUCE(callback), None)
        if raised:
            raise raised[0]
        check(status)

    def reset(self):
        _stats_reset(self._live())

    @property
    def counts(self):
        view = _stats_counts(self._live())
        return np.ctypeslib.as_array(view.counts, shape=(view.experts,)).copy()

    @property
    def tokens(self):
        return _stats_counts(self._live()).tokens
