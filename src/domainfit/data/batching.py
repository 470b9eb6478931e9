"""Tokenized examples, length-grouped batch order and dynamic padding."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

__all__ = ["Encoded", "encode_texts", "batch_order", "collate"]


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


def encode_texts(tokenizer, texts: list[str], pairs: list[str] | None = None, max_length: int = 128) -> Encoded:
    """Tokenize without padding (padding happens per batch, to the batch's longest text)."""
    if not texts:
        return Encoded(input_ids=[])
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    types = enc.get("token_type_ids") if pairs is not None else None
    return Encoded(input_ids=list(enc["input_ids"]), token_type_ids=types)


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


def _pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, row in enumerate(rows):
        ids[n, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[n, : len(row)] = 1
    return ids, mask


def collate(encoded: Encoded, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the chosen examples to their longest; returns model inputs (+ ``targets``)."""
    rows = [encoded.input_ids[i] for i in indices]
    width = max(len(r) for r in rows)
    ids, mask = _pad(rows, pad_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    for name, extra_rows in encoded.extra.items():
        batch[f"{name}_input_ids"], batch[f"{name}_attention_mask"] = _pad([extra_rows[i] for i in indices], pad_id)
    if encoded.token_type_ids is not None:
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for n, i in enumerate(indices):
            row = encoded.token_type_ids[i]
            types[n, : len(row)] = torch.tensor(row, dtype=torch.long)
        batch["token_type_ids"] = types
    if isinstance(encoded.targets, list):
        batch["targets"] = _pad([encoded.targets[i] for i in indices], -100)[0][:, :width]
    elif encoded.targets is not None:
        batch["targets"] = encoded.targets[indices]
    return batch
