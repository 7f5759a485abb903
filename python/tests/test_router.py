"""mfx router losses against an independent numpy implementation: values
from the definitions, gradients from float64 central differences of those
definitions, balancing schemes, and error cases."""

import numpy as np
import pytest

import mfx

# ---- an independent reference, straight from the definitions ---------------


def ref_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    return e / s, (m + np.log(s))[:, 0]


def ref_topk(scores, k):
    # a stable sort of -score keeps the lower index first among ties
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def ref_counts(z, k):
    selected = ref_topk(np.asarray(z, dtype=np.float64), k)
    return np.bincount(selected.ravel(), minlength=z.shape[1]).astype(np.float64)


def ref_cv2(x):
    return np.var(x, ddof=1) / np.mean(x) ** 2


def ref_loss(z, kind, k=1, latency=None, counts=None, tokens=None):
    p, lse = ref_softmax(z)
    t, e = p.shape
    c = ref_counts(z, k) if counts is None else np.asarray(counts, dtype=np.float64)
    tc = t if tokens is None else tokens
    if kind == "switch":
        return e * np.sum(c / (k * tc) * p.mean(axis=0))
    if kind == "latency":
        alpha = np.asarray(latency, dtype=np.float64)
        return ref_cv2(alpha * p.sum(axis=0)) + ref_cv2(alpha * c)
    if kind == "zloss":
        return np.mean(lse**2)
    raise AssertionError(kind)


def ref_grad(z, kind, k=1, latency=None, counts=None, tokens=None, h=1e-5):
    """Central differences of ref_loss in float64, counts held fixed (the
    counts carry no gradient)."""
    z = np.asarray(z, dtype=np.float64)
    fixed = ref_counts(z, k) if counts is None else counts
    tc = z.shape[0] if tokens is None else tokens
    grad = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (ref_loss(up, kind, k, latency, fixed, tc) -
                     ref_loss(down, kind, k, latency, fixed, tc)) / (2 * h)
    return grad


def random_logits(rng, tokens, experts):
    """Logits whose values within a row are at least 0.3 apart."""
    rows = [rng.permutation(experts) * 0.5 - 0.25 * experts for _ in range(tokens)]
    z = np.array(rows) + rng.uniform(-0.1, 0.1, size=(tokens, experts))
    return z.astype(np.float32)


SHAPES = [(1, 2, 1), (3, 4, 2), (6, 3, 3), (9, 8, 2), (17, 5, 1)]


# ---- losses and gradients ------------------------------------------------------


@pytest.mark.parametrize("kind", ["switch", "latency", "zloss"])
@pytest.mark.parametrize("tokens,experts,k", SHAPES)
def test_loss_and_grad_match_reference(kind, tokens, experts, k):
    rng = np.random.default_rng(tokens * 100 + experts * 10 + k)
    z = random_logits(rng, tokens, experts)
    latency = rng.uniform(1e-4, 5e-4, size=experts) if kind == "latency" else None
    loss, grad = mfx.router_loss(z, kind=kind, k=k, latency=latency)
    assert isinstance(loss, float)
    assert grad.shape == z.shape and grad.dtype == np.float32
    assert loss == pytest.approx(ref_loss(z, kind, k, latency), rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(grad, ref_grad(z, kind, k, latency), rtol=1e-4, atol=1e-6)


def test_hand_example_switch():
    # p = [[3/4, 1/4], [1/2, 1/2]], c = [2, 0] (tie -> expert 0): L = 5/4
    z = np.array([[np.log(3.0), 0.0], [0.0, 0.0]], dtype=np.float32)
    loss, grad = mfx.router_loss(z, "switch", k=1)
    assert loss == pytest.approx(1.25, abs=1e-6)
    np.testing.assert_allclose(grad, [[0.1875, -0.1875], [0.25, -0.25]], atol=1e-6)


def test_switch_is_one_at_perfect_balance():
    # token t prefers expert t mod E
    z = -np.abs(np.arange(4)[None, :] - (np.arange(8) % 4)[:, None]).astype(np.float32)
    loss, _ = mfx.router_loss(z, "switch", k=1)
    assert loss == pytest.approx(1.0, abs=1e-12)


def test_latency_minimal_when_weighted_counts_equal():
    # alpha = [1, 2, 4]; one-hot routing of 7 tokens; minimum at c = [4, 2, 1]
    latency = np.array([1e-3, 2e-3, 4e-3])

    def loss_for(counts):
        experts = np.repeat(np.arange(3), counts)
        z = np.where(np.arange(3)[None, :] == experts[:, None], 30.0, 0.0)
        return mfx.router_loss(z.astype(np.float32), "latency", latency=latency)[0]

    best = loss_for([4, 2, 1])
    assert best < 1e-9
    for counts in ([3, 2, 2], [5, 1, 1], [4, 3, 0], [2, 2, 3], [7, 0, 0]):
        assert loss_for(counts) > best + 1e-3


def test_latency_same_for_latencies_and_alpha():
    rng = np.random.default_rng(3)
    z = random_logits(rng, 5, 4)
    latency = np.array([2e-4, 1e-4, 3e-4, 2e-4])
    alpha = mfx.latency_alpha(latency)
    np.testing.assert_allclose(alpha, latency / latency.mean())
    a = mfx.router_loss(z, "latency", k=2, latency=latency)
    b = mfx.router_loss(z, "latency", k=2, latency=alpha)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def test_leading_dimensions_are_tokens():
    rng = np.random.default_rng(4)
    z = random_logits(rng, 6, 4).reshape(2, 3, 4)
    loss, grad = mfx.router_loss(z, "zloss")
    flat_loss, flat_grad = mfx.router_loss(z.reshape(6, 4), "zloss")
    assert grad.shape == (2, 3, 4)
    assert loss == flat_loss
    np.testing.assert_array_equal(grad.reshape(6, 4), flat_grad)


def test_expert_counts_match_reference():
    rng = np.random.default_rng(5)
    z = random_logits(rng, 11, 6)
    z[0, :2] = 5.0  # a tie: the lower index first
    np.testing.assert_array_equal(mfx.expert_counts(z, k=3), ref_counts(z, 3))


# ---- global-batch statistics ------------------------------------------------------


def test_router_stats_two_ranks_equal_concatenated_batch():
    rng = np.random.default_rng(6)
    experts, k = 5, 2
    micro = [[rng.integers(1, 6) for _ in range(2)] for _ in range(2)]
    batches = [[random_logits(rng, t, experts) for t in rank] for rank in micro]
    ranks = [mfx.RouterStats(experts, k) for _ in range(2)]
    for stats, rank_batches in zip(ranks, batches):
        for z in rank_batches:
            stats.add(z)
    entered = [np.append(s.counts, s.tokens) for s in ranks]

    def fake_allreduce(buf):  # every rank receives the element-wise sum
        buf[:] = entered[0] + entered[1]

    for stats in ranks:
        stats.allreduce(fake_allreduce)
    everything = np.concatenate([z for rank in batches for z in rank])
    for stats in ranks:
        np.testing.assert_array_equal(stats.counts, ref_counts(everything, k))
        assert stats.tokens == everything.shape[0]
    latency = np.array([1.0, 2.0, 1.5, 0.5, 1.0])
    for kind, lat in (("switch", None), ("latency", latency)):
        global_loss, global_grad = mfx.router_loss(
            everything, kind, k=k, latency=lat, counts=ranks[0].counts, tokens=ranks[0].tokens)
        local_loss, local_grad = mfx.router_loss(everything, kind, k=k, latency=lat)
        assert global_loss == pytest.approx(local_loss, rel=1e-12)
        np.testing.assert_allclose(global_grad, local_grad, rtol=1e-6, atol=1e-9)
    # one rank's loss with the global counts: local P, global c
    rank0 = np.concatenate(batches[0])
    loss, grad = mfx.router_loss(rank0, "switch", k=k, counts=ranks[0].counts,
                                 tokens=ranks[0].tokens)
    assert loss == pytest.approx(
        ref_loss(rank0, "switch", k, counts=ranks[0].counts, tokens=ranks[0].tokens), rel=1e-9)
    np.testing.assert_allclose(
        grad, ref_grad(rank0, "switch", k, counts=ranks[0].counts, tokens=ranks[0].tokens),
        rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="reset"):
        ranks[0].add(rank0)
    ranks[0].reset()
    assert ranks[0].tokens == 0 and not ranks[0].counts.any()
    ranks[0].add_counts([1, 1, 0, 0, 0], 1)
    assert ranks[0].tokens == 1


def test_router_stats_allreduce_may_return_the_sum():
    stats = mfx.RouterStats(3, 1)
    stats.add(np.array([[0.0, 1.0, 0.0]], dtype=np.float32))
    stats.allreduce(lambda buf: buf * 4)
    np.testing.assert_array_equal(stats.counts, [0.0, 4.0, 0.0])
    assert stats.tokens == 4


def test_router_stats_allreduce_errors():
    stats = mfx.RouterStats(3, 1)

    def broken(buf):
        raise ConnectionError("rank 1 is gone")

    with pytest.raises(ConnectionError, match="rank 1 is gone"):
        stats.allreduce(broken)
    with pytest.raises(ValueError, match="all-reduce returned -1"):
        stats.allreduce(lambda buf: -np.ones_like(buf))
    with pytest.raises(ValueError, match="hold E=3"):
        stats.add(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="k=4"):
        mfx.RouterStats(3, 4)
    stats.close()
    with pytest.raises(ValueError, match="closed"):
        stats.reset()


# ---- auxiliary-loss-free balancing --------------------------------------------------


def ref_route(z, bias, k):
    p, _ = ref_softmax(z)
    selected = ref_topk(p + bias[None, :], k)
    chosen = np.take_along_axis(p, selected, axis=1)
    return selected, chosen / chosen.sum(axis=1, keepdims=True)


def test_route_matches_reference():
    rng = np.random.default_rng(7)
    z = random_logits(rng, 13, 6)
    bias = rng.uniform(-0.3, 0.3, size=6).astype(np.float32)
    experts, gates, counts = mfx.route(z, bias, k=2, return_counts=True)
    want_experts, want_gates = ref_route(z, bias.astype(np.float64), 2)
    np.testing.assert_array_equal(experts, want_experts)
    np.testing.assert_allclose(gates, want_gates, rtol=1e-6)
    np.testing.assert_array_equal(counts, np.bincount(experts.ravel(), minlength=6))
    assert experts.dtype == np.int32 and gates.dtype == np.float32


def test_route_bias_selects_but_gates_stay_unbiased():
    z = np.array([[2.0, 1.0, 0.0]], dtype=np.float32)
    p, _ = ref_softmax(z)
    experts, gates = mfx.route(z, np.array([0.0, 0.0, 1.0]), k=2)
    np.testing.assert_array_equal(experts, [[2, 0]])
    np.testing.assert_allclose(gates[0], [p[0, 2], p[0, 0]] / (p[0, 0] + p[0, 2]), rtol=1e-6)
    experts, _ = mfx.route(z, None, k=2)
    np.testing.assert_array_equal(experts, [[0, 1]])


def test_update_bias_signs():
    bias = np.array([0.0, 0.0, 0.5, -0.5], dtype=np.float32)
    new = mfx.update_bias(bias, [5, 1, 3, 3], 0.25)  # mean 3
    np.testing.assert_array_equal(new, [-0.25, 0.25, 0.5, -0.5])
    np.testing.assert_array_equal(bias, [0.0, 0.0, 0.5, -0.5])  # input untouched
    with pytest.raises(ValueError, match="rate u=-1"):
        mfx.update_bias(bias, [1, 1, 1, 1], -1.0)
    with pytest.raises(ValueError, match="one per expert"):
        mfx.update_bias(bias, [1, 1], 0.1)


def test_bias_updates_balance_routing():
    # experts 0 and 1 are favoured by the logits; a few updates move load
    rng = np.random.default_rng(8)
    z = (rng.normal(size=(256, 4)) * 0.1 + np.array([0.6, 0.4, 0.0, 0.0])).astype(np.float32)
    bias = np.zeros(4, dtype=np.float32)
    _, _, start = mfx.route(z, bias, k=1, return_counts=True)
    for _ in range(100):
        _, _, counts = mfx.route(z, bias, k=1, return_counts=True)
        bias = mfx.update_bias(bias, counts, 0.002)
    _, _, end = mfx.route(z, bias, k=1, return_counts=True)
    assert end.std() < 0.5 * start.std()


# ---- latency table ------------------------------------------------------------------


def test_fit_latency_recovers_line():
    ns = np.array([1, 16, 64, 256, 1024], dtype=np.float64)
    a, b, r2 = mfx.fit_latency(ns, 2e-5 + 3e-8 * ns)
    assert a == pytest.approx(2e-5, rel=1e-9)
    assert b == pytest.approx(3e-8, rel=1e-9)
    assert r2 == pytest.approx(1.0, abs=1e-12)


def test_fit_latency_matches_polyfit():
    rng = np.random.default_rng(9)
    ns = np.arange(1, 40, dtype=np.float64)
    secs = 1e-4 + 2e-6 * ns + rng.normal(scale=5e-6, size=ns.size)
    a, b, r2 = mfx.fit_latency(ns, secs)
    want_b, want_a = np.polyfit(ns, secs, 1)
    residual = secs - (want_a + want_b * ns)
    want_r2 = 1 - residual @ residual / np.sum((secs - secs.mean()) ** 2)
    assert (a, b, r2) == pytest.approx((want_a, want_b, want_r2), rel=1e-8)
    assert 0.5 < r2 < 1.0


# ---- errors ----------------------------------------------------------------------------


def test_errors_raise_value_error_with_c_message():
    z = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="'balance' is unknown"):
        mfx.router_loss(z, "balance")
    with pytest.raises(ValueError, match="k=0; expected 1 <= k <= E=3"):
        mfx.router_loss(z, "switch", k=0)
    with pytest.raises(ValueError, match="k=4"):
        mfx.route(z, None, k=4)
    with pytest.raises(ValueError, match=r"logit \[1,2\] is nan"):
        bad = z.copy()
        bad[1, 2] = np.nan
        mfx.router_loss(bad, "zloss")
    with pytest.raises(ValueError, match="is inf"):
        mfx.router_loss(np.array([[0.0, np.inf]]), "switch")
    with pytest.raises(ValueError, match="T=0"):
        mfx.router_loss(np.zeros((0, 3), dtype=np.float32), "switch")
    with pytest.raises(ValueError, match="E=0"):
        mfx.router_loss(np.zeros((2, 0), dtype=np.float32), "zloss")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        mfx.router_loss(np.zeros(3, dtype=np.float32), "zloss")
    with pytest.raises(ValueError, match="alpha is NULL"):
        mfx.router_loss(z, "latency")
    with pytest.raises(ValueError, match="alpha has 2 entries; expected E=3"):
        mfx.router_loss(z, "latency", latency=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"latency\[1\]=-1"):
        mfx.router_loss(z, "latency", latency=[1.0, -1.0, 2.0])
    with pytest.raises(ValueError, match=r"latency\[0\]=0"):
        mfx.router_loss(z, "latency", latency=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="only the latency loss"):
        mfx.router_loss(z, "switch", latency=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="E >= 2"):
        mfx.router_loss(np.zeros((2, 1), dtype=np.float32), "latency", latency=[1.0])
    with pytest.raises(ValueError, match="both counts and tokens"):
        mfx.router_loss(z, "switch", counts=[1, 1, 0])
    with pytest.raises(ValueError, match="sum to 2; expected k\\*tokens"):
        mfx.router_loss(z, "switch", counts=[1, 1, 0], tokens=5)
    with pytest.raises(ValueError, match="zloss uses no counts"):
        mfx.router_loss(z, "zloss", counts=[1, 1, 0], tokens=2)
    with pytest.raises(ValueError, match="bias has 2 entries"):
        mfx.route(z, [0.0, 0.0], k=1)
    with pytest.raises(ValueError, match=r"bias\[0\]=nan"):
        mfx.route(z, [np.nan, 0.0, 0.0], k=1)
    with pytest.raises(ValueError, match="at least 2"):
        mfx.fit_latency([1.0], [1.0])
    with pytest.raises(ValueError, match="distinct token counts"):
        mfx.fit_latency([4.0, 4.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="same number"):
        mfx.fit_latency([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        mfx.fit_latency([4.0, 4.0], [1.0, 2.0])
    assert "distinct token counts" in mfx.last_error()


# ---- torch (skipped without PyTorch) ---------------------------------------------------


@pytest.mark.parametrize("kind", ["switch", "latency", "zloss"])
def test_torch_autograd_matches_reference(kind):
    torch = pytest.importorskip("torch")
    import mfx.torch as mfx_torch

    rng = np.random.default_rng(10)
    z = random_logits(rng, 6, 4)
    latency = np.array([1.0, 2.0, 0.5, 1.5]) if kind == "latency" else None
    logits = torch.tensor(z, dtype=torch.float64, requires_grad=True)  # the loss has this dtype
    loss = mfx_torch.router_loss(logits, kind, k=2, latency=latency)
    (3.0 * loss).backward()
    assert loss.item() == pytest.approx(ref_loss(z, kind, 2, latency), rel=1e-9)
    np.testing.assert_allclose(logits.grad.numpy(), 3.0 * ref_grad(z, kind, 2, latency),
                               rtol=1e-4, atol=1e-6)


def test_torch_function_classes():
    torch = pytest.importorskip("torch")
    import mfx.torch as mfx_torch

    z = torch.zeros(3, 2, 4, dtype=torch.float64, requires_grad=True)
    loss = mfx_torch.ZLoss.apply(z)
    loss.backward()
    assert loss.item() == pytest.approx(np.log(4.0) ** 2)
    assert z.grad.shape == z.shape and z.grad.dtype == torch.float64
    np.testing.assert_allclose(z.grad.numpy(), 2 * np.log(4.0) * 0.25 / 6)
    assert issubclass(mfx_torch.SwitchLoss, torch.autograd.Function)
    assert issubclass(mfx_torch.LatencyLoss, torch.autograd.Function)
