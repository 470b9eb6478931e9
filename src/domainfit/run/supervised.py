"""Supervised training: data → task → method → loop → artifact, in one readable flow.

:func:`prepare` checks everything that can be checked before any training;
:func:`fit_and_write` runs the loop, and :func:`write_model` writes the artifact (also for
the zero-shot flows, which build a model without the loop).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..artifact import build_manifest, read_manifest, write_artifact, write_parity_sample
from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.ui import escape, say
from ..data import ColumnSpec, Dataset, check_eval_labels, load_dataset, write_skipped
from ..methods import get_method
from ..methods.registry import trainable_state
from ..modeling import resolve_model, weights_sha256
from ..tasks import get_task
from ..training import TrainState, count_steps, fit, resolve_precision
from ..training.memory import release_free_memory
from ..training.tracking import Tracker, check_tracking
from .evaluate import headline, write_task_report
from .output import check_output, clear_run_files, mark_running, signature
from .tracking import log_result, tracked, tracking_section

__all__ = ["TrainResult", "Prepared", "prepare", "fit_and_write", "write_model", "check_method", "check_task"]


@dataclass(repr=False)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        path: the artifact folder. manifest: its ``domainfit.json``.
        state: the loop's final state (steps, best validation score, history).
        eval_metrics: metrics on the evaluation data (or the validation split), or None.
        model: the trained model, in memory. predictor: a ready :class:`Predictor` of the
            artifact (built on first use from ``model``).
    """

    path: Path
    manifest: dict
    state: TrainState
    eval_metrics: dict | None
    model: torch.nn.Module | None = None
    tokenizer: Any = field(default=None, repr=False)

    def __repr__(self) -> str:
        m = self.eval_metrics or {}
        key = m.get("primary_metric")
        shown = f", {key}={m[key]:.4g}" if key and isinstance(m.get(key), (int, float)) else ""
        return (f"TrainResult({str(self.path)!r}, task={self.manifest.get('task')!r}, "
                f"method={self.manifest.get('method', {}).get('name')!r}, labels={len(self.manifest.get('labels') or [])}"
                f"{shown})")

    @functools.cached_property
    def predictor(self):
        """The trained model as a :class:`~domainfit.inference.Predictor` (``predict``,
        ``predict_proba``...), without reading it back from disk."""
        from ..inference import Predictor

        return Predictor(self.path, self.manifest, model=self.model, tokenizer=self.tokenizer)


@dataclass
class Prepared:
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
    sections: dict = field(default_factory=dict)  # manifest sections of the data's extras (distillation, outliers)
    kept_layers: list[int] | None = None  # training.layers: the base encoder's layers the model keeps


def _load_data(cfg: RunConfig, task, tokenizer, train_data, eval_data, validation_data):
    columns = ColumnSpec(cfg.data.text_column, cfg.data.label_column, cfg.data.text_pair_column)
    common = dict(task=task.name, columns=columns, on_bad_rows=cfg.data.on_bad_rows, tokenizer=tokenizer,
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


def _split(cfg: RunConfig, task, train_ds: Dataset, val_ds: Dataset | None, method) -> tuple[list, list]:
    if val_ds is not None:
        return train_ds.examples, val_ds.examples
    if not method.needs_validation:
        return list(train_ds.examples), []  # a handful of examples: every one trains
    return task.split(train_ds.examples, cfg.data.val_fraction, cfg.training.seed, source=train_ds.source,
                      column=cfg.data.label_column)


def prepare(cfg: RunConfig, train_data=None, eval_data=None, validation_data=None, outlier_data=None,
            unlabelled_data=None) -> Prepared:
    """Resolve the model, load and validate the data, choose the method (``auto``), split,
    and collect warnings: everything that can fail fails here, before any training.

    ``outlier_data`` / ``unlabelled_data`` are in-memory rows in place of ``data.outliers`` /
    ``data.unlabelled`` (see :mod:`.distill`)."""
    from transformers import AutoTokenizer

    if not cfg.output:
        raise ConfigError("No output folder: pass --output DIR.")
    check_tracking(cfg.training.tracking)
    task = get_task(cfg.task)
    if task.needs_pair and not cfg.data.text_pair_column:
        raise ConfigError(f"The {task.name} task trains on {task.pair_description}: name the second column with "
                          "--text-pair-column (data.text_pair_column).")
    auto = cfg.method.name == "auto"
    if not auto:
        method = get_method(cfg.method.name)
        method_settings = method.parse(cfg.method.options)
        check_task(method, task)
    base = resolve_model(cfg.model)
    if not auto:
        check_method(method, method_settings, base)
    kept_layers = _check_layers(cfg.training, base)
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    cfg.training.max_length = min(cfg.training.max_length, getattr(tokenizer, "model_max_length", 0) or 10**6)
    train_ds, val_ds, eval_ds = _load_data(cfg, task, tokenizer, train_data, eval_data, validation_data)
    task = task.for_targets([e.label for e in train_ds.examples])
    task = task.for_tokenizer(tokenizer, cfg.training.case_markers)
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
        check_task(method, task)
        check_method(method, method_settings, base)
    if cfg.training.label_smoothing is None:
        cfg.training.label_smoothing = method.label_smoothing
    train_ex, val_ex = _split(cfg, task, train_ds, val_ds, method)
    cfg.training.ensemble = _ensemble(cfg, task, auto, method, val_ex)
    labels = task.label_list([e.label for e in train_ex])
    task.check_label_set(labels, train_ds.source, cfg.data.label_column)
    from .distill import add_soft_examples

    train_ex, extra_data, sections = add_soft_examples(cfg, task, method, tokenizer, labels, train_ex,
                                                       outlier_data, unlabelled_data)
    if cfg.training.init_from:
        sections["parent"] = _parent(cfg, task, method, base)
    added = len(labels) if method.before_fit is not None else 0  # e.g. fewshot's label-name examples
    batch = method.batch_size_for(len(train_ex) + added, cfg.training.batch_size, cfg.training.grad_accumulation)
    if batch != cfg.training.batch_size:
        say(f"{method.name}: {len(train_ex) + added} training examples, so batches of {batch} instead of "
            f"{cfg.training.batch_size} (at least {method.min_batches_per_epoch} optimizer steps per pass).")
        cfg.training.batch_size = batch
    datasets = {name: d for name, d in (("train", train_ds), ("validation", val_ds), ("eval", eval_ds)) if d}
    datasets.update(extra_data)
    warnings = extra_warnings + [w for d in datasets.values() for w in d.warnings]
    if eval_ds is not None and labels:  # scores (regression, pair scores) and retrieval have no label set
        warnings += [str(u) for u in check_eval_labels(labels, eval_ds)]
    sig = signature(cfg, [d.fingerprint for d in datasets.values()])
    return Prepared(cfg, task, method, method_settings, base, tokenizer, datasets, train_ex, val_ex, labels,
                    warnings, sig, auto_choice, sections, kept_layers)


def _parent(cfg: RunConfig, task, method, base) -> dict:
    """The model a warm start begins from (``training.init_from``), checked before any work:
    a domainfit model of the same task, base model and method, with its weights."""
    from ..artifact import is_artifact, read_manifest

    folder = Path(cfg.training.init_from)
    if not is_artifact(folder):
        raise ConfigError(f"training.init_from {folder} is not a domainfit model folder (no domainfit.json).")
    manifest = read_manifest(folder)
    problems = []
    if manifest.get("task") != task.name:
        problems.append(f"it is a {manifest.get('task')} model and this run trains {task.name}")
    if manifest.get("backend", "torch") != "torch" or not manifest.get("weights"):
        problems.append("it holds no trainable weights (an exported or zero-shot model); start from the model it "
                        "was exported from")
    if manifest["method"]["name"] != method.name:
        problems.append(f"it was trained with method {manifest['method']['name']}, this run uses {method.name} "
                        f"(pass --method {manifest['method']['name']})")
    if manifest["base_model"]["name"] != base.name:
        problems.append(f"its base model is {manifest['base_model']['name']}, this run's is {base.name}")
    if problems:
        raise ConfigError(f"cannot start from {folder}: " + "; ".join(problems) + ".")
    return {"path": str(folder.resolve()), "created_at": manifest.get("created_at"),
            "labels": manifest.get("labels", []), "metrics": manifest.get("metrics", {}),
            "weights_sha256": (manifest.get("files") or {}).get(manifest["weights"])}


def _warm_start(model, parent: dict, labels: list[str]) -> None:
    """Load the parent's weights into the new model: every tensor whose name and shape match;
    where the label set changed, a head tensor (outside the encoder) of the parent's label
    count is copied row by row for the labels both know (new labels keep their fresh
    initialisation)."""
    from safetensors.torch import load_file

    from ..artifact import read_manifest

    folder = Path(parent["path"])
    state = load_file(str(folder / read_manifest(folder)["weights"]))
    own = model.state_dict()
    old = parent["labels"]
    rows = {name: i for i, name in enumerate(old)}
    shared = [(j, rows[name]) for j, name in enumerate(labels) if name in rows]
    loaded = 0
    with torch.no_grad():
        for key, value in state.items():
            target = own.get(key)
            if target is None:
                continue
            per_label = not key.startswith("encoder.") and value.dim() >= 1 and value.shape[0] == len(old) \
                and target.shape[0] == len(labels) and value.shape[1:] == target.shape[1:]
            if old and old != labels and per_label:
                for j, i in shared:
                    target[j] = value[i]
            elif target.shape == value.shape:
                target.copy_(value)
            else:
                raise ConfigError(f"cannot start from {folder}: its {key} has shape {tuple(value.shape)}, this model's "
                                  f"{tuple(target.shape)}.")
            loaded += 1
    model.load_state_dict(own)
    new = [name for name in labels if name not in rows]
    say(f"Warm start from {escape(str(folder))}: {loaded} weight tensors"
        + (f"; new label(s) {escape(', '.join(new[:10]))} start fresh" if new else "") + ".")


def _check_layers(training, base) -> list[int] | None:
    """``training.freeze_layers`` leaves at least one layer to train, and ``training.layers``
    keeps fewer layers than the base model has; returns the indices of the kept layers (None:
    all of them)."""
    from transformers import AutoConfig

    from ..modeling import spread_layers

    if not (training.freeze_layers or training.layers):
        return None
    count = getattr(AutoConfig.from_pretrained(str(base.path)), "num_hidden_layers", None)
    if count is None:
        return None  # the layer list is looked for (and its absence reported) when the model is built
    if training.layers and training.layers >= count:
        raise ConfigError(f"training.layers is {training.layers}; this encoder has {count} layers: keep fewer "
                          "(0 keeps them all).")
    if training.freeze_layers >= count:  # below training.layers is the configuration's own check
        raise ConfigError(f"training.freeze_layers is {training.freeze_layers}; this encoder has {count} layers (at "
                          f"most {count - 1} can be fixed, one must train).")
    return spread_layers(count, training.layers) if training.layers else None


def _ensemble(cfg: RunConfig, task, auto: bool, method, val_ex: list) -> str:
    """``training.ensemble`` resolved: ``none``, ``ngram`` or ``auto`` (see the setting's help);
    a companion asked for where it cannot work stops here, before any training."""
    asked = cfg.training.ensemble
    mode = asked or ("auto" if auto else "none")
    if mode == "none":
        return mode
    if not task.ngram_companion:
        if asked is None:
            return "none"
        raise ConfigError(f"--ensemble {asked} blends an n-gram model into single-label text classification "
                          f"(task classification); the {task.name} task is not supported.")
    if not val_ex:
        if asked == "ngram":
            raise ConfigError(f"--ensemble ngram chooses the blend's weight on validation data, and this run has "
                              f"none (method {method.name} trains on every example); pass --validation-data or "
                              "leave --ensemble out.")
        return "none"
    return mode


def check_task(method, task) -> None:
    """A method made for some tasks only refuses the others before any work starts."""
    # A method declares the tasks it is made for by name (Method.tasks): the one place where
    # a task's name is compared, because the declaration is the method's, not the task's.
    if method.tasks is not None and task.name not in method.tasks:
        listed = ", ".join(method.tasks[:-1]) + " and " + method.tasks[-1] if len(method.tasks) > 1 else method.tasks[0]
        raise ConfigError(f"method {method.name} works for the {listed} task(s), not {task.name}; choose another "
                          "method (e.g. full or lora).")


def check_method(method, settings, base) -> None:
    """The method's pre-flight check against the base model's config (no weights read)."""
    if method.check is not None:
        from transformers import AutoConfig

        method.check(settings, AutoConfig.from_pretrained(str(base.path)))


def _take_shots(train_ds: Dataset, shots: int, seed: int, task) -> list[str]:
    """Keep ``shots`` examples per class (seeded); say which classes have fewer."""
    from collections import Counter

    from ..data import class_key, sample_few_shot

    if not task.stratify:
        raise ConfigError(f"data.shots samples examples per class; the {task.name} task has no classes.")
    counts = Counter(class_key(e.label) for e in train_ds.examples)
    short = sorted((n, c) for c, n in counts.items() if n < shots)
    train_ds.examples = sample_few_shot(train_ds.examples, shots, seed)
    if not short:
        return []
    listed = ", ".join(f"{c} ({n})" for n, c in short[:10]) + (" ..." if len(short) > 10 else "")
    return [f"--shots {shots} is more than {len(short)} class(es) have; all of their examples are used: {listed}"]


def _build_model(p: Prepared, total_steps: int | None):
    from ..methods.registry import MethodContext
    from ..artifact import load_encoder
    from ..modeling import build_task_model

    cfg, task, method = p.cfg, p.task, p.method
    torch.manual_seed(cfg.training.seed)
    encoder = load_encoder(p.base.path, dropout=cfg.training.dropout)
    if p.kept_layers is not None:
        from ..modeling import keep_layers

        keep_layers(encoder, p.kept_layers)
    head_dropout = 0.1 if cfg.training.dropout is None else cfg.training.dropout
    model = build_task_model(task.model_kind, encoder, task.num_outputs(p.labels), pooling=cfg.training.pooling,
                             head_dropout=head_dropout, normalize=method.normalize)
    if task.affine_output:
        values = torch.tensor([float(e.label) for e in p.train_ex])
        model.output_shift.fill_(float(values.mean()))
        model.output_scale.fill_(float(values.std().clamp_min(1e-6)) if len(values) > 1 else 1.0)
    ctx = MethodContext(total_steps=total_steps, model_type=encoder.config.model_type, training=True)
    model = method.apply(model, p.method_settings, ctx)
    if "parent" in p.sections:
        _warm_start(model, p.sections["parent"], p.labels)
    if cfg.training.freeze_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if cfg.training.freeze_layers:
        from ..modeling import freeze_lower_layers

        freeze_lower_layers(getattr(model.encoder, "get_base_model", lambda: model.encoder)(), cfg.training.freeze_layers)
    return model


def _start_output(p: Prepared, out: Path, resume: str, overwrite: bool, accelerator) -> bool:
    """Apply the output-folder policy on the main process; True when a run resumes."""
    if accelerator.is_main_process:
        check_output(out, p.signature, resume, overwrite)
        mark_running(out, p.signature)
        skipped = [s for d in p.datasets.values() for s in d.skipped]
        if skipped:
            write_skipped(skipped, out / "skipped_rows.csv")
        for w in p.warnings:
            say(f"[yellow]warning:[/] {escape(w)}")
    accelerator.wait_for_everyone()
    return (out / "checkpoints").exists()


def fit_and_write(p: Prepared, *, resume: str = "auto", overwrite: bool = False,
                  callbacks: list[Callable] | None = None, manifest_changes: dict | None = None,
                  started: float | None = None) -> TrainResult:
    """Run the supervised loop for a prepared run and write its artifact.

    ``manifest_changes`` update manifest sections (see :func:`write_model`): zero-shot
    self-training records itself as the method it is, not as the fewshot run it uses.
    ``started`` (``time.perf_counter()``) is when the run began, if before this call.
    """
    from accelerate import Accelerator

    cfg = p.cfg
    out = Path(cfg.output)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    resuming = _start_output(p, out, resume, overwrite, accelerator)
    lr = cfg.training.learning_rate or p.method.learning_rate * p.task.learning_rate_factor
    bf16 = resolve_precision(cfg.training.precision, accelerator.device)
    extra = len(p.labels) if p.method.before_fit is not None else 0  # room for examples the hook may add
    model = _build_model(p, count_steps(len(p.train_ex) + extra, cfg.training))
    given = len(p.train_ex)
    labelled = sum(1 for e in p.train_ex if e.label is not None)  # not the unlabelled or outlier texts
    p.task.prepare_training(model, p.tokenizer, p.train_ex, hard_negatives=cfg.data.hard_negatives,
                            max_length=cfg.training.max_length)
    if p.method.before_fit is not None:
        from ..methods.registry import FitContext

        p.train_ex = list(p.train_ex)
        p.method.before_fit(FitContext(model, p.method_settings, p.task, p.labels, p.train_ex, p.tokenizer,
                                       cfg.training.max_length, p.tokenizer.pad_token_id, bf16, lr,
                                       cfg.training.seed, resuming))
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    total = sum(t.numel() for t in model.parameters())
    say(f"{'Resuming' if resuming else 'Training'} [bold]{cfg.task}[/] with method [bold]{p.method.name}[/] on "
        f"{p.base.name}: {len(p.train_ex)} train / {len(p.val_ex)} validation examples, "
        f"{p.task.what_is_trained(p.labels)}, {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%), "
        f"{'bf16' if bf16 else 'fp32'}, {accelerator.num_processes} process(es).")
    started = time.perf_counter() if started is None else started
    with tracked(cfg, out, resume=resuming, main=accelerator.is_main_process) as tracker:
        max_len = cfg.training.max_length
        hooks = [] if p.method.on_step is None else [lambda m, step: p.method.on_step(m, p.method_settings, step)]
        state = fit(model, p.task, p.task.encode_examples(p.tokenizer, p.train_ex, p.labels, max_len),
                    p.task.encode_examples(p.tokenizer, p.val_ex, p.labels, max_len), cfg.training, lr=lr,
                    pad_id=p.tokenizer.pad_token_id, bf16=bf16, run_dir=out, accelerator=accelerator,
                    resume=resuming, callbacks=callbacks, step_hooks=hooks, tracker=tracker)
        sections = {
            "method": {"name": p.method.name, "options": cfg.method.options, "trainable_parameters": trainable,
                       "total_parameters": total, "trainable_share": round(trainable / total, 6), "learning_rate": lr},
            "training": {"steps": state.global_step, "best_step": state.best_step,
                         f"best_val_{p.task.primary_metric}": state.best_score, "stopped_early": state.stopped_early,
                         "precision": "bf16" if bf16 else "fp32", "processes": accelerator.num_processes,
                         "seconds_this_session": round(time.perf_counter() - started, 1), "history": state.history},
            "split": {"train_rows": labelled, "added_by_method": len(p.train_ex) - given,
                      "validation_rows": len(p.val_ex), "validation_from": "file" if "validation" in p.datasets
                      else f"train ({cfg.data.val_fraction:.0%}, seeded)" if p.val_ex
                      else "none: every example trains, no early stopping"},
        }
        if cfg.data.shots:
            sections["split"]["shots"] = cfg.data.shots
        sections.update(p.sections)
        blended = None
        if cfg.training.ensemble in ("ngram", "auto") and accelerator.is_main_process:
            blended, record = fit_companion(p, model)
            sections["companion" if blended is not None else "ensemble"] = record
        if p.auto_choice is not None:
            sections["method"]["auto"] = {"chose": p.auto_choice.method, "reason": p.auto_choice.reason}
        written = (write_model(p, model, sections, manifest_changes, blended=blended, tracker=tracker)
                   if accelerator.is_main_process else (None, None))
        manifest, metrics = written
    accelerator.wait_for_everyone()
    if manifest is None:  # another process of a distributed run: the main one wrote the artifact
        manifest = read_manifest(out)
    return TrainResult(out, manifest, state, metrics, model, p.tokenizer)


def fit_companion(p: Prepared, model) -> tuple[Any, dict]:
    """Fit the n-gram companion on the training texts and choose its blend weight (and its
    regularisation) on the validation texts; returns the blended model, or None where
    ``ensemble: auto`` finds that the blend does not beat the encoder alone, and what was
    measured (the manifest's ``companion`` or ``ensemble`` section)."""
    import numpy as np

    from ..modeling.ngram import C_GRID, Blended, NgramCompanion, blend_weight

    started = time.perf_counter()
    say("Fitting the n-gram companion and choosing its weight on the validation data...")
    index = {label: i for i, label in enumerate(p.labels)}
    labelled = [e for e in p.train_ex if e.label is not None]  # texts of no class (outliers) are left out
    texts, targets = [e.text for e in labelled], [index[str(e.label)] for e in labelled]
    val = [e for e in p.val_ex if str(e.label) in index]
    val_texts, val_y = [e.text for e in val], np.array([index[str(e.label)] for e in val])
    model.eval()
    encoder = p.task.text_scores(model, p.tokenizer, val_texts, None, p.cfg.training.max_length).numpy()
    best = None
    for c in C_GRID:
        companion = NgramCompanion.fit(texts, targets, len(p.labels), c=c, seed=p.cfg.training.seed)
        alone = companion.proba(val_texts)
        weight, accuracy, loss = blend_weight(encoder, alone, val_y)
        if best is None or (accuracy, -loss) > (best["accuracy"], -best["loss"]):
            best = {"companion": companion, "c": c, "weight": weight, "accuracy": accuracy, "loss": loss,
                    "alone": float((alone.argmax(1) == val_y).mean())}
    encoder_accuracy = float((encoder.argmax(1) == val_y).mean())
    kept = p.cfg.training.ensemble == "ngram" or (best["weight"] < 1 and best["accuracy"] > encoder_accuracy)
    record = {"kind": "ngram", "weight": best["weight"], "c": best["c"], "features": best["companion"].n_features,
              "validation": {"texts": len(val), "encoder_accuracy": round(encoder_accuracy, 6),
                             "companion_accuracy": round(best["alone"], 6), "blend_accuracy": round(best["accuracy"], 6)},
              "chosen_by": p.cfg.training.ensemble, "kept": kept,
              "seconds": round(time.perf_counter() - started, 1)}
    verdict = (f"blended with weight {best['weight']:.2f} for the encoder" if kept
               else "left out: the blend does not beat the encoder alone")
    say(f"n-gram companion: validation accuracy encoder {encoder_accuracy:.4f}, companion {best['alone']:.4f}, "
        f"blend {best['accuracy']:.4f}; {verdict}.")
    if not kept:
        return None, record
    return Blended(model, best["companion"], best["weight"], p.tokenizer, p.cfg.training.max_length), record


def _staged_predictor(staging: Path, manifest: dict, model, tokenizer):
    """A predictor over the artifact being written (its companion is in ``staging``
    already), for the report's explained mistakes; None where explanations do not apply."""
    from ..inference import Predictor
    from .evaluate import task_is_single_label

    predictor = Predictor(staging, {**manifest, "files": {}}, model=model, tokenizer=tokenizer)
    return predictor if task_is_single_label(predictor.task) else None


def write_model(p: Prepared, model, sections: dict, changes: dict | None = None, *,
                blended=None, tracker: Tracker | None = None) -> tuple[dict, dict | None]:
    """Score the evaluation (or validation) data, then write the artifact of ``model`` with
    its report, and clear the run's bookkeeping; returns the manifest and the metrics.

    ``blended`` is ``model`` with an n-gram companion (:func:`fit_companion`): it is what is
    scored, and its companion is written beside the weights.

    ``sections`` are the manifest's run-specific sections (``method``, ``training``, and any
    other); the rest (task, labels, base model, model shape, config, data) come from ``p``.
    ``changes`` update sections last: a mapping is merged into the section of its name,
    anything else replaces it. ``tracker`` (:func:`.tracking.tracked`) is recorded in the
    manifest's ``tracking`` section and given the final metrics and the report.
    """
    out = Path(p.cfg.output)
    eval_ds = p.datasets.get("eval")
    examples = eval_ds.examples if eval_ds is not None else p.val_ex
    name = "eval" if eval_ds is not None else "validation"
    # where the scored examples' line numbers point: the eval file, the validation file, or
    # the training file the validation share was split from
    source = next((p.datasets[k].source for k in ("eval", "validation", "train") if k in p.datasets), None)
    release_free_memory()  # the optimizer is gone: hand its memory back before scoring and saving
    model.eval()
    max_len = p.cfg.training.max_length
    if examples:
        say(f"Scoring the {name} data ({len(examples)} examples)...")
    scoring = blended if blended is not None else model
    scored = p.task.score(scoring, p.tokenizer, examples, p.labels, max_len) if examples else None
    evidence = None
    if p.cfg.training.evidence_index and p.task.model_kind == "sequence":
        from ..inference.evidence import build_evidence

        started = time.perf_counter()
        evidence = build_evidence(model, p.tokenizer, p.train_ex, max_len, p.cfg.training.seed)
        if evidence is not None:
            sections = {**sections, "evidence": {"rows": len(evidence.rows), "seconds": round(
                time.perf_counter() - started, 1)}}
    body = {
        "task": p.task.name, "task_variant": p.task.variant, "labels": p.labels,
        "base_model": {"name": p.base.name, "weights_sha256": weights_sha256(p.base.weights_file), **p.base.card},
        "model": {"kind": p.task.model_kind, "num_outputs": p.task.num_outputs(p.labels),
                  "pooling": p.cfg.training.pooling, "max_length": max_len, "normalize": p.method.normalize,
                  **({"layers": p.kept_layers} if p.kept_layers is not None else {}),
                  **p.task.model_extras(p.train_ex)},
        "config": p.cfg.to_dict(),
        "data": {name: {"source": d.source, "sha256": d.fingerprint, "rows": len(d), "skipped": len(d.skipped),
                        **({"unk_share": round(d.unk_share, 6)} if d.unk_share is not None else {})}
                 for name, d in p.datasets.items()},
        "warnings": p.warnings,
        **sections,
        **(tracking_section(tracker) if tracker is not None else {}),
    }
    for key, value in (changes or {}).items():
        both = isinstance(value, dict) and isinstance(body.get(key), dict)
        body[key] = {**body[key], **value} if both else value
    weights = "model.safetensors" if p.method.saves_base else "adapter.safetensors"
    manifest = build_manifest(**body, weights=weights, metrics={name: headline(scored.metrics)} if scored else {})

    def report(staging: Path) -> None:
        if blended is not None:
            blended.companion.save(staging)
        if evidence is not None:
            evidence.save(staging)
        if scored is not None:
            say("Writing the report and the model folder...")
            write_task_report(staging / "report", p.task, examples, p.labels, scored, f"Evaluation on {name} data",
                              source, predictor=_staged_predictor(staging, manifest, model, p.tokenizer))
            write_parity_sample(staging, examples)  # held-out inputs for an export's parity check

    encoder = model.encoder
    write_artifact(out, manifest, tensors=model.state_dict() if p.method.saves_base else trainable_state(model),
                   tokenizer=p.tokenizer, encoder_config=getattr(encoder, "get_base_model", lambda: encoder)().config,
                   fill=report)
    clear_run_files(out)
    if tracker is not None:
        log_result(tracker, out, scored.metrics if scored else None, body["training"].get("steps", 0))
    return read_manifest(out), scored.metrics if scored else None  # as written: with its files' sha256
