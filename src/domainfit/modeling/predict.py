"""Running a model over many encoded texts: length-sorted, bounded batches, results in input
order. Used by training (validation), the tasks (scoring), the methods (prototype heads) and
inference alike."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from ..data.batching import Encoded, collate, collate_numpy, encode_texts

__all__ = ["predict_logits", "inference_batches", "autocast", "embed_texts", "top_k"]


def autocast(bf16: bool, device: torch.device):
    """bf16 autocast on the device when asked, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def inference_batches(order: list[int], lengths: list[int], batch_size: int, max_tokens: int,
                      max_padding: float = 0.1):
    """Consecutive slices of the length-sorted ``order`` with at most ``batch_size`` rows,
    at most ``max_tokens`` padded tokens (long texts get smaller batches), and at most
    ``max_padding`` more padded tokens than real ones. The last bound matters for a few
    hundred texts of mixed lengths (a server's micro-batch): cut into fixed slices of 64,
    random Banking77 texts are padded to 1.7x their tokens (3.3x for 64 texts); cut where
    the padding would pass 10%, to 1.05x (with server micro-batches of 256 instead of 64, the
    served Banking77 load went from 242 to 741 texts/s on 2 cores). More, smaller batches
    cost little next to that."""
    start = 0
    while start < len(order):
        end, tokens = start + 1, lengths[order[start]]
        while end < len(order) and end - start < batch_size:
            nxt = lengths[order[end]]
            padded = (end - start + 1) * nxt  # sorted: the newcomer is the longest
            if padded > max_tokens or padded > (tokens + nxt) * (1 + max_padding):
                break
            tokens += nxt
            end += 1
        yield order[start:end]
        start = end


@torch.no_grad()
def predict_logits(model, encoded: Encoded, pad_id: int, batch_size: int = 128, bf16: bool = False,
                   device: torch.device | None = None, max_tokens: int = 8192, embeddings: bool = False) -> torch.Tensor:
    """Logits for every example of ``encoded`` in input order, length-sorted for speed, in
    batches of at most ``batch_size`` rows and ``max_tokens`` padded tokens.
    ``embeddings=True`` returns the pooled text vectors (``model.embed``) instead.

    Shapes: ``(n, outputs)``, ``(n, seq, outputs)`` for per-token models (padded to the
    longest sequence), or ``(n, hidden)`` with ``embeddings``.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    lengths = [len(x) for x in encoded.input_ids]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups = list(inference_batches(order, lengths, batch_size, max_tokens))
    if hasattr(model, "run_many"):  # an ONNX graph runs its batches side by side (see OnnxModel)
        chunks = [c.float() for c in model.run_many([collate_numpy(encoded, idx, pad_id) for idx in groups],
                                                    embeddings)]
    else:
        chunks = []
        for idx in groups:
            batch = {k: v.to(device) for k, v in collate(encoded, idx, pad_id).items() if k != "targets"}
            with autocast(bf16, device):
                chunks.append((model.embed(**batch) if embeddings else model(**batch)).float().cpu())
    model.train(was_training)
    if not chunks:
        return torch.empty(0)
    if chunks[0].ndim == 3:  # per-token logits: pad every batch to the longest sequence
        width = max(c.shape[1] for c in chunks)
        chunks = [torch.nn.functional.pad(c, (0, 0, 0, width - c.shape[1])) for c in chunks]
    out = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    if len(order) == 1:
        return out
    result = torch.empty_like(out)
    result[torch.tensor(order)] = out
    return result


def embed_texts(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 128,
                pairs: list[str] | None = None) -> np.ndarray:
    """L2-normalised text vectors ``(n, dim)`` (float32) in input order (of ``(text, pair)``
    encoded together, with ``pairs``)."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    encoded = encode_texts(tokenizer, list(texts), pairs, max_length)
    vectors = predict_logits(model, encoded, tokenizer.pad_token_id, batch_size, embeddings=True)
    return torch.nn.functional.normalize(vectors.float(), dim=-1).numpy()


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best columns per row of ``scores`` ``(rows, columns)``, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)
