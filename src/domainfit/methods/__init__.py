"""Adaptation methods: how the pretrained encoder is changed during training.

Each method lives in its own folder with a settings dataclass and an ``apply`` function,
and registers itself here by name on import.
"""

from __future__ import annotations

from .registry import METHODS, Method, get_method, register_method
from . import full, lora, adalora, adapter, bitfit, ia3, prefix, prompt, fewshot, zeroshot  # noqa: E402,F401  (registration)

__all__ = ["METHODS", "Method", "get_method", "register_method"]
