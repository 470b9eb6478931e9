"""Seeded stratified splits, few-shot sampling and the built-in sample data."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from domainfit.data import (
    Example, check_eval_labels, load_dataset, sample_data_path, sample_few_shot, train_val_split,
)
from domainfit.core.errors import ConfigError


def make(counts: dict[str, int]) -> list[Example]:
    examples = []
    for label, n in counts.items():
        examples += [Example(f"{label} {i}", label) for i in range(n)]
    for line, example in enumerate(examples):
        example.line = line
    return examples


def test_stratified_split_keeps_class_proportions_and_is_reproducible():
    examples = make({"a": 60, "b": 30, "c": 10})
    train, val = train_val_split(examples, val_fraction=0.2, seed=1)
    assert Counter(e.label for e in val) == {"a": 12, "b": 6, "c": 2}
    assert len(train) + len(val) == 100 and not {id(e) for e in train} & {id(e) for e in val}
    again = train_val_split(examples, val_fraction=0.2, seed=1)
    assert again == (train, val)
    assert train_val_split(examples, val_fraction=0.2, seed=2)[1] != val
    assert [e.line for e in val] == sorted(e.line for e in val)  # original order


def test_every_class_keeps_one_in_training_and_singletons_stay_in_training():
    examples = make({"a": 2, "b": 2, "c": 1, "d": 40})
    train, val = train_val_split(examples, val_fraction=0.5, seed=0)
    assert {"a", "b", "c", "d"} <= {e.label for e in train}
    assert "c" not in {e.label for e in val}
    assert len(val) == 22  # round(45 * 0.5); a, b give at most 1 each


def test_small_fraction_still_gives_a_validation_example():
    train, val = train_val_split(make({"a": 3, "b": 3}), val_fraction=0.01)
    assert len(val) == 1 and len(train) == 5


def test_split_edge_cases():
    examples = make({"a": 5, "b": 5})
    assert train_val_split(examples, val_fraction=0.0) == (examples, [])
    with pytest.raises(ConfigError):
        train_val_split(examples, val_fraction=1.0)


def test_regression_and_multilabel_splits():
    reg = [Example(str(i), float(i), line=i) for i in range(50)]
    train, val = train_val_split(reg, val_fraction=0.2, seed=3)
    assert len(val) == 10 and train_val_split(reg, val_fraction=0.2, seed=3)[1] == val
    multi = [Example(str(i), ["a" if i % 4 else "b", "z"], line=i) for i in range(40)]
    _, val = train_val_split(multi, val_fraction=0.2, seed=0)
    assert Counter(e.label[0] for e in val) == {"a": 6, "b": 2}


def test_sample_few_shot():
    examples = make({"a": 20, "b": 3, "c": 10})
    few = sample_few_shot(examples, k=4, seed=0)
    assert Counter(e.label for e in few) == {"a": 4, "b": 3, "c": 4}
    assert few == sample_few_shot(examples, k=4, seed=0)
    assert [e.line for e in few] == sorted(e.line for e in few)
    assert sample_few_shot(examples, k=4, seed=1) != few
    with pytest.raises(ConfigError):
        sample_few_shot(examples, k=0)
    with pytest.raises(ConfigError):
        sample_few_shot([Example("a", None, line=0)], k=1)


def test_sample_data_is_a_usable_intent_set():
    train = load_dataset(sample_data_path("train"))
    test = load_dataset(sample_data_path("test"))
    assert train.warnings == [] and train.skipped == [] and test.warnings == []
    counts = Counter(train.labels)
    assert len(counts) >= 14 and min(counts.values()) >= 30
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", label) for label in counts)
    chinese = sum(bool(re.search(r"[\u4e00-\u9fff]", t)) for t in train.texts)
    assert 0.10 <= chinese / len(train) <= 0.15
    assert set(test.labels) == set(counts) and min(Counter(test.labels).values()) >= 6
    assert check_eval_labels(train.labels, test) == []
    assert not set(train.texts) & set(test.texts)
    with pytest.raises(ConfigError):
        sample_data_path("validation")
