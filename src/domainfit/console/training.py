"""The train form: ``auto``'s suggestion with its reason, the main settings with their
defaults, a time estimate for this machine, and the ``domainfit train`` command a submitted
form becomes (the console runs the same command as the terminal, so a run started here can
be resumed there)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import RunConfig
from ..core.errors import DomainfitError
from ..methods import METHODS
from .workspace import ConsoleError

__all__ = ["TrainForm", "suggest", "train_argv", "METHOD_CHOICES"]

METHOD_CHOICES = ("auto", *sorted(m for m in METHODS if m != "zeroshot"))
# Training time relative to full fine-tuning, measured on Banking77 (benchmarks/methods.py):
# adapters 0.73×, LoRA 1.38× on a CPU; the others are close to full.
_RELATIVE_TIME = {"adapter": 81 / 111, "lora": 1.38}


@dataclass
class TrainForm:
    """What the train form sends (all strings from the page, checked here)."""

    data: str
    task: str = "classification"
    method: str = "auto"
    model: str = "default"
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str = ""
    eval_data: str = ""
    epochs: str = ""
    learning_rate: str = ""
    batch_size: str = ""
    seed: str = ""
    skip_bad_rows: bool = False
    name: str = ""

    def settings(self) -> dict:
        """The numeric settings given, checked."""
        out = {}
        for key, kind, low in (("epochs", float, 0.01), ("learning_rate", float, 1e-8), ("batch_size", int, 1),
                               ("seed", int, 0)):
            raw = getattr(self, key).strip()
            if not raw:
                continue
            try:
                value = kind(raw)
            except ValueError:
                raise ConsoleError(f"{key.replace('_', ' ')} must be a number, not {raw!r}", 422,
                                   "bad_setting") from None
            if value < low:
                raise ConsoleError(f"{key.replace('_', ' ')} must be at least {low:g}, not {raw}", 422, "bad_setting")
            out[key] = value
        if self.method not in METHOD_CHOICES:
            raise ConsoleError(f"method must be one of {', '.join(METHOD_CHOICES)}, not {self.method!r}", 422,
                               "bad_method")
        return out


def defaults() -> dict:
    """The settings' defaults, as the form shows them."""
    training = RunConfig().training
    return {"epochs": training.epochs, "batch_size": training.batch_size, "seed": training.seed,
            "learning_rate": "the method's default"}


def suggest(examples: list, form: TrainForm) -> dict:
    """``{"method", "reason", "estimate", "examples"}``: what ``auto`` would choose for these
    training examples (the data report's), and the time estimate of the chosen method
    (``method`` as the form has it)."""
    from ..modeling import resolve_model
    from ..run.auto import choose_method, duration, estimate_minutes, parameter_count
    from ..tasks import get_task
    from ..training import resolve_precision

    try:
        task = get_task(form.task)
        base = resolve_model(form.model or "default")
    except DomainfitError as exc:
        return {"method": None, "reason": str(exc), "estimate": None, "examples": 0}
    cfg = RunConfig(task=form.task)
    epochs = form.settings().get("epochs")
    if epochs:
        cfg.training.epochs = epochs
    choice = choose_method(cfg, task, examples, base)
    method = choice.method if form.method == "auto" else form.method
    minutes = estimate_minutes(len(examples), cfg.training.epochs, parameter_count(base),
                               resolve_precision(cfg.training.precision), _RELATIVE_TIME.get(method, 1.0))
    return {"method": choice.method, "reason": choice.reason, "examples": len(examples),
            "estimate": f"{duration(minutes)} for {method} (up to {cfg.training.epochs:g} epochs; early stopping "
                        "can end sooner)"}


def train_argv(form: TrainForm, data: str, output: str, eval_data: str | None) -> list[str]:
    """The ``domainfit train`` arguments of a submitted form (paths relative to the root)."""
    settings = form.settings()
    argv = ["train", "--data", data, "--output", output, "--task", form.task, "--method", form.method,
            "--model", form.model or "default", "--text-column", form.text_column,
            "--label-column", form.label_column]
    if form.text_pair_column:
        argv += ["--text-pair-column", form.text_pair_column]
    if eval_data:
        argv += ["--eval-data", eval_data]
    if "epochs" in settings:
        argv += ["--epochs", f"{settings['epochs']:g}"]
    if "seed" in settings:
        argv += ["--seed", str(settings["seed"])]
    if "learning_rate" in settings:
        argv += ["--set", f"training.learning_rate={settings['learning_rate']:g}"]
    if "batch_size" in settings:
        argv += ["--set", f"training.batch_size={settings['batch_size']}"]
    if form.skip_bad_rows:
        argv += ["--on-bad-rows", "skip"]
    return argv
