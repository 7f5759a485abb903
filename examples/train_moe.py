#!/usr/bin/env python3
"""Train -> measure -> deploy: a small model with ShiftAddViT's MoE MLP on
scikit-learn's digits (ships with the Debian package: no download), on the
CPU, with the latency-aware router loss fed by the expert latencies that
`mfx experts` measures on this machine.

  1. measure: `mfx experts` times the mult and the shift expert at the
     layer's dims here and saves a latency table; alpha = latency / mean.
     (--latency FILE reads a saved table instead.)
  2. train: a dense baseline (embed -> residual MLP -> head), then the same
     model with the MLP replaced by mfx.torch.MoE(mult, shift, k=1), its
     router trained by the noisy top-k gate's smooth load in
     CV^2(alpha * importance) + CV^2(alpha * load); each expert's token share
     per epoch is printed and plotted (SVG). Then again with alpha reversed:
     the shares follow the latencies, not the data.
  3. deploy: export the MoE layer (safetensors, mfx-moe-1) and run it on mfx
     kernels through mfx.MoELayer, reporting the largest difference from
     the PyTorch forward (when this tree has the runtime layer).

Run from the source tree: PYTHONPATH=python python3 examples/train_moe.py
(the library from build/lib, the mfx command from build/bin)."""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import mfx  # noqa: E402
import mfx.torch as mfx_torch  # noqa: E402
from mfx import moe_torch  # noqa: E402

KINDS = ("mult", "shift")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=int, default=32, help="token dimension D (default 32)")
    ap.add_argument("--hidden", type=int, default=64, help="expert hidden size H (default 64)")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--aux", type=float, default=0.5, help="weight of the router loss")
    ap.add_argument("--latency", help="a latency table (mfx experts --out) instead of measuring")
    ap.add_argument("--device-key", help="the table's device key (default: this host's)")
    ap.add_argument("--plot", default="train_moe_shares.svg", help="SVG plot of the shares")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


# ---- 1. measure ---------------------------------------------------------------------

def measure_latency(args, workdir):
    """alpha of the mult and shift experts on this machine (mfx experts)."""
    if args.latency:
        table = mfx.load_latency(args.latency, device=args.device_key)
        print(f"latency  read from {args.latency}: device {table['device']!r}")
        return table
    binary = moe_torch.mfx_binary()
    if binary is None:
        sys.exit("train_moe: no mfx command (build it: cmake --build build) and no --latency")
    path = os.path.join(workdir, "latency.json")
    cmd = [binary, "experts", "--tokens", "256", "--dim", str(args.dim), "--hidden",
           str(args.hidden), "--experts", ",".join(KINDS), "--threads", "1",
           "--min-time", "0.02", "--out", path]
    print("measure  " + " ".join(cmd[1:]))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"train_moe: mfx experts failed: {done.stderr.strip()}")
    table = [line for line in done.stdout.splitlines()
             if line.split()[:1] in (["expert"], *([k] for k in KINDS))]
    print("\n".join("         " + line for line in table))
    return mfx.load_latency(path)


# ---- 2. train -----------------------------------------------------------------------

def load_digits(seed):
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    data = sk_digits()
    x = (data.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, data.target, test_size=0.25,
                                              random_state=seed, stratify=data.target)
    return (torch.tensor(x_tr), torch.tensor(y_tr), torch.tensor(x_te), torch.tensor(y_te))


class DenseMLP(nn.Module):
    """The dense baseline's MLP: linear -> GELU -> linear, no biases."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.fc2(moe_torch.gelu(self.fc1(x)))


class Model(nn.Module):
    """64 pixels -> embed D -> x + MLP(LayerNorm(x)) -> 10 classes."""

    def __init__(self, dim, mlp):
        super().__init__()
        self.embed = nn.Linear(64, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = mlp
        self.head = nn.Linear(dim, 10)

    def features(self, x):
        return self.norm(torch.relu(self.embed(x)))

    def forward(self, x):
        h = self.features(x)
        return self.head(h + self.mlp(h))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item() * 100.0


def train(name, model, data, args, moe=None):
    """Adam over the epochs; returns (test accuracy, [(epoch, training
    shares of the batch, EMA-smoothed)] per batch)."""
    x_tr, y_tr, x_te, y_te = data
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(args.seed)
    history, smooth = [], None
    batches = (x_tr.shape[0] + args.batch - 1) // args.batch
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(x_tr.shape[0], generator=gen)
        counts = np.zeros(len(KINDS))
        task_sum = aux_sum = 0.0
        for b, i in enumerate(range(0, len(order), args.batch)):
            idx = order[i:i + args.batch]
            opt.zero_grad()
            task = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            loss = task
            if moe is not None:
                loss = loss + args.aux * moe.aux_loss
                counts += moe.last_counts.numpy()
                aux_sum += moe.aux_loss.item() * len(idx)
                share = moe_torch.shares(moe.last_counts)
                smooth = share if smooth is None else 0.8 * smooth + 0.2 * share
                history.append((epoch + (b + 1) / batches, smooth.copy()))
            loss.backward()
            opt.step()
            task_sum += task.item() * len(idx)
        line = f"{name:<14} epoch {epoch + 1:2d}  loss {task_sum / len(order):.4f}"
        if moe is not None:
            share = counts / counts.sum()
            test = eval_shares(model, moe, x_te)
            line += (f"  router {aux_sum / len(order):.4f}  shares (train, noisy) "
                     + " ".join(f"{k} {s:.3f}" for k, s in zip(KINDS, share))
                     + "  (test, clean) " + " ".join(f"{s:.3f}" for s in test))
        if moe is not None or epoch + 1 == args.epochs or epoch % 5 == 4:
            print(line)
    return accuracy(model, x_te, y_te), history


def eval_shares(model, moe, x):
    """Token shares of the clean (eval) routing of x."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(x)
    model.train(was_training)
    return moe_torch.shares(moe.last_counts)


def train_moe(name, alpha, data, args):
    torch.manual_seed(args.seed)
    moe = mfx_torch.MoE(args.dim, args.hidden, KINDS, k=1, latency=alpha, loss="latency",
                        load="smooth")
    model = Model(args.dim, moe)
    acc, history = train(name, model, data, args, moe)
    return model, moe, acc, history


# ---- the plot -------------------------------------------------------------------------

def write_svg(path, runs, alphas):
    """Each expert's share of the training tokens per batch (moving average)
    over the epochs, one line per run and expert."""
    w, h, left, top, right, bottom = 760, 360, 60, 40, 250, 50
    pw, ph = w - left - right, h - top - bottom
    epochs = max(int(round(max(t for t, _ in r))) for r in runs.values())
    colors = {"mult": "#1f77b4", "shift": "#d62728"}
    dashes = ["", "6,4"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">Share of the training tokens per expert '
           '(latency-aware loss, digits, moving average over batches)</text>']
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + ph * (1 - v)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for e in range(0, epochs + 1, 5):
        x = left + pw * e / epochs
        out.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">{e}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">epoch</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#333"/>')
    legend_y = top + 10
    for r, (run, history) in enumerate(runs.items()):
        for i, kind in enumerate(KINDS):
            pts = " ".join(f"{left + pw * t / epochs:.1f},{top + ph * (1 - share[i]):.1f}"
                           for t, share in history)
            dash = f' stroke-dasharray="{dashes[r % 2]}"' if dashes[r % 2] else ""
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colors[kind]}" '
                       f'stroke-width="1.5"{dash}/>')
            lx = left + pw + 12
            out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 24}" y2="{legend_y}" '
                       f'stroke="{colors[kind]}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{lx + 30}" y="{legend_y + 4}">{kind}, {run}</text>')
            out.append(f'<text x="{lx + 30}" y="{legend_y + 18}" fill="#666">alpha '
                       f'{alphas[run][i]:.2f}</text>')
            legend_y += 36
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---- 3. deploy --------------------------------------------------------------------------

def lanes16_accuracy(name, model, data, q16_acc, share):
    """Test accuracy with the shift experts' integer path on shift_linear16's
    16-bit lanes (X with F fraction bits in -8192..8191) instead of Q16.16."""
    shift_layers = [m for m in model.modules() if isinstance(m, moe_torch.ShiftLinear)]
    results = []
    for frac in (8, 10):
        for m in shift_layers:
            m.lanes16 = frac
        results.append(f"F={frac} {accuracy(model, data[2], data[3]):.2f}%")
    for m in shift_layers:
        m.lanes16 = None
    print(f"lanes16  moe ({name} alpha, shift share {share[1]:.3f}), shift experts on "
          f"shift_linear16 arithmetic: " + "  ".join(results)
          + f"  (Q16.16: {q16_acc:.2f}%, test set)")


def deploy(model, moe, x_te, workdir):
    """The trained layer on mfx kernels against the PyTorch eval forward."""
    model.eval()
    with torch.no_grad():
        tokens = model.features(x_te)
        want = moe(tokens).numpy()
    try:
        got = moe_torch.run_on_mfx(moe, tokens.numpy(), workdir)
    except RuntimeError as err:
        print(f"deploy   skipped: {err}")
        return
    diff = float(np.abs(got - want).max())
    verdict = "within" if diff <= moe_torch.MFX_TOLERANCE else "OUTSIDE"
    print(f"deploy   mfx.MoELayer on {tokens.shape[0]} test tokens: largest |mfx - torch| = "
          f"{diff:.3g} ({verdict} the tolerance {moe_torch.MFX_TOLERANCE:g}: one Q16.16 step is "
          f"2^-16 = 1.5e-05, and GELU's last bit may move a shift expert's hidden value by one)")


def main():
    args = parse_args()
    torch.set_num_threads(1)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="train_moe.") as workdir:
        table = measure_latency(args, workdir)
        if list(table["names"]) != list(KINDS):
            sys.exit(f"train_moe: the latency table has experts {table['names']}; expected "
                     f"{list(KINDS)}")
        alpha = np.asarray(table["alpha"], dtype=np.float64)
        reversed_alpha = alpha[::-1].copy()
        faster = KINDS[int(np.argmin(alpha))]
        print("alpha    " + "  ".join(f"{k} {a:.3f}" for k, a in zip(KINDS, alpha))
              + f"  (the {faster} expert is faster here)")
        data = load_digits(args.seed)
        print(f"data     digits: {data[0].shape[0]} train, {data[2].shape[0]} test images "
              f"(one token each), D={args.dim} H={args.hidden}, k=1, smooth load")

        torch.manual_seed(args.seed)
        dense = Model(args.dim, DenseMLP(args.dim, args.hidden))
        dense_acc, _ = train("dense", dense, data, args)

        model, moe, moe_acc, history = train_moe("moe measured", alpha, data, args)
        test_share = eval_shares(model, moe, data[2])
        train_share = np.mean([sh for _, sh in history[-10:]], axis=0)
        model_rev, moe_rev, rev_acc, history_rev = train_moe("moe reversed", reversed_alpha,
                                                             data, args)
        rev_share = eval_shares(model_rev, moe_rev, data[2])
        rev_train_share = np.mean([sh for _, sh in history_rev[-10:]], axis=0)

        write_svg(args.plot, {"measured alpha": history, "reversed alpha": history_rev},
                  {"measured alpha": alpha, "reversed alpha": reversed_alpha})
        print(f"plot     {args.plot}")
        print(f"accuracy dense {dense_acc:.2f}%   moe (measured alpha) {moe_acc:.2f}%   "
              f"moe (reversed alpha) {rev_acc:.2f}%   (test set)")
        for name, train_sh, share, a in (("measured", train_share, test_share, alpha),
                                         ("reversed", rev_train_share, rev_share,
                                          reversed_alpha)):
            optimum = (1 / a) / (1 / a).sum()
            print(f"shares   {name} alpha " + " ".join(f"{x:.2f}" for x in a)
                  + ": training (noisy gate) "
                  + " ".join(f"{k} {s:.3f}" for k, s in zip(KINDS, train_sh))
                  + ", test (clean routing) " + " ".join(f"{s:.3f}" for s in share)
                  + ", the loss's optimum " + " ".join(f"{o:.3f}" for o in optimum))
        lanes16_accuracy("measured", model, data, moe_acc, test_share)
        lanes16_accuracy("reversed", model_rev, data, rev_acc, rev_share)
        deploy(model, moe, data[2], workdir)
    print(f"time     {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
