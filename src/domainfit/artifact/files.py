"""The files of an artifact folder: their sha256 recorded when it is written, and checked,
without loading a model, when it is read.

:func:`check_files` runs on every load (``load_model``): every name inside the folder, the
weights present (a safetensors header that fits the file's size), ``config.json``, and the
sha256 of each recorded file but the weights and the tokenizer's (those are checked by
``load_tokenizer``); a recorded file that predicting does not need (the parity sample) may
be missing, but not changed; :func:`~domainfit.artifact.verify_artifact` adds the weights' sha256.
Every problem is a :class:`ManifestError` naming the file (the command line exits 2). No
model library is imported here.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

from ..core.errors import ManifestError
from ..core.io import inside
from .manifest import MANIFEST

__all__ = ["CONFIG", "TOKENIZER_FILES", "VOCAB_FILES", "check_files", "check_safetensors", "record_files",
           "sha256_file", "needs_config", "check_json"]

CONFIG = "config.json"
# Files transformers reads for a tokenizer; the first six hold a vocabulary.
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
               "tokenizer.model")
TOKENIZER_FILES = VOCAB_FILES + ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                                 "merges.txt", "chat_template.jinja")
# The safetensors format refuses headers above 100 MB; a larger "length" is a damaged file.
_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_files(folder: str | Path, tokenizer_files: list[str]) -> dict:
    """The manifest's ``files`` (sha256 of every regular file at the top of ``folder`` but the
    manifest) and ``tokenizer_files`` sections, for :func:`write_artifact`."""
    folder = Path(folder)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())
             if p.is_file() and not p.is_symlink() and p.name != MANIFEST}
    return {"files": files, "tokenizer_files": sorted(n for n in tokenizer_files if n in files)}


def check_safetensors(path: Path) -> None:
    """Check a safetensors file without loading it: its header parses, and the tensors'
    offsets cover the rest of the file exactly (a truncated or padded file fails).

    Raises:
        ManifestError: naming the file and what is wrong.
    """
    def bad(why: str) -> ManifestError:
        return ManifestError(f"{path} is not a readable safetensors file: {why}. Copy the model folder again "
                             "or re-run the command that wrote it.")

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise bad(f"it holds {size} bytes, too few for a header")
        (length,) = struct.unpack("<Q", head)
        if length == 0 or length > _MAX_HEADER or 8 + length > size:
            raise bad(f"its header says {length} bytes but the file holds {size} (truncated?)")
        try:
            header = json.loads(fh.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data = size - 8 - length
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in entry["data_offsets"])
            expected = math.prod(int(d) for d in entry["shape"]) * _DTYPE_BYTES[entry["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r} has a malformed entry") from None
        if not 0 <= begin <= stop or stop - begin != expected:
            raise bad(f"tensor {name!r} has offsets that do not fit its shape and type")
        end = max(end, stop)
    if end != data:
        raise bad(f"its tensors need {end} bytes of data but the file holds {data} (truncated?)")


def check_json(path: Path) -> None:
    """A file that must hold a JSON object.

    Raises:
        ManifestError: naming the file.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path} does not hold a JSON object.")


def _present(folder: Path, name: str, what: str) -> Path:
    path = inside(folder, name)
    if not path.is_file():
        raise ManifestError(f"{path} is missing: the {what} of this model. Copy the model folder again or re-run "
                            "the command that wrote it.")
    return path


def needs_config(manifest: dict) -> bool:
    """True when the model is an encoder whose ``config.json`` the folder must hold (every
    writer stores it; the LM backend's scorer is resolved by name instead)."""
    return manifest["model"].get("kind") != "lm-label-scorer"


def check_files(path: str | Path, manifest: dict, *, weights_sha256: bool = False) -> None:
    """Check the files a manifest names but the tokenizer's (see the module docstring);
    ``weights_sha256`` also hashes the weights against the recorded digest.

    Raises:
        ManifestError: a name outside the folder, a missing or damaged file, or one whose
            sha256 differs from the one recorded when the folder was written.
    """
    folder = Path(path)
    recorded = manifest.get("files") or {}
    weights = manifest.get("weights")
    if not weights and needs_config(manifest):
        raise ManifestError(f"{folder / MANIFEST} names no weights file (field 'weights').")
    if weights:
        file = _present(folder, weights, "weights")
        if manifest.get("backend") == "onnx":
            if file.stat().st_size == 0:
                raise ManifestError(f"{file} is empty: the ONNX graph of this model.")
        elif file.suffix == ".safetensors":
            check_safetensors(file)
    if needs_config(manifest) or CONFIG in recorded:
        check_json(_present(folder, CONFIG, "architecture (encoder configuration)"))
    skip = set(manifest.get("tokenizer_files") or [])  # checked by check_tokenizer_files
    if not weights_sha256:
        skip.add(weights)
    needed = {weights, CONFIG}
    for name, digest in recorded.items():
        if name in skip:
            continue
        if name not in needed and not (folder / name).exists():
            continue  # an optional file (the parity sample) that was taken away: nothing predicts with it
        file = _present(folder, name, "recorded file")
        if sha256_file(file) != digest:
            raise ManifestError(f"{file} has changed since the model was written (its sha256 differs from the one "
                                f"in {MANIFEST}). Copy the model folder again or re-run the command that wrote it.")
