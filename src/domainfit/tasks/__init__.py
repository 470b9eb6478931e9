"""Tasks say what is predicted: targets, head size, loss, decoding and metrics.

A closed, small set of modules registered in a plain dict.
"""

from __future__ import annotations

from .base import RequestLimits, Scored, Task
from .classification import ClassificationTask
from .multilabel import MultiLabelTask
from .pair import PAIR_VARIANTS, PairClassificationTask, pair_variant
from .regression import RegressionTask
from .retrieval import RetrievalTask
from .token import CASE_VARIANT, TokenClassificationTask

TASKS: dict[str, Task] = {
    "classification": ClassificationTask(),
    "multilabel": MultiLabelTask(),
    "regression": RegressionTask(),
    "token-classification": TokenClassificationTask(),
    "pair": PairClassificationTask(),
    "retrieval": RetrievalTask(),
}


def get_task(name: str, variant: str | None = None) -> Task:
    """Return the task registered as ``name`` (for ``pair``, in its ``variant``; token
    classification with case markers for the variant ``case-markers``)."""
    from ..core.errors import ConfigError

    if name == "pair" and variant is not None:
        return PAIR_VARIANTS[variant]
    if name == "token-classification" and variant == CASE_VARIANT:
        return TokenClassificationTask(case_markers=True)
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"Unknown task {name!r}; choose one of: {', '.join(TASKS)}.") from None


__all__ = ["TASKS", "Task", "Scored", "RequestLimits", "get_task", "pair_variant", "ClassificationTask", "MultiLabelTask", "RegressionTask",
           "TokenClassificationTask", "RetrievalTask"]
