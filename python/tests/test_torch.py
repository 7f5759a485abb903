"""mfx.torch: the router losses in torch operations against the C reference
(the numpy face mfx.router_loss and the C-backed autograd Functions), against
the losses written in plain torch and differentiated by torch's own autograd,
and against finite differences (gradcheck). Skipped without PyTorch."""

import numpy as np
import pytest

import mfx

torch = pytest.importorskip("torch")
import mfx.torch as mfx_torch  # noqa: E402

LATENCY = [1.0, 2.0, 0.5, 1.5, 3.0]
CASES = [(kind, k) for kind in ("switch", "latency", "zloss") for k in (1, 2)]


def logits_of(seed, shape=(2, 4, 5), dtype=torch.float32):
    """Logits [..., E] whose values within a row are at least 0.3 apart (the
    top-k stays put under small steps) and exact in float32."""
    rng = np.random.default_rng(seed)
    experts = shape[-1]
    rows = [rng.permutation(experts) * 0.5 - 1.0 + rng.uniform(-0.1, 0.1, experts)
            for _ in range(int(np.prod(shape[:-1])))]
    z = np.array(rows, dtype=np.float32).reshape(shape)
    return torch.tensor(z, dtype=dtype, requires_grad=True)


def latency_for(kind):
    return LATENCY if kind == "latency" else None


def torch_reference(z, kind, k, latency):
    """The loss from its definition in float64 torch; the counts carry no gradient."""
    z = z.reshape(-1, z.shape[-1]).double()
    tokens, experts = z.shape
    p = torch.softmax(z, dim=1)
    chosen = z.detach().topk(k, dim=1).indices.reshape(-1)
    counts = torch.bincount(chosen, minlength=experts).double()
    if kind == "switch":
        return experts * (counts / (k * tokens) * p.mean(dim=0)).sum()
    if kind == "latency":
        alpha = torch.tensor(latency, dtype=torch.float64)

        def cv2(x):
            return x.var() / x.mean() ** 2  # unbiased variance

        return cv2(alpha * p.sum(dim=0)) + cv2(alpha * counts)
    return (torch.logsumexp(z, dim=1) ** 2).mean()


@pytest.mark.parametrize("kind,k", CASES)
def test_forward_and_backward_match_numpy_face(kind, k):
    z = logits_of(1)
    loss = mfx_torch.router_loss(z, kind, k=k, latency=latency_for(kind))
    (2.5 * loss).backward()
    want_loss, want_grad = mfx.router_loss(z.detach().numpy(), kind, k=k, latency=latency_for(kind))
    assert loss.dtype == torch.float32 and loss.shape == ()
    # torch works in float32 here, the C code accumulates in double
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)
    assert z.grad.dtype == torch.float32 and z.grad.shape == z.shape
    np.testing.assert_allclose(z.grad.numpy(), 2.5 * want_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind,k", CASES)
def test_matches_plain_torch_autograd(kind, k):
    z = logits_of(2, dtype=torch.float64)
    loss = mfx_torch.router_loss(z, kind, k=k, latency=latency_for(kind))
    (-0.75 * loss).backward()
    ref_z = z.detach().clone().requires_grad_()
    ref = torch_reference(ref_z, kind, k, latency_for(kind))
    (-0.75 * ref).backward()
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(ref.item(), rel=1e-9)
    assert z.grad.dtype == torch.float64
    np.testing.assert_allclose(z.grad.numpy(), ref_z.grad.numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind,k", CASES)
def test_gradcheck(kind, k):
    # The C code reads float32 logits: steps of 1e-3 keep the rounding of
    # the inputs (~1e-7) well below the step.
    z = logits_of(3, shape=(6, 5), dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: mfx_torch.router_loss(x, kind, k=k, latency=latency_for(kind)),
        (z,), eps=1e-3, atol=1e-5, rtol=1e-3)


def test_function_classes_and_global_counts():
    z = logits_of(4)
    counts = torch.tensor([3.0, 5.0, 1.0, 4.0, 3.0])  # a global batch of 8 tokens, k=2
    cases = [
        (mfx_torch.SwitchLoss.apply(z, 2), dict(kind="switch", k=2)),
        (mfx_torch.LatencyLoss.apply(z, torch.tensor(LATENCY), 2),
         dict(kind="latency", k=2, latency=LATENCY)),
        (mfx_torch.ZLoss.apply(z), dict(kind="zloss")),
        (mfx_torch.SwitchLoss.apply(z, 2, counts, 8),
         dict(kind="switch", k=2, counts=counts.numpy(), tokens=8)),
    ]
    for loss, args in cases:
        want_loss, want_grad = mfx.router_loss(z.detach().numpy(), **args)
        assert loss.item() == pytest.approx(want_loss, rel=1e-6), args
        (grad,) = torch.autograd.grad(loss, z)
        np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-6, err_msg=str(args))
        # and the torch operations with the same arguments
        torch_args = dict(args)
        torch_loss = mfx_torch.router_loss(z, **torch_args)
        assert torch_loss.item() == pytest.approx(want_loss, rel=1e-5), args
        (torch_grad,) = torch.autograd.grad(torch_loss, z)
        np.testing.assert_allclose(torch_grad.numpy(), want_grad, rtol=1e-4, atol=1e-7,
                                   err_msg=str(args))
    # the global counts change the loss: they are not ignored
    assert cases[3][0].item() != pytest.approx(cases[0][0].item(), rel=1e-3)


@pytest.mark.parametrize("kind,k", CASES)
def test_non_contiguous_logits(kind, k):
    views = [logits_of(5, shape=(4, 3, 5)).transpose(0, 1),  # [3, 4, 5]
             logits_of(5, shape=(4, 10))[:, ::2],  # [4, 5], every other expert
             logits_of(5, shape=(1, 5)).expand(3, 5)]  # one row three times
    for view in views:
        view = view.detach().requires_grad_()
        copy = view.detach().contiguous().requires_grad_()
        assert not view.is_contiguous()
        loss = mfx_torch.router_loss(view, kind, k=k, latency=latency_for(kind))
        want = mfx_torch.router_loss(copy, kind, k=k, latency=latency_for(kind))
        loss.backward()
        want.backward()
        assert loss.item() == pytest.approx(want.item(), rel=1e-6)
        assert view.grad.shape == view.shape
        torch.testing.assert_close(view.grad, copy.grad, rtol=1e-5, atol=1e-7)


def test_bad_input_raises():
    z = logits_of(6, shape=(4, 5))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        mfx_torch.router_loss(torch.zeros(5, requires_grad=True))
    with pytest.raises(TypeError, match="torch.int64; expected a floating-point"):
        mfx_torch.router_loss(torch.zeros(4, 5, dtype=torch.int64))
    with pytest.raises(TypeError, match="complex64"):
        mfx_torch.router_loss(torch.zeros(4, 5, dtype=torch.complex64))
    with pytest.raises(TypeError, match="a ndarray; expected a torch.Tensor"):
        mfx_torch.router_loss(z.detach().numpy())
    with pytest.raises((NotImplementedError, RuntimeError), match="meta"):
        mfx_torch.ZLoss.apply(torch.zeros(4, 5, device="meta"))  # the C path copies to the host
    with pytest.raises(ValueError, match="both counts and tokens"):
        mfx_torch.router_loss(z, "switch", counts=torch.ones(5))
    with pytest.raises(ValueError, match="sum to"):
        mfx_torch.router_loss(z, "switch", counts=torch.ones(5), tokens=4)
    with pytest.raises(ValueError, match="k=1.5"):
        mfx_torch.router_loss(z, "switch", k=1.5)
    with pytest.raises(ValueError, match="unknown"):
        mfx_torch.router_loss(z, "softmax")
    with pytest.raises(ValueError):
        mfx_torch.router_loss(z, "latency")  # no latencies
    with pytest.raises(ValueError):
        mfx_torch.router_loss(z, "latency", latency=[1.0, 2.0])  # E=5
    with pytest.raises(ValueError):
        mfx_torch.router_loss(z, "switch", k=6)
    with pytest.raises(ValueError):
        mfx_torch.router_loss(torch.full((4, 5), float("nan")), "zloss")
    assert z.grad is None


def test_other_dtypes_and_double_backward():
    for dtype in (torch.float16, torch.bfloat16):
        z = logits_of(7, shape=(4, 5), dtype=dtype)
        loss = mfx_torch.router_loss(z, "zloss")
        loss.backward()
        want_loss, want_grad = mfx.router_loss(z.detach().float().numpy(), "zloss")
        assert loss.dtype == dtype and z.grad.dtype == dtype
        assert loss.item() == pytest.approx(want_loss, rel=1e-2)
        np.testing.assert_allclose(z.grad.float().numpy(), want_grad, rtol=1e-2, atol=1e-4)
    z = logits_of(8, shape=(4, 5))
    with torch.no_grad():
        assert not mfx_torch.router_loss(z, "switch").requires_grad
    # the C Functions are once differentiable; the torch operations are not limited
    scale = torch.tensor(1.0, requires_grad=True)  # makes the gradient need a graph
    (grad,) = torch.autograd.grad(mfx_torch.ZLoss.apply(z), z, scale, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()
    z64 = z.detach().double().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x: mfx_torch.router_loss(x, "zloss"), (z64,))


@pytest.mark.parametrize("kind,k", CASES)
def test_torch_path_never_leaves_torch(kind, k, monkeypatch):
    """No copy to numpy, no C call: the loss stays on the logits' device."""
    z = logits_of(9)
    want = mfx_torch.router_loss(z, kind, k=k, latency=latency_for(kind))
    (want_grad,) = torch.autograd.grad(want, z)

    def refuse(*args, **kwargs):
        raise AssertionError("the torch path went to the host")

    monkeypatch.setattr(torch.Tensor, "numpy", refuse)
    monkeypatch.setattr(mfx_torch._router, "router_loss", refuse)
    monkeypatch.setattr(mfx_torch._router, "expert_counts", refuse)
    latency = torch.tensor(LATENCY) if kind == "latency" else None
    loss = mfx_torch.router_loss(z, kind, k=k, latency=latency)
    (grad,) = torch.autograd.grad(loss, z)
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    torch.testing.assert_close(grad, want_grad)


@pytest.mark.parametrize("kind,k", CASES)
def test_torch_matches_c_functions_on_larger_batches(kind, k):
    """Random logits (near ties included) over several shapes: the torch
    operations and the C code agree on loss and gradient."""
    rng = np.random.default_rng(10 + k)
    for shape in [(1, 5), (37, 5), (3, 11, 5), (128, 5)]:
        z = torch.tensor(rng.normal(size=shape), dtype=torch.float64, requires_grad=True)
        z32 = z.detach().float().double().requires_grad_()  # exactly what C reads
        ref_fn = {"switch": lambda x: mfx_torch.SwitchLoss.apply(x, k),
                  "latency": lambda x: mfx_torch.LatencyLoss.apply(x, LATENCY, k),
                  "zloss": lambda x: mfx_torch.ZLoss.apply(x)}[kind]
        ref = ref_fn(z32)
        (ref_grad,) = torch.autograd.grad(ref, z32)
        loss = mfx_torch.router_loss(z32, kind, k=k, latency=latency_for(kind))
        (grad,) = torch.autograd.grad(loss, z32)
        assert loss.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12), shape
        np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-5, atol=1e-9)
