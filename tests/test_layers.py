"""training.layers: a shallower model made from some of the base encoder's layers, saved,
loaded and exported with that depth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import domainfit
from domainfit.artifact import load_encoder
from domainfit.core.errors import ConfigError
from domainfit.modeling import keep_layers, spread_layers
from conftest import make_tiny_model
from helpers import fast_settings, write_task_data


def test_spread_keeps_the_first_and_the_last_layer():
    assert spread_layers(6, 3) == [0, 2, 5]
    assert spread_layers(6, 4) == [0, 2, 3, 5]
    assert spread_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert spread_layers(6, 1) == [5]
    assert spread_layers(6, 6) == list(range(6))


def test_keep_layers_cuts_the_encoder_and_its_config(tiny_model):
    encoder = load_encoder(tiny_model)
    second = [p.clone() for p in encoder.encoder.layer[1].parameters()]
    keep_layers(encoder, [1])
    assert len(encoder.encoder.layer) == 1 and encoder.config.num_hidden_layers == 1
    assert all(torch.equal(a, b) for a, b in zip(second, encoder.encoder.layer[0].parameters()))
    out = encoder(input_ids=torch.tensor([[2, 10, 3]]), attention_mask=torch.ones(1, 3, dtype=torch.long))
    assert out.last_hidden_state.shape == (1, 3, 32)
    with pytest.raises(ConfigError, match="cannot keep layers"):
        keep_layers(load_encoder(tiny_model), [0, 2])


@pytest.fixture(scope="module")
def deep_model(tmp_path_factory):
    """A 4-layer tiny BERT, so that a cut keeps some layers from the middle."""
    from transformers import BertConfig, BertModel

    folder = make_tiny_model(tmp_path_factory.mktemp("tiny-bert-4"))
    config = BertConfig.from_pretrained(str(folder))
    config.num_hidden_layers = 4
    torch.manual_seed(1)
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_shallower_model_trains_saves_and_loads_with_its_depth(tmp_path, deep_model, method):
    data = write_task_data(tmp_path, "classification")
    out = tmp_path / "m"
    result = domainfit.train(output=str(out), model=str(deep_model), **fast_settings(
        **{"data.train": str(data), "training.layers": 2, "method.name": method}))
    assert result.manifest["model"]["layers"] == [0, 3]
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    encoder = getattr(result.model.encoder, "get_base_model", lambda: result.model.encoder)()
    assert len(encoder.encoder.layer) == 2
    texts = ["where is my card", "i want a refund", "forgot my password"]
    loaded = domainfit.load(out)
    assert loaded.predict(texts) == result.predictor.predict(texts)
    np.testing.assert_allclose(loaded.predict_proba(texts), result.predictor.predict_proba(texts), atol=1e-5)
    assert result.manifest["metrics"]["validation"]["accuracy"] >= 0.8


def test_a_shallower_model_exports_to_onnx(tmp_path, deep_model):
    from domainfit.export import export_model

    data = write_task_data(tmp_path, "classification")
    out = tmp_path / "m"
    domainfit.train(output=str(out), model=str(deep_model), **fast_settings(
        **{"data.train": str(data), "training.layers": 1}))
    parity = export_model(out, tmp_path / "onnx")["parity"]
    assert parity["agreement"] == 1.0
    texts = ["where is my card", "i want a refund"]
    np.testing.assert_allclose(domainfit.load(tmp_path / "onnx").predict_proba(texts),
                               domainfit.load(out).predict_proba(texts), atol=1e-4)


def test_bad_depths_are_refused_before_any_work(tmp_path, tiny_model):
    data = write_task_data(tmp_path, "classification")
    with pytest.raises(ConfigError, match="this encoder has 2 layers: keep fewer"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model),
                        **fast_settings(**{"data.train": str(data), "training.layers": 2}))
    with pytest.raises(ConfigError, match=r"freeze_layers \(1\) must be below training.layers \(1\)"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model),
                        **fast_settings(**{"data.train": str(data), "training.layers": 1, "training.freeze_layers": 1}))
    with pytest.raises(ConfigError, match="layers must be 0 or more"):
        domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model),
                        **fast_settings(**{"data.train": str(data), "training.layers": -1}))
    assert not (tmp_path / "m").exists()
