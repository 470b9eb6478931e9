"""Masked-language-model form of an encoder, for continued pre-training.

:func:`build_masked_lm` puts an encoder (with all its trained weights) under the
masked-LM head of its architecture: the checkpoint's own head when it has one, else a new
one (its decoder tied to the word embeddings, as the architecture does). :class:`MaskedLM`
runs the encoder and applies the head only at the masked positions: the head's output is
vocabulary-wide, so applying it everywhere would cost as much again as the encoder.
:class:`MlmObjective` is what the training loop needs to train and validate it (loss and
masked-token accuracy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError, ModelNotFoundError

__all__ = ["build_masked_lm", "MaskedLM", "MlmObjective", "extend_vocabulary"]

_HEADS = ("cls", "lm_head")  # BERT, DeBERTa-v2 / RoBERTa, XLM-R


def build_masked_lm(encoder: nn.Module, path: str | Path) -> tuple[nn.Module, bool]:
    """The masked-LM model of ``encoder``'s architecture, holding ``encoder``'s weights.

    Args:
        encoder: a loaded transformers encoder (every weight checked).
        path: the folder it came from; an MLM head stored there (a checkpoint saved from a
            masked-LM model) is loaded too.

    Returns:
        ``(model, head_is_new)``.

    Raises:
        ConfigError: the architecture has no masked-LM form.
    """
    from transformers import AutoModelForMaskedLM

    config = encoder.config
    try:
        mlm = AutoModelForMaskedLM.from_config(config)
    except ValueError:
        raise ConfigError(f"{path}: a {config.model_type} model has no masked-language-model form, so it cannot be "
                          "pre-trained with masked words; use an encoder such as BERT, RoBERTa or MiniLM.") from None
    base = getattr(mlm, mlm.base_model_prefix)
    result = base.load_state_dict(encoder.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith("pooler.")]
    if missing or unexpected:
        raise ModelNotFoundError(f"{path}: the encoder's weights do not fit its masked-LM form "
                                 f"(e.g. {', '.join((missing + unexpected)[:3])}).")
    head_is_new = not _load_head(mlm, Path(path))
    mlm.tie_weights()
    return mlm, head_is_new


def _load_head(mlm: nn.Module, path: Path) -> bool:
    """Load the head's weights from ``path/model.safetensors`` when it holds them."""
    weights = path / "model.safetensors"
    if not weights.is_file() or (path / "domainfit.json").is_file():
        return False
    from safetensors import safe_open

    prefix = mlm.base_model_prefix + "."
    own = mlm.state_dict()
    with safe_open(str(weights), framework="pt") as f:
        head = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(prefix) and k in own}
    if not head:
        return False
    mlm.load_state_dict(head, strict=False)
    return True


class MaskedLM(nn.Module):
    """Encoder → hidden states; :meth:`predict` applies the MLM head to chosen positions."""

    def __init__(self, mlm: nn.Module):
        super().__init__()
        self.mlm = mlm
        self._head_name = next((n for n in _HEADS if isinstance(getattr(mlm, n, None), nn.Module)), None)

    @property
    def base(self) -> nn.Module:
        return getattr(self.mlm, self.mlm.base_model_prefix)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """Hidden states ``(batch, seq, hidden)`` (the full vocabulary logits for an
        architecture whose head this class does not know)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and getattr(self.mlm.config, "type_vocab_size", 0):
            kwargs["token_type_ids"] = token_type_ids
        if self._head_name is None:
            return self.mlm(**kwargs).logits
        return self.base(**kwargs).last_hidden_state

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of selected rows of :meth:`forward`'s output, ``(m, vocab)``."""
        if self._head_name is None:
            return outputs
        return getattr(self.mlm, self._head_name)(outputs)


class MlmObjective:
    """What the training loop asks of a task, for masked-LM training: the loss over the
    masked positions, and masked-token accuracy as the validation score."""

    name = "masked-lm"
    primary_metric = "mlm_accuracy"
    higher_is_better = True
    splits_batches = True
    validation_score = None

    def __init__(self, model: MaskedLM):
        self.model = model

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        targets = targets[:, :outputs.shape[1]]
        chosen = targets != -100
        logits = self.model.predict(outputs[chosen])
        return F.cross_entropy(logits.float(), targets[chosen], label_smoothing=label_smoothing)

    @torch.no_grad()
    def quick_score(self, outputs: torch.Tensor, targets: Any) -> float:
        if isinstance(targets, list):
            width = outputs.shape[1]
            targets = torch.tensor([t[:width] + [-100] * (width - len(t)) for t in targets], dtype=torch.long)
        chosen = targets != -100
        if not chosen.any():
            return 0.0
        rows, gold = outputs[chosen], targets[chosen]
        hits = 0
        for start in range(0, len(rows), 1024):
            hits += int((self.model.predict(rows[start:start + 1024]).argmax(-1) == gold[start:start + 1024]).sum())
        return hits / len(gold)


def extend_vocabulary(tokenizer: Any, mlm: nn.Module, pieces: list[str]) -> int:
    """Add ``pieces`` to the tokenizer as tokens of their own and grow the embedding matrix
    (and the tied decoder) to match. New rows are drawn from a normal distribution with the
    old rows' mean and covariance (transformers' mean resizing): a piece that was unknown
    has no sub-pieces to start from, and the mean keeps it where ordinary tokens are.

    Returns:
        The number of tokens added (pieces the tokenizer already knows are skipped).
    """
    added = tokenizer.add_tokens(pieces)
    if added:
        mlm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return added
