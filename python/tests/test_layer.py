"""The Python side of the MoE layer's tools: the latency table that
`mfx experts` saves (mfx.load_latency), the latency-aware loss from it, and
artifacts run on numpy arrays (mfx.Module). Tests that need the mfx program
skip, saying so, when $MFX_BIN/mfx (ctest sets MFX_BIN) is not built."""

import json
import os
import subprocess

import numpy as np
import pytest

import mfx


def mfx_program():
    path = os.path.join(os.environ.get("MFX_BIN", ""), "mfx")
    if not os.environ.get("MFX_BIN") or not os.access(path, os.X_OK):
        pytest.skip("the mfx program is not built (set MFX_BIN to the folder that holds it)")
    return path


def run_mfx(*args):
    return subprocess.run([mfx_program(), *args], capture_output=True, text=True, timeout=120)


# ---- latency tables ------------------------------------------------------------


def table_entry(alpha, names=("mult", "shift")):
    experts = [{"name": n, "tokens": [8, 16], "seconds": [1e-3, 2e-3], "a": 0.0, "b": 1.25e-4,
                "r2": 1.0, "latency": float(a) * 1e-3} for n, a in zip(names, alpha)]
    return {"device": "", "target": "cpu", "dim": 8, "hidden": 16, "at_tokens": 8,
            "experts": experts, "alpha": list(alpha)}


def write_table(path, devices):
    path.write_text(json.dumps({"format": "mfx-latency-1", "devices": devices}))


def test_load_latency_by_device(tmp_path):
    path = tmp_path / "latency.json"
    write_table(path, {"cuda: NVIDIA H100": table_entry([0.5, 1.5]),
                       mfx.host_key(): table_entry([0.8, 1.2])})
    gpu = mfx.load_latency(path, device="cuda: NVIDIA H100")
    assert gpu["names"] == ["mult", "shift"]
    np.testing.assert_allclose(gpu["alpha"], [0.5, 1.5])
    assert mfx.load_latency(path, device="cuda")["device"] == "cuda: NVIDIA H100"  # a prefix
    here = mfx.load_latency(path)  # this host's key by default
    np.testing.assert_allclose(here["alpha"], [0.8, 1.2])
    assert here["device"] == mfx.host_key() and here["at_tokens"] == 8


def test_load_latency_default_path(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.json"
    write_table(path, {mfx.host_key(): table_entry([1.0, 1.0])})
    monkeypatch.setenv("MFX_LATENCY", str(path))
    np.testing.assert_allclose(mfx.load_latency()["alpha"], [1.0, 1.0])


def test_load_latency_errors(tmp_path):
    path = tmp_path / "latency.json"
    write_table(path, {"cuda: A": table_entry([1.0, 1.0])})
    with pytest.raises(KeyError, match="no table for device 'cuda: B'; it has 'cuda: A'"):
        mfx.load_latency(path, device="cuda: B")
    write_table(path, {"cuda: A": table_entry([1.0, 1.0]), "cuda: AB": table_entry([1.0, 1.0])})
    with pytest.raises(ValueError, match="'cuda' starts 2 device keys"):
        mfx.load_latency(path, device="cuda")
    assert mfx.load_latency(path, device="cuda: A")["device"] == "cuda: A"  # exact beats prefix
    path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not an mfx latency table"):
        mfx.load_latency(path, device="cuda: A")
    path.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        mfx.load_latency(path, device="cuda: A")
    write_table(path, {"cuda: A": table_entry([1.0, -1.0])})
    with pytest.raises(ValueError, match="finite positive"):
        mfx.load_latency(path, device="cuda: A")
    with pytest.raises(FileNotFoundError):
        mfx.load_latency(tmp_path / "missing.json", device="cuda: A")


def test_experts_table_loads_and_drives_the_loss(tmp_path):
    path = tmp_path / "latency.json"
    done = run_mfx("experts", "--tokens", "64", "--dim", "8", "--hidden", "16",
                   "--experts", "mult,shift,mult", "--min-time", "0.001", "--out", str(path))
    assert done.returncode == 0, done.stderr
    table = mfx.load_latency(path)
    assert table["names"] == ["mult", "shift", "mult"]
    assert table["alpha"].shape == (3,)
    assert abs(table["alpha"].mean() - 1.0) < 1e-9
    np.testing.assert_allclose(table["alpha"], table["latency"] / table["latency"].mean())
    logits = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    loss, grad = mfx.router_loss(logits, "latency", latency=table["alpha"])
    loss2, _ = mfx.router_loss(logits, "latency", latency=table["latency"])
    assert np.isfinite(loss) and grad.shape == logits.shape
    assert loss == pytest.approx(loss2, rel=1e-9)  # only ratios matter


# ---- artifacts on numpy arrays ---------------------------------------------------------


def compile_artifact(tmp_path):
    path = tmp_path / "k.mfxa"
    done = run_mfx("compile", "linear", "--dims", "M=8,N=4,K=16", "--op", "shift_linear",
                   "--dims", "M=5,N=3,K=7", "-o", str(path))
    assert done.returncode == 0, done.stderr
    return path


def test_module_runs_kernels(tmp_path):
    rng = np.random.default_rng(1)
    with mfx.Module(compile_artifact(tmp_path)) as module:
        assert module.kernels == ["linear", "shift_linear"]
        assert module.device == "cpu"
        sig = module.signature("linear")
        assert sig["outputs"] == [("Y", np.dtype(np.float32), (8, 4))]
        x = rng.uniform(-1, 1, size=(8, 16)).astype(np.float32)
        w = rng.uniform(-1, 1, size=(4, 16)).astype(np.float32)
        y = module.run("linear", X=x, W=w)["Y"]
        np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-5)
        xq = rng.integers(-(1 << 20), 1 << 20, size=(5, 7), dtype=np.int32)
        s = rng.integers(0, 16, size=(3, 7), dtype=np.int8)
        g = rng.integers(-1, 2, size=(3, 7), dtype=np.int8)
        yq = module.run(1, X=xq, S=s, G=g)["Y"]
        want = (g[None, :, :].astype(np.int64) * (xq[:, None, :] >> s[None, :, :])).sum(axis=2)
        np.testing.assert_array_equal(yq, want.astype(np.int32))
        assert module.time(0, repeat=3, X=x, W=w) > 0.0


def test_module_errors(tmp_path):
    module = mfx.Module(compile_artifact(tmp_path))
    x = np.zeros((8, 16), np.float32)
    w = np.zeros((4, 16), np.float32)
    with pytest.raises(ValueError, match="missing \\['W'\\]"):
        module.run("linear", X=x)
    with pytest.raises(ValueError, match="unknown \\['Z'\\]"):
        module.run("linear", X=x, W=w, Z=w)
    with pytest.raises(ValueError, match="has shape \\(4, 15\\); expected \\(4, 16\\)"):
        module.run("linear", X=x, W=w[:, :15])
    with pytest.raises(ValueError, match="dtype float64; expected int32"):
        module.run("shift_linear", X=np.zeros((5, 7)), S=np.zeros((3, 7), np.int8),
                   G=np.zeros((3, 7), np.int8))
    with pytest.raises(ValueError, match="kernel index 5"):
        module.run(5, X=x, W=w)
    with pytest.raises((ValueError, RuntimeError), match="nope"):
        module.run("nope", X=x, W=w)
    module.close()
    with pytest.raises(ValueError, match="closed"):
        module.run(0, X=x, W=w)
    (tmp_path / "bad.mfxa").write_bytes(b"not an artifact")
    with pytest.raises((ValueError, RuntimeError)):
        mfx.Module(tmp_path / "bad.mfxa")
