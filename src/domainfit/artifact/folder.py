"""Reading and writing the artifact folder: the contract between training and everything else.

Layout (see DESIGN.md)::

    MODEL/
      domainfit.json          manifest (written last: a folder without it is unfinished)
      model.safetensors       full weights (method saves_base) — or —
      adapter.safetensors     what the method trained + the head; the base model is
                              referenced by name and sha256 in the manifest — or —
      model.onnx              an exported graph (manifest ``backend: onnx``)
      parity_sample.jsonl     held-out inputs for the export parity check
      config.json             the encoder's architecture
      tokenizer files
      report/                 evaluation report, and model_card.md (always)
      index/                  a retrieval model's search index
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import ManifestError
from ..core.io import inside, staged_folder
from ..core.version import __version__
from .card import MODEL_CARD, model_card
from .files import TOKENIZER_FILES, record_files
from .manifest import MANIFEST, check_manifest

__all__ = ["write_artifact", "read_manifest", "is_artifact", "PARITY_SAMPLE", "write_parity_sample",
           "read_parity_sample"]

PARITY_SAMPLE = "parity_sample.jsonl"
PARITY_ROWS = 256


def is_artifact(path: str | Path) -> bool:
    """True when ``path`` holds a finished artifact (its manifest is written last)."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | Path) -> dict:
    """Read and check ``domainfit.json``.

    Raises:
        ManifestError: a missing or unfinished folder, unreadable JSON, a newer format, or a
            bad field (named in the message).
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"Model folder {path} does not exist.")
    manifest = inside(path, MANIFEST)
    if not manifest.is_file():
        hint = (" It holds an unfinished training run: re-run the same train command to resume it."
                if (path / "checkpoints").exists() else "")
        raise ManifestError(f"{path} is not a domainfit model (no {MANIFEST}).{hint}")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{manifest} is not valid JSON: {exc}") from exc
    return check_manifest(data, str(manifest))


def write_artifact(dest: str | Path, manifest: dict, *, tensors: dict | None = None, tokenizer: Any = None,
                   encoder_config: Any = None, fill: Callable[[Path], dict | None] | None = None) -> Path:
    """Write an artifact folder atomically; its manifest goes last.

    Files are staged in a temporary folder beside ``dest``. When ``dest`` does not exist it
    is created by one rename; when it does (a training run folder holding logs and
    checkpoints) the files are moved in one by one and ``domainfit.json`` goes last, so a
    crash never leaves a folder that looks finished but is not.

    Args:
        dest: the artifact folder.
        manifest: from :func:`domainfit.artifact.build_manifest`; its ``weights`` names the
            safetensors file that ``tensors`` are written to.
        tensors: the weights to store (a full state dict, or what a method trained).
        tokenizer: saved with ``save_pretrained``.
        encoder_config: the encoder's ``PretrainedConfig`` (saved as ``config.json``).
        fill: ``fn(staging)`` that writes further files (the report, an ONNX graph...); it
            may return a dict of manifest sections it measured, which are added to the
            manifest before it is written. An error in ``fill`` writes nothing.

    The manifest records the sha256 of every file written at the folder's top level
    (``files``) and which of them are the tokenizer's (``tokenizer_files``: what
    ``save_pretrained`` wrote, or, without ``tokenizer``, the tokenizer files ``fill`` wrote),
    so that a reader can tell a folder that lost or changed a file. ``report/model_card.md``
    is written from the final manifest (:func:`domainfit.artifact.card.model_card`).
    """
    manifest = check_manifest(manifest, "the new manifest")
    with staged_folder(dest, merge=True, last=MANIFEST) as staging:
        if tensors is not None:
            if not manifest.get("weights"):
                raise ManifestError("the new manifest names no weights file for the tensors to write.")
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                      str(staging / manifest["weights"]), metadata={"format": "pt", "domainfit": __version__})
        if encoder_config is not None:
            encoder_config.to_json_file(str(staging / "config.json"))
        before = {p.name for p in staging.iterdir()}
        if tokenizer is not None:
            tokenizer.save_pretrained(str(staging))
        tokenizer_files = {p.name for p in staging.iterdir()} - before
        measured = fill(staging) if fill is not None else None
        if tokenizer is None:
            tokenizer_files = {p.name for p in staging.iterdir() if p.name in TOKENIZER_FILES}
        manifest = check_manifest({**manifest, **(measured or {}), **record_files(staging, sorted(tokenizer_files))},
                                  "the new manifest")
        card = staging / MODEL_CARD
        card.parent.mkdir(exist_ok=True)
        card.write_text(model_card(manifest, Path(dest).name), encoding="utf-8")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return Path(dest)


def write_parity_sample(folder: Path, examples: list) -> None:
    """Store up to ``PARITY_ROWS`` held-out inputs (text, pair, words) for an export's parity check."""
    with (Path(folder) / PARITY_SAMPLE).open("w", encoding="utf-8") as f:
        for e in examples[:PARITY_ROWS]:
            f.write(json.dumps({"text": e.text, "text_pair": e.text_pair, "tokens": e.tokens},
                               ensure_ascii=False) + "\n")


def read_parity_sample(folder: Path, limit: int = PARITY_ROWS) -> list[dict]:
    """The rows :func:`write_parity_sample` stored (``[]`` when the artifact has none)."""
    path = Path(folder) / PARITY_SAMPLE
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit]
