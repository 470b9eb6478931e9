"""Retrain: a warm start really starts from the parent's weights, new labels get new head
rows, corrections replace the labels they correct, and the manifest records the lineage."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import domainfit
from domainfit.core.errors import ConfigError
from domainfit.improve.retrain import retrain
from helpers import fast_settings, run_cli


def _weights(folder):
    manifest = json.loads((folder / "domainfit.json").read_text())
    return manifest, load_file(str(folder / manifest["weights"]))


def test_warm_start_keeps_the_parent_weights_and_maps_head_rows(served_models, tmp_path):
    parent = served_models[0]
    rows = [{"text": "where is my card", "label": "card"}, {"text": "i want a refund", "label": "refund"},
            {"text": "reset password", "label": "password"}, {"text": "open an account", "label": "account"}] * 6
    domainfit.train(data=rows, output=str(tmp_path / "child"), model=json.loads(
        (parent / "domainfit.json").read_text())["config"]["model"],
        **fast_settings(**{"training.init_from": str(parent), "training.epochs": 1, "training.learning_rate": 1e-12,
                           "training.head_learning_rate": 1e-12, "training.weight_decay": 0.0}))
    (old_manifest, old), (new_manifest, new) = _weights(parent), _weights(tmp_path / "child")
    assert new_manifest["labels"] == ["account", "card", "password", "refund"]
    assert new_manifest["parent"]["path"] == str(parent.resolve())
    encoder_keys = [k for k in old if k.startswith("encoder.") and k in new]
    assert encoder_keys and all(torch.allclose(old[k], new[k], atol=1e-6) for k in encoder_keys)
    head = "head.weight"
    for j, name in enumerate(new_manifest["labels"]):
        if name in old_manifest["labels"]:
            assert torch.allclose(new[head][j], old[head][old_manifest["labels"].index(name)], atol=1e-6)
    assert not torch.allclose(new[head][0], old[head][0], atol=1e-3)  # 'account' starts fresh


def test_retrain_command_adds_rows_and_records_them(served_models, tmp_path):
    parent = served_models[0]
    added = tmp_path / "feedback.csv"
    added.write_text("text,label,predicted\n" + "".join(
        f"{t},account,card\n" for t in ["open an account", "new account please", "i want an account"] * 4)
        + "where is my card,password,card\n" * 2, encoding="utf-8")
    done = run_cli("retrain", str(parent), "--add", str(added), "--output", str(tmp_path / "v2"), "--epochs", "6")
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((tmp_path / "v2" / "domainfit.json").read_text())
    section = manifest["retrain"]
    assert section["parent"] == str(parent.resolve()) and section["added"][0]["rows"] == 14
    assert section["added"][0]["new_labels"] == ["account"]
    assert section["replay"]["rows"] == 32 and section["replay"]["replaced_by_corrections"] == 4
    assert manifest["config"]["training"]["init_from"] == str(parent.resolve())
    assert "account" in manifest["labels"]
    assert domainfit.load(tmp_path / "v2").predict(["open an account"])[0]["label"] == "account"
    alone = run_cli("retrain", str(parent), "--add", str(added), "--replay", "0", "--output", str(tmp_path / "v3"),
                    "--epochs", "1")
    assert alone.returncode == 0, alone.stderr
    assert json.loads((tmp_path / "v3" / "domainfit.json").read_text())["retrain"]["replay"]["rows"] == 0


def test_retrain_bad_input(served_models, tmp_path):
    added = tmp_path / "add.csv"
    added.write_text("text,label\nopen an account,account\n")
    with pytest.raises(ConfigError, match="--replay 'some'"):
        retrain(served_models[0], [added], tmp_path / "x", replay="some")
    with pytest.raises(ConfigError, match="not here to replay"):
        retrain(served_models[0], [added], tmp_path / "x", original_data=tmp_path / "gone.csv")
    with pytest.raises(ConfigError, match="nothing to add"):
        retrain(served_models[0], [], tmp_path / "x")
    bad = run_cli("retrain", str(tmp_path), "--add", str(added), "--output", str(tmp_path / "y"))
    assert bad.returncode == 2 and "not a domainfit model folder" in bad.stdout + bad.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
