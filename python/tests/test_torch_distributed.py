"""mfx.torch's global-batch statistics through torch.distributed: two
processes on the gloo backend (localhost) each hold half of a batch; with
the process group initialised the loss sums the expert counts with one
all_reduce, and must equal the loss of that half with the counts of the
concatenated batch, computed in one process by the C reference. Skipped
without PyTorch or torch.distributed."""

import os
import socket

import numpy as np
import pytest

import mfx

torch = pytest.importorskip("torch")
import mfx.torch as mfx_torch  # noqa: E402

pytestmark = pytest.mark.whole_model  # two processes per case

if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

WORLD = 2
LATENCY = [1.0, 2.0, 0.5, 1.5]
KINDS = [("switch", 1), ("switch", 2), ("latency", 1), ("latency", 2)]


def batch(rank):
    """Rank r's half of the batch: different sizes, different routing."""
    rng = np.random.default_rng(100 + rank)
    tokens = 9 if rank == 0 else 14
    z = rng.normal(size=(tokens, 4)) + np.array([1.0, 0.0, -0.5, 0.3]) * (1 + rank)
    return z.astype(np.float32)


def noise_of(rank):
    rng = np.random.default_rng(200 + rank)
    shape = batch(rank).shape
    return (torch.tensor(rng.uniform(-2.0, 0.0, shape), dtype=torch.float32),
            torch.tensor(rng.normal(size=shape), dtype=torch.float32))


def _worker(rank, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=WORLD)
    calls = []
    all_reduce = dist.all_reduce

    def counting(*args, **kwargs):
        calls.append(1)
        return all_reduce(*args, **kwargs)

    dist.all_reduce = counting
    results = {}
    try:
        for kind, k in KINDS:
            z = torch.tensor(batch(rank), requires_grad=True)
            before = len(calls)
            loss = mfx_torch.router_loss(z, kind, k=k,
                                         latency=LATENCY if kind == "latency" else None)
            (grad,) = torch.autograd.grad(loss, z)
            results[f"{kind}{k}"] = (loss.item(), grad.numpy(), len(calls) - before)
            local = mfx_torch.router_loss(z, kind, k=k, distributed=False,
                                          latency=LATENCY if kind == "latency" else None)
            results[f"{kind}{k}_local"] = local.item()
        z = torch.tensor(batch(rank), requires_grad=True)
        r, eps = noise_of(rank)
        r.requires_grad_()
        before = len(calls)
        loss = mfx_torch.router_loss(z, "latency", k=2, latency=LATENCY, noise_logits=r,
                                     noise=eps)
        grads = torch.autograd.grad(loss, (z, r))
        results["noisy"] = (loss.item(), grads[0].numpy(), grads[1].numpy(), len(calls) - before)
        results["zloss_calls"] = len(calls)
        mfx_torch.router_loss(torch.tensor(batch(rank)), "zloss")
        results["zloss_calls"] = len(calls) - results["zloss_calls"]
    finally:
        dist.all_reduce = all_reduce
        dist.destroy_process_group()
    np.save(os.path.join(out_dir, f"rank{rank}.npy"), np.array(results, dtype=object),
            allow_pickle=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("dist"))
    torch.multiprocessing.spawn(_worker, args=(free_port(), out_dir), nprocs=WORLD, join=True)
    return [np.load(os.path.join(out_dir, f"rank{r}.npy"), allow_pickle=True).item()
            for r in range(WORLD)]


@pytest.mark.parametrize("kind,k", KINDS)
def test_two_ranks_equal_the_concatenated_batch(ranks, kind, k):
    whole = np.concatenate([batch(r) for r in range(WORLD)])
    counts = mfx.expert_counts(whole, k=k)
    latency = LATENCY if kind == "latency" else None
    for rank in range(WORLD):
        loss, grad, calls = ranks[rank][f"{kind}{k}"]
        want_loss, want_grad = mfx.router_loss(batch(rank), kind, k=k, latency=latency,
                                               counts=counts, tokens=whole.shape[0])
        assert calls == 1, "one all_reduce per loss"
        assert loss == pytest.approx(want_loss, rel=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-7)
        # the local counts give another loss: the all_reduce did something
        local, _ = mfx.router_loss(batch(rank), kind, k=k, latency=latency)
        assert ranks[rank][f"{kind}{k}_local"] == pytest.approx(local, rel=1e-5)
        assert abs(local - want_loss) > 1e-4


def test_two_ranks_smooth_load(ranks):
    """The noisy gate's smooth load is summed over the ranks (one
    all_reduce); each rank's gradient is that of the global-load loss with
    the other rank's load held constant."""
    for rank in range(WORLD):
        loss, gz, gr, calls = ranks[rank]["noisy"]
        assert calls == 1
        other = 1 - rank
        r_other, eps_other = noise_of(other)
        load_other = torch.tensor(mfx.noisy_load(batch(other), r_other.numpy(),
                                                 eps_other.numpy(), k=2))
        z = torch.tensor(batch(rank), dtype=torch.float64, requires_grad=True)
        r, eps = noise_of(rank)
        r = r.double().requires_grad_()
        load = mfx_torch.noisy_load(z, r, eps.double(), k=2) + load_other
        alpha = torch.tensor(LATENCY, dtype=torch.float64) / np.mean(LATENCY)
        want = (mfx_torch.cv2(alpha * torch.softmax(z, 1).sum(0))
                + mfx_torch.cv2(alpha * load))
        wz, wr = torch.autograd.grad(want, (z, r))
        assert loss == pytest.approx(want.item(), rel=1e-5)
        np.testing.assert_allclose(gz, wz.numpy(), rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(gr, wr.numpy(), rtol=1e-3, atol=1e-6)
        # and the global load is not the local one
        local = mfx.noisy_router_loss(batch(rank), r.detach().float().numpy(), eps.numpy(),
                                      "latency", k=2, latency=LATENCY)[0]
        assert abs(local - loss) > 1e-4


def test_zloss_needs_no_all_reduce(ranks):
    assert all(r["zloss_calls"] == 0 for r in ranks)


def test_distributed_true_without_a_group_is_an_error():
    z = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="init_process_group"):
        mfx_torch.router_loss(z, "switch", distributed=True)
