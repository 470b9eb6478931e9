"""Rebuilding an artifact's model: torch (full weights or a method's trained part on the
base model), an exported ONNX graph, or the zero-shot LM backend's label scorer."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..core.errors import ConfigError, ManifestError
from ..core.io import inside
from .files import CONFIG, check_files
from .folder import read_manifest
from .manifest import MANIFEST

__all__ = ["load_model", "load_encoder", "load_companion"]


def load_model(path: str | Path, manifest: dict | None = None) -> torch.nn.Module:
    """The model of an artifact folder, ready to predict (eval mode, CPU). No pickle, no network.

    The files the manifest names are checked first (:func:`~domainfit.artifact.files.check_files`).

    Raises:
        ManifestError: the folder is not an artifact, a file is missing, damaged or outside
            the folder, or the weights do not match the model the manifest describes.
    """
    path = Path(path)
    manifest = manifest or read_manifest(path)
    check_files(path, manifest)
    if manifest.get("backend") == "onnx":
        from ..modeling.onnx_runtime import load_onnx

        return load_onnx(path, manifest)
    if manifest["model"].get("kind") == "lm-label-scorer":
        return _label_scorer(manifest)
    return _torch_model(path, manifest)


def _torch_model(path: Path, manifest: dict) -> torch.nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..methods import get_method
    from ..methods.registry import MethodContext
    from ..modeling import build_encoder, build_task_model, resolve_model, weights_sha256

    method = get_method(manifest["method"]["name"])
    settings = method.parse(manifest["method"].get("options", {}))
    head = manifest["model"]
    whole = manifest["weights"] == "model.safetensors"  # e.g. a self-trained zero-shot model stores it all
    if whole:
        try:
            encoder = build_encoder(str(path), from_config=True)
        except (ValueError, KeyError, TypeError, OSError) as exc:  # what transformers raises for a bad config
            raise ManifestError(f"{path / CONFIG} does not describe a model transformers can build ({exc}).") from exc
    else:
        base = resolve_model(manifest["base_model"]["name"])
        expected = manifest["base_model"].get("weights_sha256")
        actual = weights_sha256(base.weights_file)
        if expected and actual and expected != actual:
            warnings.warn(f"base model {base.name} differs from the one this adapter was trained on "
                          f"(sha256 {actual[:12]} != {expected[:12]}); predictions may differ.", stacklevel=3)
        encoder = load_encoder(base.path)
        if head.get("layers") is not None:  # training.layers: the base's layers this model kept
            from ..modeling import keep_layers

            try:
                keep_layers(encoder, [int(i) for i in head["layers"]])
            except (ConfigError, ValueError, TypeError) as exc:
                raise ManifestError(f"{MANIFEST} keeps layers {head['layers']} of {base.name}, which does not have "
                                    f"them ({_first_line(exc)}).") from exc
    model = build_task_model(head.get("kind", "sequence"), encoder, head["num_outputs"], pooling=head["pooling"],
                             normalize=head.get("normalize", False))
    if not whole:
        ctx = MethodContext(total_steps=None, model_type=encoder.config.model_type, training=False)
        model = method.apply(model, settings, ctx)
    weights = inside(path, manifest["weights"])
    try:
        state = load_file(str(weights))
        result = model.load_state_dict(state, strict=whole)
    except (SafetensorError, RuntimeError, OSError, ValueError) as exc:  # RuntimeError: a shape mismatch
        raise ManifestError(f"{weights} does not hold the weights of the model {MANIFEST} describes "
                            f"({_first_line(exc)}).") from exc
    if result.unexpected_keys:
        raise ManifestError(f"{weights} does not hold the weights of the model {MANIFEST} describes "
                            f"(unexpected {result.unexpected_keys[:3]}).")
    return model.eval()


def load_companion(path: str | Path, manifest: dict):
    """The artifact's n-gram companion (``manifest["companion"]``), or None when it has none.

    Raises:
        ManifestError: its files are missing or do not fit together.
    """
    from ..modeling.ngram import COMPANION_FILES, NgramCompanion

    if not manifest.get("companion"):
        return None
    path = Path(path)
    for name in COMPANION_FILES:
        if not inside(path, name).is_file():
            raise ManifestError(f"{path / name} is missing: {MANIFEST} says this model blends an n-gram companion "
                                "into its predictions. Copy the model folder again.")
    try:
        companion = NgramCompanion.load(path)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ManifestError(f"{path / COMPANION_FILES[0]} does not describe the companion {MANIFEST} names "
                            f"({_first_line(exc)}).") from exc
    if len(companion.intercept) != len(manifest.get("labels", [])):
        raise ManifestError(f"{path / COMPANION_FILES[1]} scores {len(companion.intercept)} classes; the model has "
                            f"{len(manifest.get('labels', []))}.")
    return companion


def _first_line(exc: Exception) -> str:
    """The gist of a library's error: its first line, with the next when it only introduces
    a list (torch: "Error(s) in loading state_dict for X:" then "size mismatch for ...")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    gist = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return gist[:400]


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


def load_encoder(path: str | Path, dropout: float | None = None) -> torch.nn.Module:
    """The encoder to start from, with every weight loaded: a Hugging Face model folder's
    (all its weights, or :class:`ModelNotFoundError`), or, for a model folder that domainfit
    trained, the encoder as it was trained (a LoRA-style adapter merged in), so that training
    can continue from it.

    Raises:
        ManifestError: a domainfit model whose method keeps the encoder apart from its
            trained part (prompt or prefix tuning, bottleneck adapters), which cannot be
            continued from as a plain encoder.
    """
    from ..modeling import build_encoder

    path = Path(path)
    if not (path / MANIFEST).is_file():
        return build_encoder(str(path), dropout=dropout)
    manifest = read_manifest(path)
    trained = load_model(path, manifest).encoder
    if hasattr(trained, "merge_and_unload"):  # a PEFT model: fold the adapter into the weights
        try:
            trained = trained.merge_and_unload()
        except Exception:  # prompt learning has nothing to merge
            trained = None
    encoder = build_encoder(str(path), dropout=dropout, from_config=True)
    result = encoder.load_state_dict(trained.state_dict(), strict=False) if trained is not None else None
    if result is None or result.unexpected_keys or [k for k in result.missing_keys if not k.startswith("pooler.")]:
        method = manifest["method"]["name"]
        raise ManifestError(f"{path} was trained with {method}, whose trained part is not a set of encoder weights; "
                            "continue from its base model instead (or train it with full or lora).")
    return encoder
