"""Properties of the training loop: accumulation, batching, checkpoints."""

from __future__ import annotations

import importlib.util

import pytest
from safetensors.torch import load_file

import domainfit
from domainfit.data.batching import batch_order
from helpers import fast_settings


def _train(tmp_path, name, model, data, **extra):
    settings = fast_settings(**{"data.train": str(data), "training.epochs": 2, "training.dropout": 0.0,
                                "training.precision": "fp32", **extra})
    result = domainfit.train(output=str(tmp_path / name), model=str(model), **settings)
    return result, load_file(str(tmp_path / name / "model.safetensors"))


def test_gradient_accumulation_equals_one_big_batch(tmp_path, tiny_model, intents_csv):
    _, whole = _train(tmp_path, "whole", tiny_model, intents_csv)
    _, split = _train(tmp_path, "split", tiny_model, intents_csv, **{"training.grad_accumulation": 4})
    for key in whole:
        assert (whole[key] - split[key]).abs().max() < 1e-5, key


def test_batches_are_length_grouped_and_reproducible():
    lengths = [i % 37 + 1 for i in range(1000)]
    first = batch_order(lengths, 8, seed=1, epoch=0)
    assert first == batch_order(lengths, 8, seed=1, epoch=0)
    assert first != batch_order(lengths, 8, seed=1, epoch=1)
    assert sorted(i for b in first for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    plain = batch_order(lengths, 8, seed=1, epoch=0, group_by_length=False)
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain) / len(plain)
    assert spread < plain_spread / 4  # little padding inside a batch


def test_checkpoints_keep_the_last_two_and_logs_are_written(tmp_path, tiny_model, intents_csv):
    seen: list[set[str]] = []

    def watch(event, state, info):
        folder = tmp_path / "m" / "checkpoints"
        if event == "step" and folder.exists():
            seen.append({p.name for p in folder.glob("step-*")})

    domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), callbacks=[watch],
                    **fast_settings(**{"data.train": str(intents_csv), "training.save_steps": 2}))
    assert max(len(s) for s in seen) == 2
    assert not any(name.startswith(".tmp") for s in seen for name in s)
    if importlib.util.find_spec("tensorboard") is not None:
        assert any((tmp_path / "m" / "tensorboard").glob("events.*"))


def test_early_stopping_keeps_the_best_weights(tmp_path, tiny_model, intents_csv):
    result = domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model),
                             **fast_settings(**{"data.train": str(intents_csv), "data.eval": str(intents_csv),
                                                "training.epochs": 30, "training.early_stopping_patience": 2}))
    state = result.state
    assert state.stopped_early and state.global_step < state.total_steps
    scores = [h["val_accuracy"] for h in state.history]
    assert state.best_score == pytest.approx(max(scores))
    # the manifest records the step whose weights were kept
    assert result.manifest["training"]["best_step"] == state.best_step <= state.global_step
