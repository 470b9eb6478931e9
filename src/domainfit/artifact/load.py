"""Rebuilding an artifact's model: torch (full weights or a method's trained part on the
base model), an exported ONNX graph, or the zero-shot LM backend's label scorer."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..core.errors import DomainfitError
from .folder import read_manifest

__all__ = ["load_model"]


def load_model(path: str | Path, manifest: dict | None = None) -> torch.nn.Module:
    """The model of an artifact folder, ready to predict (eval mode, CPU). No pickle, no network.

    Raises:
        DomainfitError: the folder is not an artifact, or its weights do not match its model.
    """
    path = Path(path)
    manifest = manifest or read_manifest(path)
    if manifest.get("backend") == "onnx":
        from ..modeling.onnx_runtime import load_onnx

        return load_onnx(path, manifest)
    if manifest["model"].get("kind") == "lm-label-scorer":
        return _label_scorer(manifest)
    return _torch_model(path, manifest)


def _torch_model(path: Path, manifest: dict) -> torch.nn.Module:
    from safetensors.torch import load_file

    from ..methods import get_method
    from ..methods.registry import MethodContext
    from ..modeling import build_encoder, build_task_model, resolve_model, weights_sha256

    method = get_method(manifest["method"]["name"])
    settings = method.parse(manifest["method"].get("options", {}))
    head = manifest["model"]
    whole = manifest["weights"] == "model.safetensors"  # e.g. a self-trained zero-shot model stores it all
    if whole:
        encoder = build_encoder(str(path), from_config=True)
    else:
        base = resolve_model(manifest["base_model"]["name"])
        expected = manifest["base_model"].get("weights_sha256")
        actual = weights_sha256(base.weights_file)
        if expected and actual and expected != actual:
            warnings.warn(f"base model {base.name} differs from the one this adapter was trained on "
                          f"(sha256 {actual[:12]} != {expected[:12]}); predictions may differ.", stacklevel=3)
        encoder = build_encoder(str(base.path))
    model = build_task_model(head.get("kind", "sequence"), encoder, head["num_outputs"], pooling=head["pooling"],
                             normalize=head.get("normalize", False))
    if not whole:
        ctx = MethodContext(total_steps=None, model_type=encoder.config.model_type, training=False)
        model = method.apply(model, settings, ctx)
    state = load_file(str(path / manifest["weights"]))
    result = model.load_state_dict(state, strict=whole)
    if result.unexpected_keys:
        raise DomainfitError(f"{path}: weights do not match the model ({result.unexpected_keys[:3]}).")
    return model.eval()


def _label_scorer(manifest: dict):
    """The LM backend's scorer (its language model is resolved by name, like a base model)."""
    from ..data.labels import LabelSpec, humanize
    from ..methods.zeroshot import ZeroshotSettings, lm_instruction
    from ..modeling.lm import LabelScorer, load_causal_lm

    method = manifest["method"]
    settings = ZeroshotSettings(**method.get("options", {}))
    _, lm, tokenizer = load_causal_lm(settings.lm_model)
    descriptions = method.get("label_descriptions", {})
    specs = [LabelSpec(n, descriptions.get(n)) for n in manifest["labels"]]
    return LabelScorer(lm, tokenizer, [humanize(s.name) for s in specs], lm_instruction(settings, specs),
                       manifest["model"]["max_length"], calibrate=settings.calibrate)
