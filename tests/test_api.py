"""The Python API, as a notebook uses it: settings by plain keyword, a ready predictor in
the result, scikit-learn's predict_proba, and the older call forms still working."""

from __future__ import annotations

import numpy as np
import pytest

import domainfit
from domainfit.core.errors import ConfigError
from helpers import write_task_data

TEXTS = ["where is my card", "refund my order please", "forgot my password"]


@pytest.fixture(scope="module")
def result(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("api")
    data = write_task_data(tmp, "classification")
    return domainfit.train(data=str(data), eval_data=data, output=str(tmp / "m"), model=str(tiny_model),
                           task="classification", method="full", epochs=4, batch_size=8, learning_rate=3e-3,
                           head_learning_rate=1e-2, warmup_ratio=0.0, freeze_embeddings=False, seed=7)


def test_plain_keywords_reach_their_settings(result):
    config = result.manifest["config"]
    assert config["training"]["epochs"] == 4 and config["training"]["seed"] == 7
    assert config["method"]["name"] == "full" and config["data"]["eval"] == config["data"]["train"]
    assert result.eval_metrics["accuracy"] > 0.8


def test_the_result_holds_a_ready_predictor(result):
    live = result.predictor
    assert live.labels == result.manifest["labels"] and live.predict(TEXTS) == domainfit.load(result.path).predict(TEXTS)


def test_predict_proba_is_ordered_like_labels(result):
    model = domainfit.load(result.path)
    proba = model.predict_proba(TEXTS)
    assert proba.shape == (3, len(model.labels)) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    for row, pred in zip(proba, model.predict(TEXTS)):
        assert model.labels[int(row.argmax())] == pred["label"]
        assert float(row.max()) == pytest.approx(pred["score"], abs=1e-5)
    assert model.predict_proba("where is my card").shape == (1, len(model.labels))
    assert model.predict_proba([]).shape == (0, len(model.labels))


def test_in_memory_rows_and_dotted_keys_still_work(tmp_path, tiny_model):
    rows = [{"text": t, "label": label} for t, label in [("where is my card", "card"), ("refund please", "refund")] * 6]
    done = domainfit.train(train_data=rows, eval_data=rows, output=str(tmp_path / "m"), model=str(tiny_model),
                           **{"training.epochs": 1, "method.name": "full"})
    assert done.manifest["data"]["train"]["source"] == "<records>" and done.eval_metrics["n"] == 12


def test_unknown_keywords_and_tasks_are_refused_before_any_work(tmp_path, tiny_model):
    with pytest.raises(ConfigError, match="did you mean epochs"):
        domainfit.train(data="x.csv", output=str(tmp_path / "m"), epoch=3)
    with pytest.raises(ConfigError, match="Unknown task 'ranking'"):
        domainfit.train(data="x.csv", output=str(tmp_path / "m"), task="ranking")
    assert not (tmp_path / "m").exists()


def test_results_and_predictors_show_in_one_line(result):
    shown = repr(result)
    assert shown.startswith(f"TrainResult({str(result.path)!r}, task='classification', method='full', labels=3")
    assert f"accuracy={result.eval_metrics['accuracy']:.4g}" in shown and "\n" not in shown and len(shown) < 300
    assert repr(result.predictor) == f"Predictor({str(result.path)!r}, task='classification', labels=3)"
