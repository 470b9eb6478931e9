"""Tokenized examples, length-grouped batch order and dynamic padding."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["Encoded", "PlainTokenizer", "encode_texts", "batch_order", "collate", "collate_numpy"]


@dataclass
class Encoded:
    """Token ids per example (unpadded) plus optional targets.

    Attributes:
        input_ids, token_type_ids: per example, unpadded.
        targets: a tensor with one row per example, or (token classification) one list of
            per-position targets per example, padded with -100 in each batch.
        extra: further texts per example (retrieval: ``pair``, ``neg0``...), padded into
            ``{name}_input_ids`` / ``{name}_attention_mask``.
        windows: token classification: which sentence and words each row holds.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None = None
    targets: torch.Tensor | list[list[int]] | None = None
    extra: dict[str, list[list[int]]] = field(default_factory=dict)
    windows: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        """The longest of an example's sequences, per example (sets batch cost)."""
        out = [len(x) for x in self.input_ids]
        for rows in self.extra.values():
            out = [max(a, len(b)) for a, b in zip(out, rows)]
        return out


class PlainTokenizer:
    """A model's Rust tokenizer (``tokenizer.json``) alone, for encoding texts to ids: what
    :func:`encode_texts` needs, without loading transformers (about a second of a
    ``domainfit predict`` run on an exported model). Built only where an export checked that it
    gives the same ids as the full tokenizer (:func:`domainfit.artifact.load_plain_tokenizer`).

    Attributes:
        pad_token_id: the padding id. backend: the ``tokenizers.Tokenizer``.
    """

    def __init__(self, backend, pad_token_id: int, encode_special_tokens: bool = False):
        self.backend = backend
        self.pad_token_id = pad_token_id
        self.backend.encode_special_tokens = encode_special_tokens
        self.backend.no_padding()
        self._length = None

    def backend_for(self, max_length: int):
        """The Rust tokenizer, truncating to ``max_length`` as the full tokenizer's own call
        does (longest sequence first, no stride)."""
        if self._length != max_length:
            self.backend.enable_truncation(max_length, stride=0, strategy="longest_first")
            self._length = max_length
        return self.backend


def encode_texts(tokenizer, texts: list[str], pairs: list[str] | None = None, max_length: int = 128) -> Encoded:
    """Tokenize without padding (padding happens per batch, to the batch's longest text)."""
    if not texts:
        return Encoded(input_ids=[])
    backend = _backend(tokenizer, max_length)
    if backend is not None:
        encodings = backend.encode_batch(list(zip(texts, pairs)) if pairs is not None else list(texts),
                                         add_special_tokens=True)
        return Encoded(input_ids=[e.ids for e in encodings],
                       token_type_ids=[e.type_ids for e in encodings] if pairs is not None else None)
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    types = enc.get("token_type_ids") if pairs is not None else None
    return Encoded(input_ids=list(enc["input_ids"]), token_type_ids=types)


def _backend(tokenizer, max_length: int):
    """The Rust tokenizer behind a standard fast tokenizer, set up exactly as the tokenizer's
    own call would set it (truncation to ``max_length``, longest first; no padding), or None.

    Calling it directly returns the same ids without the per-call bookkeeping of
    ``tokenizer(...)``, which took ~0.15 ms of a ~3 ms single-text ONNX prediction. Only for
    tokenizers that encode through the base class (a subclass with its own encoding keeps
    the regular call)."""
    if isinstance(tokenizer, PlainTokenizer):
        return tokenizer.backend_for(max_length)
    try:
        from transformers import TokenizersBackend
        from transformers.tokenization_utils_base import PaddingStrategy, TruncationStrategy
    except ImportError:
        return None
    if not isinstance(tokenizer, TokenizersBackend):
        return None
    if type(tokenizer)._encode_plus is not TokenizersBackend._encode_plus:
        return None
    tokenizer.set_truncation_and_padding(PaddingStrategy.DO_NOT_PAD, TruncationStrategy.LONGEST_FIRST, max_length,
                                         stride=0, pad_to_multiple_of=None, padding_side=None)
    backend = tokenizer.backend_tokenizer
    if backend.encode_special_tokens != bool(tokenizer.split_special_tokens):
        backend.encode_special_tokens = bool(tokenizer.split_special_tokens)
    return backend


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True,
                shuffle: bool = True) -> list[list[int]]:
    """The list of batches (lists of example indices) for one epoch.

    With ``group_by_length``, the shuffled indices are cut into mega-batches of 50 batches,
    each sorted by length so that a batch holds texts of similar length (little padding),
    and the batch order is shuffled again so that lengths do not trend over the epoch.
    The order depends only on ``(seed, epoch)``: a resumed run rebuilds it exactly.
    """
    indices = list(range(len(lengths)))
    rng = random.Random(seed * 1_000_003 + epoch)
    if shuffle:
        rng.shuffle(indices)
    if group_by_length:
        mega = batch_size * 50
        chunks = [sorted(indices[i:i + mega], key=lambda j: -lengths[j]) for i in range(0, len(indices), mega)]
        indices = [j for chunk in chunks for j in chunk]
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    if group_by_length and shuffle:
        rng.shuffle(batches)
    return batches


def _pad_numpy(rows: list[list[int]], value: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows padded with ``value`` to the longest, and their 0/1 mask: int64 ``(n, width)``."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), value, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for n, row in enumerate(rows):
        ids[n, : len(row)] = row
        mask[n, : len(row)] = 1
    return ids, mask


def _pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = _pad_numpy(rows, value)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def collate_numpy(encoded: Encoded, indices: list[int], pad_id: int) -> dict[str, np.ndarray]:
    """``input_ids``, ``attention_mask`` and ``token_type_ids`` of the chosen examples, padded
    to their longest, as int64 numpy arrays: what an onnxruntime session takes (no targets
    or extra texts; those are for training)."""
    ids, mask = _pad_numpy([encoded.input_ids[i] for i in indices], pad_id)
    if encoded.token_type_ids is None:
        types = np.zeros_like(ids)
    else:
        types = _pad_numpy([encoded.token_type_ids[i] for i in indices], 0)[0]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def collate(encoded: Encoded, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the chosen examples to their longest; returns model inputs (+ ``targets``)."""
    rows = [encoded.input_ids[i] for i in indices]
    width = max(len(r) for r in rows)
    ids, mask = _pad(rows, pad_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    for name, extra_rows in encoded.extra.items():
        batch[f"{name}_input_ids"], batch[f"{name}_attention_mask"] = _pad([extra_rows[i] for i in indices], pad_id)
    if encoded.token_type_ids is not None:
        batch["token_type_ids"] = _pad([encoded.token_type_ids[i] for i in indices], 0)[0]
    if isinstance(encoded.targets, list):
        batch["targets"] = _pad([encoded.targets[i] for i in indices], -100)[0][:, :width]
    elif encoded.targets is not None:
        batch["targets"] = encoded.targets[indices]
    return batch
