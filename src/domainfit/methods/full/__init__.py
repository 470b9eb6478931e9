"""Full fine-tuning: every encoder weight trains (the word embeddings optionally frozen)."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Method, register_method


@dataclass
class FullSettings:
    """Full fine-tuning has no options of its own; see ``training.*``."""


def apply_full(model, settings: FullSettings, ctx=None):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


METHOD = register_method(Method("full", FullSettings, apply_full, saves_base=True, learning_rate=1.5e-4,
                                  description="every encoder weight trains"))
