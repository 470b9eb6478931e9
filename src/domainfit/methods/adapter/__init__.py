"""Bottleneck adapters: a small down-up projection inside every transformer layer.

Houlsby et al. (2019) put one adapter after the attention block and one after the
feed-forward block; Pfeiffer et al. (2021) keep only the second, with about the same
accuracy at half the cost. Each adapter sits after the sub-layer's output projection and
dropout, before the residual sum and LayerNorm::

    y = dropout(dense(x))
    y = y + up(act(down(y)))          # the adapter, with its own skip connection
    out = LayerNorm(y + residual)

``up`` starts at zero, so an untrained adapter is the identity and training starts from
the pretrained encoder's exact outputs.

Our own ~100 lines rather than AdapterHub's ``adapters`` package: it pins transformers
4.57 and would downgrade transformers 5. The adapter is attached with a forward hook on
the module whose output it follows, so no base weight is renamed and the base model's
weights load unchanged; the adapters live in ``layer.adapters`` of each transformer layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...core.errors import ConfigError
from ..registry import Method, register_method

# model_type -> (path of the layer list, module the attention adapter follows, module the
# feed-forward adapter follows), the latter two relative to one layer. Each named module's
# output is the sub-layer's output after its projection and dropout, before the residual.
LAYOUTS: dict[str, tuple[str, str, str]] = {
    **{t: ("encoder.layer", "attention.output.dropout", "output.dropout")
       for t in ("bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "deberta-v2")},
    "mpnet": ("encoder.layer", "attention.dropout", "output.dropout"),
    "distilbert": ("transformer.layer", "attention.out_lin", "ffn.dropout"),
}
PLACEMENTS = ("pfeiffer", "houlsby")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


@dataclass
class AdapterSettings:
    """Bottleneck adapter options."""

    placement: str = "pfeiffer"
    """'pfeiffer': one adapter per layer, after the feed-forward block; 'houlsby': also one
    after the attention block (twice the adapter weights)."""
    reduction_factor: int = 16
    """Hidden size divided by the bottleneck size (384 / 16 = 24 for MiniLM)."""
    non_linearity: str = "relu"
    """Activation inside the bottleneck: 'relu' or 'gelu'."""
    train_layer_norms: bool = True
    """Also train the LayerNorms of the adapted layers, as Houlsby et al. did."""


class Bottleneck(nn.Module):
    """``y + up(act(down(y)))``; ``up`` is zero-initialised, so the module starts as the identity.

    Shapes: ``(..., hidden)`` → ``(..., hidden)``.
    """

    def __init__(self, hidden: int, bottleneck: int, non_linearity: str):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.normal_(self.down.weight, std=0.01)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.up(self.act(self.down(y)))


def check_adapter(settings: AdapterSettings, model_config) -> None:
    """Reject an unknown layer layout or option before any weights are read."""
    model_type = getattr(model_config, "model_type", "")
    if model_type not in LAYOUTS:
        raise ConfigError(f"Adapters cannot be placed in a '{model_type}' model; supported model types: "
                          f"{', '.join(sorted(LAYOUTS))}. Use method 'lora' or 'prompt' for other models.")
    if settings.placement not in PLACEMENTS:
        raise ConfigError(f"method.options.placement must be one of {', '.join(PLACEMENTS)}, "
                          f"got {settings.placement!r}.")
    if settings.non_linearity not in ACTIVATIONS:
        raise ConfigError(f"method.options.non_linearity must be one of {', '.join(ACTIVATIONS)}, "
                          f"got {settings.non_linearity!r}.")
    hidden = _hidden_size(model_config)
    if not 1 <= settings.reduction_factor <= hidden:
        raise ConfigError(f"method.options.reduction_factor must be between 1 and the hidden size {hidden}, "
                          f"got {settings.reduction_factor}.")


def _hidden_size(model_config) -> int:
    return getattr(model_config, "hidden_size", None) or model_config.dim


def _after(module: nn.Module, adapter: Bottleneck):
    """Forward hook: the adapter transforms ``module``'s output."""
    def hook(_module, _inputs, output):
        return adapter(output)

    return module.register_forward_hook(hook)


def apply_adapter(model, settings: AdapterSettings, ctx=None):
    """Freeze the encoder, add a bottleneck adapter to every layer; the head trains.

    Parameter names are ``...layer.<i>.adapters.{attention,output}.{down,up}.{weight,bias}``,
    the same at training and at load time.

    Raises:
        ConfigError: unsupported model type or option.
    """
    config = model.encoder.config
    check_adapter(settings, config)
    layers_path, attention_at, output_at = LAYOUTS[config.model_type]
    hidden = _hidden_size(config)
    bottleneck = max(1, hidden // settings.reduction_factor)
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    points = {"output": output_at} if settings.placement == "pfeiffer" else {"attention": attention_at,
                                                                            "output": output_at}
    for layer in model.encoder.get_submodule(layers_path):
        layer.adapters = nn.ModuleDict({name: Bottleneck(hidden, bottleneck, settings.non_linearity)
                                        for name in points})
        for name, path in points.items():
            _after(layer.get_submodule(path), layer.adapters[name])
        if settings.train_layer_norms:
            for module in layer.modules():
                if isinstance(module, nn.LayerNorm):
                    module.requires_grad_(True)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model


# 1e-3: the adapters start at zero and hold few weights; Houlsby et al. swept 3e-5..3e-3 and
# short runs like ours favour the upper part. On the 480-row sample, 1e-3 and 3e-3 were within noise.
METHOD = register_method(Method("adapter", AdapterSettings, apply_adapter, saves_base=False, learning_rate=1e-3,
                                  check=check_adapter,
                                  description="bottleneck adapters in every layer (Pfeiffer or Houlsby)"))
