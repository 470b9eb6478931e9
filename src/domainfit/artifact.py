"""Save and load the artifact folder: the contract between training and everything else.

Layout (see DESIGN.md)::

    MODEL/
      domainfit.json          manifest (written last: a folder without it is unfinished)
      model.safetensors       full weights (method saves_base) — or —
      adapter.safetensors     what the method trained + the head; the base model is
                              referenced by name and sha256 in the manifest — or —
      model.onnx              an exported graph (manifest ``backend: onnx``; see export.py)
      parity_sample.jsonl     held-out inputs for the export parity check
      config.json             the encoder's architecture
      tokenizer files
      report/                 evaluation report
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import DomainfitError

__all__ = ["FORMAT_VERSION", "MANIFEST", "write_artifact", "read_manifest", "load_model", "is_artifact"]

FORMAT_VERSION = 1
MANIFEST = "domainfit.json"


def is_artifact(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | Path) -> dict:
    """Read ``domainfit.json``; a clear error for a missing or unfinished folder."""
    path = Path(path)
    if not path.exists():
        raise DomainfitError(f"Model folder {path} does not exist.")
    manifest = path / MANIFEST
    if not manifest.is_file():
        hint = (" It holds an unfinished training run: re-run the same train command to resume it."
                if (path / "checkpoints").exists() else "")
        raise DomainfitError(f"{path} is not a domainfit model (no {MANIFEST}).{hint}")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DomainfitError(f"{manifest} is not valid JSON: {exc}") from exc
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise DomainfitError(f"{path} was written by a newer domainfit (format {data['format_version']}); upgrade.")
    return data


def write_artifact(dest: Path, *, model: torch.nn.Module, tokenizer: Any, manifest: dict,
                   state: dict[str, torch.Tensor], saves_base: bool, report_writer=None) -> Path:
    """Write an artifact atomically.

    Files are staged in a temporary folder beside ``dest``. When ``dest`` does not exist it
    is created by one rename; when it does (a training run folder holding logs and
    checkpoints) the files are moved in one by one and ``domainfit.json`` goes last, so a
    crash never leaves a folder that looks finished but is not.

    Args:
        dest: the artifact folder.
        model: the DomainModel (its encoder config is saved).
        tokenizer: saved with ``save_pretrained``.
        manifest: the manifest body (format and version fields are added here).
        state: tensors to store: the full state dict or the method's trainable state.
        saves_base: True → ``model.safetensors``; False → ``adapter.safetensors``.
        report_writer: optional ``fn(folder)`` that writes ``report/`` (``folder``) into the staging
            folder; it may add files beside it (the parity sample).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        weights = "model.safetensors" if saves_base else "adapter.safetensors"
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(staging / weights),
                  metadata={"format": "pt", "domainfit": __version__})
        encoder = model.encoder
        base_config = getattr(encoder, "get_base_model", lambda: encoder)().config
        base_config.to_json_file(str(staging / "config.json"))
        tokenizer.save_pretrained(str(staging))
        if report_writer is not None:
            report_writer(staging / "report")
        body = dict(manifest, format_version=FORMAT_VERSION, domainfit_version=__version__, weights=weights,
                    created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        (staging / MANIFEST).write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
        if not dest.exists():
            os.replace(staging, dest)
            return dest
        for item in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST):
            target = dest / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        return dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_model(path: str | Path, manifest: dict | None = None) -> torch.nn.Module:
    """Rebuild the DomainModel of an artifact (eval mode, CPU). No pickle, no network."""
    from .methods import get_method
    from .methods.registry import MethodContext
    from .modeling import build_encoder, build_task_model
    from .models import resolve_model, weights_sha256

    path = Path(path)
    manifest = manifest or read_manifest(path)
    if manifest.get("backend") == "onnx":
        from .export import load_onnx

        return load_onnx(path, manifest)
    if manifest["model"].get("kind") == "lm-label-scorer":
        from .methods.zeroshot.lm import load_lm_scorer

        return load_lm_scorer(manifest)
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
                          f"(sha256 {actual[:12]} != {expected[:12]}); predictions may differ.", stacklevel=2)
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
