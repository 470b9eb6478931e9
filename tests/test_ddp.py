"""Two CPU processes (gloo, torchrun) give the same model as one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from conftest import write_intents_csv
from helpers import ROOT, run_cli

pytestmark = pytest.mark.integration

ARGS = ["--set", "training.epochs=2", "--set", "training.batch_size=8", "--set", "training.learning_rate=3e-3",
        "--set", "training.early_stopping_patience=0", "--set", "training.dropout=0", "--precision", "fp32", "--seed", "3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path, tiny_model_no_dropout):
    data = write_intents_csv(tmp_path / "d.csv", per_class=15)
    single = tmp_path / "single"
    one = run_cli("train", "--data", str(data), "--output", str(single), "--model", str(tiny_model_no_dropout), *ARGS)
    assert one.returncode == 0, one.stderr

    multi = tmp_path / "multi"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "domainfit.cli", "train", "--data", str(data),
           "--output", str(multi), "--model", str(tiny_model_no_dropout), *ARGS]
    two = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es)" in two.stderr
    manifest = json.loads((multi / "domainfit.json").read_text())
    assert manifest["training"]["processes"] == 2

    a = load_file(str(single / "model.safetensors"))
    b = load_file(str(multi / "model.safetensors"))
    assert a.keys() == b.keys()
    changed = 0
    base = load_file(str(tiny_model_no_dropout / "model.safetensors"))
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-5, key
        bkey = key.removeprefix("encoder.")
        if bkey in base and (base[bkey] - a[key]).abs().max() > 1e-4:
            changed += 1
    assert changed > 10, "training did not change the encoder"
