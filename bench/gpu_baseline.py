"""The dense fp32 baseline of one bench/gpu_cases.txt case, timed with CUDA
events in PyTorch (TF32 off, so it is true fp32). Prints the median in ms.

    python3 bench/gpu_baseline.py matmul M=512,N=512,K=512 [--device cuda]
"""
import argparse
import math
import statistics

import torch


def dims_of(text):
    return {k: int(v) for k, v in (p.split("=") for p in text.split(","))}


def case(kind, d, dev):
    r = lambda *s: torch.randn(*s, device=dev, dtype=torch.float32)
    if kind == "matmul":
        x, w = r(d["M"], d["K"]), r(d["N"], d["K"])
        return lambda: x @ w.t()
    if kind == "einsum_matadd":
        hc = (r(d["B"], d["H"], d["N"], d["C"]) > 0).float()
        v = r(d["B"], d["H"], d["N"], d["D"])
        return lambda: torch.einsum("bhnc,bhnd->bhcd", hc, v)
    if kind == "float_attention":
        hc = (r(d["B"], d["H"], d["N"], d["C"]) > 0).float()
        v = r(d["B"], d["H"], d["N"], d["D"])

        def attention():
            a = hc.transpose(-1, -2) @ v
            x = 0.5 * v + (hc @ a) / math.pi
            return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return attention
    if kind == "gelu":  # the exact (erf) GELU, as the layer's; q16_gelu's baseline too
        x = r(d["M"], d["N"])
        return lambda: torch.nn.functional.gelu(x)
    if kind == "sign_matmul":
        q = torch.sign(r(d["N"], 32 * d["W"]))
        k = torch.sign(r(d["M"], 32 * d["W"]))
        return lambda: q @ k.t()
    raise SystemExit(f"unknown baseline {kind}")


def median_ms(fn, dev, repeat=50):
    fn()
    if dev != "cuda":
        import time
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("dims")
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"{median_ms(case(a.kind, dims_of(a.dims), a.device), a.device):.4f}")


if __name__ == "__main__":
    main()
