"""Prefix tuning through peft (P-tuning v2): learned key/value prefixes in every layer.

Each attention layer attends to ``num_virtual_tokens`` learned keys and values before the
text's own; the encoder's weights stay frozen and the output keeps the text's length.
peft hands the prefixes to the encoder as its key/value cache, which only some encoders
use in plain (non-decoder) mode: in transformers 5 the BERT family does (checked against
a hand-written attention to 1e-6), while MPNet, DeBERTa-v2, ALBERT and DistilBERT ignore
or reject it. ``check`` therefore accepts only :data:`MODEL_TYPES`; use ``prompt`` (works
with any encoder) or ``lora`` elsewhere. Like P-tuning v2's BERT code, the text's
position ids start after the prefix.

Token type ids (the second text of a pair) are dropped by peft for prompt-learning
methods; the pair is still separated by the tokenizer's [SEP].
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import ConfigError
from ..registry import Method, register_method, wrap_with_peft

MODEL_TYPES = ("bert", "camembert", "electra", "ernie", "roberta", "xlm-roberta", "xlm-roberta-xl")


@dataclass
class PrefixSettings:
    """Prefix-tuning (P-tuning v2) options."""

    num_virtual_tokens: int = 20
    """Learned key/value positions prepended in every layer."""
    prefix_projection: bool = False
    """Produce the prefixes through a two-layer MLP (reparameterisation; more weights to
    train, sometimes steadier); False learns them directly, as P-tuning v2 does for most tasks."""
    encoder_hidden_size: int | None = None
    """Hidden size of that MLP; None uses the encoder's hidden size. Only with prefix_projection."""


def check_prefix(settings: PrefixSettings, model_config) -> None:
    """Reject encoders that ignore a key/value prefix, and impossible options."""
    model_type = getattr(model_config, "model_type", "")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"Prefix tuning does not work with a '{model_type}' model (it does not use "
                          f"a key/value prefix); supported model types: {', '.join(MODEL_TYPES)}. "
                          "Use method 'prompt' or 'lora' instead.")
    if settings.num_virtual_tokens <= 0:
        raise ConfigError(f"method.options.num_virtual_tokens must be positive, got {settings.num_virtual_tokens}.")
    if settings.encoder_hidden_size is not None and settings.encoder_hidden_size <= 0:
        raise ConfigError(f"method.options.encoder_hidden_size must be positive, got {settings.encoder_hidden_size}.")


def apply_prefix(model, settings: PrefixSettings, ctx=None):
    """Wrap the encoder in a peft prefix-tuning model; only the prefixes and the head train.

    The trained names are ``encoder.prompt_encoder.default.embedding.weight`` (and
    ``...transform.*`` with ``prefix_projection``). The model is built in training mode at
    load time too: in peft's inference mode the embedding would be read as already projected.
    """
    from peft import PrefixTuningConfig, TaskType

    check_prefix(settings, model.encoder.config)
    config = PrefixTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=settings.num_virtual_tokens,
        prefix_projection=settings.prefix_projection,
        encoder_hidden_size=settings.encoder_hidden_size or model.encoder.config.hidden_size,
    )
    return wrap_with_peft(model, config, "Prefix tuning")


# 1e-2: the prefixes start random and the encoder is frozen, so they need larger steps than
# weights do; P-tuning v2 used 5e-3..1e-2 on BERT-size models. On the 480-row sample,
# 1e-2 and 3e-2 (and zero-initialised prefixes) were within noise.
METHOD = register_method(Method("prefix", PrefixSettings, apply_prefix, saves_base=False, learning_rate=1e-2,
                                  check=check_prefix,
                                  description="learned key/value prefixes in every layer (P-tuning v2, peft)"))
