"""Seeded train/validation splits and few-shot sampling.

Both are deterministic for a seed and return examples in their original order, so a
run can be repeated exactly and its data diffed against another run's.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence

from domainfit.data._labels import class_key
from domainfit.data.types import Example
from domainfit.core.errors import ConfigError

__all__ = ["train_val_split", "sample_few_shot"]


def train_val_split(
    examples: Sequence[Example], val_fraction: float = 0.1, seed: int = 42, stratify: bool = True,
) -> tuple[list[Example], list[Example]]:
    """Split examples into training and validation sets.

    With ``stratify`` and string labels (classification; multilabel on the first label)
    every class keeps about the same share in both sets, and a class with at least 2
    examples always keeps at least 1 in training; a class with a single example goes to
    training (:func:`check_split_possible` reports such classes beforehand). Regression
    or unlabelled data is split at random.

    Args:
        examples: the examples to split.
        val_fraction: share of examples held out, in ``[0, 1)``; 0 gives no validation set.
        seed: random seed; the same seed and data give the same split.
        stratify: keep class proportions when the labels are classes.

    Returns:
        ``(train, val)``, each in the original order.

    Raises:
        ConfigError: ``val_fraction`` outside ``[0, 1)``.

    Example:
        >>> train, val = train_val_split(data.examples, val_fraction=0.2, seed=0)  # doctest: +SKIP
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be at least 0 and below 1, not {val_fraction}")
    n_val = round(len(examples) * val_fraction)
    if n_val == 0 and val_fraction > 0 and len(examples) >= 2:
        n_val = 1
    keys = [class_key(e.label) for e in examples]
    rng = random.Random(seed)
    if stratify and keys and all(k is not None for k in keys):
        val_index = _stratified_val(keys, n_val, rng)
    else:
        order = list(range(len(examples)))
        rng.shuffle(order)
        val_index = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in val_index]
    val = [e for i, e in enumerate(examples) if i in val_index]
    return train, val


def _stratified_val(keys: list[str], n_val: int, rng: random.Random) -> set[int]:
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        by_class[key].append(index)
    quotas = _quotas({k: len(v) for k, v in sorted(by_class.items())}, n_val)
    chosen: set[int] = set()
    for key in sorted(by_class):
        indices = by_class[key]
        rng.shuffle(indices)
        chosen.update(indices[:quotas[key]])
    return chosen


def _quotas(counts: dict[str, int], n_val: int) -> dict[str, int]:
    """Validation examples per class: proportional, by largest remainder.

    Each class keeps at least one example for training, so a class of size ``n`` gives
    at most ``n - 1``. Ties go to the larger class, then the class name, so the result
    does not depend on input order.
    """
    total = sum(counts.values())
    exact = {k: n * n_val / total for k, n in counts.items()}
    caps = {k: max(n - 1, 0) for k, n in counts.items()}
    quotas = {k: min(math.floor(exact[k]), caps[k]) for k in counts}
    left = n_val - sum(quotas.values())
    order = sorted(counts, key=lambda k: (-(exact[k] - math.floor(exact[k])), -counts[k], k))
    while left > 0:
        open_classes = [k for k in order if quotas[k] < caps[k]]
        if not open_classes:
            break
        for key in open_classes[:left]:
            quotas[key] += 1
        left = n_val - sum(quotas.values())
    return quotas


def sample_few_shot(examples: Sequence[Example], k: int, seed: int = 42) -> list[Example]:
    """Pick up to ``k`` examples per class at random (multilabel: by first label).

    Args:
        examples: labelled examples (string labels, or lists of strings).
        k: examples per class; a class with fewer keeps all of its examples.
        seed: random seed; the same seed and data give the same sample.

    Returns:
        The chosen examples, in their original order.

    Raises:
        ConfigError: ``k`` below 1, or an example without a class label.

    Example:
        >>> few = sample_few_shot(data.examples, k=8, seed=0)  # doctest: +SKIP
    """
    if k < 1:
        raise ConfigError(f"k (examples per class) must be at least 1, not {k}")
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        key = class_key(example.label)
        if key is None:
            raise ConfigError(f"few-shot sampling needs a class label on every example; "
                              f"line {example.line} has {example.label!r}")
        by_class[key].append(index)
    rng = random.Random(seed)
    chosen: set[int] = set()
    for key in sorted(by_class):
        chosen.update(rng.sample(by_class[key], min(k, len(by_class[key]))))
    return [e for i, e in enumerate(examples) if i in chosen]
