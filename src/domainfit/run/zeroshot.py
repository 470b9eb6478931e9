"""Models without labelled data: every flow of the ``zeroshot`` method, in one place.

:func:`domainfit.run.train` hands over here when the method is ``zeroshot`` (or ``auto`` is
given a label file and no training data). By what the task predicts and the method's
``backend`` setting:

* **label prototypes** (embedding backend, classification and multi-label): the head of an
  ordinary model is set from the label names and descriptions (see
  :func:`domainfit.methods.zeroshot.set_label_head`); nothing is trained;
* **self-training** (``data.unlabelled``, single-label): that model labels the unlabelled
  texts, and the confident ones (plus the label sentences) train a ``fewshot`` model through
  the ordinary supervised flow; its manifest records the zero-shot method;
* **the encoder as it comes** (tasks whose model is an embedding model: retrieval);
* **the LM backend** (``backend: lm``, single-label): a small generative model scores each
  label as the answer (:class:`domainfit.modeling.lm.LabelScorer`); nothing is stored but the
  labels, the prompt settings and the tokenizer.

Every flow writes its artifact through :func:`domainfit.artifact.write_artifact` with a
manifest from :func:`domainfit.artifact.build_manifest`.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from ..artifact import build_manifest, write_artifact
from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.ui import escape, say
from ..data import ColumnSpec, check_eval_labels, load_dataset
from ..data.labels import read_label_file
from ..methods import get_method
from ..modeling import card_facts, resolve_model, weights_sha256
from ..tasks import get_task
from ..training import TrainState, resolve_precision
from .evaluate import headline, write_task_report
from .output import check_output, signature
from .supervised import Prepared, TrainResult, check_method, check_task, fit_and_write, prepare, write_model
from .tracking import log_result, tracked, tracking_section

__all__ = ["train_zeroshot", "LABELS_HINT"]

LABELS_HINT = "Give the labels with --labels FILE (CSV with a 'label' column and an optional 'description' column)."


def train_zeroshot(cfg: RunConfig, *, eval_data=None, resume: str = "auto", overwrite: bool = False,
                   callbacks=None) -> TrainResult:
    """Build a zero-shot model for ``cfg`` (see the module docstring for the flows)."""
    task = get_task(cfg.task)
    method = get_method("zeroshot")
    check_task(method, task)
    if not cfg.output:
        raise ConfigError("No output folder: pass --output DIR.")
    settings = method.parse(cfg.method.options)
    if task.model_kind == "embedding":  # no label set: the encoder itself is the model
        return _untuned_encoder(cfg, task, method, settings, eval_data, overwrite)
    if cfg.data.labels is None:
        raise ConfigError("zeroshot needs the list of labels. " + LABELS_HINT)
    if cfg.data.train is not None:
        raise ConfigError("zeroshot trains on no labelled data; drop --data, or use --method fewshot "
                          "(a few labelled examples) or auto.")
    specs = read_label_file(cfg.data.labels)
    if settings.backend == "lm":
        return _label_scorer(cfg, task, settings, specs, eval_data, overwrite)
    if cfg.data.unlabelled is not None and task.multi_label:
        raise ConfigError("zeroshot self-training (--unlabelled-data) works for single-label classification only.")
    return _label_prototypes(cfg, task, method, settings, specs, eval_data, resume, overwrite, callbacks)


def _tokenizer(cfg: RunConfig, base):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    cfg.training.max_length = min(cfg.training.max_length, getattr(tokenizer, "model_max_length", 0) or 10**6)
    return tokenizer


def _load(cfg: RunConfig, task, source, tokenizer=None, **options):
    columns = ColumnSpec(cfg.data.text_column, cfg.data.label_column, cfg.data.text_pair_column)
    if tokenizer is not None:
        options.update(tokenizer=tokenizer, max_length=cfg.training.max_length)
    return load_dataset(source, task=task.name, columns=columns, on_bad_rows=cfg.data.on_bad_rows, **options)


def _eval_set(cfg: RunConfig, task, eval_data, tokenizer=None):
    source = eval_data if eval_data is not None else cfg.data.eval
    return _load(cfg, task, source, tokenizer) if source is not None else None


def _prepared(cfg, task, method, settings, base, tokenizer, eval_ds, labels, warnings, overwrite) -> Prepared:
    """A run with nothing to train: only an evaluation set, scored when the model is written."""
    datasets = {"eval": eval_ds} if eval_ds is not None else {}
    sig = signature(cfg, [d.fingerprint for d in datasets.values()])
    check_output(Path(cfg.output), sig, "never", overwrite)
    return Prepared(cfg, task, method, settings, base, tokenizer, datasets, [], [], labels, warnings, sig)


def _untrained(method_section: dict, started: float, precision: str) -> dict:
    """The manifest sections of a model that was built, not trained."""
    return {"method": method_section,
            "training": {"steps": 0, "precision": precision, "processes": 1,
                         "seconds_this_session": round(time.perf_counter() - started, 1), "history": []}}


def _label_prototypes(cfg, task, method, settings, specs, eval_data, resume, overwrite, callbacks) -> TrainResult:
    from ..methods.zeroshot import set_label_head
    from ..artifact import load_encoder
    from ..modeling import DomainModel

    base = resolve_model(cfg.model)
    check_method(method, settings, base)
    tokenizer = _tokenizer(cfg, base)
    labels = [s.name for s in specs]
    eval_ds = _eval_set(cfg, task, eval_data, tokenizer)
    unlabelled = None
    if cfg.data.unlabelled is not None:
        unlabelled = _load(cfg, task, cfg.data.unlabelled, tokenizer, require_labels=False)
    warnings = []
    if eval_ds is not None:
        warnings += eval_ds.warnings + [str(u) for u in check_eval_labels(labels, eval_ds)]
    for w in warnings:
        say(f"[yellow]warning:[/] {escape(w)}")

    started = time.perf_counter()
    bf16 = resolve_precision(cfg.training.precision, torch.device("cpu"))
    model = DomainModel(load_encoder(base.path), len(labels), pooling=cfg.training.pooling, normalize=True)
    model = method.apply(model, settings)
    say(f"Zero-shot [bold]{task.name}[/] over {len(labels)} labels "
        f"({sum(1 for s in specs if s.description)} with descriptions) on {base.name}.")
    set_label_head(model, tokenizer, specs, settings, cfg.training.max_length, bf16, task.multi_label)
    described = {"label_descriptions": {s.name: s.description for s in specs if s.description}}
    if unlabelled is not None:
        return _self_train(cfg, settings, model, tokenizer, specs, unlabelled, eval_data, resume, overwrite,
                           callbacks, bf16, started, described)
    p = _prepared(cfg, task, method, settings, base, tokenizer, eval_ds, labels, warnings, overwrite)
    sections = _untrained({
        "name": "zeroshot", "options": cfg.method.options,
        "trainable_parameters": sum(t.numel() for t in model.head.parameters()),
        "total_parameters": sum(t.numel() for t in model.parameters()), "backend": "embedding", **described},
        started, "bf16" if bf16 else "fp32")
    with tracked(cfg, Path(cfg.output), trained=False) as tracker:
        manifest, metrics = write_model(p, model, sections, {"data": _labels_source(cfg, specs)}, tracker=tracker)
    return TrainResult(Path(cfg.output), manifest, TrainState(), metrics, model, tokenizer)


def _labels_source(cfg: RunConfig, specs) -> dict:
    return {"labels": {"source": str(cfg.data.labels), "rows": len(specs)}}


def _untuned_encoder(cfg, task, method, settings, eval_data, overwrite) -> TrainResult:
    """The base encoder as it comes, as an embedding artifact (mean pooling, normalised
    vectors); nothing is trained or stored but the reference to the base model. For
    retrieval, ``domainfit index`` then embeds a corpus with it."""
    from ..artifact import load_encoder
    from ..modeling import build_task_model

    if cfg.data.train is not None or cfg.data.labels is not None or cfg.data.unlabelled is not None:
        raise ConfigError(f"zeroshot {task.name} uses the encoder as it comes: drop --data/--labels/--unlabelled-data "
                          f"(train with --method full or lora on {task.pair_description} to fine-tune it).")
    base = resolve_model(cfg.model)
    tokenizer = _tokenizer(cfg, base)
    eval_ds = _eval_set(cfg, task, eval_data, tokenizer)
    started = time.perf_counter()
    model = method.apply(build_task_model(task.model_kind, load_encoder(base.path), task.num_outputs([]),
                                          pooling=cfg.training.pooling), settings)
    say(f"Zero-shot [bold]{task.name}[/] with {base.name} as it comes (no training).")
    p = _prepared(cfg, task, method, settings, base, tokenizer, eval_ds, [], eval_ds.warnings if eval_ds else [],
                  overwrite)
    sections = _untrained({
        "name": "zeroshot", "options": cfg.method.options, "trainable_parameters": 0,
        "total_parameters": sum(t.numel() for t in model.parameters()), "backend": "embedding"}, started, "fp32")
    with tracked(cfg, Path(cfg.output), trained=False) as tracker:
        manifest, metrics = write_model(p, model, sections, tracker=tracker)
    return TrainResult(Path(cfg.output), manifest, TrainState(), metrics, model, tokenizer)


def _self_train(cfg, settings, model, tokenizer, specs, unlabelled, eval_data, resume, overwrite, callbacks, bf16,
                started, described) -> TrainResult:
    """Pseudo-label the unlabelled texts, then fit a fewshot model on the confident ones."""
    from ..data.batching import encode_texts
    from ..methods.zeroshot import label_sentences, select_pseudo_labels
    from ..modeling import predict_logits

    texts = [e.text for e in unlabelled.examples]
    if not texts:
        raise ConfigError(f"{unlabelled.source} holds no texts to self-train on.")
    encoded = encode_texts(tokenizer, texts, None, cfg.training.max_length)
    probabilities = predict_logits(model, encoded, tokenizer.pad_token_id, bf16=bf16).softmax(-1)
    chosen = select_pseudo_labels(probabilities, settings)
    counts = [0] * len(specs)
    for _, c, _ in chosen:
        counts[c] += 1
    say(f"Self-training: {len(chosen)} of {len(texts)} unlabelled texts pseudo-labelled "
        f"(confidence ≥ {settings.confidence}, at most {settings.per_class} per label; "
        f"{sum(1 for n in counts if n == 0)} label(s) got none).")
    rows = [{"text": texts[i], "label": specs[c].name} for i, c, _ in chosen]
    # The label sentences are training examples too: every label has at least those.
    for spec, sentences in zip(specs, label_sentences(specs, settings)):
        rows += [{"text": s, "label": spec.name} for s in dict.fromkeys(sentences)]
    inner = copy.deepcopy(cfg)
    inner.method.name, inner.method.options = "fewshot", {"label_names": False}
    inner.data.labels = inner.data.unlabelled = inner.data.shots = None
    p = prepare(inner, rows, eval_data)
    # The artifact is a zero-shot model fine-tuned with fewshot: its manifest says so and holds
    # the user's config; the run itself (and its resumption) is the fewshot run's.
    changes = {"method": {"name": "zeroshot", "options": cfg.method.options, "backend": "embedding",
                          "fine_tuned_with": "fewshot", **described,
                          "self_training": {"unlabelled": str(cfg.data.unlabelled), "texts": len(texts),
                                            "pseudo_labelled": len(chosen),
                                            "per_label": dict(zip([s.name for s in specs], counts))}},
               "config": cfg.to_dict(),
               "data": {**_labels_source(cfg, specs),
                        "unlabelled": {"source": unlabelled.source, "sha256": unlabelled.fingerprint,
                                       "rows": len(unlabelled)}}}
    return fit_and_write(p, resume=resume, overwrite=overwrite, callbacks=callbacks, manifest_changes=changes,
                         started=started)


def _label_scorer(cfg, task, settings, specs, eval_data, overwrite) -> TrainResult:
    """Write an LM-backend artifact (nothing is trained)."""
    from ..data.labels import humanize
    from ..methods.zeroshot import lm_instruction
    from ..modeling.lm import LabelScorer, load_causal_lm

    if not task.text_classes or task.multi_label:
        raise ConfigError("The zeroshot LM backend picks one label per text: it works for classification only.")
    if cfg.data.unlabelled is not None:
        raise ConfigError("Self-training (--unlabelled-data) works with the embedding backend only.")
    started = time.perf_counter()
    path, lm, tokenizer = load_causal_lm(settings.lm_model)
    labels = [s.name for s in specs]
    scorer = LabelScorer(lm, tokenizer, [humanize(n) for n in labels], lm_instruction(settings, specs),
                         cfg.training.max_length, calibrate=settings.calibrate)
    eval_ds = _eval_set(cfg, task, eval_data)
    if eval_ds is not None:
        for w in eval_ds.warnings + [str(u) for u in check_eval_labels(labels, eval_ds)]:
            say(f"[yellow]warning:[/] {escape(w)}")
    out = Path(cfg.output)
    check_output(out, signature(cfg, [eval_ds.fingerprint] if eval_ds else []), "never", overwrite)
    scored = None
    if eval_ds is not None:
        scored = task.score(scorer, tokenizer, eval_ds.examples, labels, cfg.training.max_length)
    weights = Path(path) / "model.safetensors"
    data = {"labels": {"source": str(cfg.data.labels), "rows": len(labels)}}
    if eval_ds is not None:
        data["eval"] = {"source": eval_ds.source, "sha256": eval_ds.fingerprint, "rows": len(eval_ds)}
    manifest = build_manifest(
        task=task.name, labels=labels,
        base_model={"name": settings.lm_model, "weights_sha256": weights_sha256(weights) if weights.is_file() else None,
                    **card_facts(path)},
        method={"name": "zeroshot", "backend": "lm", "options": cfg.method.options, "trainable_parameters": 0,
                "total_parameters": sum(p.numel() for p in lm.parameters()),
                "label_descriptions": {s.name: s.description for s in specs if s.description}},
        model={"kind": "lm-label-scorer", "num_outputs": len(labels), "max_length": cfg.training.max_length},
        config=cfg.to_dict(), data=data, weights=None,
        training={"steps": 0, "precision": "fp32", "processes": 1, "history": [],
                  "seconds_this_session": round(time.perf_counter() - started, 1)},
        metrics={"eval": headline(scored.metrics)} if scored else {})

    def report(staging: Path) -> None:
        if scored is not None:
            write_task_report(staging / "report", task, eval_ds.examples, labels, scored,
                              f"Evaluation on {eval_ds.source}", eval_ds.source)

    with tracked(cfg, out, trained=False) as tracker:
        manifest = {**manifest, **tracking_section(tracker)}
        write_artifact(out, manifest, tokenizer=tokenizer, fill=report)
        log_result(tracker, out, scored.metrics if scored else None, 0)
    return TrainResult(out, manifest, TrainState(), scored.metrics if scored else None, scorer, tokenizer)
