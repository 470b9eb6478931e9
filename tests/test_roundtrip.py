"""Full fine-tuning end to end: the artifact's files, its report, and predictions in the
user's terms after loading (every method × task round trip: test_conformance)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import domainfit
from domainfit.data.batching import encode_texts
from domainfit.modeling import predict_logits
from helpers import fast_settings, write_task_data

TEXTS = ["where is my card", "refund my order please", "forgot my password", "我的卡丢了"]



@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_train_save_load_same_predictions(tmp_path, tiny_model, task):
    method = "full"
    data = write_task_data(tmp_path, task)
    out = tmp_path / "model"
    result = domainfit.train(output=str(out), model=str(tiny_model), task=task,
                             **fast_settings(**{"data.train": str(data), "method.name": method,
                                                "training.epochs": 2}))
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["task"] == task and manifest["method"]["name"] == method
    weights = "model.safetensors" if method == "full" else "adapter.safetensors"
    assert manifest["weights"] == weights and (out / weights).is_file()
    assert not (out / "checkpoints").exists()
    assert (out / "report" / "metrics.json").is_file() and (out / "report" / "report.md").is_file()

    loaded = domainfit.load(out)
    enc = encode_texts(loaded.tokenizer, TEXTS, None, 64)
    expected = predict_logits(result.model.eval(), enc, loaded.tokenizer.pad_token_id)
    actual = predict_logits(loaded.model, enc, loaded.tokenizer.pad_token_id)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)
    preds = loaded.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    if task == "regression":
        assert all(isinstance(p["label"], float) for p in preds)
    else:
        assert all(p["top_k"][0]["label"] in loaded.labels for p in preds)


def test_lora_saves_only_adapter_and_trained_head(tmp_path, tiny_model):
    """peft #310: a new head must be saved with the adapter, not re-initialised on load."""
    data = write_task_data(tmp_path, "classification")
    out = tmp_path / "lora"
    result = domainfit.train(output=str(out), model=str(tiny_model),
                             **fast_settings(**{"data.train": str(data), "method.name": "lora"}))
    state = load_file(str(out / "adapter.safetensors"))
    assert "head.weight" in state and "head.bias" in state
    assert all("lora_" in k or k.startswith(("head.", "output_")) for k in state), sorted(state)[:5]
    assert not any("word_embeddings" in k for k in state)
    torch.testing.assert_close(state["head.weight"], result.model.head.weight.detach())
    reloaded = domainfit.load(out)
    torch.testing.assert_close(reloaded.model.head.weight, result.model.head.weight.detach())
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["base_model"]["weights_sha256"] and len(manifest["base_model"]["weights_sha256"]) == 64
    assert 0 < manifest["method"]["trainable_parameters"] < manifest["method"]["total_parameters"]


def test_classification_learns_and_reports(tmp_path, tiny_model, intents_csv):
    out = tmp_path / "m"
    result = domainfit.train(output=str(out), model=str(tiny_model),
                             **fast_settings(**{"data.train": str(intents_csv), "data.eval": str(intents_csv)}))
    assert result.eval_metrics["accuracy"] >= 0.9
    for name in ("metrics.json", "report.md", "reliability.png", "confusion_matrix.png"):
        assert (out / "report" / name).stat().st_size > 0, name
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in line and "lr" in line for line in lines)
    assert any("val_accuracy" in line for line in lines)
    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["data"]["train"]["rows"] == 36 and len(manifest["data"]["train"]["sha256"]) == 64
    assert manifest["labels"] == ["card_arrival", "password", "refund"]
    assert manifest["config"]["training"]["batch_size"] == 8
