"""Conformance: every registered method, on every task it declares, goes
apply → train → save → load → the same outputs.

The outputs compared are what an export's parity check compares (``Task.parity_outputs``:
probabilities, values, per-word probabilities or text vectors), so every task is held to
the same contract. ``CASES`` must name exactly the registered methods: a new method fails
here until it is given a case, and then runs on every task it declares.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

import domainfit
from domainfit.data import ColumnSpec, load_dataset
from domainfit.methods import METHODS
from domainfit.tasks import TASKS
from helpers import (METHOD_OPTIONS, STORED, fast_settings, write_ner_data, write_pair_data, write_retrieval_data,
                     write_task_data)

NER = "token-classification"

CASES = METHOD_OPTIONS  # a case per method: the options it runs with on the tiny BERT


def test_every_registered_method_has_a_case():
    assert set(CASES) == set(METHODS)


def _declared(method: str) -> list[str]:
    return sorted(METHODS[method].tasks or TASKS)


PAIRS = [(m, t) for m in sorted(CASES) for t in _declared(m)]


def _data(tmp_path, task: str) -> tuple[dict, str]:
    """Settings that point a run at small learnable data for ``task``, and the data file."""
    if task == NER:
        path = write_ner_data(tmp_path)
        return {"data.train": str(path)}, str(path)
    if task == "pair":
        path = write_pair_data(tmp_path)
        return {"data.train": str(path), "data.text_column": "a", "data.text_pair_column": "b"}, str(path)
    if task == "retrieval":
        path = write_retrieval_data(tmp_path)[0]
        return {"data.train": str(path), "data.text_column": "query", "data.text_pair_column": "positive"}, str(path)
    path = write_task_data(tmp_path, task)
    return {"data.train": str(path)}, str(path)


def _zeroshot_settings(tmp_path, task: str, data: dict) -> dict:
    if task == "retrieval":  # the encoder as it comes: nothing but the task
        return {key: value for key, value in data.items() if key != "data.train"}
    labels = tmp_path / "labels.csv"
    labels.write_text("label,description\ncard,my card\nrefund,\npassword,my password\nurgent,\n", encoding="utf-8")
    return {"data.labels": str(labels)}


@pytest.mark.parametrize("method,task", PAIRS, ids=[f"{m}-{t}" for m, t in PAIRS])
def test_method_round_trips_on_task(tmp_path, tiny_model, method, task):
    data, path = _data(tmp_path, task)
    settings = _zeroshot_settings(tmp_path, task, data) if method == "zeroshot" else \
        fast_settings(**data, **{"training.epochs": 1})
    out = tmp_path / "model"
    result = domainfit.train(output=str(out), model=str(tiny_model), task=task, method=method, **settings,
                             **{f"method.options.{k}": v for k, v in CASES[method].items()})

    manifest = json.loads((out / "domainfit.json").read_text())
    assert manifest["task"] == task and manifest["method"]["name"] == method
    assert manifest["weights"] == ("model.safetensors" if METHODS[method].saves_base else "adapter.safetensors")
    assert not (out / "checkpoints").exists() and not (out / "run.json").exists()
    if not METHODS[method].saves_base:
        state = load_file(str(out / manifest["weights"]))
        learned = [k for k in state if not k.startswith(("head.", "output_"))]
        assert all(STORED[method](k) for k in learned), learned[:5]
        assert manifest["method"]["trainable_parameters"] == sum(
            v.numel() for k, v in state.items() if not k.startswith("output_"))

    loaded = domainfit.load(out)
    examples = load_dataset(path, task=loaded.task.name, require_labels=False,
                            columns=ColumnSpec(data.get("data.text_column", "text"), "label",
                                               data.get("data.text_pair_column"))).examples[:8]
    live, again = (p.task.parity_outputs(p.model, p.tokenizer, examples, p.labels, p.max_length)
                   for p in (result.predictor, loaded))
    assert live.shape == again.shape and live.size
    np.testing.assert_allclose(again, live, rtol=0, atol=1e-5)
