"""``--method auto``: pick the adaptation method from the data and the time budget.

The rules, from the measurements in benchmarks/RESULTS.md (docs/methods.md explains them):

1. no training data, a label file → ``zeroshot`` (decided in ``pipeline.train``);
2. classification with at most ``FEW_SHOT_MAX`` examples in the median class → ``fewshot``
   (on Banking77 8-shot it beats full fine-tuning of the same examples' regime by a wide
   margin: a prototype head needs no data to learn where the classes are);
3. otherwise ``full`` when its estimated training time fits ``--budget-minutes`` (or there
   is no budget): it is the most accurate on our benchmarks; else ``lora`` when that fits;
   else ``lora`` with as many epochs as fit the budget.

Time is estimated from the examples, the epochs and a throughput measured here for
all-MiniLM-L6-v2 on 2 CPU cores (bf16), scaled by the model's parameter count and by the
machine's core count — a rough figure, printed with the choice so that users can judge it.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import dataclass

__all__ = ["AutoChoice", "choose_method", "FEW_SHOT_MAX"]

FEW_SHOT_MAX = 16
# Training examples per second, all-MiniLM-L6-v2 (22.7 M parameters), 2 cores, bf16, Banking77
# (benchmarks/RESULTS.md); fp32 is about half. LoRA: measured speed relative to full.
_FULL_EX_PER_S = 245.0
_REFERENCE_PARAMETERS = 22.7e6
_REFERENCE_CORES = 2
LORA_SPEEDUP = 1.3


@dataclass(frozen=True)
class AutoChoice:
    """What auto chose, why (in words, printed and stored in the manifest), and an epoch
    cap when the budget forced one."""

    method: str
    reason: str
    epochs: float | None = None


def _parameters(base) -> float:
    import json

    try:
        config = json.loads((base.path / "config.json").read_text(encoding="utf-8"))
        hidden, layers = config["hidden_size"], config["num_hidden_layers"]
        vocab = config.get("vocab_size", 30522)
        return 12 * layers * hidden * hidden + vocab * hidden
    except (OSError, KeyError, ValueError):
        return _REFERENCE_PARAMETERS


def estimate_minutes(examples: int, epochs: float, parameters: float, bf16: bool = True, lora: bool = False) -> float:
    """Rough training minutes for ``examples`` × ``epochs`` on this machine."""
    speed = _FULL_EX_PER_S * (_REFERENCE_PARAMETERS / parameters) * ((os.cpu_count() or 2) / _REFERENCE_CORES)
    speed *= (1.0 if bf16 else 0.5) * (LORA_SPEEDUP if lora else 1.0)
    return examples * epochs / speed / 60


def choose_method(cfg, task, examples: list, base) -> AutoChoice:
    """Choose for a run whose training examples are loaded (see the module docstring)."""
    from .data._labels import class_key
    from .pipeline import resolve_precision

    import torch

    n = len(examples)
    if task.stratify:
        counts = Counter(class_key(e.label) for e in examples)
        median = statistics.median(counts.values())
        if median <= FEW_SHOT_MAX:
            return AutoChoice("fewshot", f"{n} examples over {len(counts)} classes, median {median:g} per class "
                                         f"(≤ {FEW_SHOT_MAX}: few-shot)")
    bf16 = resolve_precision(cfg.training.precision, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    params = _parameters(base)
    epochs = cfg.training.epochs
    full = estimate_minutes(n, epochs, params, bf16)
    budget = cfg.method.budget_minutes
    size = f"{n} examples × up to {epochs:g} epochs"
    if budget is None:
        return AutoChoice("full", f"{size}, no --budget-minutes: full fine-tuning, the most accurate "
                                  f"(about {full:.0f} min estimated)")
    if full <= budget:
        return AutoChoice("full", f"{size}: full fine-tuning fits the {budget:g}-minute budget "
                                  f"(about {full:.0f} min estimated)")
    lora = estimate_minutes(n, epochs, params, bf16, lora=True)
    if lora <= budget:
        return AutoChoice("lora", f"{size}: full fine-tuning would take about {full:.0f} min, over the "
                                  f"{budget:g}-minute budget; LoRA about {lora:.0f} min")
    fit = max(0.1, epochs * budget / lora)
    return AutoChoice("lora", f"{size}: even LoRA would take about {lora:.0f} min; training {fit:.2g} epochs "
                              f"to fit the {budget:g}-minute budget", epochs=round(fit, 2))
