"""Probability targets: distillation from a teacher (training.teacher, data.unlabelled) and
outlier exposure (data.outliers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import domainfit
from domainfit.core.errors import ConfigError, DataError
from domainfit.data.types import Example
from domainfit.tasks import get_task
from domainfit.tasks.classification import soft_targets
from helpers import fast_settings, run_cli, write_ner_data, write_task_data

GROUPS = {"card": ["where is my card", "card not arrived yet", "when will my card arrive"],
          "refund": ["refund my order", "money back please", "i want a refund"],
          "password": ["forgot my password", "reset password", "can not login"]}
OFF_TOPIC = ["the weather is sunny", "football match tonight", "recipe for apple pie", "best hiking trails",
             "music festival tickets", "how tall is the tower", "learn to play guitar", "movie about space"]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_loss_learns_probability_rows_and_labels_alike():
    task = get_task("classification")
    labels = ["a", "b", "c"]
    examples = [Example("x", "b"), Example("y", None, soft=[0.2, 0.3, 0.5]), Example("z", "unseen")]
    targets = soft_targets(examples, labels)
    assert targets.tolist() == [[0, 1, 0], [pytest.approx(0.2), pytest.approx(0.3), pytest.approx(0.5)], [0, 0, 0]]
    logits = torch.tensor([[0.1, 2.0, -1.0], [0.5, 0.1, 0.3], [1.0, 0.0, 0.0]])
    expected = -(targets * F.log_softmax(logits, -1)).sum(1).mean()
    assert float(task.loss(logits, targets)) == pytest.approx(float(expected), rel=1e-6)
    # a one-hot row gives the same loss as its label index
    assert float(task.loss(logits[:1], targets[:1])) == pytest.approx(float(task.loss(logits[:1], torch.tensor([1]))))
    assert task.quick_score(logits[:2], targets[:2]) == 0.5  # argmax of each row: b (right), a (c wanted)


def test_a_student_learns_its_teacher_rather_than_its_labels(tmp_path, tiny_model):
    right = write_task_data(tmp_path, "classification")
    teacher = domainfit.train(output=str(tmp_path / "teacher"), model=str(tiny_model),
                              **fast_settings(**{"data.train": str(right)}))
    assert teacher.eval_metrics["accuracy"] == 1.0
    # the same texts with every label moved to the next class: only the teacher knows better
    wrong_of = {"card": "refund", "refund": "password", "password": "card"}
    rows = [json.loads(line) for line in right.read_text().splitlines()]
    wrong = _write(tmp_path / "wrong.jsonl", [{**r, "label": wrong_of[r["label"]]} for r in rows])
    unlabelled = _write(tmp_path / "unlabelled.jsonl", [{"text": t} for texts in GROUPS.values() for t in texts])
    # validation keeps the true labels (as a curated validation file would): it picks the best step
    student = domainfit.train(output=str(tmp_path / "student"), model=str(tiny_model), unlabelled_data=str(unlabelled),
                              validation_data=str(right), **fast_settings(
                                  **{"data.train": str(wrong), "training.teacher": str(teacher.path),
                                     "training.teacher_weight": 1.0}))
    section = student.manifest["distillation"]
    assert section["weight"] == 1.0 and section["unlabelled_texts"] == 9
    assert section["teacher_agrees_with_labels"] == 0.0  # every label was moved
    assert student.manifest["data"]["unlabelled"]["rows"] == 9
    shown = run_cli("info", str(student.path))
    assert shown.returncode == 0 and "teacher    " in shown.stdout and "weight 1, 9 unlabelled texts" in shown.stdout
    texts = [t for texts in GROUPS.values() for t in texts]
    truth = [g for g, texts in GROUPS.items() for _ in texts]
    predicted = [p["label"] for p in student.predictor.predict(texts)]
    # the teacher's classes, not the (moved) labels (a tiny teacher is unsure: most, not all)
    assert sum(p == t for p, t in zip(predicted, truth)) >= 7, predicted
    # without the teacher the same data teaches the moved labels
    plain = domainfit.train(output=str(tmp_path / "plain"), model=str(tiny_model), validation_data=str(wrong),
                            **fast_settings(**{"data.train": str(wrong)}))
    assert sum(p["label"] == t for p, t in zip(plain.predictor.predict(texts), truth)) <= 1


def _train_every_step(output, tiny_model, **settings):
    """Train for all epochs, without validation picking an early step: on these tiny data the
    classes are right after two epochs, long before the outliers are learnt."""
    from domainfit.core.config import load_config
    from domainfit.run.supervised import fit_and_write, prepare

    p = prepare(load_config(None, None, output=str(output), model=str(tiny_model), **fast_settings(**settings)))
    p.val_ex = []
    return fit_and_write(p)


def test_outlier_exposure_makes_the_model_unsure_on_texts_of_no_class(tmp_path, tiny_model):
    data = write_task_data(tmp_path, "classification")
    outliers = _write(tmp_path / "outliers.jsonl", [{"text": t} for t in OFF_TOPIC[:6]])
    held_out = OFF_TOPIC[6:] + ["sunny weather for the football match", "guitar music tonight"]
    common = {"data.train": str(data), "training.epochs": 20}
    exposed = _train_every_step(tmp_path / "exposed", tiny_model, **common, **{"data.outliers": str(outliers)})
    plain = _train_every_step(tmp_path / "plain", tiny_model, **common)
    assert exposed.manifest["outliers"]["texts"] == 6
    assert exposed.manifest["data"]["outliers"]["rows"] == 6
    assert exposed.manifest["split"]["train_rows"] == plain.manifest["split"]["train_rows"]
    texts = [t for texts in GROUPS.values() for t in texts]
    truth = [g for g, texts in GROUPS.items() for _ in texts]
    for model in (exposed, plain):
        assert [p["label"] for p in model.predictor.predict(texts)] == truth
    assert exposed.predictor.predict_proba(texts).max(1).mean() > 0.8  # still sure of its classes
    sure_exposed = exposed.predictor.predict_proba(held_out).max(1).mean()
    sure_plain = plain.predictor.predict_proba(held_out).max(1).mean()
    assert sure_exposed < sure_plain - 0.08, (sure_exposed, sure_plain)
    assert exposed.predictor.predict_proba(OFF_TOPIC[:6]).max(1).mean() < 0.42  # near the even 1/3


def test_bad_teachers_and_extra_texts_are_refused_before_any_work(tmp_path, tiny_model):
    data = write_task_data(tmp_path, "classification")
    other = _write(tmp_path / "other.jsonl", [{"text": t, "label": "x" if i % 2 else "y"}
                                              for i, t in enumerate(OFF_TOPIC * 3)])
    teacher = domainfit.train(output=str(tmp_path / "teacher"), model=str(tiny_model),
                              **fast_settings(**{"data.train": str(other), "training.epochs": 1}))
    ner = write_ner_data(tmp_path)
    ner_model = domainfit.train(output=str(tmp_path / "ner"), model=str(tiny_model), task="token-classification",
                                **fast_settings(**{"data.train": str(ner), "training.epochs": 1}))
    blank = tmp_path / "blank.csv"
    blank.write_text("text,label\n ,a\n", encoding="utf-8")

    def refused(match, error=ConfigError, **settings):
        out = tmp_path / "out"
        with pytest.raises(error, match=match):
            domainfit.train(output=str(out), model=str(tiny_model), **fast_settings(**settings))
        assert not out.exists()

    refused("not a domainfit model folder", **{"data.train": str(data), "training.teacher": str(tmp_path)})
    refused("other labels.*only the teacher has x, y", **{"data.train": str(data),
                                                          "training.teacher": str(teacher.path)})
    refused("token-classification model", **{"data.train": str(data), "training.teacher": str(ner_model.path)})
    refused("needs a teacher", **{"data.train": str(data), "data.unlabelled": str(other)})
    refused("line 2, column 'text': the text is missing", DataError, **{"data.train": str(data),
                                                                         "data.outliers": str(blank)})
    refused("No usable rows", DataError, **{"data.train": str(data), "data.outliers": str(blank),
                                            "data.on_bad_rows": "skip"})
    refused("task is not supported", task="token-classification",
            **{"data.train": str(ner), "data.outliers": str(other)})
    refused("method fewshot", method="fewshot", **{"data.train": str(data), "data.outliers": str(other)})
    refused("method fewshot", method="fewshot", outlier_data=[{"text": "the weather is sunny"}],
            **{"data.train": str(data)})  # in-memory rows are checked alike
    refused("needs a teacher", unlabelled_data=[{"text": "where is my card"}], **{"data.train": str(data)})
    refused("teacher_weight", **{"data.train": str(data), "training.teacher_weight": 1.5})
    done = run_cli("train", "--data", str(data), "--model", str(tiny_model), "--teacher", str(tmp_path / "nowhere"),
                   "--output", str(tmp_path / "cli"))
    assert done.returncode == 2 and "not a domainfit model folder" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "cli").exists()
