"""The one plug-in point for adaptation methods."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..core.errors import ConfigError

__all__ = ["Method", "MethodContext", "FitContext", "METHODS", "register_method", "get_method", "trainable_state",
           "wrap_with_peft"]


@dataclass(frozen=True)
class MethodContext:
    """What a method may need to know when it is applied.

    Attributes:
        total_steps: optimizer steps the run will take (None when an artifact is loaded).
        model_type: the encoder's ``config.model_type`` (e.g. ``"bert"``).
        training: True while training, False when an artifact is loaded for prediction.
    """

    total_steps: int | None = None
    model_type: str = ""
    training: bool = True


@dataclass
class FitContext:
    """What a method's ``before_fit`` hook sees, after the model is built and before the
    training examples are encoded.

    Attributes:
        model: the DomainModel, method applied.
        settings: the method's settings.
        task: the Task. labels: the label list (the head's outputs, in order).
        examples: the training examples; the hook may append to this list.
        tokenizer, max_length, pad_id: how texts are encoded.
        bf16: autocast to bfloat16. learning_rate: the run's encoder learning rate.
        seed: the run's seed. resuming: True when the run continues from a checkpoint (the
            checkpoint's weights replace whatever the hook trains).
    """

    model: nn.Module
    settings: Any
    task: Any
    labels: list[str]
    examples: list
    tokenizer: Any
    max_length: int
    pad_id: int
    bf16: bool
    learning_rate: float
    seed: int
    resuming: bool = False


@dataclass(frozen=True)
class Method:
    """A registered adaptation method.

    Attributes:
        name: what users write after ``--method``.
        settings: dataclass of the method's options (documented per field).
        apply: ``apply(model, settings, ctx) -> model``; changes the encoder in place and leaves
            ``requires_grad`` set on exactly what must train (the head always trains).
            ``ctx`` is a :class:`MethodContext`.
        saves_base: True when the artifact stores the whole encoder; False when it stores only
            what was trained and refers to the base model by name and sha256.
        learning_rate: the method's default encoder learning rate (chosen by measurement).
        check: optional ``check(settings, model_config)``, run before any data is loaded or
            weights are read; raises :class:`ConfigError` for an impossible combination
            (e.g. a model type the method cannot adapt), naming what is possible.
        on_step: optional ``on_step(model, settings, global_step)``, called after every
            optimizer step while the gradients still exist (AdaLoRA's rank allocation).
        description: one line for ``--help`` and the docs.
        normalize: the head reads L2-normalised text vectors (a cosine classifier).
        label_smoothing: the method's default ``training.label_smoothing``.
        needs_validation: False: without a validation file, train on every example (no split,
            no early stopping) — for methods meant for a handful of examples.
        before_fit: optional ``before_fit(ctx: FitContext)``: prepares the model (and may add
            training examples) before the supervised loop starts.
        tasks: the tasks the method works for (None: every task).
        min_batches_per_epoch: a training set smaller than this many batches is cut into
            smaller batches (at least 8 examples each, never larger than
            ``training.batch_size``), so that a handful of examples still gets several
            optimizer steps per pass (0: batches stay as set).
    """

    name: str
    settings: type
    apply: Callable[..., nn.Module]
    saves_base: bool
    learning_rate: float
    check: Callable[[Any, Any], None] | None = None
    on_step: Callable[[nn.Module, Any, int], None] | None = None
    description: str = ""
    normalize: bool = False
    label_smoothing: float = 0.1
    needs_validation: bool = True
    before_fit: Callable[[FitContext], None] | None = None
    tasks: tuple[str, ...] | None = None
    min_batches_per_epoch: int = 0

    def batch_size_for(self, examples: int, batch_size: int, accumulation: int = 1) -> int:
        """The batch size this method trains ``examples`` with, given ``training.batch_size``
        (see ``min_batches_per_epoch``; kept a multiple of ``accumulation``)."""
        if not self.min_batches_per_epoch or examples >= self.min_batches_per_epoch * batch_size:
            return batch_size
        smaller = max(8, math.ceil(examples / self.min_batches_per_epoch))
        smaller = math.ceil(smaller / accumulation) * accumulation
        return min(batch_size, smaller)

    def parse(self, options: dict) -> Any:
        """Build the settings dataclass, rejecting unknown options with the known list."""
        known = {f.name for f in dataclasses.fields(self.settings)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"Unknown option(s) for method '{self.name}': {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known)) or '(none)'}."
            )
        return self.settings(**options)


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"Unknown method {name!r}; choose one of: auto, {', '.join(METHODS)}.") from None


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a method trained: parameters with ``requires_grad`` plus the model's buffers
    that describe outputs (regression scale and shift)."""
    state = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    for name in ("output_scale", "output_shift"):
        if hasattr(model, name):
            state[name] = getattr(model, name).detach()
    return state


def wrap_with_peft(model: nn.Module, config: Any, what: str) -> nn.Module:
    """Wrap ``model.encoder`` (only the encoder: the head stays outside peft and is saved by
    domainfit, so it cannot be lost as in peft #310) and keep the head trainable.

    Raises:
        ConfigError: peft refuses the model (e.g. target modules it does not have).
    """
    from peft import get_peft_model

    try:
        model.encoder = get_peft_model(model.encoder, config)
    except ValueError as exc:
        raise ConfigError(f"{what} cannot be applied to this model: {exc}") from exc
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model
