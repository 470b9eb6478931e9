"""Tasks say what is predicted: targets, head size, loss, decoding and metrics.

A closed, small set of modules registered in a plain dict.
"""

from __future__ import annotations

from .base import Task
from .classification import ClassificationTask
from .multilabel import MultiLabelTask
from .regression import RegressionTask

TASKS: dict[str, Task] = {
    "classification": ClassificationTask(),
    "multilabel": MultiLabelTask(),
    "regression": RegressionTask(),
}


def get_task(name: str) -> Task:
    """Return the task registered as ``name``."""
    from ..errors import ConfigError

    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"Unknown task {name!r}; choose one of: {', '.join(TASKS)}.") from None


__all__ = ["TASKS", "Task", "get_task", "ClassificationTask", "MultiLabelTask", "RegressionTask"]
