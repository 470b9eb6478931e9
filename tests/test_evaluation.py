"""Metrics, calibration and error analysis against small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from domainfit.evaluation import (
    classification_metrics,
    expected_calibration_error,
    lower_is_better,
    metric_is_better,
    most_confident_mistakes,
    multilabel_metrics,
    regression_metrics,
    reliability_bins,
    top_confused_pairs,
)

# Three classes with a known confusion:
#   a: 3 examples, 2 right, 1 predicted b    -> P 2/2, R 2/3, F1 0.8
#   b: 2 examples, 1 right, 1 predicted c    -> P 1/2, R 1/2, F1 0.5
#   c: 1 example,  1 right                   -> P 1/2, R 1/1, F1 2/3
GOLD = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "b", "b", "c", "c"]


def test_classification_metrics_match_hand_computation():
    m = classification_metrics(GOLD, PRED, None, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert m["per_class"]["c"]["support"] == 1
    assert m["n"] == 6 and m["n_unseen"] == 0
    assert m["primary_metric"] == "accuracy"
    assert "ece" not in m


def test_unseen_gold_labels_count_as_errors_with_their_own_row():
    m = classification_metrics(["a", "b", "c", "c"], ["a", "b", "a", "b"], None, ["a", "b"])
    assert m["accuracy"] == 0.5
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["n_unseen"] == 2 and m["unseen_labels"] == ["c"]
    # Macro over {a, b, c}: a and b each have P 1/2, R 1, F1 2/3; c has 0.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_model_labels_absent_from_test_data_do_not_enter_macro_average():
    m = classification_metrics(["a", "b"], ["a", "b"], None, ["a", "b", "never_seen"])
    assert m["macro_f1"] == 1.0
    assert set(m["per_class"]) == {"a", "b"}


def test_probability_metrics_ece_and_nll():
    labels = ["a", "b"]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = classification_metrics(["a", "b", "b"], ["a", "b", "a"], probs, labels)
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4])))
    correct = [True, True, False]
    assert m["ece"] == pytest.approx(expected_calibration_error([0.9, 0.8, 0.6], correct))
    assert m["ece"] > 0


def test_classification_input_errors():
    with pytest.raises(ValueError, match="2 gold labels but 1"):
        classification_metrics(["a", "b"], ["a"], None, ["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(["a"], ["a"], np.ones((1, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="duplicates"):
        classification_metrics(["a"], ["a"], None, ["a", "a"])
    with pytest.raises(ValueError, match="no examples"):
        classification_metrics([], [], None, ["a"])


def test_ece_is_zero_when_confidence_matches_accuracy():
    conf = [0.8] * 10 + [0.6] * 5
    correct = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 2
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-9)


def test_ece_is_positive_when_overconfident():
    ece = expected_calibration_error([0.99] * 10, [True, False] * 5)
    assert ece == pytest.approx(0.49)


def test_ece_rejects_bad_confidences():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [True])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0.5], [True], n_bins=0)


def test_reliability_bins():
    bins = reliability_bins([0.05, 0.95, 0.95, 1.0], [False, True, False, True], n_bins=10)
    assert len(bins) == 10
    assert bins[0] == pytest.approx(
        {"lower": 0.0, "upper": 0.1, "mean_confidence": 0.05, "accuracy": 0.0, "count": 1}
    )
    assert bins[5]["count"] == 0 and bins[5]["accuracy"] is None
    assert bins[9]["count"] == 3 and bins[9]["accuracy"] == pytest.approx(2 / 3)
    assert sum(b["count"] for b in bins) == 4


def test_multilabel_metrics():
    gold = [["a", "b"], ["b"], ["c"], []]
    pred = [["a", "b"], ["b", "c"], [], []]
    m = multilabel_metrics(gold, pred, ["a", "b", "c"])
    assert m["subset_accuracy"] == 0.5  # rows 0 and 3 match exactly
    assert m["hamming_loss"] == pytest.approx(2 / 12)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))  # TP 3, FP 1, FN 1
    assert m["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["samples_f1"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["primary_metric"] == "micro_f1"


def test_multilabel_rejects_bare_strings():
    with pytest.raises(ValueError, match="list of labels"):
        multilabel_metrics(["ab"], [["a"]], ["a", "b"])


def test_regression_metrics_match_numpy_formulas():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=50)
    pred = gold + rng.normal(scale=0.3, size=50)
    m = regression_metrics(gold, pred)
    err = pred - gold
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert m["r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((gold - gold.mean()) ** 2))
    assert m["pearson"] == pytest.approx(np.corrcoef(gold, pred)[0, 1])
    assert m["spearman"] == pytest.approx(stats.spearmanr(gold, pred)[0])
    assert m["n"] == 50 and m["primary_metric"] == "r2"


def test_regression_undefined_correlations_are_none():
    m = regression_metrics([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert m["r2"] is None and m["spearman"] is None and m["pearson"] is None
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics([1.0, math.nan], [1.0, 2.0])


@pytest.mark.parametrize(
    ("name", "new", "old", "expected"),
    [
        ("accuracy", 0.9, 0.8, True),
        ("accuracy", 0.8, 0.8, False),
        ("mae", 0.1, 0.2, True),
        ("eval_loss", 0.3, 0.2, False),
        ("val/rmse", 0.1, 0.2, True),
        ("hamming_loss", 0.1, 0.2, True),
        ("ece", 0.1, 0.2, True),
        ("macro_f1", 0.5, None, True),
        ("macro_f1", None, 0.5, False),
        ("r2", math.nan, 0.5, False),
    ],
)
def test_metric_is_better(name, new, old, expected):
    assert metric_is_better(name, new, old) is expected


def test_lower_is_better_names():
    assert lower_is_better("test_mae") and lower_is_better("contrastive_loss")
    assert not lower_is_better("spearman") and not lower_is_better("subset_accuracy")


def test_top_confused_pairs_counts_and_order():
    gold = ["a", "a", "a", "b", "c", "c"]
    pred = ["b", "b", "a", "c", "a", "b"]
    assert top_confused_pairs(gold, pred) == [("a", "b", 2), ("b", "c", 1), ("c", "a", 1),
                                              ("c", "b", 1)]
    assert top_confused_pairs(gold, pred, k=1) == [("a", "b", 2)]
    assert top_confused_pairs(["a"], ["a"]) == []


def test_most_confident_mistakes_ranked_by_confidence():
    texts = ["t0", "t1", "t2", "t3"]
    out = most_confident_mistakes(texts, GOLD[:4], PRED[2:6], [0.5, 0.9, 0.7, 0.99], n=2)
    # gold a a a b vs pred b b c c: all four are wrong; highest confidence first.
    assert [m["index"] for m in out] == [3, 1]
    assert out[0] == {"index": 3, "text": "t3", "true": "b", "pred": "c", "confidence": 0.99}
    assert most_confident_mistakes(None, ["a"], ["b"], [0.4])[0]["text"] is None


def test_macro_f1_on_a_subset_leaves_absent_classes_out_and_says_so(tmp_path):
    """An evaluation file with 2 of a model's 5 classes: macro-F1 is over those 2 (as
    scikit-learn computes it), not dragged to 0 by the 3 absent ones, and the report names them."""
    from sklearn.metrics import f1_score

    from domainfit.evaluation.metrics import classification_metrics
    from domainfit.evaluation.report import write_report

    labels = ["a", "b", "c", "d", "e"]
    y_true = ["a"] * 50 + ["b"] * 50
    y_pred = ["a"] * 50 + ["b"] * 49 + ["a"]
    m = classification_metrics(y_true, y_pred, None, labels)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["macro_f1"] > 0.98 and m["absent_labels"] == ["c", "d", "e"]
    assert set(m["per_class"]) == {"a", "b"}
    folder = write_report(tmp_path / "report", task="classification", metrics=m, texts=[f"t{n}" for n in range(100)],
                          y_true=y_true, y_pred=y_pred, labels=labels)
    text = folder.read_text(encoding="utf-8")  # write_report returns the report file
    assert "3 of the model's 5 classes are neither in this data nor predicted (`c`, `d`, `e`)" in text
