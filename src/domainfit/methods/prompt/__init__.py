"""Prompt tuning through peft: learned input embeddings prepended to every text.

``num_virtual_tokens`` learned vectors go in front of the text's word embeddings; the
encoder stays frozen. The encoder then returns ``num_virtual_tokens`` extra positions
first, which :meth:`DomainModel.embed` leaves out of the pooling. It works with any
encoder that accepts ``inputs_embeds``, so ``check`` only validates the options; keep
``num_virtual_tokens + training.max_length`` within the encoder's position embeddings.

Token type ids (the second text of a pair) are dropped by peft for prompt-learning
methods; the pair is still separated by the tokenizer's [SEP].
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import ConfigError
from ..registry import Method, register_method, wrap_with_peft

INITS = ("sample_vocab", "text", "random")


@dataclass
class PromptSettings:
    """Prompt-tuning options."""

    num_virtual_tokens: int = 20
    """Learned vectors prepended to every text."""
    init: str = "sample_vocab"
    """Starting values: 'sample_vocab' (embeddings of random vocabulary words), 'text' (the
    embeddings of init_text's tokens, repeated to fill) or 'random' (standard normal, far
    larger than word embeddings; rarely a good start)."""
    init_text: str = "classify this text:"
    """Text whose token embeddings start the prompt when init is 'text'."""


def check_prompt(settings: PromptSettings, model_config) -> None:
    """Reject impossible options before any weights are read."""
    if settings.num_virtual_tokens <= 0:
        raise ConfigError(f"method.options.num_virtual_tokens must be positive, got {settings.num_virtual_tokens}.")
    if settings.init not in INITS:
        raise ConfigError(f"method.options.init must be one of {', '.join(INITS)}, got {settings.init!r}.")
    if settings.init == "text" and not settings.init_text.strip():
        raise ConfigError("method.options.init_text is empty; give a short task description or use init "
                          "'sample_vocab'.")
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is not None and settings.num_virtual_tokens >= positions:
        raise ConfigError(f"method.options.num_virtual_tokens ({settings.num_virtual_tokens}) leaves no room for "
                          f"text in this encoder's {positions} positions.")


def apply_prompt(model, settings: PromptSettings, ctx=None):
    """Wrap the encoder in a peft prompt-tuning model; only the prompt and the head train.

    The trained name is ``encoder.prompt_encoder.default.embedding.weight``, shape
    ``(num_virtual_tokens, embedding_dim)``. When an artifact is loaded the prompt starts
    random (it is overwritten by the saved one), so no tokenizer is read.
    """
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    check_prompt(settings, model.encoder.config)
    init = settings.init if ctx is None or ctx.training else "random"
    text = {"tokenizer_name_or_path": model.encoder.name_or_path,
            "prompt_tuning_init_text": settings.init_text} if init == "text" else {}
    encoder_config = model.encoder.config
    config = PromptTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=settings.num_virtual_tokens,
        # The word-embedding width, which differs from hidden_size in ALBERT-like encoders;
        # the two sizes below are unused by prompt tuning but peft cannot find them in every config.
        token_dim=model.encoder.get_input_embeddings().embedding_dim,
        num_layers=encoder_config.num_hidden_layers,
        num_attention_heads=encoder_config.num_attention_heads,
        prompt_tuning_init=PromptTuningInit(init.upper()),
        **text,
    )
    return wrap_with_peft(model, config, "Prompt tuning")


# 1e-2: a prompt of 20 vectors moves the frozen encoder only through attention, so it needs
# large steps (Lester et al. used 0.3 with Adafactor; AdamW recipes use 1e-2..3e-2). On the
# 480-row sample, 1e-2 and 3e-2 were within noise.
METHOD = register_method(Method("prompt", PromptSettings, apply_prompt, saves_base=False, learning_rate=1e-2,
                                  check=check_prompt,
                                  description="learned prompt vectors prepended to every text (peft)"))
