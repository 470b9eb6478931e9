"""``domainfit train`` and ``domainfit demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .output import escape, print_headline, quiet_libraries, say

__all__ = ["app"]

app = typer.Typer()


@app.command(epilog="Example: domainfit train --data train.csv --eval-data test.csv --output my-model --method lora\n\n"
             "domainfit train examples/banking77.yaml --epochs 3\n\n"
             "domainfit train --task token-classification --data train.jsonl --eval-data test.jsonl --output ner\n\n"
             "domainfit train --task retrieval --data pairs.csv --text-column query --text-pair-column answer "
             "--output faq\n\n"
             "domainfit train --data train.csv --shots 8 --method fewshot --output my-model\n\n"
             "domainfit train --method zeroshot --labels labels.csv --output my-model\n\n"
             "domainfit train --data train.csv --output runs/lora --method lora --tracking mlflow")
def train(
    config_file: Optional[Path] = typer.Argument(None, metavar="CONFIG",
                                                 help="YAML run configuration (the same as --config)."),
    data: Optional[str] = typer.Option(None, "--data", help="Training file (CSV, TSV, JSONL, Parquet)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Artifact folder to write."),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="Labelled file scored at the end."),
    validation_data: Optional[str] = typer.Option(None, "--validation-data",
                                                  help="Validation file for early stopping (default: split of --data)."),
    task: Optional[str] = typer.Option(None, "--task", help="classification | multilabel | regression | "
                                       "token-classification | pair | retrieval (docs/tasks.md)."),
    method: Optional[str] = typer.Option(None, "--method", help="auto | full | lora | adalora | ia3 | prefix | prompt "
                                         "| adapter | bitfit | fewshot | zeroshot (docs/methods.md)."),
    shots: Optional[int] = typer.Option(None, "--shots", help="Train on K examples per class sampled from --data "
                                        "(seeded by --seed)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="zeroshot: label file (CSV label[,description], "
                                         "or a YAML/JSON list)."),
    unlabelled_data: Optional[str] = typer.Option(None, "--unlabelled-data",
                                                  help="Texts without labels: zeroshot self-trains on them; with "
                                                  "--teacher the model learns the teacher's probabilities on them."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="A trained domainfit model (same task and labels, "
                                          "usually larger) whose probabilities the model learns (distillation)."),
    outlier_data: Optional[str] = typer.Option(None, "--outlier-data", help="Texts of none of the classes "
                                               "(off-topic): trained to be unsure on (outlier exposure)."),
    budget_minutes: Optional[float] = typer.Option(None, "--budget-minutes",
                                                   help="auto: training-time budget for choosing full or adapter."),
    model: Optional[str] = typer.Option(None, "--model", help="'default', a local model folder or a hub id."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML run configuration."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set training.epochs=3 (repeatable)."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Column with the text [text]."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Column with the target [label]."),
    text_pair_column: Optional[str] = typer.Option(None, "--text-pair-column", help="Optional second text column."),
    on_bad_rows: Optional[str] = typer.Option(None, "--on-bad-rows", help="error (default) | skip."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto | fp32 | bf16."),
    ensemble: Optional[str] = typer.Option(None, "--ensemble", help="ngram: blend a character/word n-gram model "
                                           "with the encoder (weight chosen on validation) | auto: only where "
                                           "validation improves [with --method auto] | none. Classification."),
    save_steps: Optional[int] = typer.Option(None, "--save-steps", help="Checkpoint every N optimizer steps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Passes over the data (as --set "
                                           "training.epochs=N)."),
    tracking: Optional[str] = typer.Option(None, "--tracking", help="Where metrics go besides metrics.jsonl: "
                                           "tensorboard [default, when installed] | mlflow (MLFLOW_TRACKING_URI, "
                                           "else mlflow.db beside --output) | none (docs/tracking.md)."),
    no_evidence_index: bool = typer.Option(False, "--no-evidence-index", help="Leave the training texts out of "
                                           "the model folder (no similar examples in explanations; private data)."),
    resume: str = typer.Option("auto", "--resume", help="auto: continue an unfinished run; never: refuse."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what the output folder holds."),
) -> None:
    """Train a model on a labelled file (or, with zeroshot, a label list) and save it as an artifact folder."""
    from .. import run
    from ..core.errors import ConfigError

    quiet_libraries()
    if config_file is not None and config is not None and config_file != config:
        raise ConfigError(f"two configurations given ({config_file} and --config {config}); give one.")
    config = config or config_file
    settings = {"data.train": data, "output": output, "data.eval": eval_data, "data.validation": validation_data,
                "task": task, "method.name": method, "model": model, "data.text_column": text_column,
                "data.label_column": label_column, "data.text_pair_column": text_pair_column,
                "data.on_bad_rows": on_bad_rows, "training.precision": precision, "training.ensemble": ensemble,
                "training.save_steps": save_steps, "training.seed": seed, "training.epochs": epochs,
                "data.shots": shots, "data.labels": labels, "data.unlabelled": unlabelled_data,
                "method.budget_minutes": budget_minutes, "training.teacher": teacher, "data.outliers": outlier_data,
                "training.tracking": tracking, "training.evidence_index": False if no_evidence_index else None}
    result = run.train(str(config) if config else None, overrides=list(set_), resume=resume,
                            overwrite=overwrite, **settings)
    say(f"[green]Saved[/] {escape(str(result.path))}")
    if result.eval_metrics is not None:
        print_headline(result.eval_metrics)
    if (result.path / "report" / "report.md").is_file():
        say(f"Report: {escape(str(result.path / 'report' / 'report.md'))}")


@app.command(epilog="Example: domainfit pretrain --data reviews.csv --output reviews-base --extend-vocab --steps 2000\n\n"
             "domainfit train --data train.csv --model reviews-base --output my-model")
def pretrain(
    data: str = typer.Option(..., "--data", help="Unlabelled text: a CSV/TSV/JSONL/Parquet file (--text-column), a "
                             ".txt file (one text per line), or a folder of such files."),
    output: str = typer.Option(..., "--output", "-o", help="Base-model folder to write (then: --model FOLDER)."),
    model: str = typer.Option("default", "--model", help="'default', a local model folder, a hub id, or a model "
                              "domainfit trained."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the text (a token-classification "
                                    "file's 'tokens' lists are read when it has no 'text')."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps [default: 10 passes over the texts]."),
    passes: Optional[float] = typer.Option(None, "--passes", help="Passes over the texts (when --steps is not given)."),
    extend_vocab: bool = typer.Option(False, "--extend-vocab", help="Add the pieces the tokenizer reads as [UNK] "
                                      "(e.g. Chinese characters for the default model) as new tokens first."),
    min_count: int = typer.Option(2, "--min-count", help="--extend-vocab: a piece must occur this often."),
    max_new_tokens: int = typer.Option(10_000, "--max-new-tokens", help="--extend-vocab: most pieces added."),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per optimizer step."),
    learning_rate: float = typer.Option(1e-4, "--learning-rate", help="Peak learning rate."),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per window; longer texts are cut into windows."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16."),
    seed: int = typer.Option(42, "--seed", help="Random seed (masks, order, validation texts)."),
    resume: str = typer.Option("auto", "--resume", help="auto: continue an unfinished run; never: refuse."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what the output folder holds."),
) -> None:
    """Continue pre-training an encoder on your own unlabelled text (masked words), for a better base model."""
    from ..run.pretrain import pretrain as run_pretrain

    quiet_libraries()
    run_pretrain(data, output, model=model, text_column=text_column, steps=steps, passes=passes,
                 extend_vocab=extend_vocab, min_count=min_count, max_new_tokens=max_new_tokens, batch_size=batch_size,
                 learning_rate=learning_rate, max_length=max_length, precision=precision, seed=seed, resume=resume,
                 overwrite=overwrite)


@app.command(epilog="Example: domainfit demo --output demo-model")
def demo(output: Path = typer.Option(Path("demo-model"), "--output", "-o", help="Where to save the demo model."),
         model: str = typer.Option("default", "--model", help="Base model."),
         overwrite: bool = typer.Option(True, "--overwrite/--keep", help="Replace an earlier demo model.")) -> None:
    """Train, evaluate and try a model on the built-in customer-service sample data."""
    from ..run.demo import run_demo

    quiet_libraries()
    run_demo(output, model=model, overwrite=overwrite)
