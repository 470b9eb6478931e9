"""The n-gram companion (training.ensemble): fit, save without pickle, blend, and the same
probabilities wherever the artifact predicts (Predictor, evaluate, ONNX export)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import domainfit
from domainfit.core.errors import ConfigError, ManifestError
from domainfit.modeling.ngram import COMPANION_FILES, NgramCompanion, blend_weight
from helpers import fast_settings, run_cli, write_ner_data, write_task_data

CODES = ["zx", "qv", "jw"]


def _coded_rows(n: int, seed: int) -> list[dict]:
    """Texts whose class is given only by a rare code word inside them (the words around it
    are shared by every class): what character n-grams see at once."""
    rng = np.random.default_rng(seed)
    filler = ["please", "check", "my", "order", "today", "thanks", "ref", "number"]
    rows = []
    for i in range(n):
        label = i % 3
        words = list(rng.choice(filler, size=4)) + [CODES[label] + str(rng.choice(["ta", "po", "mi"]))]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": f"class{label}"})
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_companion_learns_saves_and_loads_without_pickle(tmp_path):
    rows = _coded_rows(120, 0)
    texts, targets = [r["text"] for r in rows], [int(r["label"][-1]) for r in rows]
    companion = NgramCompanion.fit(texts, targets, 3)
    test = _coded_rows(30, 1)
    proba = companion.proba([r["text"] for r in test])
    assert proba.shape == (30, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == [int(r["label"][-1]) for r in test]).mean() == 1.0
    companion.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(COMPANION_FILES)
    again = NgramCompanion.load(tmp_path)
    assert np.array_equal(again.proba([r["text"] for r in test]), proba)
    two = NgramCompanion.fit(texts[:60], [t % 2 for t in targets[:60]], 2)  # scikit-learn's one-row binary case
    assert two.proba(["zx123 order"]).shape == (1, 2)


def test_blend_weight_follows_the_validation_data():
    targets = np.array([0, 1, 0, 1])
    right, wrong = np.eye(2)[targets] * 0.8 + 0.1, np.eye(2)[1 - targets] * 0.8 + 0.1
    assert blend_weight(right, wrong, targets)[:2] == (1.0, 1.0)  # the encoder alone
    assert blend_weight(wrong, right, targets)[:2] == (0.0, 1.0)  # the companion alone
    # each is sure where it is right and unsure where it is wrong: only a blend gets all four
    encoder = np.array([[0.9, 0.1], [0.1, 0.9], [0.4, 0.6], [0.6, 0.4]])
    companion = np.array([[0.4, 0.6], [0.6, 0.4], [0.9, 0.1], [0.1, 0.9]])
    weight, accuracy, _ = blend_weight(encoder, companion, targets)
    assert accuracy == 1.0 and 0 < weight < 1


def test_training_with_the_companion_blends_it_everywhere(tmp_path, tiny_model):
    train, val = _write(tmp_path / "train.jsonl", _coded_rows(90, 0)), _write(tmp_path / "val.jsonl", _coded_rows(30, 1))
    test = _write(tmp_path / "test.jsonl", _coded_rows(30, 2))
    out = tmp_path / "model"
    result = domainfit.train(output=str(out), model=str(tiny_model), **fast_settings(
        **{"data.train": str(train), "data.validation": str(val), "data.eval": str(test), "training.epochs": 2,
           "training.ensemble": "ngram"}))
    manifest = result.manifest
    section = manifest["companion"]
    assert section["kind"] == "ngram" and section["kept"] and 0 <= section["weight"] <= 1
    assert section["validation"]["companion_accuracy"] == 1.0
    assert all(name in manifest["files"] for name in COMPANION_FILES)
    assert "| n-gram companion | blended, encoder weight" in (out / "report" / "model_card.md").read_text()
    model = domainfit.load(out)
    texts = [json.loads(line)["text"] for line in test.read_text().splitlines()]
    inner = model.model.inner
    encoder = model.task.text_scores(inner, model.tokenizer, texts, None, model.max_length).numpy()
    expected = section["weight"] * encoder + (1 - section["weight"]) * NgramCompanion.load(out).proba(texts)
    assert np.abs(model.predict_proba(texts) - expected).max() < 1e-5
    # the evaluation written at training time and a later evaluate score the same blend
    later = domainfit.evaluate(str(out), str(test))
    assert later["accuracy"] == pytest.approx(manifest["metrics"]["eval"]["accuracy"])
    # the export keeps the companion and blends it in the same way
    from domainfit.export import export_model

    exported_path = tmp_path / "onnx"
    parity = export_model(out, exported_path)["parity"]
    assert parity["agreement"] == 1.0
    exported = domainfit.load(exported_path)
    assert exported.backend == "onnx" and np.abs(exported.predict_proba(texts) - expected).max() < 1e-4
    shown = run_cli("info", str(out))
    assert shown.returncode == 0 and f"companion  n-gram, blended with encoder weight {section['weight']:.2f}" in shown.stdout
    # a damaged companion is named, not used
    (out / COMPANION_FILES[0]).write_text("{}", encoding="utf-8")
    with pytest.raises(ManifestError, match="companion"):
        domainfit.load(out)


def test_auto_keeps_the_companion_only_where_validation_improves(tmp_path, tiny_model):
    data = write_task_data(tmp_path, "classification")  # the encoder already learns it: nothing to gain
    result = domainfit.train(output=str(tmp_path / "m"), model=str(tiny_model), **fast_settings(
        **{"data.train": str(data), "training.ensemble": "auto"}))
    record = result.manifest.get("companion") or result.manifest["ensemble"]
    gain = record["validation"]["blend_accuracy"] > record["validation"]["encoder_accuracy"]
    assert record["kept"] == gain and (result.manifest["companion"] is not None) == gain
    assert not gain  # three easy classes: the encoder alone is already right on validation
    assert not (tmp_path / "m" / COMPANION_FILES[0]).exists()


def test_companion_refusals_come_before_any_work(tmp_path, tiny_model):
    ner = write_ner_data(tmp_path)
    with pytest.raises(ConfigError, match="single-label text classification"):
        domainfit.train(output=str(tmp_path / "ner"), model=str(tiny_model), task="token-classification",
                        **fast_settings(**{"data.train": str(ner), "training.ensemble": "ngram"}))
    data = write_task_data(tmp_path, "classification")
    with pytest.raises(ConfigError, match="validation data"):
        domainfit.train(output=str(tmp_path / "few"), model=str(tiny_model), method="fewshot",
                        **fast_settings(**{"data.train": str(data), "training.ensemble": "ngram"}))
    with pytest.raises(ConfigError, match="training.ensemble"):
        domainfit.train(output=str(tmp_path / "bad"), model=str(tiny_model),
                        **fast_settings(**{"data.train": str(data), "training.ensemble": "tfidf"}))
    assert not (tmp_path / "ner").exists() and not (tmp_path / "few").exists()
    done = run_cli("train", "--data", str(ner), "--task", "token-classification", "--model", str(tiny_model),
                   "--output", str(tmp_path / "cli"), "--ensemble", "ngram")
    assert done.returncode == 2 and "single-label" in done.stderr and "Traceback" not in done.stderr
