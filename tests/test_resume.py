"""A run killed with SIGKILL mid-epoch and resumed ends exactly like an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from conftest import write_intents_csv
from helpers import ROOT, run_cli

pytestmark = pytest.mark.integration

ARGS = ["--set", "training.epochs=4", "--set", "training.batch_size=4", "--set", "training.save_steps=5",
        "--set", "training.learning_rate=3e-3", "--set", "training.early_stopping_patience=0",
        "--set", "training.eval_every_epochs=0.5", "--seed", "7"]


def _train_cmd(data, out, model):
    return ["train", "--data", str(data), "--output", str(out), "--model", str(model), *ARGS]


def _final(out):
    manifest = json.loads((out / "domainfit.json").read_text())
    return manifest["metrics"], manifest["training"]["history"], load_file(str(out / "model.safetensors"))


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_model):
    data = write_intents_csv(tmp_path / "d.csv", per_class=40)  # 120 rows: 27 steps per epoch
    reference = tmp_path / "reference"
    done = run_cli(*_train_cmd(data, reference, tiny_model))
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "domainfit.cli", *_train_cmd(data, out, tiny_model)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    target = out / "checkpoints" / "step-00000040"  # epoch 2 of 4, 13 steps in
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "domainfit.json").exists(), "the run finished before it could be killed"
    assert (out / "checkpoints").exists()

    unfinished = run_cli("info", str(out))
    assert unfinished.returncode == 2 and "unfinished" in unfinished.stderr

    refused = run_cli(*_train_cmd(data, out, tiny_model), "--resume", "never")
    assert refused.returncode == 2 and "unfinished run" in refused.stderr

    resumed = run_cli(*_train_cmd(data, out, tiny_model))
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr

    ref_metrics, ref_history, ref_weights = _final(reference)
    metrics, history, weights = _final(out)
    assert metrics == ref_metrics
    assert history == ref_history
    assert ref_weights.keys() == weights.keys()
    for key in ref_weights:
        assert (ref_weights[key] == weights[key]).all(), key
    # The log holds each training step once: lines written after the checkpoint were replaced.
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [line["step"] for line in lines if "loss" in line]
    ref_steps = [json.loads(x)["step"] for x in (reference / "metrics.jsonl").read_text().splitlines()
                 if "loss" in json.loads(x)]
    assert steps == ref_steps


def test_finished_folder_is_not_overwritten(tmp_path, tiny_model):
    data = write_intents_csv(tmp_path / "d.csv", per_class=6)
    out = tmp_path / "m"
    assert run_cli(*_train_cmd(data, out, tiny_model), "--set", "training.epochs=1").returncode == 0
    again = run_cli(*_train_cmd(data, out, tiny_model), "--set", "training.epochs=1")
    assert again.returncode == 2 and "already holds a trained model" in again.stderr
    assert "Traceback" not in again.stderr
    forced = run_cli(*_train_cmd(data, out, tiny_model), "--set", "training.epochs=1", "--overwrite")
    assert forced.returncode == 0, forced.stderr
