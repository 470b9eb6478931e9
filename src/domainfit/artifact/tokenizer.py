"""The tokenizer of an artifact: checked against what the manifest recorded, loaded, and
refused when its vocabulary cannot be the encoder's.

A tokenizer missing from the folder does not fail on its own: transformers builds one with
an empty vocabulary from ``config.json``, and every text becomes ``[UNK]`` (predictions are
silently wrong). So the files are checked first (the ones recorded in the manifest, with
their sha256; for a manifest from before that record, at least one vocabulary file), and
the loaded tokenizer must hold words and fit the encoder's embedding table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.errors import ManifestError
from ..core.io import inside
from .files import CONFIG, TOKENIZER_FILES, VOCAB_FILES, check_json, sha256_file
from .folder import read_manifest

__all__ = ["load_tokenizer", "load_plain_tokenizer", "plain_tokenizer_section", "check_tokenizer_files",
           "check_vocabulary"]

FIX = "Copy the model folder again (with its tokenizer files) or re-run the command that wrote it."


def check_tokenizer_files(path: str | Path, manifest: dict) -> None:
    """The tokenizer files are those the manifest recorded, unchanged (sha256); for a
    manifest without that record, at least one vocabulary file is there. No tokenizer file
    may be a symlink out of the folder; unrecorded JSON files must parse.

    Raises:
        ManifestError: naming the missing, changed or outside file.
    """
    folder = Path(path)
    for name in TOKENIZER_FILES:  # the names transformers opens, whatever the manifest says
        inside(folder, name)
    recorded = manifest.get("tokenizer_files") or []
    for name in recorded:
        file = inside(folder, name)
        if not file.is_file():
            raise ManifestError(f"{file} is missing: this model's tokenizer is incomplete. {FIX}")
        if sha256_file(file) != manifest["files"][name]:
            raise ManifestError(f"{file} has changed since the model was written (its sha256 differs from the "
                                f"one recorded in the manifest): this is not the model's tokenizer. {FIX}")
    if recorded:
        return
    if not any((folder / n).is_file() for n in VOCAB_FILES):
        raise ManifestError(f"{folder} holds no tokenizer (none of {', '.join(VOCAB_FILES)}). {FIX}")
    for name in TOKENIZER_FILES:  # unrecorded: at least the JSON files must parse
        if name.endswith(".json") and (folder / name).is_file():
            check_json(folder / name)


def _encoder_vocab_size(folder: Path) -> int | None:
    config = folder / CONFIG
    if not config.is_file():
        return None
    try:
        size = json.loads(config.read_text(encoding="utf-8")).get("vocab_size")
    except (ValueError, AttributeError):
        return None
    return size if isinstance(size, int) and size > 0 else None


def check_vocabulary(tokenizer: Any, path: str | Path) -> None:
    """Refuse a tokenizer that cannot be the encoder's: one with no tokens but its special
    ones, one with fewer than half as many tokens as the encoder's embedding table has rows
    (``vocab_size`` in ``config.json``), or one with a token id past that table.

    Raises:
        ManifestError: what does not fit, naming the folder.
    """
    folder = Path(path)
    vocab = tokenizer.get_vocab()
    specials = set(getattr(tokenizer, "all_special_tokens", []))
    if not any(token not in specials for token in vocab):
        raise ManifestError(f"{folder}: the tokenizer has an empty vocabulary ({len(vocab)} special tokens only); "
                            f"its files are missing or damaged. {FIX}")
    rows = _encoder_vocab_size(folder)
    if rows is None:
        return
    top = max(vocab.values())
    if top >= rows:
        raise ManifestError(f"{folder}: the tokenizer has token ids up to {top}, but the encoder has {rows} "
                            f"(vocab_size in {CONFIG}): it is not this model's tokenizer. {FIX}")
    if len(vocab) * 2 < rows:
        raise ManifestError(f"{folder}: the tokenizer knows {len(vocab)} tokens, but the encoder was trained with "
                            f"{rows} (vocab_size in {CONFIG}): it is not this model's tokenizer. {FIX}")


def load_tokenizer(path: str | Path, manifest: dict | None = None):
    """The tokenizer of an artifact folder, checked (files, then vocabulary). No network.

    Raises:
        ManifestError: missing, changed or unreadable tokenizer files, or a vocabulary that
            does not fit the encoder (exit code 2 on the command line).

    Example:
        >>> load_tokenizer("my-model")("where is my card?")["input_ids"][:3]   # doctest: +SKIP
        [101, 2073, 2003]
    """
    from transformers import AutoTokenizer

    folder = Path(path)
    manifest = manifest or read_manifest(folder)
    check_tokenizer_files(folder, manifest)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # transformers and tokenizers raise many kinds for a damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ManifestError(f"{folder}: the tokenizer does not load ({reason}). {FIX}") from exc
    check_vocabulary(tokenizer, folder)
    return tokenizer


def plain_tokenizer_section(folder: str | Path, tokenizer: Any, texts: list[str],
                            pairs: list[str] | None = None) -> dict | None:
    """The manifest record that lets predictions skip transformers' tokenizer
    (:class:`~domainfit.data.batching.PlainTokenizer`), or None: the folder's ``tokenizer.json``
    alone must give the very ids ``tokenizer`` gives for ``texts`` (and ``pairs``) and for a
    few hard cases (accents, CJK, a special token written as text, a text longer than
    ``max_length``), at the lengths predictions use. Run where the artifact is written (an
    export), so that loading trusts the record."""
    from ..data.batching import PlainTokenizer, encode_texts

    file = Path(folder) / "tokenizer.json"
    pad = getattr(tokenizer, "pad_token_id", None)
    if not file.is_file() or not isinstance(pad, int):
        return None
    try:
        from tokenizers import Tokenizer

        split = bool(getattr(tokenizer, "split_special_tokens", False))
        plain = PlainTokenizer(Tokenizer.from_file(str(file)), pad, split)
    except Exception:  # a tokenizer.json the Rust library cannot read alone
        return None
    special = next(iter(getattr(tokenizer, "all_special_tokens", []) or []), "")
    hard = ["Crème brûlée à São Paulo", "我要取消这个订单", f"a {special} b", "x " * 600, "  ", "ÉCOLE  d'été!!"]
    for length in (8, 128, 512):
        batches = [(list(texts) + hard, None)] + ([(list(texts), list(pairs))] if pairs is not None else [])
        for batch, pair in batches:
            full = encode_texts(tokenizer, batch, pair, length)
            alone = encode_texts(plain, batch, pair, length)
            if full.input_ids != alone.input_ids or (pair is not None and full.token_type_ids != alone.token_type_ids):
                return None
    return {"pad_token_id": pad, "encode_special_tokens": split}


def load_plain_tokenizer(path: str | Path, manifest: dict):
    """The artifact's ``tokenizer.json`` as a :class:`~domainfit.data.batching.PlainTokenizer`
    (its files checked as :func:`load_tokenizer` checks them), where the manifest records that
    it gives the full tokenizer's ids (``export.plain_tokenizer``); else None."""
    record = (manifest.get("export") or {}).get("plain_tokenizer")
    if not isinstance(record, dict) or not isinstance(record.get("pad_token_id"), int):
        return None
    folder = Path(path)
    check_tokenizer_files(folder, manifest)
    try:
        from tokenizers import Tokenizer

        from ..data.batching import PlainTokenizer

        return PlainTokenizer(Tokenizer.from_file(str(inside(folder, "tokenizer.json"))), record["pad_token_id"],
                              bool(record.get("encode_special_tokens", False)))
    except Exception as exc:  # the Rust library raises its own kinds for a damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ManifestError(f"{folder}: the tokenizer does not load ({reason}). {FIX}") from exc
