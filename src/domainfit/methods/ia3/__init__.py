"""(IA)³ through peft: learned per-channel scales of keys, values and feed-forward activations.

Liu et al. (2022): each chosen linear layer gets a vector that multiplies its output (for
attention layers) or its input (for "feed-forward" layers); the vectors start at one, so the
untrained model is the pretrained one. For MiniLM that is about 16k weights, the fewest of
all methods. peft knows which layers to scale in BERT, RoBERTa and DeBERTa(-v2) models
(:data:`ENCODER_MODEL_TYPES`); for other encoders name them in ``target_modules`` and
``feedforward_modules``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import ConfigError
from ..registry import Method, register_method, wrap_with_peft

ENCODER_MODEL_TYPES = ("bert", "deberta", "deberta-v2", "roberta")
"""Encoders among the model types peft has default (IA)³ layers for."""


@dataclass
class Ia3Settings:
    """(IA)³ options."""

    target_modules: list[str] | str | None = None
    """Layers to scale (names or name suffixes, or one regular expression); None: peft's
    default for the model type (BERT: key, value, output.dense)."""
    feedforward_modules: list[str] | str | None = None
    """Those of target_modules whose input, not output, is scaled; must be a subset of
    target_modules. None: peft's default (BERT: output.dense)."""


def _peft_defaults() -> set[str]:
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING

    return set(TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING)


def check_ia3(settings: Ia3Settings, model_config) -> None:
    """Reject a model type without default layers when none are named."""
    model_type = getattr(model_config, "model_type", "")
    if settings.target_modules is None and model_type not in _peft_defaults():
        raise ConfigError(f"(IA)³ has no default layers for a '{model_type}' model (it has for "
                          f"{', '.join(ENCODER_MODEL_TYPES)}); name them with method.options.target_modules "
                          f"and method.options.feedforward_modules.")
    if (settings.target_modules is None) != (settings.feedforward_modules is None):
        raise ConfigError("Set both method.options.target_modules and method.options.feedforward_modules, or "
                          "neither (feedforward_modules is a subset of target_modules; it may be []).")


def apply_ia3(model, settings: Ia3Settings, ctx=None):
    """Wrap the encoder in a peft (IA)³ model; only the scaling vectors and the head train.

    Raises:
        ConfigError: no default layers for the model type, or layers that do not exist.
    """
    from peft import IA3Config, TaskType

    check_ia3(settings, model.encoder.config)
    try:
        config = IA3Config(task_type=TaskType.FEATURE_EXTRACTION, target_modules=settings.target_modules,
                           feedforward_modules=settings.feedforward_modules)
    except ValueError as exc:
        raise ConfigError(f"(IA)³ cannot be applied to this model: {exc}") from exc
    return wrap_with_peft(model, config, "(IA)³")


# 5e-3: the vectors start at one and scale whole channels, so steps of this size are still
# small changes; T-Few used 3e-3. On the 480-row sample, 5e-3 and 1e-2 were within noise.
METHOD = register_method(Method("ia3", Ia3Settings, apply_ia3, saves_base=False, learning_rate=5e-3,
                                  check=check_ia3,
                                  description="learned scales of keys, values and feed-forward activations (peft)"))
