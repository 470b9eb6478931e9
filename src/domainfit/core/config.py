"""Typed run configuration: YAML file, then dotted ``key=value`` overrides, then keywords.

Every field carries its help text in ``metadata["help"]``; ``check()`` validates ranges and
names so that a bad value fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["DataConfig", "TrainingConfig", "MethodConfig", "RunConfig", "load_config", "apply_overrides",
           "parse_overrides", "setting_key", "flatten", "read_yaml", "expand_env"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, where: str = "config") -> Any:
    """``${NAME}`` and ``${NAME:-default}`` in the strings of a parsed YAML value, replaced by
    the environment variable ``NAME`` (or ``default`` when it is unset or empty); lists and
    mappings are walked. A string that starts with the reference and whose value comes from
    the environment as a relative path gets it made absolute against the working folder
    (where the shell that set it is), so that a file relative to the YAML still finds it.

    Raises:
        ConfigError: ``${NAME}`` without a default and ``NAME`` unset.

    Example:
        >>> expand_env({"train": "${NO_SUCH_VAR_HERE:-examples/data}/train.csv"})
        {'train': 'examples/data/train.csv'}
    """
    if isinstance(value, dict):
        return {k: expand_env(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, where) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found:
            return os.path.abspath(found) if match.start() == 0 and not os.path.isabs(found) else found
        if default is None:
            raise ConfigError(f"{where}: {match.group(0)} names the environment variable {name}, which is not set; "
                              f"set it, or write ${{{name}:-default}}.")
        return default

    return _ENV_REF.sub(one, value)


def read_yaml(path: str | Path, what: str = "Config file") -> Any:
    """A YAML file parsed, with environment references expanded (:func:`expand_env`).

    Raises:
        ConfigError: the file is missing, unreadable or not valid YAML, or names an unset variable.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist." if not path.exists() else f"{what} {path} is not a file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    return expand_env(data, str(path))


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class DataConfig:
    """Where the data is and which columns hold what."""

    train: str | None = _f(None, "Training file (CSV, TSV, JSONL or Parquet).")
    eval: str | None = _f(None, "Evaluation file, scored once at the end of training.")
    validation: str | None = _f(None, "Validation file for early stopping; split from train when absent.")
    text_column: str = _f("text", "Column holding the input text.")
    label_column: str = _f("label", "Column holding the target.")
    text_pair_column: str | None = _f(None, "Optional column holding a second text.")
    val_fraction: float = _f(0.1, "Share of train held out for validation when no validation file is given.")
    on_bad_rows: str = _f("error", "'error': stop with every problem listed; 'skip': leave bad rows out.")
    shots: int | None = _f(None, "Train on at most this many examples per class, sampled from train with "
                                 "training.seed (few-shot).")
    labels: str | None = _f(None, "Label file for zeroshot: CSV with a label column and an optional "
                                  "description column, or a YAML/JSON list.")
    unlabelled: str | None = _f(None, "Texts without labels (the text column): zeroshot self-trains on them; with "
                                      "training.teacher the model learns the teacher's probabilities on them.")
    outliers: str | None = _f(None, "Texts that belong to none of the classes (off-topic messages, the text column): "
                                    "trained towards an even spread over the classes (outlier exposure), so that "
                                    "the model is unsure on texts like them. Single-label classification.")
    hard_negatives: int = _f(0, "retrieval: add this many hard negatives per query, mined with the untuned model "
                                "from the other queries' positives.")

    def check(self) -> None:
        if self.hard_negatives < 0:
            raise ConfigError(f"data.hard_negatives must be 0 or more, got {self.hard_negatives}.")
        if self.shots is not None and self.shots < 1:
            raise ConfigError(f"data.shots must be at least 1, got {self.shots}.")
        if not 0.0 < self.val_fraction < 0.5:
            raise ConfigError(f"data.val_fraction must be in (0, 0.5), got {self.val_fraction}.")
        if self.on_bad_rows not in ("error", "skip"):
            raise ConfigError(f"data.on_bad_rows must be 'error' or 'skip', got {self.on_bad_rows!r}.")


@dataclass
class TrainingConfig:
    """The optimisation loop. Defaults were chosen by measurement: see docs/training.md."""

    epochs: float = _f(10, "Maximum number of passes over the training data.")
    learning_rate: float | None = _f(None, "Peak encoder learning rate; None uses the method's measured default.")
    head_learning_rate: float = _f(2e-3, "Peak learning rate of the new task head.")
    batch_size: int = _f(32, "Examples per optimizer step, over all processes and accumulation steps.")
    grad_accumulation: int = _f(1, "Split each batch into this many micro-batches (saves memory).")
    max_batch_tokens: int = _f(1024, "Split a batch whose padded size exceeds this many tokens into "
                                     "micro-batches (same update, less peak memory); 0: never.")
    warmup_ratio: float = _f(0.06, "Share of all steps spent warming the learning rate up from 0.")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and LayerNorm).")
    max_length: int = _f(128, "Texts are truncated to this many tokens.")
    precision: str = _f("auto", "'auto' (bf16 where the processor supports it), 'fp32' or 'bf16'.")
    early_stopping_patience: int = _f(3, "Stop after this many evaluations without improvement (0: never).")
    eval_every_epochs: float = _f(1.0, "Validate every this many epochs (e.g. 0.5 for twice per epoch).")
    save_steps: int = _f(200, "Write a checkpoint every this many optimizer steps (and at every epoch end).")
    group_by_length: bool = _f(True, "Batch texts of similar length together (less padding, faster).")
    freeze_embeddings: bool = _f(True, "Keep the word-embedding matrix fixed (faster, less memory).")
    freeze_layers: int = _f(0, "Keep the embeddings and the lowest N encoder layers fixed: a faster step (the "
                               "backward pass stops above them); 0 trains every layer.")
    case_markers: bool = _f(True, "Token classification with a tokenizer that lowercases (the default encoder's): "
                                  "follow each capitalised word with a spare vocabulary token, so that the model "
                                  "still sees capitals; ignored where the tokenizer keeps case.")
    layers: int = _f(0, "Keep only N of the encoder's layers, spread over its depth (0: all): a shallower model "
                        "that predicts faster, usually started from a trained model (--model) and taught by it "
                        "(training.teacher). See docs/deployment.md.")
    dropout: float | None = _f(None, "Dropout of the encoder and the head; None keeps the encoder's own and uses 0.1 in the head.")
    label_smoothing: float | None = _f(None, "Label smoothing for single-label and token classification; None uses the "
                                             "method's default (0.1; fewshot 0).")
    ensemble: str | None = _f(None, "'ngram': blend a character/word n-gram model with the encoder (weight chosen on "
                                    "validation); 'auto': the same, kept only where validation improves; 'none'. "
                                    "None: 'auto' with method auto, else 'none'. Single-label classification.")
    evidence_index: bool = _f(True, "Store the model's vectors and the texts of (up to 20,000) training examples in "
                                    "the artifact, so that explanations can show the most similar ones; false leaves "
                                    "the training texts out of the model folder (private data).")
    teacher: str | None = _f(None, "A trained domainfit model (folder) with the same task and labels, usually "
                                   "larger: the model learns its probabilities on the training texts and on "
                                   "data.unlabelled (distillation). Single-label classification.")
    teacher_weight: float = _f(0.5, "Share of the teacher's probabilities in a labelled text's target (the rest is "
                                    "its label); unlabelled texts learn the teacher's alone.")
    teacher_temperature: float = _f(1.0, "Softens the teacher's probabilities (softmax of its logits / T) before "
                                         "they are learnt; above 1 shows more of how classes resemble each other.")
    init_from: str | None = _f(None, "A trained domainfit model (folder) whose weights this run starts from (a warm "
                                     "start; domainfit retrain sets it): same task, base model and method; new "
                                     "labels get new head rows, known labels keep theirs.")
    max_grad_norm: float = _f(1.0, "Clip gradients to this norm (0: no clipping).")
    seed: int = _f(42, "Seed for the split, the batch order, dropout and the head's initialisation.")
    pooling: str = _f("mean", "How token vectors become one text vector: 'mean' or 'cls'.")
    tracking: str | None = _f(None, "Where the run's metrics go besides metrics.jsonl: 'tensorboard', 'mlflow' (an "
                                    "MLflow store: MLFLOW_TRACKING_URI, else mlflow.db beside the output folder) or "
                                    "'none'; None: tensorboard when it is installed (docs/tracking.md).")

    def check(self) -> None:
        positive = {"epochs": self.epochs, "learning_rate": self.learning_rate or 1.0,
                    "head_learning_rate": self.head_learning_rate, "batch_size": self.batch_size,
                    "grad_accumulation": self.grad_accumulation, "max_length": self.max_length,
                    "save_steps": self.save_steps, "eval_every_epochs": self.eval_every_epochs}
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"training.{name} must be positive, got {value}.")
        if self.max_batch_tokens < 0:
            raise ConfigError(f"training.max_batch_tokens must be 0 or more, got {self.max_batch_tokens}.")
        if self.batch_size % self.grad_accumulation:
            raise ConfigError("training.batch_size must be a multiple of training.grad_accumulation.")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"training.warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"training.precision must be auto, fp32 or bf16, got {self.precision!r}.")
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"training.pooling must be 'mean' or 'cls', got {self.pooling!r}.")
        if self.tracking not in (None, "tensorboard", "mlflow", "none"):
            raise ConfigError(f"training.tracking must be tensorboard, mlflow or none, got {self.tracking!r}.")
        if self.ensemble not in (None, "none", "ngram", "auto"):
            raise ConfigError(f"training.ensemble must be ngram, auto or none, got {self.ensemble!r}.")
        if not 0 <= self.teacher_weight <= 1:
            raise ConfigError(f"training.teacher_weight must be in [0, 1], got {self.teacher_weight}.")
        if self.teacher_temperature <= 0:
            raise ConfigError(f"training.teacher_temperature must be positive, got {self.teacher_temperature}.")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"training.dropout must be in [0, 1), got {self.dropout}.")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"training.label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        for name in ("early_stopping_patience", "weight_decay", "max_grad_norm", "freeze_layers", "layers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"training.{name} must be 0 or more, got {getattr(self, name)}.")
        if self.layers and self.freeze_layers >= self.layers:
            raise ConfigError(f"training.freeze_layers ({self.freeze_layers}) must be below training.layers "
                              f"({self.layers}): one kept layer must train.")


@dataclass
class MethodConfig:
    """How the pretrained model is adapted; ``options`` are the method's own settings."""

    name: str = _f("full", "Adaptation method: auto, full, lora, adalora, ia3, prefix, prompt, adapter, bitfit, "
                           "fewshot or zeroshot (see docs/methods.md).")
    options: dict = _f({}, "Method settings, e.g. r, alpha, dropout, target_modules for lora.")
    budget_minutes: float | None = _f(None, "Training-time budget that auto uses to choose between full and "
                                            "adapter (None: no limit).")

    def check(self) -> None:
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise ConfigError(f"method.budget_minutes must be positive, got {self.budget_minutes}.")


@dataclass
class RunConfig:
    """One training run."""

    task: str = _f("classification", "classification, multilabel, regression, token-classification, pair or "
                                     "retrieval (see docs/tasks.md).")
    model: str = _f("default", "Base model: 'default', a local folder, or a hub id.")
    output: str | None = _f(None, "The artifact folder to write.")
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    method: MethodConfig = field(default_factory=MethodConfig)

    def check(self) -> RunConfig:
        """Check every section's values. The task's name is checked where the task is looked up
        (``domainfit.tasks.get_task``, before any work starts): this layer knows no tasks."""
        if not isinstance(self.task, str) or not self.task:
            raise ConfigError(f"task must be a task name, got {self.task!r}.")
        self.data.check()
        self.training.check()
        self.method.check()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunConfig:
        return _build(cls, raw, "")


def _build(cls: type, raw: dict, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping, got {type(raw).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) {', '.join(prefix + u for u in unknown)}; "
            f"known: {', '.join(prefix + k for k in fields)}."
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in raw.items():
        sub = _SECTIONS.get(name) if cls is RunConfig else None
        kwargs[name] = _build(sub, value, f"{name}.") if sub else _check_type(prefix + name, value, hints[name])
    return cls(**kwargs)


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """Check a number or switch here, in the user's terms; a wrong type would otherwise fail
    deep inside the range checks or training. Text settings are checked by ``check()``."""
    allowed = typing.get_args(hint) or (hint,)
    if value is None and type(None) in allowed:
        return value
    if bool in allowed:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}.")
        return value
    if int not in allowed and float not in allowed:
        return value
    number = value
    if isinstance(value, str):
        # YAML reads "1e-4" (no dot) as text; it is a number to anyone writing a config.
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if isinstance(number, bool) or not isinstance(number, numbers.Real) or not math.isfinite(number):
        kind = "a whole number" if int in allowed else "a number"
        raise ConfigError(f"{key} must be {kind}, got {value!r}.")
    if int in allowed and float not in allowed:
        if number != int(number):
            raise ConfigError(f"{key} must be a whole number, got {value!r}.")
        return int(number)  # "1e3" on a command line arrives as 1000.0
    return number if type(number) in (int, float) else float(number)  # numpy scalars


_SECTIONS = {"data": DataConfig, "training": TrainingConfig, "method": MethodConfig}


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``key.sub=value`` strings as ``{"key.sub": value}`` (values parsed as YAML scalars).

    Example:
        >>> parse_overrides(["training.epochs=3", "method.options.r=8"])
        {'training.epochs': 3, 'method.options.r': 8}
    """
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override {item!r} is not of the form key=value (e.g. training.epochs=3).")
        value = _parse_value(value)
        # YAML reads "1e-4" as a string; numbers written that way are common on command lines.
        if isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in "eE.") else value
            except ValueError:
                pass
        parsed[key.strip()] = value
    return parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings to a nested dict (values parsed as YAML scalars).

    Example:
        >>> apply_overrides({}, ["training.learning_rate=1e-4"])
        {'training': {'learning_rate': 0.0001}}
    """
    for item in overrides:
        for key, parsed in parse_overrides([item]).items():
            node = raw
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"Override {item!r}: '{part}' is not a section.")
            node[parts[-1]] = parsed
    return raw


# Keywords of the Python API that name a setting by its role rather than its place.
ALIASES = {"data": "data.train", "train_data": "data.train", "eval_data": "data.eval",
           "validation_data": "data.validation", "unlabelled_data": "data.unlabelled", "method": "method.name",
           "budget_minutes": "method.budget_minutes", "method_options": "method.options"}


def setting_key(key: str) -> str:
    """The dotted place of a keyword setting: ``epochs`` → ``training.epochs``,
    ``eval_data`` → ``data.eval``, ``method`` → ``method.name``; dotted keys and the top-level
    fields (``task``, ``model``, ``output``) stay as they are.

    Raises:
        ConfigError: a name that is no setting (with the closest known names).
    """
    if "." in key or key in ("task", "model", "output"):
        return key
    if key in ALIASES:
        return ALIASES[key]
    homes = [f"{section}.{key}" for section, cls in _SECTIONS.items()
             if key in {f.name for f in dataclasses.fields(cls)}]
    if len(homes) == 1:
        return homes[0]
    import difflib

    known = sorted({f.name for cls in _SECTIONS.values() for f in dataclasses.fields(cls)} | set(ALIASES)
                   | {"task", "model", "output"})
    close = difflib.get_close_matches(key, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see docs/configuration.md."
    raise ConfigError(f"Unknown setting {key!r}{hint}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                defaults: dict | None = None, **kwargs: Any) -> RunConfig:
    """Build a checked :class:`RunConfig` from YAML, dotted overrides and keywords, in that order.

    Args:
        defaults: dotted settings applied first, under everything else (a task's own
            defaults: ``{"training.label_smoothing": 0.0}``).
        path: optional YAML file; ``${NAME}`` / ``${NAME:-default}`` in its values are read
            from the environment (:func:`expand_env`); relative paths stay relative to the
            working folder.
        overrides: ``["training.epochs=3", ...]``.
        **kwargs: settings by name (``epochs=3``, ``eval_data="test.csv"``, ``method="lora"``)
            or by dotted place (``**{"training.epochs": 3}``); ``None`` values are ignored.

    Raises:
        ConfigError: unreadable YAML, unknown keys or out-of-range values.

    Example:
        >>> load_config(epochs=3, method="lora").training.epochs
        3
    """
    raw: dict = {}
    if path is not None:
        raw = read_yaml(path) or {}
    if defaults:
        raw = _under(raw, defaults)
    raw = apply_overrides(raw, list(overrides or []))
    for key, value in kwargs.items():
        if value is None:
            continue
        if key in _SECTIONS and isinstance(value, dict):  # a whole section: {"training": {...}}
            raw.setdefault(key, {}).update(value)
            continue
        key = setting_key(key)
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return RunConfig.from_dict(raw).check()


def _under(raw: dict, defaults: dict) -> dict:
    """``raw`` with each dotted default filled in where ``raw`` does not set it."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for key, value in defaults.items():
        node = out
        *parents, last = setting_key(key).split(".")
        for part in parents:
            if not isinstance(node.get(part, {}), dict):
                break
            node = node.setdefault(part, {})
        else:
            node.setdefault(last, value)
    return out


def flatten(config: RunConfig) -> dict:
    """A config as dotted keyword settings (``{"training.epochs": 10, ...}``), which
    :func:`load_config` reads back into an equal config."""
    flat = {}
    for key, value in config.to_dict().items():
        if key in _SECTIONS:
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat
