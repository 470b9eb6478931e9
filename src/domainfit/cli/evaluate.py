"""``domainfit evaluate``, ``predict``, ``explain`` and ``info``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .output import escape, print_headline, print_json, quiet_libraries, say

__all__ = ["app"]

app = typer.Typer()


@app.command(epilog="Example: domainfit evaluate my-model --data test.csv --json\n\n"
             "domainfit evaluate faq-model --data queries.csv --rerank pair-model --json")
def evaluate(
    model_dir: Path = typer.Argument(..., help="Artifact folder."),
    data: str = typer.Option(..., "--data", help="Labelled file to score."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on stdout."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Default: the training column."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Default: the training column."),
    text_pair_column: Optional[str] = typer.Option(None, "--text-pair-column",
                                                   help="Default: the training column (pair, retrieval)."),
    rerank: Optional[Path] = typer.Option(None, "--rerank", help="retrieval: a pair model that reorders the top "
                                          "--candidates results."),
    candidates: int = typer.Option(20, "--candidates", help="retrieval with --rerank: how many results to rerank."),
    on_bad_rows: str = typer.Option("error", "--on-bad-rows", help="error | skip."),
    report_dir: Optional[Path] = typer.Option(None, "--report-dir", help="Where to write the report (default: "
                                              "MODEL/evaluations/<data name>-<time>/; the training report/ is "
                                              "never replaced)."),
) -> None:
    """Score a model on labelled data and write a report of its own (MODEL/evaluations/...)."""
    from ..run import evaluate as evaluate_model
    from ..artifact.evaluations import evaluation_folder

    quiet_libraries()
    folder = report_dir or evaluation_folder(model_dir, data)
    metrics = evaluate_model(model_dir, data, text_column=text_column, label_column=label_column,
                             text_pair_column=text_pair_column, on_bad_rows=on_bad_rows, rerank=rerank,
                             candidates=candidates, report_dir=folder)
    if as_json:
        print_json(metrics, default=float)
    else:
        print_headline(metrics)
        say(f"Report: {escape(str(folder / 'report.md'))}")


@app.command(epilog="Example: domainfit predict my-model --data new.csv --output preds.jsonl --top-k 3")
def predict(
    model_dir: Path = typer.Argument(..., help="Artifact folder."),
    data: str = typer.Option(..., "--data", help="File with a text column (any size: it is streamed)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write: .jsonl or .csv."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Default: the training column."),
    top_k: int = typer.Option(3, "--top-k", help="How many labels with scores per row."),
    batch_rows: int = typer.Option(1024, "--chunk-size", help="Rows read and predicted at a time."),
    explain: bool = typer.Option(False, "--explain", help="Add each row's explanation: a score per word "
                                 "(JSONL only; see `domainfit explain`)."),
    method: str = typer.Option("auto", "--method", help="With --explain: auto | occlusion | deletion | "
                               "integrated-gradients | gradient-x-input."),
) -> None:
    """Predict labels for every row of a file, streaming it in bounded memory."""
    from ..inference.stream import predict_file

    quiet_libraries()
    count = predict_file(model_dir, data, output, text_column=text_column, top_k=top_k, chunk_size=batch_rows,
                         explain=explain, method=method)
    say(f"[green]Wrote[/] {count} predictions to {escape(str(output))}")


@app.command(name="explain", epilog='Example: domainfit explain my-model "my card has not arrived" --json\n\n'
             'domainfit explain my-model "refund please" --target refund --method integrated-gradients')
def explain_command(
    model_dir: Path = typer.Argument(..., help="Artifact folder."),
    texts: list[str] = typer.Argument(..., help="One or more texts."),
    target: Optional[str] = typer.Option(None, "--target", help="The label to explain (default: the predicted "
                                         "one; an entity type for token classification)."),
    method: str = typer.Option("auto", "--method", help="auto | occlusion | deletion | integrated-gradients | "
                               "gradient-x-input (auto: deletion, the most faithful measured; occlusion beyond 64 "
                               "words and for NER. occlusion is about 3x faster)."),
    pair: Optional[str] = typer.Option(None, "--pair", help="Pair models: the second text (for every text)."),
    evidence: int = typer.Option(3, "--evidence", help="How many of the most similar training examples to show "
                                 "(where the model stores them; 0: none)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one item per text."),
) -> None:
    """Why did the model say that? The predicted (or --target) label and a score per word:
    positive words pushed the model towards the label, negative ones away from it."""
    from ..inference import Predictor

    quiet_libraries()
    predictor = Predictor(model_dir)
    pairs = [pair] * len(texts) if pair is not None else None
    records = predictor.explain(texts, target=target, method=method, pairs=pairs)
    if evidence > 0:
        predictor.add_evidence(records, evidence)
    if as_json:
        print_json(records, ensure_ascii=False)
        return
    for record in records:
        sys.stdout.write(_explained_text(record) + "\n")


def _explained_text(record: dict) -> str:
    """A record for a terminal: the label, then the words, strongest first, with signed scores."""
    e = record["explanation"]
    head = f"{record['text']}\n  {e['target']}"
    if e.get("target_score") is not None:
        head += f" ({e['target_score']:.3f})"
    head += f"  [{e['method']}, {e.get('seconds', 0):.2f} s]"
    words = sorted(e["words"], key=lambda w: -abs(w["score"]))
    lines = [head] + [f"  {w['score']:+.4f}  {w['word']}" for w in words[:12]]
    if e.get("note"):
        lines.append(f"  note: {e['note']}")
    for hit in record.get("evidence", []):
        lines.append(f"  similar training example ({hit['similarity']:.2f}): {hit['text']} -> {hit['label']}")
    return "\n".join(lines)


@app.command(epilog="Example: domainfit info my-model")
def info(model_dir: Path = typer.Argument(..., help="Artifact folder."),
         as_json: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON.")) -> None:
    """Show a model's manifest: task, labels, base model, method, training metrics, and
    the evaluations run on it since (with their data's fingerprint)."""
    from ..artifact import read_manifest
    from ..artifact.evaluations import evaluations

    manifest = read_manifest(model_dir)
    if as_json:
        print_json(manifest, indent=2)
        return
    labels = manifest.get("labels", [])
    lines = [
        f"model      {model_dir}",
        f"task       {manifest['task']}",
        f"labels     {len(labels)}: {', '.join(labels[:10])}{' ...' if len(labels) > 10 else ''}",
        f"base       {manifest['base_model']['name']} (sha256 {str(manifest['base_model'].get('weights_sha256'))[:12]})",
        f"method     {manifest['method']['name']} ({manifest['method']['trainable_parameters']:,} trainable)",
        f"training   {manifest['training']['steps']} steps, {manifest['training']['precision']}",
        *([f"companion  n-gram, blended with encoder weight {manifest['companion']['weight']:.2f}"]
          if manifest.get("companion") else []),
        *([f"teacher    {d['teacher_base_model']} ({d['teacher']}), weight {d['weight']:g}, "
           f"{d['unlabelled_texts']} unlabelled texts"] if (d := manifest.get("distillation")) else []),
        *([f"outliers   {manifest['outliers']['texts']} texts of no class (outlier exposure)"]
          if manifest.get("outliers") else []),
        f"metrics    {json.dumps(manifest.get('metrics', {}))}",
        f"created    {manifest['created_at']} by domainfit {manifest['domainfit_version']}",
    ]
    for run in evaluations(model_dir):
        metrics = run.get("metrics", {})
        keys = (metrics.get("primary_metric"), "macro_f1", "f1", "mrr@10", "rmse")
        shown = {k: v for k, v in metrics.items() if k in keys}
        lines.append(f"evaluated  {run.get('at', '?')} on {run.get('data')} "
                     f"(sha256 {str(run.get('data_sha256'))[:12]}, {run.get('rows')} rows): {json.dumps(shown)} "
                     f"-> {run['folder']}")
    sys.stdout.write("\n".join(lines) + "\n")
