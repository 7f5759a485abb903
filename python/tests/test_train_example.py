"""examples/train_moe.py end to end, shortened (2 epochs, a latency table
written here instead of measuring): it trains the dense and the two MoE
models, prints accuracies and shares, writes the SVG plot, and the shares
of the training tokens follow alpha (more to the faster expert, reversed
when alpha is reversed). Skipped without PyTorch or scikit-learn."""

import json
import os
import re
import subprocess
import sys
import xml.dom.minidom

import pytest

import mfx

pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def latency_table(path, alpha):
    expert = {"tokens": [32, 64], "seconds": [1e-5, 2e-5], "a": 0.0, "b": 3e-7, "r2": 1.0}
    key = mfx.host_key()
    doc = {"format": "mfx-latency-1", "devices": {key: {
        "device": key, "target": "cpu", "dim": 16, "hidden": 24, "at_tokens": 64,
        "experts": [dict(expert, name="mult", latency=alpha[0] * 1e-5),
                    dict(expert, name="shift", latency=alpha[1] * 1e-5)],
        "alpha": list(alpha)}}}
    with open(path, "w") as f:
        json.dump(doc, f)


@pytest.mark.whole_model
def test_train_moe_example(tmp_path):
    table = tmp_path / "latency.json"
    latency_table(table, [0.5, 1.5])
    plot = tmp_path / "shares.svg"
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "train_moe.py"), "--latency", str(table),
         "--epochs", "2", "--dim", "16", "--hidden", "24", "--plot", str(plot)],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "alpha    mult 0.500  shift 1.500  (the mult expert is faster here)" in out
    assert re.search(r"accuracy dense \d+\.\d+%   moe \(measured alpha\) \d+\.\d+%", out)
    assert out.count("moe measured   epoch") == 2 and out.count("moe reversed   epoch") == 2
    shares = re.findall(r"shares   (measured|reversed) alpha .*?: training \(noisy gate\) "
                        r"mult ([0-9.]+) shift ([0-9.]+)", out)
    assert [s[0] for s in shares] == ["measured", "reversed"]
    measured, reversed_ = ([float(v) for v in s[1:]] for s in shares)
    assert measured[0] > 0.6 and reversed_[1] > 0.6  # optimum: 0.75 to the faster expert
    assert "deploy" in out
    assert re.search(r"lanes16  moe \(reversed alpha, shift share \d\.\d+\), shift experts on "
                     r"shift_linear16 arithmetic: F=8 \d+\.\d+%  F=10 \d+\.\d+%", out)
    svg = xml.dom.minidom.parse(str(plot))
    assert len(svg.getElementsByTagName("polyline")) == 4
