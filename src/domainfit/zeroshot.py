"""Training without labelled data: the ``zeroshot`` method's path through the pipeline.

``pipeline.train`` hands over here when the method is ``zeroshot`` (or ``auto`` is given a
label file and no training data). See :mod:`domainfit.methods.zeroshot` for the method.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from .config import RunConfig
from .errors import ConfigError
from .ui import escape, say

__all__ = ["train_zeroshot"]


LABELS_HINT = "Give the labels with --labels FILE (CSV with a 'label' column and an optional 'description' column)."


def train_zeroshot(cfg: RunConfig, *, eval_data=None, resume: str = "auto", overwrite: bool = False,
                   callbacks=None):
    """Build a zero-shot model from ``cfg.data.labels`` (and self-train on ``cfg.data.unlabelled``)."""
    from transformers import AutoTokenizer

    from .data import ColumnSpec, check_eval_labels, load_dataset
    from .labels import read_label_file
    from .methods import get_method
    from .methods.zeroshot import set_label_head
    from .modeling import DomainModel, build_encoder
    from .models import resolve_model, weights_sha256
    from .pipeline import (TrainResult, _check_method, _finish, _Prepared, _prepare_output, _signature,
                           resolve_precision)
    from .tasks import get_task
    from .training.loop import TrainState

    task = get_task(cfg.task)
    if task.name not in ("classification", "multilabel", "retrieval"):
        raise ConfigError(f"zeroshot works for classification, multilabel and retrieval, not {task.name}.")
    if not cfg.output:
        raise ConfigError("No output folder: pass --output DIR.")
    if task.name == "retrieval":
        return _untuned_retrieval(cfg, task, eval_data, overwrite)
    if cfg.data.labels is None:
        raise ConfigError("zeroshot needs the list of labels. " + LABELS_HINT)
    if cfg.data.train is not None:
        raise ConfigError("zeroshot trains on no labelled data; drop --data, or use --method fewshot "
                          "(a few labelled examples) or auto.")
    method = get_method("zeroshot")
    settings = method.parse(cfg.method.options)
    specs = read_label_file(cfg.data.labels)
    if settings.backend == "lm":
        from .methods.zeroshot.lm import train_lm_zeroshot

        return train_lm_zeroshot(cfg, settings, specs, eval_data=eval_data, overwrite=overwrite)
    if cfg.data.unlabelled is not None and task.name != "classification":
        raise ConfigError("zeroshot self-training (--unlabelled-data) works for single-label classification only.")
    base = resolve_model(cfg.model)
    _check_method(method, settings, base)
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    cfg.training.max_length = min(cfg.training.max_length, getattr(tokenizer, "model_max_length", 0) or 10**6)
    columns = ColumnSpec(cfg.data.text_column, cfg.data.label_column, cfg.data.text_pair_column)
    labels = [s.name for s in specs]
    eval_source = eval_data if eval_data is not None else cfg.data.eval
    eval_ds = None
    if eval_source is not None:
        eval_ds = load_dataset(eval_source, task=task.name, columns=columns, on_bad_rows=cfg.data.on_bad_rows,
                               tokenizer=tokenizer, max_length=cfg.training.max_length)
    unlabelled = None
    if cfg.data.unlabelled is not None:
        unlabelled = load_dataset(cfg.data.unlabelled, task=task.name, columns=columns, require_labels=False,
                                  on_bad_rows=cfg.data.on_bad_rows, tokenizer=tokenizer,
                                  max_length=cfg.training.max_length)
    warnings = []
    if eval_ds is not None:
        warnings += eval_ds.warnings + [str(u) for u in check_eval_labels(labels, eval_ds)]
    for w in warnings:
        say(f"[yellow]warning:[/] {escape(w)}")

    started = time.perf_counter()
    bf16 = resolve_precision(cfg.training.precision, torch.device("cpu"))
    model = DomainModel(build_encoder(str(base.path)), len(labels), pooling=cfg.training.pooling, normalize=True)
    model = method.apply(model, settings)
    say(f"Zero-shot [bold]{task.name}[/] over {len(labels)} labels "
        f"({sum(1 for s in specs if s.description)} with descriptions) on {base.name}.")
    set_label_head(model, tokenizer, specs, settings, cfg.training.max_length, bf16, task.name == "multilabel")
    if unlabelled is not None:
        return _self_train(cfg, settings, model, tokenizer, specs, unlabelled, eval_data, resume, overwrite,
                           callbacks, bf16, started)

    out = Path(cfg.output)
    datasets = {"eval": eval_ds} if eval_ds is not None else {}
    signature = _signature(cfg, [d.fingerprint for d in datasets.values()])
    _prepare_output(out, signature, "never", overwrite)

    total = sum(t.numel() for t in model.parameters())
    trainable = sum(t.numel() for t in model.head.parameters())
    manifest = {
        "task": task.name, "labels": labels,
        "base_model": {"name": base.name, "weights_sha256": weights_sha256(base.weights_file)},
        "method": {"name": "zeroshot", "options": cfg.method.options, "trainable_parameters": trainable,
                   "total_parameters": total, "backend": "embedding",
                   "label_descriptions": {s.name: s.description for s in specs if s.description}},
        "model": {"num_outputs": len(labels), "pooling": cfg.training.pooling, "max_length": cfg.training.max_length,
                  "normalize": True},
        "config": cfg.to_dict(),
        "training": {"steps": 0, "precision": "bf16" if bf16 else "fp32", "processes": 1,
                     "seconds_this_session": round(time.perf_counter() - started, 1), "history": []},
        "data": {"labels": {"source": str(cfg.data.labels), "rows": len(labels)},
                 **({"eval": {"source": eval_ds.source, "sha256": eval_ds.fingerprint, "rows": len(eval_ds),
                              "skipped": len(eval_ds.skipped)}} if eval_ds is not None else {})},
        "warnings": warnings,
    }
    p = _Prepared(cfg, task, method, settings, base, tokenizer, datasets, [], [], labels, warnings, signature)
    metrics = _finish(p, model, manifest, out)
    return TrainResult(out, manifest, TrainState(), metrics, model)


def _untuned_retrieval(cfg: RunConfig, task, eval_data, overwrite: bool):
    """Zero-shot retrieval: the base encoder as it comes, as a bi-encoder artifact (mean
    pooling, normalised vectors); nothing is trained or stored but the reference to the
    base model. ``domainfit index`` then embeds a corpus with it."""
    from transformers import AutoTokenizer

    from .data import ColumnSpec, load_dataset
    from .methods import get_method
    from .modeling import EmbeddingModel, build_encoder
    from .models import resolve_model, weights_sha256
    from .pipeline import TrainResult, _finish, _Prepared, _prepare_output, _signature
    from .training.loop import TrainState

    if cfg.data.train is not None or cfg.data.labels is not None or cfg.data.unlabelled is not None:
        raise ConfigError("zeroshot retrieval uses the encoder as it comes: drop --data/--labels/--unlabelled-data "
                          "(train with --method full or lora on (query, positive) pairs to fine-tune it).")
    method = get_method("zeroshot")
    settings = method.parse(cfg.method.options)
    base = resolve_model(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    cfg.training.max_length = min(cfg.training.max_length, getattr(tokenizer, "model_max_length", 0) or 10**6)
    eval_ds = None
    source = eval_data if eval_data is not None else cfg.data.eval
    if source is not None:
        eval_ds = load_dataset(source, task=task.name, columns=ColumnSpec(cfg.data.text_column, cfg.data.label_column,
                                                                         cfg.data.text_pair_column),
                               on_bad_rows=cfg.data.on_bad_rows, tokenizer=tokenizer,
                               max_length=cfg.training.max_length)
    started = time.perf_counter()
    model = method.apply(EmbeddingModel(build_encoder(str(base.path)), pooling=cfg.training.pooling), settings)
    say(f"Zero-shot [bold]retrieval[/] with {base.name} as it comes (no training).")
    out = Path(cfg.output)
    datasets = {"eval": eval_ds} if eval_ds is not None else {}
    signature = _signature(cfg, [d.fingerprint for d in datasets.values()])
    _prepare_output(out, signature, "never", overwrite)
    total = sum(t.numel() for t in model.parameters())
    manifest = {
        "task": task.name, "task_variant": task.variant, "labels": [],
        "base_model": {"name": base.name, "weights_sha256": weights_sha256(base.weights_file)},
        "method": {"name": "zeroshot", "options": cfg.method.options, "trainable_parameters": 0,
                   "total_parameters": total, "backend": "embedding"},
        "model": {"kind": task.model_kind, "num_outputs": task.num_outputs([]), "pooling": cfg.training.pooling,
                  "max_length": cfg.training.max_length, "normalize": True},
        "config": cfg.to_dict(),
        "training": {"steps": 0, "precision": "fp32", "processes": 1,
                     "seconds_this_session": round(time.perf_counter() - started, 1), "history": []},
        "data": {"eval": {"source": eval_ds.source, "sha256": eval_ds.fingerprint, "rows": len(eval_ds),
                          "skipped": len(eval_ds.skipped)}} if eval_ds is not None else {},
        "warnings": eval_ds.warnings if eval_ds is not None else [],
    }
    p = _Prepared(cfg, task, method, settings, base, tokenizer, datasets, [], [], [], manifest["warnings"], signature)
    metrics = _finish(p, model, manifest, out)
    return TrainResult(out, manifest, TrainState(), metrics, model)


def _self_train(cfg, settings, model, tokenizer, specs, unlabelled, eval_data, resume, overwrite, callbacks, bf16,
                started):
    """Pseudo-label the unlabelled texts, then fit a fewshot model on the confident ones."""
    from .artifact import MANIFEST
    from .data.batching import encode_texts
    from .methods.zeroshot import label_sentences, select_pseudo_labels
    from .pipeline import train
    from .training.checkpoint import atomic_write_text
    from .training.loop import predict_logits

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
    result = train(inner, train_data=rows, eval_data=eval_data, resume=resume, overwrite=overwrite,
                   callbacks=callbacks)
    manifest = result.manifest
    manifest["method"] = {**manifest["method"], "name": "zeroshot", "options": cfg.method.options,
                          "backend": "embedding", "fine_tuned_with": "fewshot",
                          "label_descriptions": {s.name: s.description for s in specs if s.description},
                          "self_training": {"unlabelled": str(cfg.data.unlabelled), "texts": len(texts),
                                            "pseudo_labelled": len(chosen), "per_label": dict(
                                                zip([s.name for s in specs], counts))}}
    manifest["config"] = cfg.to_dict()
    manifest["data"]["labels"] = {"source": str(cfg.data.labels), "rows": len(specs)}
    manifest["data"]["unlabelled"] = {"source": unlabelled.source, "sha256": unlabelled.fingerprint,
                                      "rows": len(unlabelled)}
    manifest["training"]["seconds_this_session"] = round(time.perf_counter() - started, 1)
    body = json.loads((result.path / MANIFEST).read_text(encoding="utf-8"))
    body.update({k: manifest[k] for k in ("method", "config", "data", "training")})
    atomic_write_text(result.path / MANIFEST, json.dumps(body, indent=2, default=str) + "\n")
    return result
