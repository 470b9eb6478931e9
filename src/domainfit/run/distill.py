"""Training signal beyond the labels: a teacher's probabilities and texts of no class.

* **Distillation** (``training.teacher``): a trained domainfit model, usually larger, gives
  its probabilities over the labels for every training text and for the texts of
  ``data.unlabelled``; the model learns a mix of the teacher's probabilities and the label
  (``training.teacher_weight``), and the teacher's alone where there is no label
  (Hinton et al., 2015).
* **Outlier exposure** (``data.outliers``): texts that belong to none of the classes learn
  an even spread over the classes, so that the model is unsure on texts like them and a
  max-probability out-of-scope detector flags them (Hendrycks et al., 2019).

Both add ``Example.soft`` targets to the training examples; the classification loss learns
probability rows where they are given (:class:`~domainfit.tasks.ClassificationTask`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.ui import escape, say
from ..data import ColumnSpec, Dataset, load_dataset

__all__ = ["add_soft_examples"]


def _texts(cfg: RunConfig, task, source, tokenizer, what: str) -> Dataset:
    """A file (or rows) of texts; a label column, if the file has one, is not read."""
    columns = ColumnSpec(cfg.data.text_column, "", None)  # no column is named "": every label is None
    ds = load_dataset(source, task=task.name, columns=columns, require_labels=False, on_bad_rows=cfg.data.on_bad_rows,
                      tokenizer=tokenizer, max_length=cfg.training.max_length)
    ds.examples = [replace(e, label=None) for e in ds.examples if e.text.strip()]
    if not ds.examples:
        raise ConfigError(f"{what} {ds.source} has no texts in its column '{cfg.data.text_column}' (name the column "
                          "with --text-column).")
    return ds


def _check(cfg: RunConfig, task, method, outliers, unlabelled) -> None:
    teacher = cfg.training.teacher
    if unlabelled is not None and teacher is None:
        raise ConfigError("--unlabelled-data needs a teacher to learn from (--teacher MODEL, distillation) or "
                          "--method zeroshot (self-training).")
    asked = [name for name, value in (("--teacher", teacher), ("--outlier-data", outliers)) if value is not None]
    if not asked:
        return
    if not task.soft_targets:
        raise ConfigError(f"{' and '.join(asked)} train single-label text classification (task classification); "
                          f"the {task.name} task is not supported.")
    if method.before_fit is not None:
        raise ConfigError(f"{' and '.join(asked)} add probability targets to the classification loss; method "
                          f"{method.name} trains in its own way first. Use full, lora or another method.")


def _teacher(path: str, task, labels: list[str]):
    """The teacher's predictor, after checking that it predicts what the model learns."""
    from ..artifact import is_artifact, read_manifest
    from ..inference import load

    folder = Path(path).expanduser()
    if not is_artifact(folder):
        raise ConfigError(f"--teacher {path} is not a domainfit model folder (no domainfit.json); train the teacher "
                          "with `domainfit train` first.")
    manifest = read_manifest(folder)
    if manifest.get("task") != task.name:
        raise ConfigError(f"--teacher {path} is a {manifest.get('task')} model; this run trains {task.name}.")
    theirs = list(manifest.get("labels") or [])
    if theirs != labels:
        only_t = sorted(set(theirs) - set(labels))
        only_s = sorted(set(labels) - set(theirs))
        parts = ([f"only the teacher has {', '.join(only_t[:8])}"] if only_t else []) + \
                ([f"only the training data has {', '.join(only_s[:8])}"] if only_s else [])
        raise ConfigError(f"--teacher {path} was trained on other labels than this data's: "
                          f"{'; '.join(parts) or 'same names in another order'}. A teacher must know the same labels.")
    return load(folder), manifest


def _soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits): the same as re-scaling the log-probabilities."""
    if temperature == 1.0:
        return probabilities
    z = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def add_soft_examples(cfg: RunConfig, task, method, tokenizer, labels: list[str], train_ex: list,
                      outlier_rows=None, unlabelled_rows=None) -> tuple[list, dict, dict]:
    """The training examples with the teacher's and the outliers' targets added.

    ``outlier_rows`` / ``unlabelled_rows`` are in-memory rows that replace ``data.outliers``
    / ``data.unlabelled``. Returns the examples, the data sets read (for the manifest's data
    section) and the manifest sections (``distillation``, ``outliers``). Every check runs
    before the teacher reads a text.
    """
    datasets, sections = {}, {}
    teacher_path = cfg.training.teacher
    outliers = outlier_rows if outlier_rows is not None else cfg.data.outliers
    unlabelled = unlabelled_rows if unlabelled_rows is not None else cfg.data.unlabelled
    _check(cfg, task, method, outliers, unlabelled)
    if outliers is not None:
        datasets["outliers"] = _texts(cfg, task, outliers, tokenizer, "The outlier file")
    if unlabelled is not None:
        datasets["unlabelled"] = _texts(cfg, task, unlabelled, tokenizer, "The unlabelled file")
    teacher = _teacher(teacher_path, task, labels) if teacher_path is not None else None
    out = list(train_ex)
    if teacher is not None:
        predictor, manifest = teacher
        extra = datasets["unlabelled"].examples if "unlabelled" in datasets else []
        texts = [e.text for e in out] + [e.text for e in extra]
        say(f"Distillation: the teacher ({escape(manifest['base_model']['name'])}) gives its probabilities for "
            f"{len(texts)} texts...")
        probs = _soften(predictor.scores(texts).numpy().astype(np.float64), cfg.training.teacher_temperature)
        weight = cfg.training.teacher_weight
        index = {name: i for i, name in enumerate(labels)}
        gold = np.array([index.get(str(e.label), -1) for e in out])
        for n, e in enumerate(out):
            target = weight * probs[n]
            if gold[n] >= 0:
                target[gold[n]] += 1.0 - weight
            out[n] = replace(e, soft=(target / target.sum()).tolist())
        out += [replace(e, soft=probs[len(train_ex) + n].tolist()) for n, e in enumerate(extra)]
        agree = float((probs[:len(train_ex)].argmax(1) == gold).mean()) if len(train_ex) else None
        sections["distillation"] = {
            "teacher": str(Path(teacher_path).expanduser().resolve()), "teacher_base_model": manifest["base_model"]["name"],
            "teacher_metrics": manifest.get("metrics", {}), "weight": weight,
            "temperature": cfg.training.teacher_temperature, "labelled_texts": len(train_ex),
            "unlabelled_texts": len(extra),
            "teacher_agrees_with_labels": None if agree is None else round(agree, 6)}
        say(f"Distillation: the teacher agrees with {agree:.1%} of the training labels; the model learns "
            f"{weight:.0%} teacher, {1 - weight:.0%} label{f', and the teacher alone on {len(extra)} unlabelled texts' if extra else ''}.")
    if "outliers" in datasets:
        even = [1.0 / len(labels)] * len(labels)
        found = datasets["outliers"].examples
        out += [replace(e, soft=even) for e in found]
        sections["outliers"] = {"texts": len(found), "target": "even spread over the classes"}
        say(f"Outlier exposure: {len(found)} texts of no class learn an even spread over the {len(labels)} classes.")
    return out, datasets, sections
