"""``--method auto``: pick the adaptation method from the data and the time budget.

The rules, from the measurements in benchmarks/RESULTS.md (docs/methods.md explains them):

1. no training data, a label file → ``zeroshot`` (decided in ``domainfit.run.train``);
2. classification with at most ``FEW_SHOT_MAX`` examples in the median class → ``fewshot``
   (made for that regime: no validation split, a prototype head that starts as a
   nearest-class-mean classifier; 85.3% on Banking77 8-shot, 89.1% 16-shot);
3. otherwise ``full`` when its estimated training time fits ``--budget-minutes`` (or there
   is no budget): it is the most accurate on our benchmarks; else ``adapter`` when that
   fits — on Banking77 it trained in 0.73× full's time, 1.1 points below it, the best of
   the methods faster than full (LoRA is *slower* than full on a CPU: 1.38×); else
   ``adapter`` with as many epochs as fit the budget.

Time is estimated from the examples, the epochs and a throughput measured here for
all-MiniLM-L6-v2 on 2 CPU cores (bf16; fp32 about half), scaled by the model's parameter
count and (sub-linearly) by the threads torch uses, plus the validation passes and a fixed
cost for loading and writing the model — a rough figure ("up to": early stopping can end
sooner), printed with the choice so that users can judge it. Measured against real runs
in the docstring of :func:`estimate_seconds`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

__all__ = ["AutoChoice", "choose_method", "FEW_SHOT_MAX", "estimate_minutes", "duration", "parameter_count"]

FEW_SHOT_MAX = 16
# Training examples per second, all-MiniLM-L6-v2 (22.7 M parameters), 2 cores, bf16, Banking77
# (benchmarks/RESULTS.md); fp32 is about half.
_FULL_EX_PER_S = 245.0
_REFERENCE_PARAMETERS = 22.7e6
_REFERENCE_CORES = 2
# Scoring (validation) runs about four times as fast as training; loading the model and the
# data, then scoring and writing the artifact, cost a few seconds whatever the data.
_SCORING_SPEEDUP = 4.0
_FIXED_SECONDS = 6.0
# Training time relative to full, Banking77, 3 epochs each (benchmarks/methods.py, same run):
# full 111 s, adapter 81 s.
ADAPTER_TIME = 81 / 111


@dataclass(frozen=True)
class AutoChoice:
    """What auto chose, why (in words, printed and stored in the manifest), and an epoch
    cap when the budget forced one."""

    method: str
    reason: str
    epochs: float | None = None


def parameter_count(base) -> float:
    """The base model's parameter count, from its config (the reference model's when unreadable)."""
    import json

    try:
        config = json.loads((base.path / "config.json").read_text(encoding="utf-8"))
        hidden, layers = config["hidden_size"], config["num_hidden_layers"]
        vocab = config.get("vocab_size", 30522)
        return 12 * layers * hidden * hidden + vocab * hidden
    except (OSError, KeyError, ValueError):
        return _REFERENCE_PARAMETERS


def estimate_seconds(examples: int, epochs: float, parameters: float, bf16: bool = True,
                     relative_time: float = 1.0, validation_share: float = 0.1) -> float:
    """Rough wall-clock seconds of a run over ``examples`` × ``epochs`` on this machine
    (``relative_time``: the method's time relative to full fine-tuning; a validation pass of
    ``validation_share`` × ``examples`` after every epoch).

    Checked against runs on 2 cores (bf16, all-MiniLM-L6-v2, full, `domainfit.train`):
    2,310 Banking77 examples × 3 epochs took 32.8 s (estimate 34 s); 480 examples × 10
    epochs took 13.0 s, stopped early after 6 (estimate 26 s for all 10).
    """
    import torch

    threads = max(1, torch.get_num_threads())
    speed = _FULL_EX_PER_S * (_REFERENCE_PARAMETERS / parameters) * (threads / _REFERENCE_CORES) ** 0.75
    speed *= 1.0 if bf16 else 0.5
    training = examples * epochs * relative_time / speed
    validation = validation_share * examples * max(1.0, epochs) / (speed * _SCORING_SPEEDUP)
    return _FIXED_SECONDS + training + validation


def estimate_minutes(examples: int, epochs: float, parameters: float, bf16: bool = True,
                     relative_time: float = 1.0) -> float:
    """:func:`estimate_seconds` in minutes."""
    return estimate_seconds(examples, epochs, parameters, bf16, relative_time) / 60


def duration(minutes: float) -> str:
    """A time estimate in words: ``about 40 s``, ``about 1.5 min``, ``about 12 min``."""
    seconds = minutes * 60
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    if minutes < 10:
        return f"about {minutes:.1f} min"
    return f"about {minutes:.0f} min"


def choose_method(cfg, task, examples: list, base) -> AutoChoice:
    """Choose for a run whose training examples are loaded (see the module docstring)."""
    from ..data import class_key
    from ..training import resolve_precision

    n = len(examples)
    if task.stratify:
        counts = Counter(class_key(e.label) for e in examples)
        median = statistics.median(counts.values())
        if median <= FEW_SHOT_MAX:
            return AutoChoice("fewshot", f"{n} examples over {len(counts)} classes, median {median:g} per class "
                                         f"(≤ {FEW_SHOT_MAX}: few-shot)")
    bf16 = resolve_precision(cfg.training.precision)
    params = parameter_count(base)
    epochs = cfg.training.epochs
    full = estimate_minutes(n, epochs, params, bf16)
    when = duration(full)
    budget = cfg.method.budget_minutes
    size = f"{n} examples × up to {epochs:g} epochs"
    if budget is None:
        return AutoChoice("full", f"{size}, no --budget-minutes: full fine-tuning, the most accurate "
                                  f"({when} estimated on this machine)")
    if full <= budget:
        return AutoChoice("full", f"{size}: full fine-tuning fits the {budget:g}-minute budget "
                                  f"({when} estimated on this machine)")
    adapter = estimate_minutes(n, epochs, params, bf16, ADAPTER_TIME)
    if adapter <= budget:
        return AutoChoice("adapter", f"{size}: full fine-tuning would take {when}, over the "
                                     f"{budget:g}-minute budget; bottleneck adapters {duration(adapter)}")
    fit = max(0.1, epochs * budget / adapter)
    return AutoChoice("adapter", f"{size}: even adapters would take {duration(adapter)}; training {fit:.2g} "
                                 f"epochs to fit the {budget:g}-minute budget", epochs=round(fit, 2))
