"""Checking that an artifact folder is whole without loading its model: what the registry
runs before it accepts or promotes a version."""

from __future__ import annotations

from pathlib import Path

from .files import check_files
from .folder import read_manifest
from .tokenizer import check_tokenizer_files

__all__ = ["verify_artifact"]


def verify_artifact(path: str | Path) -> dict:
    """Check that an artifact folder is whole, without loading its model (no torch): the
    manifest, every file it names (inside the folder, present, the sha256 recorded when it
    was written), the weights' safetensors header against the file's size, ``config.json``,
    the tokenizer files, the ONNX graph of an ONNX artifact. Returns the checked manifest.

    Raises:
        ManifestError: what is wrong, naming the file (exit code 2 on the command line).

    Example:
        >>> verify_artifact("my-model")["task"]                       # doctest: +SKIP
        'classification'
    """
    manifest = read_manifest(path)
    check_files(path, manifest, weights_sha256=True)
    check_tokenizer_files(path, manifest)
    return manifest
