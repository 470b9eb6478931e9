"""Zero-shot: a classifier from label names (and descriptions) alone, no labelled data.

Embedding backend (default): every label becomes a few sentences — its name in words put
into ``templates``, and its description put into ``description_templates`` — whose
normalised vectors are averaged into one prototype. The head of an ordinary DomainModel is
set to ``scale`` × these prototypes (a cosine classifier over the encoder's mean-pooled
vectors), so the artifact is a normal one: evaluate, predict, export and serve treat it
like any other. Only the head is stored; the encoder is the base model's.

Self-training (``data.unlabelled``): the zero-shot model labels the unlabelled texts; each
class keeps its ``per_class`` most confident texts whose probability passes
``confidence``; these pseudo-labelled texts, plus the label names and descriptions, train
a ``fewshot`` model (the artifact then stores the whole fine-tuned encoder).

Retrieval: the base encoder as it comes, as a bi-encoder artifact (no training, nothing
stored but the reference to the base model); ``domainfit index`` embeds a corpus with it.

LM backend (``backend: lm``): prompts a small instruction-tuned generative model with
the text and the list of labels and scores each label's log-likelihood as the answer, so
the prediction is always a valid label (the scorer is :class:`domainfit.modeling.lm.LabelScorer`).

The flows that build these models (and self-train) are in :mod:`domainfit.run.zeroshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError
from ..registry import Method, register_method

BACKENDS = ("embedding", "lm")


@dataclass
class ZeroshotSettings:
    """Zero-shot options."""

    backend: str = "embedding"
    """'embedding' (label prototypes on the encoder; fast, a normal artifact) or 'lm' (a small
    generative model scores each label as the answer)."""
    templates: list[str] = field(default_factory=lambda: ["{name}", "This text is about {name}."])
    """Sentences that put a label's name in words into context ({name}); their vectors are averaged."""
    description_templates: list[str] = field(default_factory=lambda: ["{description}"])
    """The same for a label's description ({description}, {name}), when the label file has one."""
    scale: float = 20.0
    """Scale of the cosine head: probabilities are softmax(scale × cosine similarity)."""
    confidence: float = 0.2
    """Self-training keeps pseudo-labels whose probability is at least this."""
    per_class: int = 16
    """Self-training keeps at most this many of the most confident texts per class."""
    lm_model: str = "smollm2"
    """LM backend: 'smollm2' (the packaged SmolLM2-135M-Instruct), a local model folder or a hub id."""
    calibrate: bool = True
    """LM backend: subtract the scores of content-free texts (contextual calibration)."""
    lm_instruction: str = "Classify the text into one of these categories: {labels}. Answer with the category only."
    """LM backend: the instruction before the text ({labels}: the label names in words, comma-separated)."""


def check_zeroshot(settings: ZeroshotSettings, model_config=None) -> None:
    if settings.backend not in BACKENDS:
        raise ConfigError(f"method.options.backend must be one of {', '.join(BACKENDS)}, got {settings.backend!r}.")
    if not settings.templates or any("{name}" not in t for t in settings.templates):
        raise ConfigError("method.options.templates must be a non-empty list, each holding {name}.")
    if settings.scale <= 0 or settings.per_class < 1 or not 0 <= settings.confidence < 1:
        raise ConfigError("method.options: scale must be positive, per_class at least 1, confidence in [0, 1).")


def apply_zeroshot(model, settings: ZeroshotSettings, ctx=None):
    """The encoder stays as it is; only the head (the label prototypes) is stored."""
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model


def label_sentences(specs, settings: ZeroshotSettings) -> list[list[str]]:
    """The sentences that describe each label (name templates, then description templates)."""
    from ...data.labels import humanize

    out = []
    for spec in specs:
        name = humanize(spec.name)
        sentences = [t.format(name=name) for t in settings.templates]
        if spec.description:
            sentences += [t.format(name=name, description=spec.description) for t in settings.description_templates]
        out.append(sentences)
    return out


@torch.no_grad()
def set_label_head(model, tokenizer, specs, settings: ZeroshotSettings, max_length: int, bf16: bool = False,
                   multilabel: bool = False) -> None:
    """Make the head score cosine similarity to each label's averaged sentence vector."""
    from ...data.batching import encode_texts
    from ...modeling.predict import predict_logits

    groups = label_sentences(specs, settings)
    flat = [s for g in groups for s in g]
    encoded = encode_texts(tokenizer, flat, None, max_length)
    vectors = F.normalize(predict_logits(model, encoded, tokenizer.pad_token_id, bf16=bf16, embeddings=True), dim=-1)
    rows, start = [], 0
    for g in groups:
        rows.append(F.normalize(vectors[start:start + len(g)].mean(0), dim=0))
        start += len(g)
    model.head.weight.copy_(settings.scale * torch.stack(rows).to(model.head.weight.dtype))
    # Multi-label: a label is on when its cosine similarity passes 0.5.
    model.head.bias.fill_(-settings.scale / 2 if multilabel else 0.0)


def lm_instruction(settings: ZeroshotSettings, specs) -> str:
    """The LM backend's instruction: ``settings.lm_instruction`` with the labels in words
    (and their descriptions in brackets) filled in."""
    from ...data.labels import humanize

    listed = ", ".join(humanize(s.name) + (f" ({s.description})" if s.description else "") for s in specs)
    return settings.lm_instruction.format(labels=listed)


def select_pseudo_labels(probabilities: torch.Tensor, settings: ZeroshotSettings) -> list[tuple[int, int, float]]:
    """``(text index, label index, probability)`` of the texts kept for self-training: per
    predicted label, the ``per_class`` most confident at or above ``confidence``."""
    best, label = probabilities.max(1)
    chosen = []
    for c in range(probabilities.shape[1]):
        idx = ((label == c) & (best >= settings.confidence)).nonzero().flatten()
        top = idx[best[idx].argsort(descending=True)[: settings.per_class]]
        chosen += [(int(i), c, float(best[i])) for i in top]
    return sorted(chosen)


METHOD = register_method(Method(
    "zeroshot", ZeroshotSettings, apply_zeroshot, saves_base=False, learning_rate=1e-4, check=check_zeroshot,
    description="no labelled data: label names and descriptions (optionally self-training on unlabelled text)",
    normalize=True, label_smoothing=0.0, needs_validation=False,
    tasks=("classification", "multilabel", "retrieval")))
