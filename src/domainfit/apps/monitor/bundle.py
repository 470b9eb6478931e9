"""Build the monitoring bundle: sentiment model (and its int8 ONNX copy), entity linker,
optional topic model, calibrated probabilities, default alert rules — one folder.

Layout::

    BUNDLE/
      bundle.json        what was built: parts, label mapping, temperature, dedup settings, figures
      sentiment/         a classification artifact (domainfit.train)
      sentiment-int8/    its int8 ONNX export, which scores the stream (when export.int8)
      topics/            a topic classifier (optional)
      entities.json      the entity linker (names, aliases, tickers; JSON, no pickle)
      rules.yaml         the alert rules and sinks used when ingest is given no rules file
      report/            calibration.json

Built beside its destination (``.BUNDLE.partial``) and renamed into place at the end, so a
crash never leaves a half-built bundle; running the same build again resumes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from ...artifact import build_bundle_manifest
from ...core.errors import ConfigError, DomainfitError, ManifestError
from ...core.io import inside, replace_folder
from ...core.ui import escape, say
from .recipe import SENTIMENTS, Recipe

__all__ = ["train_bundle", "read_bundle", "BUNDLE_FILE", "fit_temperature", "calibrated"]

BUNDLE_FILE = "bundle.json"
KIND = "monitor"
FORMAT_VERSION = 1


def read_bundle(path: str | Path) -> dict:
    """The bundle's manifest, checked (kind, format, fields, and every part inside the bundle).

    Raises:
        ManifestError: a missing or bad ``bundle.json``, or a part outside the bundle.
    """
    from ...artifact import read_bundle_manifest

    path = Path(path)
    checked = read_bundle_manifest(path, KIND, FORMAT_VERSION, "domainfit app monitor train")
    meta = path / BUNDLE_FILE
    for field in ("sentiment", "scorer", "topics", "entities", "rules"):
        name = checked.get(field)
        if isinstance(name, dict):
            name = name.get("path")
        if name is None and field in ("topics",):
            continue
        if not isinstance(name, str):
            raise ManifestError(f"{meta}: field '{field}' must name a part of the bundle.")
        try:
            inside(path, name)
        except ManifestError as exc:
            raise ManifestError(f"{meta}: field '{field}': {exc}") from None
    return checked


def calibrated(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with temperature ``T`` applied: ``softmax(log p / T)``."""
    if temperature == 1.0:
        return proba
    z = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``gold`` (class indices)
    under :func:`calibrated` probabilities (Guo et al., 2017), searched over 0.25–10 (a
    validation set the model gets all right would otherwise push it to the bound and make
    every probability 0 or 1)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = calibrated(proba, float(np.exp(log_t)))
        return float(-np.log(np.clip(p[np.arange(len(gold)), gold], 1e-12, 1.0)).mean())

    found = minimize_scalar(nll, bounds=(np.log(0.25), np.log(10.0)), method="bounded")
    return float(np.exp(found.x))


def _sentiment_rows(recipe: Recipe):
    from ...data import ColumnSpec, load_dataset

    s = recipe.sentiment
    ds = load_dataset(s.data, task="classification", columns=ColumnSpec(s.text_column, s.label_column),
                      on_bad_rows=s.on_bad_rows)
    present = {e.label for e in ds.examples}
    missing = [f"{k} ({v})" for k, v in s.labels.items() if v not in present]
    if missing:
        raise ConfigError(f"{s.data}: no rows labelled {', '.join(missing)}; sentiment.labels maps positive, negative "
                          f"and neutral to the data's labels (it has {', '.join(sorted(present)[:10])}).")
    others = sorted(present - set(s.labels.values()))
    if others:
        raise ConfigError(f"{s.data}: labels {', '.join(others[:10])} are not one of the three sentiments; map them "
                          "in sentiment.labels or leave those rows out.")
    return ds


def _calibrate(predictor, val_ex, mapping: dict[str, str]) -> dict:
    from ...evaluation.calibration import expected_calibration_error

    index = {name: i for i, name in enumerate(predictor.labels)}
    gold = np.array([index[e.label] for e in val_ex])
    proba = predictor.predict_proba([e.text for e in val_ex]).astype(np.float64)
    t = fit_temperature(proba, gold)
    after = calibrated(proba, t)
    return {"temperature": t, "validation_texts": len(val_ex),
            "accuracy": float((proba.argmax(1) == gold).mean()),
            "ece_before": expected_calibration_error(proba.max(1), proba.argmax(1) == gold),
            "ece_after": expected_calibration_error(after.max(1), after.argmax(1) == gold),
            "labels": {k: v for k, v in mapping.items()}}


def _export_int8(recipe: Recipe, staging: Path, val_rows: list[dict]) -> dict | None:
    """The int8 ONNX copy the stream is scored with, or None when it disagrees with the model
    more than ``export.min_agreement`` allows (the torch model scores then)."""
    from ...export import export_model

    dest = staging / "sentiment-int8"
    shutil.rmtree(dest, ignore_errors=True)
    try:
        return export_model(staging / "sentiment", dest, quantize="int8", data=val_rows,
                            min_agreement=recipe.export.min_agreement)
    except DomainfitError as exc:
        say(f"[yellow]warning:[/] the int8 copy is not used: {escape(str(exc))}")
        shutil.rmtree(dest, ignore_errors=True)
        return None


def train_bundle(recipe: Recipe, output: str | Path, *, overwrite: bool = False) -> Path:
    """Build a monitoring bundle from a recipe into ``output``; returns its path."""
    from ...artifact import is_artifact
    from ...data import train_val_split
    from ...inference import load
    from ...run import train
    from .alerts import DEFAULT_RULES, load_rules
    from .entities import EntityLinker, read_entities

    out = Path(output)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; pass --overwrite to replace it.")
    started = time.perf_counter()
    # Everything that can be wrong with the inputs is found before any training.
    data = _sentiment_rows(recipe)
    entities = read_entities(recipe.entities)
    rules = load_rules(recipe.rules, DEFAULT_RULES)
    topics_ds = None
    if recipe.topics is not None:
        from ...data import ColumnSpec, load_dataset

        topics_ds = load_dataset(recipe.topics.data, task="classification",
                                 columns=ColumnSpec(recipe.topics.text_column, recipe.topics.label_column))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial"
    key = hashlib.sha256((recipe.model_dump_json() + data.fingerprint
                          + (topics_ds.fingerprint if topics_ds is not None else "")).encode()).hexdigest()
    if staging.exists() and (not (staging / "key").is_file() or (staging / "key").read_text() != key):
        shutil.rmtree(staging)
    staging.mkdir(exist_ok=True)
    (staging / "key").write_text(key)
    try:
        s = recipe.sentiment
        train_ex, val_ex = train_val_split(data.examples, s.validation_share, recipe.seed)
        rows = lambda ex: [{"text": e.text, "label": e.label} for e in ex]  # noqa: E731
        if is_artifact(staging / "sentiment"):
            say("Sentiment model: already trained by an earlier, interrupted build; reusing it.")
        else:
            say(f"Sentiment model: {len(train_ex)} train / {len(val_ex)} validation sentences.")
            train(output=str(staging / "sentiment"), model=s.model, data=rows(train_ex), validation_data=rows(val_ex),
                  resume="auto", **{"method.name": s.method, "training.seed": recipe.seed, **s.settings})
        predictor = load(staging / "sentiment")
        say("Calibrating the sentiment probabilities on the validation sentences...")
        calibration = _calibrate(predictor, val_ex, s.labels)
        scorer, export = "sentiment", None
        if recipe.export.int8:
            say("Exporting the int8 ONNX copy that scores the stream...")
            export = _export_int8(recipe, staging, rows(val_ex))
            if export is not None:
                scorer = "sentiment-int8"
                export["source"] = "sentiment"  # the part it was made from (not the build's work folder)
        topics = None
        if topics_ds is not None:
            t = recipe.topics
            if not is_artifact(staging / "topics"):
                say(f"Topic model: {len(topics_ds)} texts.")
                t_train, t_val = train_val_split(topics_ds.examples, 0.1, recipe.seed)
                train(output=str(staging / "topics"), model=t.model, data=rows(t_train), validation_data=rows(t_val),
                      resume="auto", **{"method.name": t.method, "training.seed": recipe.seed, **t.settings})
            topics = {"path": "topics", "labels": load(staging / "topics").labels}
        (staging / "entities.json").write_text(
            json.dumps(EntityLinker(entities, fuzzy=recipe.linker.fuzzy).to_dict(), indent=1, ensure_ascii=False)
            + "\n", encoding="utf-8")
        (staging / "rules.yaml").write_text(
            "# The rules and sinks `domainfit app monitor ingest` uses when it is given no --rules file.\n"
            + yaml.safe_dump(json.loads(rules.model_dump_json(exclude_defaults=False)), sort_keys=False,
                             allow_unicode=True), encoding="utf-8")
        report = staging / "report"
        report.mkdir(exist_ok=True)
        (report / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
        meta = build_bundle_manifest(KIND, FORMAT_VERSION, {
            "sentiment": {"path": "sentiment", "labels": s.labels, "temperature": calibration["temperature"],
                          "validation_accuracy": calibration["accuracy"]},
            "scorer": {"path": scorer, "export": export},
            "topics": topics,
            "entities": {"path": "entities.json", "count": len(entities)},
            "rules": {"path": "rules.yaml", "count": len(rules.rules)},
            "dedup": recipe.dedup.model_dump(),
            "recipe": json.loads(recipe.model_dump_json()),
            "data": {"sentiment": {"source": data.source, "sha256": data.fingerprint, "rows": len(data)}},
            "seconds": round(time.perf_counter() - started, 1),
        })
        (staging / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (staging / "key").unlink()
        replace_folder(staging, out)
    except DomainfitError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"[green]Saved[/] {escape(str(out))}: sentiment validation accuracy {calibration['accuracy']:.3f} "
        f"(temperature {calibration['temperature']:.2f}), {len(entities)} entities, {len(rules.rules)} alert rules; "
        f"the stream is scored by {scorer}.")
    return out


def mapping_of(meta: dict) -> dict[str, str]:
    """positive/negative/neutral → the sentiment model's label (from the bundle manifest)."""
    labels = meta["sentiment"]["labels"]
    return {k: labels[k] for k in SENTIMENTS if k in labels}
