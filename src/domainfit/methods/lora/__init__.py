"""LoRA through peft: low-rank updates on the encoder's linear layers, plus the head.

peft wraps only the encoder; the head stays outside the peft model and is saved by
domainfit with the adapter, so it cannot be lost on save (the pitfall of peft #310).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...core.errors import ConfigError
from ..registry import Method, register_method, wrap_with_peft


@dataclass
class LoraSettings:
    """LoRA options."""

    r: int = 16
    """Rank of the update matrices."""
    alpha: float = 32
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = 0.05
    """Dropout on the LoRA branch."""
    target_modules: list[str] | str = field(default_factory=lambda: "all-linear")
    """Module names to adapt, or 'all-linear' (every linear layer of the encoder)."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA): slower, sometimes more accurate."""


def apply_lora(model, settings: LoraSettings, ctx=None):
    from peft import LoraConfig

    if settings.r <= 0:
        raise ConfigError(f"method.options.r must be positive, got {settings.r}.")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        use_dora=settings.use_dora,
        bias="none",
    )
    return wrap_with_peft(model, config, "LoRA")


METHOD = register_method(Method("lora", LoraSettings, apply_lora, saves_base=False, learning_rate=1e-3,
                                  description="low-rank updates of the linear layers (peft)"))
