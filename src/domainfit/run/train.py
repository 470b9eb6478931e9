"""Training: the entry point that the command line, the Python API and the apps call.

It reads the settings (a YAML file, dotted overrides, keywords), then hands the run to the
flow it needs: :mod:`.zeroshot` without labelled data, :mod:`.supervised` otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..core.config import RunConfig, flatten, load_config
from ..core.errors import ConfigError
from ..core.ui import say
from ..tasks import get_task
from ..training.tracking import check_tracking
from .supervised import TrainResult, fit_and_write, prepare
from .zeroshot import train_zeroshot

__all__ = ["train", "TrainResult"]


_DATA_ARGS = {"data": "data.train", "train_data": "data.train", "eval_data": "data.eval",
              "validation_data": "data.validation", "outlier_data": "data.outliers",
              "unlabelled_data": "data.unlabelled"}


def train(config: RunConfig | str | Path | None = None, *, data: Any = None, eval_data: Any = None,
          validation_data: Any = None, train_data: Any = None, outlier_data: Any = None,
          unlabelled_data: Any = None, overrides: list[str] | None = None,
          resume: str = "auto", overwrite: bool = False, callbacks: list[Callable] | None = None,
          **settings: Any) -> TrainResult:
    """Train a model and write its artifact folder.

    Args:
        config: a :class:`RunConfig`, or a YAML path (``overrides`` and ``settings`` apply on top).
        data / eval_data / validation_data: a file path, or in-memory rows (a DataFrame or a
            list of dicts). ``train_data`` is the older name of ``data``.
        outlier_data / unlabelled_data: texts of no class (outlier exposure) / texts without
            labels (distillation with ``teacher=``), as a path or in-memory rows.
        overrides: dotted ``key=value`` strings.
        resume: ``"auto"`` continues an unfinished run in the output folder; ``"never"`` refuses to.
        overwrite: replace whatever the output folder holds.
        callbacks: ``cb(event, state, info)`` called at the start, on every step and evaluation.
        **settings: settings by name (``output="m"``, ``task="multilabel"``, ``method="lora"``,
            ``epochs=3``, ``learning_rate=1e-4``) or by dotted place (``**{"training.epochs": 3}``).

    Returns:
        A :class:`TrainResult`; ``result.predictor`` predicts with the trained model.

    Raises:
        DomainfitError: bad configuration, data or output folder (before any training).

    Example:
        >>> result = train(data="train.csv", eval_data="test.csv", output="my-model", epochs=3)  # doctest: +SKIP
        >>> result.predictor.predict(["where is my card?"])[0]["label"]                         # doctest: +SKIP
        'card_arrival'
    """
    frames = {}
    for name, value in (("data", data), ("train_data", train_data), ("eval_data", eval_data),
                        ("validation_data", validation_data), ("outlier_data", outlier_data),
                        ("unlabelled_data", unlabelled_data)):
        if value is None:
            continue
        if isinstance(value, (str, os.PathLike)):
            settings[_DATA_ARGS[name]] = os.fspath(value)
        else:
            frames[_DATA_ARGS[name]] = value
    if isinstance(config, RunConfig):  # taken as it is: every one of its settings counts as set
        cfg = load_config(None, overrides, **{**flatten(config), **settings})
        get_task(cfg.task)  # an unknown task fails here, before anything is read
    else:
        cfg = load_config(config, overrides, **settings)
        task_defaults = get_task(cfg.task).training_defaults  # (an unknown task fails here)
        if task_defaults:  # the task's own defaults (docs/training.md), under everything the user set
            cfg = load_config(config, overrides, defaults=task_defaults, **settings)
    check_tracking(cfg.training.tracking)  # a missing mlflow package fails here, before any work
    train_rows, eval_rows, val_rows = (frames.get(k) for k in ("data.train", "data.eval", "data.validation"))
    outlier_rows, unlabelled_rows = frames.get("data.outliers"), frames.get("data.unlabelled")
    if cfg.method.name == "zeroshot" or (cfg.method.name == "auto" and train_rows is None and cfg.data.train is None
                                         and cfg.data.labels is not None):
        if cfg.method.name == "auto":
            say("auto: [bold]zeroshot[/]: no training data, a label file")
            cfg.method.name = "zeroshot"
        if cfg.training.teacher is not None or cfg.data.outliers is not None or outlier_rows is not None:
            raise ConfigError("--teacher and --outlier-data train on labelled data; zeroshot has none (its "
                              "--unlabelled-data self-trains without a teacher).")
        if unlabelled_rows is not None:
            raise ConfigError("zeroshot self-training reads --unlabelled-data from a file (data.unlabelled).")
        return train_zeroshot(cfg, eval_data=eval_rows, resume=resume, overwrite=overwrite, callbacks=callbacks)
    return fit_and_write(prepare(cfg, train_rows, eval_rows, val_rows, outlier_rows, unlabelled_rows), resume=resume,
                         overwrite=overwrite, callbacks=callbacks)


