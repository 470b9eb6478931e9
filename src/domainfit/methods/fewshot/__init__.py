"""Few-shot: a handful of labelled examples per class (SetFit's regime), without pair blow-up.

What it does, in order (``before_fit``, then the ordinary loop):

1. **Label names as examples.** Each class's name in words (``card_arrival`` → "card
   arrival") joins the training set as one more example: with 8 examples per class it is
   a ninth, and an informative one.
2. **In-batch contrastive phase** for few classes (``contrastive_epochs``): supervised
   contrastive loss (SupCon) on batches of ``classes_per_batch`` classes ×
   ``examples_per_class`` examples. Every pair inside a batch counts (positives: same
   class; negatives: all the others), so one pass costs one forward per example, however
   many classes there are: no pair list is ever built (SetFit's pair generation grows with
   the square of the examples and blows up with 50+ classes: setfit #249, #472). By
   default 20 passes where one batch holds every class (at most ``classes_per_batch``),
   off for more classes: on Banking77 8-shot it did not improve on step 3, on PhraseBank
   8-shot (3 classes) it did (see docs/methods.md).
3. **Prototype head.** The head is a cosine classifier whose rows start as the normalised
   mean vector of each class's examples (times ``scale``): before any gradient step this is
   already a nearest-class-mean classifier (80.6% on Banking77 8-shot).
4. **Fine-tuning** of the whole encoder and the head with cross-entropy against all class
   prototypes (a proxy-based contrastive loss: each example is pulled to its class's row and
   pushed from every other class's row at every step, cost linear in the examples), no
   label smoothing, for ``training.epochs`` on every example (no validation split unless a
   validation file is given), in at least 4 batches per pass (batches of 8 for 24 texts
   instead of one batch of 32: a few more steps, not a few more epochs).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError
from ..full import apply_full
from ..registry import FitContext, Method, register_method


@dataclass
class FewshotSettings:
    """Few-shot options."""

    label_names: bool = True
    """Add each class's name in words as one more training example."""
    scale: float = 20.0
    """Initial scale of the cosine head (its logits are scale × cosine similarity)."""
    contrastive_epochs: float | None = None
    """Passes of the in-batch contrastive phase before fine-tuning (0: none; None: 20 when
    one contrastive batch holds every class, i.e. at most ``classes_per_batch`` classes,
    else 0)."""
    temperature: float = 0.05
    """Temperature of the contrastive loss."""
    classes_per_batch: int = 16
    """Classes in one contrastive batch."""
    examples_per_class: int = 4
    """Examples of each class in one contrastive batch."""


def check_fewshot(settings: FewshotSettings, model_config=None) -> None:
    if settings.scale <= 0 or settings.temperature <= 0:
        raise ConfigError("method.options.scale and temperature must be positive.")
    if settings.contrastive_epochs is not None and settings.contrastive_epochs < 0:
        raise ConfigError(f"method.options.contrastive_epochs must be 0 or more, got {settings.contrastive_epochs}.")
    if settings.classes_per_batch < 2 or settings.examples_per_class < 2:
        raise ConfigError("method.options.classes_per_batch and examples_per_class must be at least 2.")


def before_fit(ctx: FitContext) -> None:
    from ...data.types import Example
    from ...data.labels import humanize

    settings: FewshotSettings = ctx.settings
    classifies = ctx.task.text_classes  # label names and class prototypes need classes of one text
    if settings.label_names and classifies:
        multi = ctx.task.multi_label
        ctx.examples.extend(Example(text=humanize(name), label=[name] if multi else name) for name in ctx.labels)
    if contrastive_epochs(settings, len(ctx.labels)) > 0 and classifies and not ctx.resuming:
        contrastive_phase(ctx)
    if classifies:
        init_prototype_head(ctx.model, ctx.tokenizer, ctx.examples, ctx.labels, ctx.task.multi_label,
                            settings.scale, ctx.max_length, ctx.bf16)


def contrastive_epochs(settings: FewshotSettings, classes: int) -> float:
    """The contrastive phase's passes: as set, or (None) 20 for few classes, where every
    contrastive batch sees all of them (PhraseBank 8-shot, 3 classes: 0.483 → 0.551
    accuracy on held-out training rows, with batches of 8), and 0 for many (Banking77
    8-shot: no gain; docs/methods.md)."""
    if settings.contrastive_epochs is not None:
        return settings.contrastive_epochs
    return 20.0 if classes <= settings.classes_per_batch else 0.0


def _class_indices(examples, labels) -> list[list[int]]:
    index = {name: i for i, name in enumerate(labels)}
    members: list[list[int]] = [[] for _ in labels]
    for i, e in enumerate(examples):
        for name in (e.label if isinstance(e.label, list) else [e.label]):
            if name in index:
                members[index[name]].append(i)
    return members


@torch.no_grad()
def init_prototype_head(model, tokenizer, examples, labels, multi_label: bool, scale: float, max_length: int,
                        bf16: bool = False) -> None:
    """Set the head's rows to ``scale`` × the normalised mean vector of each class.

    Multi-label: a label is on when its cosine similarity passes 0.5 (bias ``-scale / 2``).
    """
    from ...data.batching import encode_texts
    from ...modeling.predict import predict_logits

    encoded = encode_texts(tokenizer, [e.text for e in examples], None, max_length)
    vectors = F.normalize(predict_logits(model, encoded, tokenizer.pad_token_id, bf16=bf16, embeddings=True), dim=-1)
    rows = torch.zeros(len(labels), vectors.shape[1])
    for c, members in enumerate(_class_indices(examples, labels)):
        if members:
            rows[c] = F.normalize(vectors[members].mean(0), dim=0)
    head = model.head
    head.weight.copy_(scale * rows.to(head.weight.dtype))
    head.bias.fill_(-scale / 2 if multi_label else 0.0)


def contrastive_phase(ctx: FitContext) -> None:
    """SupCon on class-balanced batches; trains the encoder in place."""
    from ...data.batching import collate, encode_texts
    from ...modeling.predict import autocast
    from ...core.ui import say

    s: FewshotSettings = ctx.settings
    model = ctx.model
    members = [m for m in _class_indices(ctx.examples, ctx.labels) if len(m) >= 2]
    if len(members) < 2:
        return
    encoded = encode_texts(ctx.tokenizer, [e.text for e in ctx.examples], None, ctx.max_length)
    owner: dict[int, int] = {}
    for c, m in enumerate(members):
        for i in m:
            owner.setdefault(i, c)  # a multi-label example counts for its first label
    classes = torch.tensor([owner.get(i, -1) for i in range(len(ctx.examples))])
    per_batch = min(s.classes_per_batch, len(members)) * s.examples_per_class
    steps = max(1, math.ceil(contrastive_epochs(s, len(ctx.labels)) * len(ctx.examples) / per_batch))
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=ctx.learning_rate)
    rng = random.Random(ctx.seed)
    device = next(model.parameters()).device
    model.train()
    say(f"Contrastive phase: {steps} steps of {per_batch} examples.")
    for _ in range(steps):
        chosen = rng.sample(range(len(members)), min(s.classes_per_batch, len(members)))
        idx = [i for c in chosen for i in rng.sample(members[c], min(s.examples_per_class, len(members[c])))]
        batch = {k: v.to(device) for k, v in collate(encoded, idx, ctx.pad_id).items() if k != "targets"}
        with autocast(ctx.bf16, device):
            z = F.normalize(model.embed(**batch).float(), dim=-1)
        y = classes[idx].to(device)
        sim = (z @ z.T) / s.temperature
        eye = torch.eye(len(idx), dtype=torch.bool, device=device)
        sim = sim.masked_fill(eye, -1e9)
        positive = (y[:, None] == y[None, :]) & ~eye
        loss = -(sim.log_softmax(1) * positive).sum(1) / positive.sum(1).clamp_min(1)
        loss.mean().backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


# 1e-4: measured on Banking77 8-shot (5e-5: 83.4%, 1e-4: 83.6% with label smoothing 0.1;
# 85.2% with 1e-4 and no label smoothing, which few-shot training does not need).
METHOD = register_method(Method(
    "fewshot", FewshotSettings, apply_full, saves_base=True, learning_rate=1e-4, check=check_fewshot,
    description="a few examples per class: prototype cosine head, then fine-tuning (SetFit's regime)",
    normalize=True, label_smoothing=0.0, needs_validation=False, before_fit=before_fit,
    tasks=("classification", "multilabel", "regression", "pair"), min_batches_per_epoch=4))
