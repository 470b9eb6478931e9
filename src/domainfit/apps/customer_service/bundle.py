"""Build the customer-service bundle: intent model, out-of-scope detector with calibrated
thresholds, retrieval index over the FAQ and documents, answer templates — one folder.

Layout::

    BUNDLE/
      bundle.json       what was built, the thresholds, validation figures, the recipe
      answers.json      intent → template and slot defaults
      intent/           a classification artifact (domainfit.train)
      ood/              the out-of-scope detector (safetensors + JSON)
      retrieval/        a retrieval artifact with its index/ (when there is a FAQ or documents)
      rerank/           a copy of the pair model that reorders candidates (optional)
      report/           calibration.json, tradeoff.png (in-scope accuracy vs out-of-scope recall)

The folder is built beside its destination (``.BUNDLE.partial``) and renamed into place at
the end, so a crash never leaves a half-built bundle; running the same build again resumes
it (the intent model's training continues where it stopped).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from ...artifact import build_bundle_manifest
from ...core.errors import ConfigError, DomainfitError, ManifestError
from ...core.io import atomic_file, inside, replace_folder
from ...core.ui import escape, say
from .recipe import Recipe

__all__ = ["train_bundle", "BUNDLE_FILE", "read_bundle"]

BUNDLE_FILE = "bundle.json"
KIND = "customer-service"
FORMAT_VERSION = 1


def read_bundle(path: str | Path) -> dict:
    """The bundle's manifest, checked (its kind, its format, every field's type, and every
    part it names: a plain name of an entry inside the bundle, never a path or a symlink out).

    Raises:
        ManifestError: a missing or bad ``bundle.json``, or a part outside the bundle.
    """
    from ...artifact import read_bundle_manifest

    path = Path(path)
    checked = read_bundle_manifest(path, KIND, FORMAT_VERSION, "domainfit app customer-service train")
    meta = path / BUNDLE_FILE
    _check_parts(path, checked, meta)
    return checked


def _check_parts(path: Path, meta: dict, where: Path) -> None:
    """Every part the bundle reads is inside it: the folders ``bundle.json`` names and the
    fixed ``ood/`` and ``answers.json``."""
    intent, retrieval = meta.get("intent"), meta.get("retrieval")
    if not isinstance(intent, dict) or not isinstance(intent.get("path"), str):
        raise ManifestError(f"{where}: field 'intent.path' must name the intent model's folder.")
    named = [("intent.path", intent["path"])]
    if retrieval is not None:
        if not isinstance(retrieval, dict) or not isinstance(retrieval.get("path"), str):
            raise ManifestError(f"{where}: field 'retrieval.path' must name the retrieval model's folder.")
        named.append(("retrieval.path", retrieval["path"]))
        if retrieval.get("rerank") is not None:
            named.append(("retrieval.rerank", retrieval["rerank"]))
    for field, name in named:
        try:
            inside(path, name)
        except ManifestError as exc:
            raise ManifestError(f"{where}: field '{field}': {exc}") from None
    for name in ("ood", "answers.json"):
        inside(path, name)


def _intent_rows(recipe: Recipe):
    from ...data import ColumnSpec, load_dataset

    ds = load_dataset(recipe.intents.data, task="classification",
                      columns=ColumnSpec(recipe.intents.text_column, recipe.intents.label_column))
    if len({e.label for e in ds.examples if e.label != recipe.intents.oos_label}) < 2:
        raise ConfigError(f"{recipe.intents.data}: an intent model needs at least two intents.")
    return ds


def _oos_rows(recipe: Recipe):
    """The ``oos_data`` file's texts (its text column; any label is not read), or None."""
    from ...data import ColumnSpec, load_dataset

    if recipe.intents.oos_data is None:
        return None
    return load_dataset(recipe.intents.oos_data, task="classification", require_labels=False,
                        columns=ColumnSpec(recipe.intents.text_column, ""))


def _split_with_oos(recipe: Recipe, data, oos_ds, oos_label: str) -> tuple[list, list]:
    """The seeded train/validation split of the intents, and of the ``oos_data`` texts (which
    join both sides labelled ``oos_label``, so calibration sees out-of-scope texts too)."""
    import random
    from dataclasses import replace

    from ...data import train_val_split

    train_ex, val_ex = train_val_split(data.examples, recipe.intents.validation_share, recipe.seed)
    if oos_ds is not None:
        extra = [replace(e, label=oos_label) for e in oos_ds.examples]
        random.Random(recipe.seed).shuffle(extra)
        held = round(recipe.intents.validation_share * len(extra))
        val_ex, train_ex = val_ex + extra[:held], train_ex + extra[held:]
    return train_ex, val_ex


def _retrieval_model(recipe: Recipe, dest: Path) -> Path:
    """The bundle's retriever: a copy of a retrieval artifact, or the base encoder as it comes."""
    from ...artifact import is_artifact, read_manifest
    from ...run import train
    from ...tasks import get_task

    given = Path(recipe.retrieval.model)
    if recipe.retrieval.model != "default" and is_artifact(given):
        if get_task(read_manifest(given)["task"]).model_kind != "embedding":  # it must embed to search
            raise ConfigError(f"retrieval.model {given} is a {read_manifest(given)['task']} model, not a retrieval "
                              "one (train one with --task retrieval, or give a base model).")
        shutil.copytree(given, dest, ignore=shutil.ignore_patterns("index", "checkpoints", "report"))
        return dest
    train(output=str(dest), model=recipe.retrieval.model, task="retrieval", method="zeroshot")
    return dest


def _fit_detectors(predictor, train_texts, train_idx, val_texts, val_gold, oos_index):
    """Fit every detector (the chosen one is stored); validation scores of each."""
    from ...ood import METHODS, OutOfScopeDetector

    feats_train, _ = predictor.features(train_texts)
    feats_val, logits_val = predictor.features(val_texts)
    predicted = logits_val.argmax(1)
    correct = predicted == val_gold
    in_scope = val_gold >= 0  # -1: an out-of-scope text the model has no class for
    if oos_index is not None:
        in_scope &= val_gold != oos_index
    detectors, scores = {}, {}
    classes = train_idx.copy()
    if oos_index is not None:
        classes[classes == oos_index] = -1  # out-of-scope examples are no class to be near
    for method in METHODS:
        det = OutOfScopeDetector.fit(method, feats_train, classes, len(predictor.labels))
        s = det.score(feats_val, logits_val)
        if oos_index is not None:
            s = np.where(predicted == oos_index, np.inf, s)  # the oos class itself says "not in scope"
        detectors[method], scores[method] = det, s
    return detectors, scores, correct & in_scope, in_scope


def _finite(scores: np.ndarray) -> np.ndarray:
    """Infinite scores (predicted as the out-of-scope class) just above the largest finite one."""
    out = np.array(scores, np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = (out[~bad].max() + 1.0) if (~bad).any() else 1.0
    return out


def _plot_tradeoff(curves: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, curve in curves.items():
        ax.plot([p["oos_recall"] for p in curve], [p["in_scope_accuracy"] for p in curve], label=name)
    ax.set_xlabel("out-of-scope recall")
    ax.set_ylabel("in-scope accuracy (unanswered counts as wrong)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _answers_for(answers: dict, known: list[str], file: str | None) -> dict:
    """The answers of the intents the data has. An answer whose intent looks like a misspelt
    intent of the data (one without an answer) is an error; answers for intents the data does
    not have at all (a file written for a larger intent set) are left out with a warning."""
    import difflib

    unknown = sorted(set(answers) - set(known))
    unanswered = [i for i in known if i not in answers]
    misspelt = {name: close[0] for name in unknown
                if (close := difflib.get_close_matches(name, unanswered, n=1, cutoff=0.85))}
    if misspelt:
        shown = ", ".join(f"'{a}' (the data has '{b}')" for a, b in list(misspelt.items())[:10])
        raise ConfigError(f"{file}: answers for intents the data does not have, which look misspelt: {shown}.")
    if unknown:
        say(f"[yellow]warning:[/] {escape(str(file))}: {len(unknown)} answer(s) are for intents the data does not "
            f"have and are left out: {escape(', '.join(unknown[:8]))}{' ...' if len(unknown) > 8 else ''}")
    return {k: v for k, v in answers.items() if k in known}


def train_bundle(recipe: Recipe, output: str | Path, *, overwrite: bool = False) -> Path:
    """Build a bundle from a recipe (see :mod:`.recipe`) into ``output``; returns its path."""
    from ...artifact import is_artifact
    from ...inference import load
    from ...ood import auroc, budgets, calibrate, tradeoff
    from ...run import train
    from ...inference import build_index
    from .answers import read_answers, slot_names
    from .knowledge import read_documents, read_faq

    out = Path(output)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; pass --overwrite to replace it.")
    started = time.perf_counter()
    # Everything that can be wrong with the inputs is found before any training.
    data = _intent_rows(recipe)
    oos_ds = _oos_rows(recipe)
    answers = read_answers(recipe.answers) if recipe.answers else {}
    corpus = []
    if recipe.faq is not None:
        corpus += read_faq(recipe.faq.data, recipe.faq.question_column, recipe.faq.answer_column,
                           recipe.faq.id_column)
    if recipe.docs is not None:
        corpus += read_documents(recipe.docs, recipe.retrieval.max_words)
    # oos_data texts need a label even where the intents file names none (oos_label: null)
    oos_label = recipe.intents.oos_label or "__out_of_scope__"
    intents = sorted({e.label for e in data.examples})
    known = [i for i in intents if i != oos_label]
    exposure = recipe.out_of_scope.exposure
    answers = _answers_for(answers, known, recipe.answers)
    without = [i for i in known if i not in answers]
    if without and answers:
        say(f"[yellow]warning:[/] {len(without)} intent(s) have no answer template and are answered from the "
            f"FAQ/documents or handed off: {escape(', '.join(without[:8]))}{' ...' if len(without) > 8 else ''}")
    if not answers and not corpus:
        raise ConfigError("the assistant has nothing to answer with: give an answers file, a FAQ or documents.")
    used = {name for a in answers.values() for name in slot_names(a.template)}
    unused = sorted(set(recipe.client_slots) - used)
    if unused:
        raise ConfigError(f"client_slots names slots no answer template uses: {', '.join(unused)} "
                          f"(the templates' slots: {', '.join(sorted(used)) or 'none'}).")

    out.parent.mkdir(parents=True, exist_ok=True)
    # The bundle is built in a work folder beside it, named after it and keyed by the recipe
    # and the data: an interrupted build run again with the same inputs resumes the intent
    # model's training (domainfit.train resumes its own run folder) or reuses it when done.
    staging = out.parent / f".{out.name}.partial"
    key = hashlib.sha256((recipe.model_dump_json() + data.fingerprint
                          + (oos_ds.fingerprint if oos_ds is not None else "")).encode()).hexdigest()
    if staging.exists() and (not (staging / "key").is_file() or (staging / "key").read_text() != key):
        shutil.rmtree(staging)
    staging.mkdir(exist_ok=True)
    (staging / "key").write_text(key)
    try:
        train_ex, val_ex = _split_with_oos(recipe, data, oos_ds, oos_label)
        rows = lambda ex: [{"text": e.text, "label": e.label} for e in ex]  # noqa: E731
        out_train = [e for e in train_ex if e.label == oos_label]
        if is_artifact(staging / "intent"):
            say("Intent model: already trained by an earlier, interrupted build; reusing it.")
        else:
            how = (f" + {len(out_train)} out-of-scope texts as " +
                   ("one more class" if exposure == "class" else "outliers (trained to be unsure on)")
                   if out_train else "")
            say(f"Intent model: {len(known)} intents{how}, {len(train_ex)} train / {len(val_ex)} validation texts.")
            settings = {"method.name": recipe.intents.method, "training.seed": recipe.seed, **recipe.intents.settings}
            if exposure == "outlier" and out_train:
                in_scope_rows = lambda ex: rows([e for e in ex if e.label != oos_label])  # noqa: E731
                train(output=str(staging / "intent"), model=recipe.intents.model, data=in_scope_rows(train_ex),
                      validation_data=in_scope_rows(val_ex), outlier_data=[{"text": e.text} for e in out_train],
                      resume="auto", **settings)
            else:
                train(output=str(staging / "intent"), model=recipe.intents.model, data=rows(train_ex),
                      validation_data=rows(val_ex), resume="auto", **settings)
        intent = load(staging / "intent")
        labels = intent.labels
        index = {name: i for i, name in enumerate(labels)}
        oos_index = index.get(oos_label)
        say("Calibrating the out-of-scope thresholds on the validation texts...")
        detectors, scores, correct, in_scope = _fit_detectors(
            intent, [e.text for e in train_ex], np.array([index.get(e.label, -1) for e in train_ex]),
            [e.text for e in val_ex], np.array([index.get(e.label, -1) for e in val_ex]), oos_index)
        chosen = recipe.out_of_scope.method
        rule = recipe.out_of_scope.rule()
        cal = calibrate(scores[chosen], correct, in_scope, **rule)
        options = budgets(_finite(scores[chosen]), correct, in_scope)
        say(f"Out-of-scope trade-off on validation ({chosen}; {int(in_scope.sum())} in-scope"
            f"{f', {int((~in_scope).sum())} out-of-scope' if (~in_scope).any() else ''} texts):")
        for o in options:
            recall = f", out-of-scope recall {o['oos_recall']:.1%}" if o["oos_recall"] is not None else ""
            say(f"  accuracy budget {o['max_accuracy_loss'] * 100:g} pt: hands off {o['fallback_share']:.1%} of "
                f"the texts{recall}")
        say(f"  chosen: {cal.rule} (set out_of_scope.max_accuracy_loss or fallback_rate to change it)")
        detectors[chosen].save(staging / "ood")
        report = staging / "report"
        report.mkdir(exist_ok=True)
        validation = {"texts": len(val_ex), "in_scope": int(in_scope.sum()),
                      "accuracy": float(correct.sum() / max(in_scope.sum(), 1)), "methods": {}}
        curves = {}
        for method, s in scores.items():
            finite = _finite(s)
            entry = calibrate(finite, correct, in_scope, **rule).to_dict()
            if (~in_scope).any() and in_scope.any():
                entry["auroc"] = auroc(finite, in_scope)
            validation["methods"][method] = entry
            curves[method] = tradeoff(finite, correct, in_scope)
        (report / "calibration.json").write_text(json.dumps({"chosen": chosen, "calibration": cal.to_dict(),
                                                             "budgets": options, "validation": validation,
                                                             "curves": curves},
                                                            indent=2) + "\n", encoding="utf-8")
        if (~in_scope).any():
            _plot_tradeoff(curves, report / "tradeoff.png", "Out-of-scope trade-off (validation)")

        retrieval = None
        for leftover in ("retrieval", "rerank"):  # cheap parts are rebuilt
            shutil.rmtree(staging / leftover, ignore_errors=True)
        if corpus:
            say(f"Retrieval: indexing {len(corpus)} FAQ pairs and document passages...")
            _retrieval_model(recipe, staging / "retrieval")
            build_index(staging / "retrieval", corpus)
            retrieval = {"path": "retrieval", "documents": len(corpus),
                         "faq": sum(1 for d in corpus if d["kind"] == "faq"),
                         "passages": sum(1 for d in corpus if d["kind"] == "document"),
                         "min_score": recipe.retrieval.min_score, "candidates": recipe.retrieval.candidates,
                         "rerank": None}
            if recipe.retrieval.rerank:
                shutil.copytree(recipe.retrieval.rerank, staging / "rerank",
                                ignore=shutil.ignore_patterns("checkpoints", "report", "index"))
                retrieval["rerank"] = "rerank"
        (staging / "answers.json").write_text(json.dumps({k: v.to_dict() for k, v in answers.items()}, indent=2,
                                                         ensure_ascii=False) + "\n", encoding="utf-8")
        meta = build_bundle_manifest(KIND, FORMAT_VERSION, {
            "intent": {"path": "intent", "intents": known, "oos_label": oos_label if oos_index is not None else None,
                       "without_answer": without},
            "out_of_scope": {"method": chosen, "threshold": cal.threshold, "calibration": cal.to_dict(),
                             "rule": rule, "budgets": options,
                             "exposure": {"mode": exposure, "train_texts": len(out_train)} if out_train else None},
            "retrieval": retrieval,
            "generation": recipe.generation.model_dump(),
            "fallback": recipe.fallback,
            "client_slots": sorted(recipe.client_slots),
            "recipe": json.loads(recipe.model_dump_json()),
            "data": {"intents": {"source": data.source, "sha256": data.fingerprint, "rows": len(data)},
                     **({"oos": {"source": oos_ds.source, "sha256": oos_ds.fingerprint, "rows": len(oos_ds)}}
                        if oos_ds is not None else {})},
            "seconds": round(time.perf_counter() - started, 1),
        })
        (staging / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (staging / "key").unlink()
        replace_folder(staging, out)
    except DomainfitError:
        shutil.rmtree(staging, ignore_errors=True)  # a mistake in the inputs: nothing worth resuming
        raise
    say(f"[green]Saved[/] {escape(str(out))}: {chosen} out-of-scope threshold {cal.threshold:.4g} "
        f"({cal.rule}; validation: answered {cal.answered_share:.1%}, precision {cal.answered_precision:.3f}).")
    return out
