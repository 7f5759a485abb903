"""The noisy top-k gate and its smooth load (Shazeer et al. 2017): the C
code (mfx.noisy_*) against finite differences, mfx.torch's torch operations
against the C code, and both against an independent plain-torch version in
the style of the reference implementations (top-(k+1) noisy values, the
in/out thresholds, torch.distributions.Normal) differentiated by autograd."""

import math

import numpy as np
import pytest

import mfx

torch = pytest.importorskip("torch")
import mfx.torch as mfx_torch  # noqa: E402

LATENCY = [1.0, 2.0, 0.5, 1.5, 3.0]


def inputs(seed, shape=(7, 5), dtype=torch.float64, spread=1.0):
    """Clean logits at least 0.3 apart within a row, noise logits with
    sigma 0.08..0.2 and samples in [-1, 1]: small steps keep h's order."""
    rng = np.random.default_rng(seed)
    experts = shape[-1]
    rows = [rng.permutation(experts) * 0.5 * spread - 1.0 + rng.uniform(-0.1, 0.1, experts)
            for _ in range(int(np.prod(shape[:-1])))]
    z = np.array(rows, dtype=np.float32).reshape(shape)
    r = rng.uniform(-2.5, -1.5, shape).astype(np.float32)
    eps = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    return [torch.tensor(a, dtype=dtype, requires_grad=True) for a in (z, r, eps)]


def plain_torch_loss(z, r, eps, kind, k, latency, noise_min=1e-2):
    """Written from the paper, independently of mfx.torch."""
    z, r = z.reshape(-1, z.shape[-1]), r.reshape(-1, r.shape[-1])
    tokens, experts = z.shape
    stddev = torch.nn.functional.softplus(r) + noise_min
    noisy = z + eps.reshape(z.shape) * stddev
    top_values, _ = noisy.topk(k + 1, dim=1)
    threshold_if_in = top_values[:, k].unsqueeze(1)
    threshold_if_out = top_values[:, k - 1].unsqueeze(1)
    is_in = noisy > threshold_if_in
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=z.dtype),
                                        torch.tensor(1.0, dtype=z.dtype))
    prob = torch.where(is_in, normal.cdf((z - threshold_if_in) / stddev),
                       normal.cdf((z - threshold_if_out) / stddev))
    load = prob.sum(0)
    importance = torch.softmax(z, dim=1).sum(0)
    if kind == "switch":
        return experts * (load / (k * tokens) * importance / tokens).sum()
    alpha = torch.tensor(latency, dtype=z.dtype)
    alpha = alpha / alpha.mean()

    def cv2(x):
        return x.var() / x.mean() ** 2

    return cv2(alpha * importance) + cv2(alpha * load)


CASES = [(kind, k) for kind in ("switch", "latency") for k in (1, 2, 4)]


def latency_for(kind):
    return LATENCY if kind == "latency" else None


@pytest.mark.parametrize("kind,k", CASES)
def test_c_gradient_finite_differences(kind, k):
    z, r, eps = inputs(1, shape=(6, 5))
    assert torch.autograd.gradcheck(
        lambda a, b: mfx_torch.NoisyLoss.apply(a, b, eps.detach(), kind, k, latency_for(kind)),
        (z, r), eps=1e-3, atol=5e-5, rtol=2e-3)


@pytest.mark.parametrize("kind,k", CASES)
@pytest.mark.parametrize("with_eps", [False, True])
def test_torch_matches_c_and_plain_torch(kind, k, with_eps):
    z, r, eps = inputs(2 + k, shape=(3, 4, 5))
    noise = eps.detach() if with_eps else None
    loss = mfx_torch.router_loss(z, kind, k=k, latency=latency_for(kind), noise_logits=r,
                                 noise=noise)
    gz, gr = torch.autograd.grad(loss, (z, r))
    ref = mfx_torch.NoisyLoss.apply(z, r, noise, kind, k, latency_for(kind))
    rz, rr = torch.autograd.grad(ref, (z, r))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-9)
    torch.testing.assert_close(gz, rz, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(gr, rr, rtol=1e-5, atol=1e-8)
    plain = plain_torch_loss(z, r, eps.detach() if with_eps else torch.zeros_like(z), kind, k,
                             latency_for(kind))
    pz, pr = torch.autograd.grad(plain, (z, r))
    assert loss.item() == pytest.approx(plain.item(), rel=1e-9)
    torch.testing.assert_close(gz, pz, rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(gr, pr, rtol=1e-6, atol=1e-10)
    assert gr.abs().max() > 0  # the load term trains the noise logits too


def test_load_functions_and_noisy_logits():
    z, r, eps = inputs(3, shape=(9, 5), dtype=torch.float32)
    h = mfx_torch.noisy_logits(z, r, eps)
    want_h = mfx.noisy_logits(z.detach().numpy(), r.detach().numpy(), eps.detach().numpy())
    np.testing.assert_allclose(h.detach().numpy(), want_h, rtol=1e-6, atol=1e-6)
    sigma = np.log1p(np.exp(r.detach().numpy().astype(np.float64))) + 1e-2
    np.testing.assert_allclose(want_h, z.detach().numpy() + eps.detach().numpy() * sigma,
                               rtol=1e-6, atol=1e-6)
    for load in ("smooth", "hard"):
        for k in (1, 2, 5):
            got = mfx_torch.noisy_load(z, r, eps, k=k, load=load)
            want = mfx.noisy_load(z.detach().numpy(), r.detach().numpy(), eps.detach().numpy(),
                                  k=k, load=load)
            np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    hard = mfx.noisy_load(z.detach().numpy(), r.detach().numpy(), eps.detach().numpy(), k=2,
                          load="hard")
    np.testing.assert_array_equal(hard, mfx.expert_counts(want_h, k=2))
    # k = E: every expert in every token's top k
    np.testing.assert_array_equal(mfx.noisy_load(z.detach().numpy(), r.detach().numpy(), k=5),
                                  np.full(5, 9.0))


def test_smooth_load_is_a_probability_per_token():
    # one token: the loads are probabilities; a far-ahead expert is nearly sure
    z = np.array([[5.0, 0.0, -5.0]], dtype=np.float32)
    r = np.zeros_like(z)
    load = mfx.noisy_load(z, r, k=1)
    assert load[0] > 0.999 and load[2] < 1e-3 and np.all((0 <= load) & (load <= 1))
    sigma = math.log(2.0) + 1e-2
    assert load[1] == pytest.approx(0.5 * math.erfc(5.0 / sigma / math.sqrt(2.0)), rel=1e-9)


@pytest.mark.parametrize("kind", ["switch", "latency"])
def test_hard_load_is_the_counts_option(kind):
    z, r, eps = inputs(4)
    loss = mfx_torch.router_loss(z, kind, k=2, latency=latency_for(kind), noise_logits=r,
                                 load="hard")
    gz, gr = torch.autograd.grad(loss, (z, r), allow_unused=True)
    plain = mfx_torch.router_loss(z, kind, k=2, latency=latency_for(kind))
    (pz,) = torch.autograd.grad(plain, z)
    assert loss.item() == pytest.approx(plain.item(), rel=1e-12)
    torch.testing.assert_close(gz, pz)
    assert gr is None or not gr.any()
    c_loss, c_gz, c_gr = mfx.noisy_router_loss(z.detach().numpy(), r.detach().numpy(), None,
                                               kind, 2, latency_for(kind), load="hard")
    assert c_loss == pytest.approx(loss.item(), rel=1e-6)
    assert not c_gr.any()


def test_noisy_errors():
    z, r, eps = inputs(5, dtype=torch.float32)
    zn, rn = z.detach().numpy(), r.detach().numpy()
    with pytest.raises(ValueError, match="no load term"):
        mfx.noisy_router_loss(zn, rn, kind="zloss")
    with pytest.raises(ValueError, match="'soft' is unknown"):
        mfx.noisy_load(zn, rn, load="soft")
    with pytest.raises(ValueError, match="noise logits have shape"):
        mfx.noisy_load(zn, rn[:, :4])
    with pytest.raises(ValueError, match="noise samples have shape"):
        mfx.noisy_logits(zn, rn, np.zeros((2, 2), np.float32))
    bad = rn.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"noise logits \[1,2\] is nan"):
        mfx.noisy_load(zn, bad)
    with pytest.raises(ValueError, match="k=6"):
        mfx.noisy_load(zn, rn, k=6)
    with pytest.raises(ValueError, match="zloss has no load term"):
        mfx_torch.router_loss(z, "zloss", noise_logits=r)
    with pytest.raises(ValueError, match="not both"):
        mfx_torch.router_loss(z, "switch", noise_logits=r, counts=torch.ones(5), tokens=1)
    with pytest.raises(ValueError, match="need noise_logits"):
        mfx_torch.router_loss(z, "switch", noise=eps)
    with pytest.raises(ValueError, match="must have the logits' shape"):
        mfx_torch.router_loss(z, "switch", noise_logits=r[:, :4])
    with pytest.raises(ValueError, match="'soft' is unknown"):
        mfx_torch.router_loss(z, "switch", noise_logits=r, load="soft")
