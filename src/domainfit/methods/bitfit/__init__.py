"""BitFit: only the encoder's bias terms train, plus the head (Ben Zaken et al., 2022).

About 0.1 % of a BERT encoder's weights: the biases of the query, key, value and output
projections, of both feed-forward layers and of every LayerNorm. The artifact stores only
those biases and the head; the base model is referred to by name and sha256.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import ConfigError
from ..registry import Method, register_method


@dataclass
class BitfitSettings:
    """BitFit has no options of its own; see ``training.*``."""


def apply_bitfit(model, settings: BitfitSettings, ctx=None):
    """Freeze every encoder weight except the bias terms; the head trains.

    Raises:
        ConfigError: the encoder has no bias terms (nothing would adapt).
    """
    biases = 0
    for name, p in model.encoder.named_parameters():
        is_bias = name.rsplit(".", 1)[-1] == "bias"
        p.requires_grad_(is_bias)
        biases += is_bias
    if not biases:
        raise ConfigError("BitFit needs bias terms, but this encoder has none; use method 'lora' or 'full'.")
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model


# 2e-3: biases hold little capacity, so they take larger steps than full fine-tuning's 1.5e-4;
# BitFit's paper searched 1e-4..1e-3 on BERT-base with many more steps than our few-epoch
# runs. On the 480-row sample, 2e-3 and 5e-3 were within noise.
METHOD = register_method(Method("bitfit", BitfitSettings, apply_bitfit, saves_base=False, learning_rate=2e-3,
                                  description="only the encoder's bias terms train (about 0.1% of weights)"))
