"""The one place that composes the whole path: config → data → task → method → loop → artifact.

The command line, the Python API and the apps call :func:`train` and :func:`evaluate`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .artifact import is_artifact, write_artifact
from .config import RunConfig, load_config
from .data import ColumnSpec, Dataset, check_eval_labels, check_split_possible, load_dataset, train_val_split
from .data.batching import Encoded
from .data.loading import write_skipped
from .errors import ConfigError, DataError, DomainfitError, Problem
from .methods import get_method
from .methods.registry import trainable_state
from .models import resolve_model, weights_sha256
from .tasks import get_task, pair_variant
from .training.checkpoint import atomic_write_text
from .training.loop import TrainState, count_steps, fit
from .training.memory import release_free_memory
from .ui import escape, say

__all__ = ["train", "evaluate", "TrainResult", "resolve_precision"]


@dataclass
class TrainResult:
    """What :func:`train` returns: the artifact path, its manifest, the final state, the
    metrics on the evaluation (or validation) data, and the trained model itself."""

    path: Path
    manifest: dict
    state: TrainState
    eval_metrics: dict | None
    model: torch.nn.Module | None = None


def resolve_precision(precision: str, device: torch.device) -> bool:
    """True when training should autocast to bf16.

    ``auto`` picks bf16 where the hardware computes it natively: a CUDA GPU that supports
    it, or a CPU with AVX512-BF16 or AMX (measured 2.06× faster training on Banking77 at equal
    accuracy: see docs/training.md); elsewhere bf16 would be emulated and slower, so fp32.
    """
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def _prepare_output(out: Path, signature: str, resume: str, overwrite: bool) -> None:
    """Apply the resume/overwrite policy to the output folder (raises when it must not be used)."""
    if resume not in ("auto", "never"):
        raise ConfigError(f"--resume must be 'auto' or 'never', got {resume!r}.")
    if not out.exists() or not any(out.iterdir()):
        return
    if overwrite:
        shutil.rmtree(out)
        return
    if is_artifact(out):
        raise DomainfitError(f"{out} already holds a trained model. Choose another --output, or pass --overwrite.")
    run_file = out / "run.json"
    if not run_file.is_file():
        raise DomainfitError(f"{out} is not empty and is not a domainfit run. Choose another --output, "
                             "or pass --overwrite to replace its contents.")
    if resume == "never":
        raise DomainfitError(f"{out} holds an unfinished run. Re-run with --resume auto to continue it, "
                             "or --overwrite to start again.")
    previous = json.loads(run_file.read_text(encoding="utf-8")).get("signature")
    if previous != signature:
        raise DomainfitError(f"{out} holds an unfinished run with a different configuration or data. "
                             "Re-run with the same settings to resume, or pass --overwrite to start again.")


def _load_data(cfg: RunConfig, task_name: str, tokenizer, train_data, eval_data, validation_data):
    columns = ColumnSpec(cfg.data.text_column, cfg.data.label_column, cfg.data.text_pair_column)
    common = dict(task=task_name, columns=columns, on_bad_rows=cfg.data.on_bad_rows, tokenizer=tokenizer,
                  max_length=cfg.training.max_length)
    source = train_data if train_data is not None else cfg.data.train
    if source is None:
        raise ConfigError("No training data: pass --data FILE (or data.train in the config); without labelled "
                          "examples, use --method zeroshot --labels FILE.")
    train_ds = load_dataset(source, **common)
    val_source = validation_data if validation_data is not None else cfg.data.validation
    val_ds = load_dataset(val_source, **common) if val_source is not None else None
    eval_source = eval_data if eval_data is not None else cfg.data.eval
    # Evaluation data keeps every row it can: unseen labels are scored as errors, not dropped.
    eval_ds = load_dataset(eval_source, **common) if eval_source is not None else None
    return train_ds, val_ds, eval_ds


def _split(cfg: RunConfig, task, train_ds: Dataset, val_ds: Dataset | None, method):
    if val_ds is not None:
        return train_ds.examples, val_ds.examples
    if not method.needs_validation:
        return list(train_ds.examples), []  # a handful of examples: every one trains
    if task.name == "retrieval":
        return _split_by_positive(train_ds.examples, cfg.data.val_fraction, cfg.training.seed)
    if task.stratify:
        problems = check_split_possible(train_ds.examples, cfg.data.val_fraction, file=train_ds.source,
                                        column=cfg.data.label_column)
        if problems:
            raise DataError(problems, hint="Or give a separate validation file (--validation-data).")
    return train_val_split(train_ds.examples, cfg.data.val_fraction, cfg.training.seed, stratify=task.stratify)


def _split_by_positive(examples, val_fraction: float, seed: int):
    """Hold out whole documents: every query of a held-out positive goes to validation, so
    paraphrases of one question never sit on both sides."""
    import random

    groups: dict[str, list] = {}
    for example in examples:
        groups.setdefault((example.text_pair or "").strip(), []).append(example)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    want = max(1, round(val_fraction * len(examples)))
    val_keys, held = set(), 0
    for key in keys:
        if held >= want or len(val_keys) >= len(keys) - 1:
            break
        val_keys.add(key)
        held += len(groups[key])
    return ([e for e in examples if (e.text_pair or "").strip() not in val_keys],
            [e for e in examples if (e.text_pair or "").strip() in val_keys])


def _signature(cfg: RunConfig, fingerprints: list[str]) -> str:
    body = json.dumps({"config": cfg.to_dict(), "data": fingerprints}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _build_model(cfg: RunConfig, base_path: str, task, labels, train_targets, method, settings,
                 total_steps: int | None = None):
    from .methods.registry import MethodContext
    from .modeling import build_encoder, build_task_model

    torch.manual_seed(cfg.training.seed)
    encoder = build_encoder(base_path, dropout=cfg.training.dropout)
    head_dropout = 0.1 if cfg.training.dropout is None else cfg.training.dropout
    model = build_task_model(task.model_kind, encoder, task.num_outputs(labels), pooling=cfg.training.pooling,
                             head_dropout=head_dropout, normalize=method.normalize)
    if task.affine_output:
        values = torch.tensor([float(t) for t in train_targets])
        model.output_shift.fill_(float(values.mean()))
        model.output_scale.fill_(float(values.std().clamp_min(1e-6)) if len(values) > 1 else 1.0)
    ctx = MethodContext(total_steps=total_steps, model_type=encoder.config.model_type, training=True)
    model = method.apply(model, settings, ctx)
    if cfg.training.freeze_embeddings:
        embeddings = model.encoder.get_input_embeddings()
        embeddings.weight.requires_grad_(False)
    return model


def _encode(tokenizer, task, examples, labels, max_length) -> Encoded:
    return task.encode_examples(tokenizer, examples, labels, max_length)


@dataclass
class _Prepared:
    """Everything checked and loaded before any training starts."""

    cfg: RunConfig
    task: Any
    method: Any
    method_settings: Any
    base: Any
    tokenizer: Any
    datasets: dict[str, Dataset]
    train_ex: list
    val_ex: list
    labels: list[str]
    warnings: list[str]
    signature: str
    auto_choice: Any = None


def _prepare(cfg: RunConfig, train_data, eval_data, validation_data) -> _Prepared:
    """Resolve the model, load and validate the data, split, and collect warnings."""
    from transformers import AutoTokenizer

    if not cfg.output:
        raise ConfigError("No output folder: pass --output DIR.")
    task = get_task(cfg.task)
    if task.needs_pair and not cfg.data.text_pair_column:
        what = "(query, positive document)" if task.name == "retrieval" else "two texts per row"
        raise ConfigError(f"The {task.name} task trains on {what}: name the second column with "
                          "--text-pair-column (data.text_pair_column).")
    auto = cfg.method.name == "auto"
    if not auto:
        method = get_method(cfg.method.name)
        method_settings = method.parse(cfg.method.options)
        _check_task(method, task)
    base = resolve_model(cfg.model)
    if not auto:
        _check_method(method, method_settings, base)
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    cfg.training.max_length = min(cfg.training.max_length, getattr(tokenizer, "model_max_length", 0) or 10**6)
    train_ds, val_ds, eval_ds = _load_data(cfg, task.name, tokenizer, train_data, eval_data, validation_data)
    if task.name == "pair":
        task = get_task("pair", pair_variant([e.label for e in train_ds.examples]))
    extra_warnings = []
    if cfg.data.shots:
        extra_warnings = _take_shots(train_ds, cfg.data.shots, cfg.training.seed, task)
    auto_choice = None
    if auto:
        from .auto import choose_method

        auto_choice = choose_method(cfg, task, train_ds.examples, base)
        say(f"auto: [bold]{auto_choice.method}[/]: {escape(auto_choice.reason)}")
        cfg.method.name = auto_choice.method
        if auto_choice.epochs is not None:
            cfg.training.epochs = auto_choice.epochs
        method = get_method(cfg.method.name)
        method_settings = method.parse(cfg.method.options)
        _check_task(method, task)
        _check_method(method, method_settings, base)
    if cfg.training.label_smoothing is None:
        cfg.training.label_smoothing = method.label_smoothing
    train_ex, val_ex = _split(cfg, task, train_ds, val_ds, method)
    labels = task.label_list([e.label for e in train_ex])
    if task.name in ("classification", "multilabel") and len(labels) < 2:
        reason = "the training data has only one class after the split; at least 2 are needed"
        raise DataError([Problem(train_ds.source, None, cfg.data.label_column, reason)])
    if task.name == "token-classification" and len(labels) < 2:
        reason = "no word of the training data is tagged as an entity (every tag is 'O')"
        raise DataError([Problem(train_ds.source, None, cfg.data.label_column, reason)])
    datasets = {name: d for name, d in (("train", train_ds), ("validation", val_ds), ("eval", eval_ds)) if d}
    warnings = extra_warnings + [w for d in datasets.values() for w in d.warnings]
    if eval_ds is not None and labels:  # scores (regression, pair scores) and retrieval have no label set
        warnings += [str(u) for u in check_eval_labels(labels, eval_ds)]
    signature = _signature(cfg, [d.fingerprint for d in datasets.values()])
    return _Prepared(cfg, task, method, method_settings, base, tokenizer, datasets, train_ex, val_ex, labels,
                     warnings, signature, auto_choice)


def _check_task(method, task) -> None:
    """A method made for some tasks only refuses the others before any work starts."""
    if method.tasks is not None and task.name not in method.tasks:
        raise ConfigError(f"method {method.name} works for the {', '.join(method.tasks)} task(s), not "
                          f"{task.name}; choose another method (e.g. full or lora).")


def _check_method(method, settings, base) -> None:
    """The method's pre-flight check against the base model's config (no weights read)."""
    if method.check is not None:
        from transformers import AutoConfig

        method.check(settings, AutoConfig.from_pretrained(str(base.path)))


def _take_shots(train_ds: Dataset, shots: int, seed: int, task) -> list[str]:
    """Keep ``shots`` examples per class (seeded); say which classes have fewer."""
    from collections import Counter

    from .data import sample_few_shot
    from .data._labels import class_key

    if not task.stratify:
        raise ConfigError(f"data.shots samples examples per class; the {task.name} task has no classes.")
    counts = Counter(class_key(e.label) for e in train_ds.examples)
    short = sorted((n, c) for c, n in counts.items() if n < shots)
    train_ds.examples = sample_few_shot(train_ds.examples, shots, seed)
    if not short:
        return []
    listed = ", ".join(f"{c} ({n})" for n, c in short[:10]) + (" ..." if len(short) > 10 else "")
    return [f"--shots {shots} is more than {len(short)} class(es) have; all of their examples are used: {listed}"]


def _start_output(p: _Prepared, out: Path, resume: str, overwrite: bool, accelerator) -> bool:
    """Apply the output-folder policy on the main process; True when a run resumes."""
    if accelerator.is_main_process:
        _prepare_output(out, p.signature, resume, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "run.json", json.dumps({"signature": p.signature, "status": "running"}))
        skipped = [s for d in p.datasets.values() for s in d.skipped]
        if skipped:
            write_skipped(skipped, out / "skipped_rows.csv")
        for w in p.warnings:
            say(f"[yellow]warning:[/] {escape(w)}")
    accelerator.wait_for_everyone()
    return (out / "checkpoints").exists()


def train(config: RunConfig | str | Path | None = None, *, overrides: list[str] | None = None, train_data: Any = None,
          eval_data: Any = None, validation_data: Any = None, resume: str = "auto", overwrite: bool = False,
          callbacks: list[Callable] | None = None, **settings: Any) -> TrainResult:
    """Train a model and write its artifact folder.

    Args:
        config: a :class:`RunConfig`, or a YAML path (``overrides`` and ``settings`` apply on top).
        overrides: dotted ``key=value`` strings.
        train_data / eval_data / validation_data: in-memory data (DataFrame or list of dicts)
            instead of the files named in the config.
        resume: ``"auto"`` continues an unfinished run in the output folder; ``"never"`` refuses to.
        overwrite: replace whatever the output folder holds.
        callbacks: ``cb(event, state, info)`` called at the start, on every step and evaluation.
        **settings: top-level or dotted settings, e.g. ``output="m"``, ``**{"training.epochs": 3}``.

    Returns:
        A :class:`TrainResult`.

    Raises:
        DomainfitError: bad configuration, data or output folder (before any training).

    Example:
        >>> train(output="my-model", **{"data.train": "train.csv", "training.epochs": 3})  # doctest: +SKIP
    """
    from accelerate import Accelerator

    if isinstance(config, RunConfig):
        cfg = load_config(None, overrides, **{**_flatten(config.to_dict()), **settings})
    else:
        cfg = load_config(config, overrides, **settings)
    if cfg.method.name == "zeroshot" or (cfg.method.name == "auto" and train_data is None and cfg.data.train is None
                                         and cfg.data.labels is not None):
        if cfg.method.name == "auto":
            say("auto: [bold]zeroshot[/]: no training data, a label file")
            cfg.method.name = "zeroshot"
        from .zeroshot import train_zeroshot

        return train_zeroshot(cfg, eval_data=eval_data, resume=resume, overwrite=overwrite, callbacks=callbacks)
    p = _prepare(cfg, train_data, eval_data, validation_data)
    out = Path(cfg.output)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    resuming = _start_output(p, out, resume, overwrite, accelerator)

    lr = cfg.training.learning_rate or p.method.learning_rate * p.task.learning_rate_factor
    bf16 = resolve_precision(cfg.training.precision, accelerator.device)
    extra = len(p.labels) if p.method.before_fit is not None else 0  # room for examples the hook may add
    total_steps = count_steps(len(p.train_ex) + extra, cfg.training)
    model = _build_model(cfg, str(p.base.path), p.task, p.labels, [e.label for e in p.train_ex], p.method,
                         p.method_settings, total_steps)
    given = len(p.train_ex)
    if p.task.name == "retrieval" and cfg.data.hard_negatives:
        from .retrieval import mine_hard_negatives

        say(f"Mining {cfg.data.hard_negatives} hard negative(s) per query with the untuned model...")
        mine_hard_negatives(model, p.tokenizer, p.train_ex, cfg.data.hard_negatives, cfg.training.max_length)
    if p.method.before_fit is not None:
        from .methods.registry import FitContext

        p.train_ex = list(p.train_ex)
        p.method.before_fit(FitContext(model, p.method_settings, p.task, p.labels, p.train_ex, p.tokenizer,
                                       cfg.training.max_length, p.tokenizer.pad_token_id, bf16, lr,
                                       cfg.training.seed, resuming))
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    total = sum(t.numel() for t in model.parameters())
    say(f"{'Resuming' if resuming else 'Training'} [bold]{cfg.task}[/] with method [bold]{p.method.name}[/] on "
        f"{p.base.name}: {len(p.train_ex)} train / {len(p.val_ex)} validation examples, {len(p.labels) or 1} "
        f"outputs, {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%), "
        f"{'bf16' if bf16 else 'fp32'}, {accelerator.num_processes} process(es).")
    started = time.perf_counter()
    max_len = cfg.training.max_length
    state = fit(model, p.task, _encode(p.tokenizer, p.task, p.train_ex, p.labels, max_len),
                _encode(p.tokenizer, p.task, p.val_ex, p.labels, max_len), cfg.training, lr=lr,
                pad_id=p.tokenizer.pad_token_id, bf16=bf16, run_dir=out, accelerator=accelerator,
                resume=resuming, callbacks=callbacks, step_hooks=_step_hooks(p.method, p.method_settings))
    manifest = {
        "task": p.task.name, "task_variant": p.task.variant, "labels": p.labels,
        "base_model": {"name": p.base.name, "weights_sha256": weights_sha256(p.base.weights_file)},
        "method": {"name": p.method.name, "options": cfg.method.options, "trainable_parameters": trainable,
                   "total_parameters": total, "trainable_share": round(trainable / total, 6), "learning_rate": lr},
        "model": {"kind": p.task.model_kind, "num_outputs": p.task.num_outputs(p.labels),
                  "pooling": cfg.training.pooling, "max_length": max_len, "normalize": p.method.normalize},
        "config": cfg.to_dict(),
        "training": {"steps": state.global_step, "best_step": state.best_step,
                     f"best_val_{p.task.primary_metric}": state.best_score, "stopped_early": state.stopped_early,
                     "precision": "bf16" if bf16 else "fp32", "processes": accelerator.num_processes,
                     "seconds_this_session": round(time.perf_counter() - started, 1), "history": state.history},
        "data": {name: {"source": d.source, "sha256": d.fingerprint, "rows": len(d), "skipped": len(d.skipped)}
                 for name, d in p.datasets.items()},
        "split": {"train_rows": given, "added_by_method": len(p.train_ex) - given, "validation_rows": len(p.val_ex),
                  "validation_from": "file" if "validation" in p.datasets
                  else f"train ({cfg.data.val_fraction:.0%}, seeded)" if p.val_ex
                  else "none: every example trains, no early stopping"},
        "warnings": p.warnings,
    }
    if cfg.data.shots:
        manifest["split"]["shots"] = cfg.data.shots
    if p.task.name == "token-classification":
        from .data.tokens import word_split_mode

        manifest["model"]["word_split"] = word_split_mode(p.train_ex)
    if p.auto_choice is not None:
        manifest["method"]["auto"] = {"chose": p.auto_choice.method, "reason": p.auto_choice.reason}
    metrics = _finish(p, model, manifest, out) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    return TrainResult(out, manifest, state, metrics, model)


def _step_hooks(method, settings) -> list:
    if method.on_step is None:
        return []
    return [lambda model, step: method.on_step(model, settings, step)]


def _finish(p: _Prepared, model, manifest: dict, out: Path) -> dict:
    """Score the evaluation (or validation) data, write the artifact, drop checkpoints."""
    eval_ds = p.datasets.get("eval")
    examples = eval_ds.examples if eval_ds is not None else p.val_ex
    name = "eval" if eval_ds is not None else "validation"
    release_free_memory()  # the optimizer is gone: hand its memory back before scoring and saving
    model.eval()
    scored = _score(model, p.tokenizer, p.task, p.labels, examples, p.cfg.training.max_length) if examples else None
    manifest["metrics"] = {name: _headline(scored[0])} if scored else {}

    def report(folder: Path) -> None:
        from .export import write_parity_sample

        _write_report(folder, p.task, examples, p.labels, scored, f"Evaluation on {name} data")
        write_parity_sample(folder.parent, examples)  # held-out inputs for an export's parity check
    state_dict = model.state_dict() if p.method.saves_base else trainable_state(model)
    write_artifact(out, model=model, tokenizer=p.tokenizer, manifest=manifest, state=state_dict,
                   saves_base=p.method.saves_base, report_writer=report if scored else None)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / "run.json").unlink(missing_ok=True)
    return scored[0] if scored else None


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in d.items():
        if isinstance(value, dict) and key in ("data", "training", "method") and not prefix:
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _score(model, tokenizer, task, labels, examples, max_len):
    """Predictions and metrics for labelled examples (in the user's terms)."""
    if task.name == "retrieval":
        from .retrieval import score_pairs

        return score_pairs(model, tokenizer, examples, max_len)
    preds, scores = task.predict_examples(model, tokenizer, examples, labels, max_len)
    targets = [e.label for e in examples]
    probs = scores.numpy() if task.report_as in (None, "classification") and task.name in (
        "classification", "multilabel", "pair") else None
    metrics = task.metrics(targets, preds, probs, labels)
    return metrics, preds, scores


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or k == "primary_metric"}


def _write_report(folder: Path, task, examples, labels, scored, title):
    from .evaluation import write_report

    metrics, preds, scores = scored
    kind = task.report_as or task.name
    y_true = [e.label for e in examples]
    if kind == "multilabel":
        y_pred: list = [p["labels"] for p in preds]
    elif kind == "token-classification":
        y_pred = [p["tags"] for p in preds]
    elif kind == "retrieval":
        y_true, y_pred = [sorted(p["relevant"]) for p in preds], [p["ranking"] for p in preds]
    else:
        y_pred = [p["label"] for p in preds]
    probs = scores.numpy() if kind == "classification" else None
    return write_report(folder, task=kind, metrics=metrics, texts=[e.text for e in examples], y_true=y_true,
                        y_pred=y_pred, probs=probs, labels=labels if kind == "classification" or kind == "multilabel"
                        else None, title=title)


def evaluate(model_path: str | Path, data: Any, *, text_column: str | None = None, label_column: str | None = None,
             text_pair_column: str | None = None, report: bool = True, on_bad_rows: str = "error",
             rerank: str | Path | None = None, candidates: int = 20) -> dict:
    """Evaluate an artifact on labelled data; writes ``report/`` into the artifact.

    Args:
        model_path: the artifact folder.
        data: a file path, DataFrame or list of dicts.
        text_column / label_column / text_pair_column: default to the ones used in training.
        report: also write ``report/`` (metrics.json, report.md, plots).
        rerank: retrieval only: a pair model that reorders the top ``candidates``.

    Returns:
        The metrics dict (keys per task, e.g. ``accuracy`` and ``macro_f1``; ``precision``,
        ``recall``, ``f1`` for token classification; ``recall@1``, ``mrr@10``... for
        retrieval). Retrieval data pairs each query with its relevant document: with an
        index in the artifact, corpus ids (several as ``a|b``) or exact document texts;
        without one, document texts (the corpus is then the distinct documents of the data).
    """
    from .inference import Predictor

    predictor = Predictor(model_path)
    trained = predictor.manifest.get("config", {}).get("data", {})
    columns = ColumnSpec(text_column or trained.get("text_column", "text"),
                         label_column or trained.get("label_column", "label"),
                         text_pair_column or trained.get("text_pair_column"))
    ds = load_dataset(data, task=predictor.task.name, columns=columns, on_bad_rows=on_bad_rows,
                      tokenizer=predictor.tokenizer, max_length=predictor.max_length)
    unseen = check_eval_labels(predictor.labels, ds) if predictor.labels else []
    for w in ds.warnings + [str(u) for u in unseen]:
        say(f"[yellow]warning:[/] {escape(w)}")
    if rerank is not None and predictor.task.name != "retrieval":
        raise ConfigError("--rerank reorders a retrieval model's results; this is a "
                          f"{predictor.task.name} model.")
    if predictor.task.name == "retrieval":
        from .retrieval import score_pairs

        reranker = Predictor(rerank) if rerank is not None else None
        scored = score_pairs(predictor.model, predictor.tokenizer, ds.examples, predictor.max_length,
                             index=predictor.index, reranker=reranker, candidates=candidates)
    else:
        scored = _score(predictor.model, predictor.tokenizer, predictor.task, predictor.labels, ds.examples,
                        predictor.max_length)
    if report:
        _write_report(Path(model_path) / "report", predictor.task, ds.examples, predictor.labels, scored,
                      f"Evaluation on {ds.source}")
    return scored[0]
