"""training.freeze_layers: the embeddings and the lowest layers stay as the base model has them."""

from __future__ import annotations

import pytest
import torch

import domainfit
from domainfit.artifact import load_encoder
from domainfit.core.errors import ConfigError
from helpers import fast_settings, write_task_data


def test_the_lowest_layers_stay_fixed_and_the_rest_learn(tmp_path, tiny_model):
    data = write_task_data(tmp_path, "classification")
    result = domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), **fast_settings(
        **{"data.train": str(data), "training.epochs": 3, "training.freeze_layers": 1}))
    base = load_encoder(tiny_model)
    trained = result.model.encoder
    fixed = [(base.embeddings, trained.embeddings), (base.encoder.layer[0], trained.encoder.layer[0])]
    for before, after in fixed:
        for (name, a), b in zip(before.named_parameters(), after.parameters()):
            assert torch.equal(a, b), name
    moved = [not torch.equal(a, b) for a, b in zip(base.encoder.layer[1].parameters(),
                                                     trained.encoder.layer[1].parameters())]
    assert all(moved)
    everything = domainfit.train(output=str(tmp_path / "all"), model=str(tiny_model), **fast_settings(
        **{"data.train": str(data), "training.epochs": 1}))
    per_layer = sum(p.numel() for p in base.encoder.layer[0].parameters())
    embeddings = sum(p.numel() for p in base.embeddings.parameters())
    assert (everything.manifest["method"]["trainable_parameters"] - result.manifest["method"]["trainable_parameters"]
            == per_layer + embeddings)


def test_fixing_every_layer_is_refused_before_any_work(tmp_path, tiny_model):
    data = write_task_data(tmp_path, "classification")
    with pytest.raises(ConfigError, match="this encoder has 2 layers"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model),
                        **fast_settings(**{"data.train": str(data), "training.freeze_layers": 2}))
    assert not (tmp_path / "m").exists()
    with pytest.raises(ConfigError, match="freeze_layers must be 0 or more"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model),
                        **fast_settings(**{"data.train": str(data), "training.freeze_layers": -1}))
