"""Evaluation: metrics, error analysis, calibration, reports and plots.

Independent of torch: numpy arrays and label strings in, plain dicts and files out.
matplotlib is imported only when a plot is drawn.

Example:
    >>> from domainfit.evaluation import classification_metrics, write_report
    >>> m = classification_metrics(gold, pred, probs, labels)  # doctest: +SKIP
    >>> write_report("run/report", task="classification", metrics=m, texts=texts,
    ...              y_true=gold, y_pred=pred, probs=probs, labels=labels)  # doctest: +SKIP
"""

from .analysis import most_confident_mistakes, top_confused_pairs
from .calibration import expected_calibration_error, reliability_bins
from .metrics import (
    LOWER_IS_BETTER,
    classification_metrics,
    lower_is_better,
    metric_is_better,
    multilabel_metrics,
    regression_metrics,
)
from .plots import plot_confused_pairs, plot_confusion_matrix, plot_reliability, plot_residuals
from .report import CONFUSION_MATRIX_MAX_LABELS, write_report

__all__ = [
    "classification_metrics",
    "multilabel_metrics",
    "regression_metrics",
    "metric_is_better",
    "lower_is_better",
    "LOWER_IS_BETTER",
    "expected_calibration_error",
    "reliability_bins",
    "top_confused_pairs",
    "most_confident_mistakes",
    "write_report",
    "CONFUSION_MATRIX_MAX_LABELS",
    "plot_confusion_matrix",
    "plot_confused_pairs",
    "plot_reliability",
    "plot_residuals",
]
