"""The command line: parses, calls the library, prints. No logic of its own.

A user mistake (a :class:`DomainfitError`) exits with code 2 and a short message; pass
``--debug`` to see the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .errors import DomainfitError
from .ui import console, say

app = typer.Typer(
    name="domainfit",
    help="Turn a pretrained language model into a domain-specific model: train, evaluate, predict, search, "
    "export and serve it, and build apps on it (app customer-service).\n\n"
    "Example: domainfit train --data train.csv --eval-data test.csv --output my-model",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_DEBUG = {"on": False}


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    # Only ever switch on: main() takes --debug out of argv first, so here it reads False.
    if debug:
        _DEBUG["on"] = True


@app.command(epilog="Example: domainfit train --data train.csv --eval-data test.csv --output my-model --method lora\n\n"
             "domainfit train --task token-classification --data train.jsonl --eval-data test.jsonl --output ner\n\n"
             "domainfit train --task retrieval --data pairs.csv --text-column query --text-pair-column answer "
             "--output faq\n\n"
             "domainfit train --data train.csv --shots 8 --method fewshot --output my-model\n\n"
             "domainfit train --method zeroshot --labels labels.csv --output my-model")
def train(
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
                                                  help="zeroshot: texts without labels to self-train on."),
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
    save_steps: Optional[int] = typer.Option(None, "--save-steps", help="Checkpoint every N optimizer steps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    resume: str = typer.Option("auto", "--resume", help="auto: continue an unfinished run; never: refuse."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what the output folder holds."),
) -> None:
    """Train a model on a labelled file (or, with zeroshot, a label list) and save it as an artifact folder."""
    from . import pipeline

    settings = {"data.train": data, "output": output, "data.eval": eval_data, "data.validation": validation_data,
                "task": task, "method.name": method, "model": model, "data.text_column": text_column,
                "data.label_column": label_column, "data.text_pair_column": text_pair_column,
                "data.on_bad_rows": on_bad_rows, "training.precision": precision,
                "training.save_steps": save_steps, "training.seed": seed, "data.shots": shots,
                "data.labels": labels, "data.unlabelled": unlabelled_data, "method.budget_minutes": budget_minutes}
    result = pipeline.train(str(config) if config else None, overrides=list(set_), resume=resume,
                            overwrite=overwrite, **settings)
    say(f"[green]Saved[/] {escape(str(result.path))}")
    if result.eval_metrics is not None:
        _print_headline(result.eval_metrics)
    if (result.path / "report" / "report.md").is_file():
        say(f"Report: {escape(str(result.path / 'report' / 'report.md'))}")


def _print_headline(metrics: dict) -> None:
    keys = [k for k in ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "subset_accuracy", "precision", "recall",
                        "f1", "token_accuracy", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "mae",
                        "rmse", "r2", "spearman", "roc_auc", "ece", "n") if metrics.get(k) is not None]
    say("  ".join(f"{k} [bold]{metrics[k]:.4f}[/]" if isinstance(metrics[k], float) else f"{k} {metrics[k]}"
                  for k in keys))


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
) -> None:
    """Score a model on labelled data and write report/ into the model folder."""
    from . import pipeline

    metrics = pipeline.evaluate(model_dir, data, text_column=text_column, label_column=label_column,
                                text_pair_column=text_pair_column, on_bad_rows=on_bad_rows, rerank=rerank,
                                candidates=candidates)
    if as_json:
        sys.stdout.write(json.dumps(metrics, default=float) + "\n")
    else:
        _print_headline(metrics)
        say(f"Report: {escape(str(model_dir / 'report' / 'report.md'))}")


@app.command(epilog="Example: domainfit predict my-model --data new.csv --output preds.jsonl --top-k 3")
def predict(
    model_dir: Path = typer.Argument(..., help="Artifact folder."),
    data: str = typer.Option(..., "--data", help="File with a text column (any size: it is streamed)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write: .jsonl or .csv."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Default: the training column."),
    top_k: int = typer.Option(3, "--top-k", help="How many labels with scores per row."),
    batch_rows: int = typer.Option(1024, "--chunk-size", help="Rows read and predicted at a time."),
) -> None:
    """Predict labels for every row of a file, streaming it in bounded memory."""
    from .predict_file import predict_file

    count = predict_file(model_dir, data, output, text_column=text_column, top_k=top_k, chunk_size=batch_rows)
    say(f"[green]Wrote[/] {count} predictions to {escape(str(output))}")


@app.command(epilog="Example: domainfit index faq-model --corpus faq.csv --text-column answer --id-column id")
def index(
    model_dir: Path = typer.Argument(..., help="A retrieval model's artifact folder."),
    corpus: str = typer.Option(..., "--corpus", help="Documents to search (CSV, TSV, JSONL, Parquet)."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the document text."),
    id_column: str = typer.Option("id", "--id-column", help="Column with unique document ids ('' for line numbers)."),
    backend: str = typer.Option("auto", "--backend", help="auto | exact | faiss (auto: exact below "
                                "200,000 documents or without faiss-cpu)."),
) -> None:
    """Embed a corpus with a retrieval model and store the search index inside the model folder."""
    from .retrieval import build_index

    folder = build_index(model_dir, corpus, text_column=text_column, id_column=id_column or None, backend=backend)
    meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    say(f"[green]Indexed[/] {meta['rows']:,} documents ({meta['backend']}) in {escape(str(folder))}")


@app.command(epilog='Example: domainfit search faq-model "how do I delete my account" -k 5 --rerank pair-model')
def search(
    model_dir: Path = typer.Argument(..., help="A retrieval model with an index (domainfit index)."),
    query: str = typer.Argument(..., help="What to search for."),
    k: int = typer.Option(5, "-k", "--top-k", help="How many results."),
    rerank: Optional[Path] = typer.Option(None, "--rerank", help="A pair model that reorders the top --candidates."),
    candidates: int = typer.Option(20, "--candidates", help="With --rerank: how many results to rerank."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Search a retrieval model's index for the documents closest to a query."""
    from .inference import Predictor

    hits = Predictor(model_dir).search(query, k, rerank=rerank, candidates=candidates)
    if as_json:
        sys.stdout.write(json.dumps(hits, ensure_ascii=False, default=str) + "\n")
        return
    for rank, hit in enumerate(hits, start=1):
        text = hit["text"] if len(hit["text"]) <= 120 else hit["text"][:117] + "..."
        say(f"{rank}. [bold]{escape(str(hit['id']))}[/] {hit['score']:.4f}  {escape(text)}")


@app.command(epilog="Example: domainfit export my-model --format onnx --quantize int8 --output my-model-int8")
def export(
    model_dir: Path = typer.Argument(..., help="Artifact folder."),
    output: Path = typer.Option(..., "--output", "-o", help="The new artifact folder (must not exist)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8 (dynamic quantization); default fp32."),
    data: Optional[str] = typer.Option(None, "--data", help="Held-out texts for the parity check (default: the "
                                       "validation sample stored in the model)."),
    min_agreement: float = typer.Option(0.99, "--min-agreement", help="Fail when fewer predictions agree."),
    fuse: bool = typer.Option(True, "--fuse/--no-fuse", help="Fuse each layer's attention into onnxruntime's "
                              "Attention op (faster; --no-fuse keeps standard ONNX ops for other runtimes)."),
) -> None:
    """Export a model to ONNX (PEFT adapters merged), checking that it predicts like the original."""
    from .export import export_model

    section = export_model(model_dir, output, fmt=fmt, quantize=quantize, data=data, min_agreement=min_agreement,
                           fuse=fuse)
    parity = section["parity"]
    say(f"[green]Exported[/] {escape(str(output))} ({section['quantize']}, {section['bytes'] / 1e6:.1f} MB): "
        f"agreement {parity['agreement']:.2%} on {parity['texts']} texts, largest difference "
        f"{parity['max_abs_difference']:.4f}")


@app.command(epilog="Example: domainfit serve models/ --port 8000 --api-key $KEY\n\n"
             "curl -s localhost:8000/v1/models/intents/predict -d '{\"texts\": [\"where is my card?\"]}'")
def serve(
    path: Path = typer.Argument(..., help="An artifact folder, or a registry folder (domainfit registry)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key for admin endpoints (or DOMAINFIT_API_KEY)."),
    require_key: bool = typer.Option(False, "--require-key", help="Require the key for predictions too."),
    db: str = typer.Option("sqlite:///feedback.db", "--db", help="Feedback store: a SQLAlchemy URL."),
    max_batch: int = typer.Option(256, "--max-batch", help="Micro-batching: items per model call."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="Micro-batching: longest wait for a batch to fill."),
    max_texts: int = typer.Option(256, "--max-texts", help="Texts per request."),
    max_chars: int = typer.Option(10_000, "--max-chars", help="Characters per text."),
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="Request body size."),
) -> None:
    """Serve models over HTTP (OpenAPI at /openapi.json): predictions, feedback, registry, metrics."""
    from .serving import ServeSettings
    from .serving import serve as run_server

    settings = ServeSettings(api_key=api_key, require_key=require_key, db_url=db, max_batch=max_batch,
                             max_wait_ms=max_wait_ms, max_texts=max_texts, max_chars=max_chars,
                             max_body_bytes=max_body_bytes)
    run_server(path, host=host, port=port, settings=settings)


registry_app = typer.Typer(help="Manage a registry folder: named models with versions and stages.",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("add", epilog="Example: domainfit registry add models/ intents my-model --stage production")
def registry_add(root: Path = typer.Argument(..., help="Registry folder."),
                 name: str = typer.Argument(..., help="Model name."),
                 model_dir: Path = typer.Argument(..., help="Artifact folder to copy in."),
                 stage: str = typer.Option("staging", "--stage", help="staging | production | archived.")) -> None:
    """Copy an artifact into the registry as the model's next version."""
    from .serving import Registry

    version = Registry(root).add(name, model_dir, stage)
    say(f"[green]Added[/] {escape(name)} version {version} ({stage})")


@registry_app.command("list", epilog="Example: domainfit registry list models/")
def registry_list(root: Path = typer.Argument(..., help="Registry folder."),
                  as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every version of every model with its stage."""
    from .serving import Registry

    rows = Registry(root).listing()
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    for r in rows:
        sys.stdout.write(f"{r['name']}\t{r['version']}\t{r['stage']}\t{r['task']}\t{r['added']}\n")


@registry_app.command("promote", epilog="Example: domainfit registry promote models/ intents 3")
def registry_promote(root: Path = typer.Argument(...), name: str = typer.Argument(...),
                     version: int = typer.Argument(..., help="The version to serve.")) -> None:
    """Make a version production (the former one is archived); servers pick it up within a second."""
    from .serving import Registry

    Registry(root).promote(name, version)
    say(f"[green]Promoted[/] {escape(name)} version {version} to production")


@registry_app.command("rollback", epilog="Example: domainfit registry rollback models/ intents")
def registry_rollback(root: Path = typer.Argument(...), name: str = typer.Argument(...)) -> None:
    """Serve the previous production version again."""
    from .serving import Registry

    entry = Registry(root).rollback(name)
    say(f"[green]Rolled back[/] {escape(name)} to version {entry['version']}")


@registry_app.command("remove", epilog="Example: domainfit registry remove models/ intents 1")
def registry_remove(root: Path = typer.Argument(...), name: str = typer.Argument(...),
                    version: Optional[int] = typer.Argument(None, help="One version (default: the whole model).")
                    ) -> None:
    """Remove a version (never the production one), or a model without a production version."""
    from .serving import Registry

    Registry(root).remove(name, version)
    say(f"[green]Removed[/] {escape(name)}" + (f" version {version}" if version else ""))


feedback_app = typer.Typer(help="Feedback captured by the server.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export", epilog="Example: domainfit feedback export --db sqlite:///feedback.db -o fix.csv")
def feedback_export(output: Path = typer.Option(..., "--output", "-o", help="CSV to write (text,label,...)."),
                    db: str = typer.Option("sqlite:///feedback.db", "--db", help="SQLAlchemy URL."),
                    model: Optional[str] = typer.Option(None, "--model", help="Only this model's feedback."),
                    all_rows: bool = typer.Option(False, "--all", help="Also rows without a corrected label.")
                    ) -> None:
    """Write stored feedback as a labelled CSV that domainfit train reads."""
    from .serving import FeedbackStore

    count = FeedbackStore(db).export_csv(output, model=model, labelled_only=not all_rows)
    say(f"[green]Wrote[/] {count} feedback rows to {escape(str(output))}")


apps_app = typer.Typer(help="Industry applications built on domainfit.", no_args_is_help=True)
app.add_typer(apps_app, name="app")
cs_app = typer.Typer(help="Intelligent customer service: intents, FAQ/document answers, out-of-scope "
                     "fallback with hand-off, chat API and web chat (docs/customer-service.md).",
                     no_args_is_help=True)
apps_app.add_typer(cs_app, name="customer-service")


@cs_app.command("train", epilog="Example: domainfit app customer-service train recipes/customer_service_banking.yaml "
                "--output cs-bundle\n\nExample: domainfit app customer-service train --intents history.csv --answers "
                "answers.csv --faq faq.csv --docs help/ --output cs-bundle")
def cs_train(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (see docs/customer-service.md)."),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle folder to write."),
    intents: Optional[str] = typer.Option(None, "--intents", help="Without a recipe: labelled queries (text,label)."),
    answers: Optional[str] = typer.Option(None, "--answers", help="Without a recipe: intent → answer templates."),
    faq: Optional[str] = typer.Option(None, "--faq", help="Without a recipe: FAQ file (question,answer)."),
    docs: Optional[str] = typer.Option(None, "--docs", help="Without a recipe: folder of Markdown/text documents."),
    oos_label: str = typer.Option("oos", "--oos-label", help="Label of out-of-scope examples in the intents file."),
    method: Optional[str] = typer.Option(None, "--method", help="Intent model's method (default full)."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the packaged one)."),
    set_: list[str] = typer.Option([], "--set", help="A training setting for the intent model, e.g. "
                                   "training.epochs=3 (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle."),
) -> None:
    """Build a customer-service bundle: intent model, calibrated out-of-scope thresholds, retrieval index."""
    import yaml

    from .apps.customer_service import load_recipe, train_bundle
    from .errors import ConfigError

    if recipe is not None and any(v is not None for v in (intents, answers, faq, docs)):
        raise ConfigError("give a recipe or --intents/--answers/--faq/--docs, not both.")
    if recipe is None and intents is None:
        raise ConfigError("give a recipe file, or at least --intents FILE.")
    settings = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not key=value.")
        settings[key.strip()] = yaml.safe_load(value)
    if recipe is not None:
        r = load_recipe(recipe)
    else:
        r = load_recipe(intents={"data": intents, "oos_label": oos_label}, answers=answers,
                        faq={"data": faq} if faq else None, docs=docs)
    if method:
        r.intents.method = method
    if model:
        r.intents.model = model
    r.intents.settings.update(settings)
    _quiet_libraries()
    train_bundle(r, output, overwrite=overwrite)


@cs_app.command("evaluate", epilog="Example: domainfit app customer-service evaluate cs-bundle --data test.csv "
                "--oos-label oos --json")
def cs_evaluate(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    data: str = typer.Option(..., "--data", help="Labelled messages (text,label)."),
    oos_label: str = typer.Option("oos", "--oos-label", help="Label of out-of-scope rows (unknown labels are too)."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the trade-off curve (PNG) here."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """In-scope accuracy, out-of-scope recall and precision of a bundle on labelled messages."""
    from .apps.customer_service import evaluate_bundle

    metrics = evaluate_bundle(bundle, data, oos_label=oos_label, text_column=text_column, label_column=label_column,
                              plot=plot)
    if as_json:
        sys.stdout.write(json.dumps(metrics) + "\n")
        return
    for key in ("in_scope_accuracy", "no_fallback_accuracy", "oos_recall", "oos_precision", "auroc"):
        if metrics.get(key) is not None:
            say(f"{key:22s} {metrics[key]:.4f}")
    say(f"routes: {metrics['routes']}")


@cs_app.command("ask", epilog='Example: domainfit app customer-service ask cs-bundle "my card has not arrived"')
def cs_ask(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    message: str = typer.Argument(..., help="The customer's message."),
    generate: bool = typer.Option(False, "--generate", help="Compose FAQ/document answers with the generative model."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON."),
) -> None:
    """Answer one message (no conversation log)."""
    from .apps.customer_service import Assistant

    result = Assistant(bundle, generation=generate or None).answer(message)
    if as_json:
        sys.stdout.write(json.dumps(result, default=float) + "\n")
        return
    sys.stdout.write(result["answer"] + "\n")
    sources = [s for s in result["sources"] if s["kind"] != "intent"]
    say(f"route: {result['route']}" + (f" · intent: {escape(result['intent'])}" if result["intent"] else "")
        + (f" · sources: {escape('; '.join(s.get('source') or s['id'] for s in sources))}" if sources else ""))


@cs_app.command("serve", epilog="Example: domainfit app customer-service serve cs-bundle --port 8000 "
                "(then open http://127.0.0.1:8000/chat)")
def cs_serve(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port."),
    db: str = typer.Option("sqlite:///conversations.db", "--db", help="Conversation log: a SQLAlchemy URL."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key for admin endpoints (or DOMAINFIT_API_KEY)."),
    require_key: bool = typer.Option(False, "--require-key", help="Require the key for chat too."),
    generate: bool = typer.Option(False, "--generate", help="Compose FAQ/document answers with the generative model."),
    max_batch: int = typer.Option(64, "--max-batch", help="Micro-batching: messages per model call."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="Micro-batching: longest wait for a batch."),
    max_chars: int = typer.Option(10_000, "--max-chars", help="Characters per message."),
) -> None:
    """Serve the chat API (POST /v1/chat), the web chat page (/chat) and the intent model."""
    import logging

    import uvicorn

    from .apps.customer_service import create_chat_app
    from .serving import ServeSettings

    settings = ServeSettings(api_key=api_key, require_key=require_key, max_batch=max_batch, max_wait_ms=max_wait_ms,
                             max_chars=max_chars)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(create_chat_app(bundle, settings, db_url=db, generation=generate or None), host=host, port=port,
                log_level="info", access_log=False)


@app.command(epilog="Example: domainfit info my-model")
def info(model_dir: Path = typer.Argument(..., help="Artifact folder."),
         as_json: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON.")) -> None:
    """Show a model's manifest: task, labels, base model, method, metrics."""
    from .artifact import read_manifest

    manifest = read_manifest(model_dir)
    if as_json:
        sys.stdout.write(json.dumps(manifest, indent=2) + "\n")
        return
    labels = manifest.get("labels", [])
    lines = [
        f"model      {model_dir}",
        f"task       {manifest['task']}",
        f"labels     {len(labels)}: {', '.join(labels[:10])}{' ...' if len(labels) > 10 else ''}",
        f"base       {manifest['base_model']['name']} (sha256 {str(manifest['base_model'].get('weights_sha256'))[:12]})",
        f"method     {manifest['method']['name']} ({manifest['method']['trainable_parameters']:,} trainable)",
        f"training   {manifest['training']['steps']} steps, {manifest['training']['precision']}",
        f"metrics    {json.dumps(manifest.get('metrics', {}))}",
        f"created    {manifest['created_at']} by domainfit {manifest['domainfit_version']}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


@app.command(epilog="Example: domainfit demo --output demo-model")
def demo(output: Path = typer.Option(Path("demo-model"), "--output", "-o", help="Where to save the demo model."),
         model: str = typer.Option("default", "--model", help="Base model."),
         overwrite: bool = typer.Option(True, "--overwrite/--keep", help="Replace an earlier demo model.")) -> None:
    """Train, evaluate and try a model on the built-in customer-service sample data."""
    from .demo import run_demo

    run_demo(output, model=model, overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``domainfit`` console script."""
    _quiet_libraries()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:  # accepted anywhere on the line, not only before the command
        argv.remove("--debug")
        _DEBUG["on"] = True
    try:
        app(args=argv, standalone_mode=False)
    except DomainfitError as exc:
        if _DEBUG["on"]:
            raise
        # escape: file names and values in the message may hold [brackets] that rich would eat
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    except (typer.Exit,) as exc:
        return exc.exit_code
    except typer.Abort:
        console.print("aborted")
        return 130
    except Exception as exc:
        if _is_usage_error(exc):
            exc.show()
            return 2
        raise
    return 0


def _is_usage_error(exc: Exception) -> bool:
    """True for command-line usage errors (unknown option, missing argument, bad value).

    Recent typer vendors click, so its errors are ``typer.TyperException``s rather than
    ``click.ClickException``s; both are accepted.
    """
    kinds: list[type] = [typer.TyperException] if hasattr(typer, "TyperException") else []
    try:
        import click

        kinds.append(click.ClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(kinds)) and hasattr(exc, "show")


if __name__ == "__main__":
    sys.exit(main())
