"""The model: a pretrained encoder, a pooling step and a small task head."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from ..core.errors import ModelNotFoundError
from .base_models import loading_quietly

__all__ = ["DomainModel", "TokenModel", "EmbeddingModel", "build_encoder", "build_task_model", "check_loaded",
           "freeze_lower_layers", "keep_layers", "spread_layers"]


def build_encoder(path: str, dropout: float | None = None, from_config: bool = False) -> nn.Module:
    """Load a Hugging Face encoder (weights from ``path``, or only its config).

    The encoder's own pooler is dropped: domainfit pools itself, and an unused pooler
    would leave parameters without gradients (which DistributedDataParallel rejects).
    """
    config = AutoConfig.from_pretrained(path)
    if dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, key):
                setattr(config, key, dropout)
    if from_config:
        encoder = AutoModel.from_config(config)
    else:
        with loading_quietly():
            encoder, info = AutoModel.from_pretrained(path, config=config, output_loading_info=True)
        check_loaded(path, info)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def freeze_lower_layers(encoder: nn.Module, n: int) -> int:
    """Keep the embeddings and the lowest ``n`` transformer layers of ``encoder`` fixed: the
    backward pass then stops above them (fewer gradients to compute, a faster step). Finds the
    encoder's layer list (``encoder.layer``, ``transformer.layer``, ...) as the module list as
    long as ``config.num_hidden_layers``; returns the number of layers there are.

    Raises:
        ConfigError: ``n`` is not below the number of layers, or no layer list is found.
    """
    from ..core.errors import ConfigError

    found = _layer_list(encoder)
    if found is None:
        raise ConfigError("training.freeze_layers: this encoder's layer list was not found; leave it at 0.")
    layers = found[2]
    count = len(layers)
    if not 0 <= n < count:
        raise ConfigError(f"training.freeze_layers is {n}; this encoder has {count} layers (at most {count - 1} "
                          "can be fixed, one must train).")
    embeddings = encoder.get_input_embeddings()
    for module in [getattr(encoder, "embeddings", embeddings), *layers[:n]]:
        for p in module.parameters():
            p.requires_grad_(False)
    return count


def _layer_list(encoder: nn.Module) -> tuple[nn.Module, str, nn.ModuleList] | None:
    """The encoder's transformer layers: (parent module, attribute name, the list), found as
    the module list as long as ``config.num_hidden_layers``; None when there is none."""
    count = getattr(getattr(encoder, "config", None), "num_hidden_layers", None)
    for parent in encoder.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == count:
                return parent, name, child
    return None


def spread_layers(count: int, n: int) -> list[int]:
    """``n`` of ``count`` layer indices spread over the depth, the first and the last always
    among them (3 of 6: 0, 2, 5); ``n >= count`` keeps them all."""
    if n >= count:
        return list(range(count))
    if n == 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (n - 1)) for i in range(n)})


def keep_layers(encoder: nn.Module, kept: list[int]) -> nn.Module:
    """Cut ``encoder`` down to the transformer layers at the indices ``kept`` (in order), and
    record the new depth in its config (``num_hidden_layers``), so that the config saved with
    the model rebuilds the same shape.

    Raises:
        ConfigError: no layer list is found, or an index is out of range.
    """
    from ..core.errors import ConfigError

    found = _layer_list(encoder)
    if found is None:
        raise ConfigError("training.layers: this encoder's layer list was not found; leave it at 0.")
    parent, name, layers = found
    if not kept or any(not 0 <= i < len(layers) for i in kept) or len(set(kept)) != len(kept):
        raise ConfigError(f"training.layers: cannot keep layers {kept} of an encoder with {len(layers)}.")
    setattr(parent, name, nn.ModuleList([layers[i] for i in kept]))
    encoder.config.num_hidden_layers = len(kept)
    for n, layer in enumerate(getattr(parent, name)):  # attention modules that know their index (KV caches)
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = n
    return encoder


def check_loaded(path: str, info: dict) -> None:
    """Stop when a checkpoint did not fill the encoder: its weights are stored under other
    names (a folder domainfit trained read as a plain model, another architecture), so
    training would start from random weights. Only the pooler may be missing (domainfit
    pools itself and drops it).

    Raises:
        ModelNotFoundError: naming the checkpoint and the weights it lacks.
    """
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("pooler.")]
    mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", [])]
    if missing or mismatched:
        shown = ", ".join((missing + mismatched)[:4])
        raise ModelNotFoundError(
            f"{path}: {len(missing) + len(mismatched)} of the encoder's weights are not in its checkpoint or do not "
            f"fit (e.g. {shown}), so it would start from random weights. Give a Hugging Face encoder folder or hub "
            "id, or a model folder that domainfit trained (its encoder is then loaded as trained).")


class DomainModel(nn.Module):
    """Encoder → pooled text vector → dropout → linear head.

    Mean pooling is the default because sentence-transformers encoders (the default
    all-MiniLM-L6-v2) were trained with it: their mean-pooled vectors are already good text
    representations, so a new head learns quickly. ``cls`` pools the first token instead.

    Args:
        encoder: a transformers model returning ``last_hidden_state``.
        num_outputs: size of the head's output.
        pooling: ``"mean"`` or ``"cls"``.
        head_dropout: dropout before the head.
        normalize: L2-normalise the pooled vector before the head (a cosine classifier: the
            head's rows act as class prototypes; used by fewshot and zeroshot).

    Shapes:
        ``input_ids``, ``attention_mask``: ``(batch, seq)`` → logits ``(batch, num_outputs)``.
    """

    def __init__(self, encoder: nn.Module, num_outputs: int, pooling: str = "mean", head_dropout: float = 0.1,
                 normalize: bool = False):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(hidden, num_outputs)
        # Output affine map: identity except for regression (training mean and std).
        self.register_buffer("output_scale", torch.ones(num_outputs))
        self.register_buffer("output_shift", torch.zeros(num_outputs))

    def embed(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Pooled text vectors, shape ``(batch, hidden)``.

        A prompt-tuned encoder returns ``virtual + seq`` positions, its learned virtual tokens
        first; only the ``seq`` real tokens are pooled (``cls`` takes the first real token).
        ``inputs_embeds`` in ``extra`` (with ``input_ids`` None) replaces the word-piece
        embeddings (explanations take gradients there).
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        virtual = hidden.shape[1] - attention_mask.shape[1]
        if virtual > 0:
            hidden = hidden[:, virtual:]
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def head_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head on pooled vectors (from :meth:`embed`): ``(batch, hidden) → (batch, outputs)``."""
        if self.normalize:
            pooled = nn.functional.normalize(pooled.float(), dim=-1).to(pooled.dtype)
        return self.head(self.dropout(pooled)) * self.output_scale + self.output_shift

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.embed(input_ids, attention_mask, **extra))


def _real_positions(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Drop the virtual tokens a prompt-tuned encoder puts first."""
    virtual = hidden.shape[1] - attention_mask.shape[1]
    return hidden[:, virtual:] if virtual > 0 else hidden


class TokenModel(nn.Module):
    """Encoder → dropout → linear head on every token: logits ``(batch, seq, num_outputs)``."""

    def __init__(self, encoder: nn.Module, num_outputs: int, head_dropout: float = 0.1, **_: object):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.head(self.dropout(_real_positions(hidden, attention_mask)))


class EmbeddingModel(nn.Module):
    """A bi-encoder: mean-pooled (or CLS), L2-normalised text vectors.

    ``forward`` takes a batch of queries (``input_ids``) and their documents
    (``pair_input_ids``, then any ``neg0_input_ids``...) and returns ``scale ×`` the cosine
    similarity of every query with every document: ``(batch, batch × (1 + negatives))``.
    """

    def __init__(self, encoder: nn.Module, pooling: str = "mean", scale: float = 20.0, **_: object):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.scale = scale
        self.head = nn.Identity()  # no parameters: methods that unfreeze "the head" find nothing to do

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        hidden = _real_positions(hidden, attention_mask)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return nn.functional.normalize(pooled.float(), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **docs: torch.Tensor) -> torch.Tensor:
        queries = self.embed(input_ids, attention_mask)
        names = ["pair"] + sorted((k[: -len("_input_ids")] for k in docs
                                   if k.startswith("neg") and k.endswith("_input_ids")), key=lambda n: int(n[3:]))
        documents = torch.cat([self.embed(docs[f"{n}_input_ids"], docs[f"{n}_attention_mask"]) for n in names])
        return self.scale * queries @ documents.t()


def build_task_model(kind: str, encoder: nn.Module, num_outputs: int, *, pooling: str = "mean",
                     head_dropout: float = 0.1, normalize: bool = False) -> nn.Module:
    """The model for a task's ``model_kind``: ``sequence``, ``token`` or ``embedding``."""
    if kind == "token":
        return TokenModel(encoder, num_outputs, head_dropout=head_dropout)
    if kind == "embedding":
        return EmbeddingModel(encoder, pooling=pooling)
    return DomainModel(encoder, num_outputs, pooling=pooling, head_dropout=head_dropout, normalize=normalize)
