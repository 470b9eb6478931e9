"""``domainfit export``, ``serve``, ``registry ...`` and ``feedback ...``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .output import escape, print_json, quiet_libraries, say

__all__ = ["app"]

app = typer.Typer()


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
    from ..export import export_model

    quiet_libraries()
    section = export_model(model_dir, output, fmt=fmt, quantize=quantize, data=data, min_agreement=min_agreement,
                           fuse=fuse)
    parity = section["parity"]
    say(f"[green]Exported[/] {escape(str(output))} ({section['quantize']}, {section['bytes'] / 1e6:.1f} MB): "
        f"agreement {parity['agreement']:.2%} on {parity['texts']} texts, largest difference "
        f"{parity['max_abs_difference']:.4f}")


@app.command(epilog="Example: domainfit serve models/ --port 8000 --api-key $KEY --log-predictions --log-sample 0.1\n\n"
             "curl -s localhost:8000/v1/models/intents/predict -H 'content-type: application/json' "
             "-d '{\"texts\": [\"where is my card?\"]}'")
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
    max_queue: Optional[int] = typer.Option(None, "--max-queue", help="Items that may wait per model; beyond, "
                                            "503 with Retry-After at once (default: 8 x --max-batch)."),
    request_timeout: float = typer.Option(60.0, "--request-timeout", help="Seconds a prediction may wait for its "
                                          "answer (504 after); clients may ask for less with X-Request-Timeout."),
    max_connections: int = typer.Option(1000, "--max-connections", help="Open connections and requests at once; "
                                        "beyond, 503."),
    allow_origin: Optional[list[str]] = typer.Option(None, "--allow-origin", help="A web origin whose pages may "
                                                     "call the API (repeat for more); other cross-site browser "
                                                     "requests are refused."),
    log_predictions: bool = typer.Option(False, "--log-predictions", help="Keep each prediction in the --db "
                                         "database (request id, time, model, version, sha256 of the input, label, "
                                         "score), for domainfit drift."),
    log_sample: float = typer.Option(1.0, "--log-sample", help="With --log-predictions: the share of predictions "
                                     "kept (e.g. 0.1)."),
    log_texts: bool = typer.Option(False, "--log-texts", help="With --log-predictions: keep the input texts too "
                                   "(they may be personal data)."),
    log_retention_days: Optional[float] = typer.Option(None, "--log-retention-days", help="With --log-predictions: "
                                                       "delete logged predictions older than this many days."),
) -> None:
    """Serve models over HTTP (OpenAPI at /openapi.json, docs at /docs): predictions, feedback, registry, metrics."""
    from ..serving import ServeSettings, serve as run_server

    quiet_libraries()
    settings = ServeSettings(api_key=api_key, require_key=require_key, db_url=db, max_batch=max_batch,
                             max_wait_ms=max_wait_ms, max_texts=max_texts, max_chars=max_chars,
                             max_body_bytes=max_body_bytes, max_queue=max_queue, request_timeout=request_timeout,
                             max_connections=max_connections, allowed_origins=tuple(allow_origin or ()),
                             log_predictions=log_predictions, log_sample=log_sample, log_texts=log_texts,
                             log_retention_days=log_retention_days)
    run_server(path, host=host, port=port, settings=settings)


registry_app = typer.Typer(help="Manage a registry folder: named models with versions and stages.",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("add", epilog="Example: domainfit registry add models/ intents my-model --stage production")
def registry_add(root: Path = typer.Argument(..., help="Registry folder."),
                 name: str = typer.Argument(..., help="Model name."),
                 model_dir: Path = typer.Argument(..., help="Artifact folder to copy in."),
                 stage: str = typer.Option("staging", "--stage", help="staging | production | archived.")) -> None:
    """Copy an artifact into the registry as the model's next version (checked first: a
    broken model folder is refused and nothing changes)."""
    from ..stores import Registry

    version = Registry(root).add(name, model_dir, stage)
    say(f"[green]Added[/] {escape(name)} version {version} ({stage})")


@registry_app.command("list", epilog="Example: domainfit registry list models/")
def registry_list(root: Path = typer.Argument(..., help="Registry folder."),
                  as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every version of every model with its stage (a model whose entry cannot be read
    is named on stderr)."""
    from ..stores import Registry

    registry = Registry(root)
    for name, problem in registry.problems().items():
        say(f"[yellow]warning:[/] {escape(name)} is left out: {escape(problem)}")
    rows = registry.listing()
    if as_json:
        print_json(rows)
        return
    for r in rows:
        sys.stdout.write(f"{r['name']}\t{r['version']}\t{r['stage']}\t{r['task']}\t{r['added']}\n")


@registry_app.command("promote", epilog="Example: domainfit registry promote models/ intents 3")
def registry_promote(root: Path = typer.Argument(...), name: str = typer.Argument(...),
                     version: int = typer.Argument(..., help="The version to serve."),
                     reason: Optional[str] = typer.Option(None, "--reason", help="Why, for the history.")) -> None:
    """Make a version production (the former one is archived); servers pick it up within a second.
    A version whose files do not verify is refused and nothing changes. The history records
    who (DOMAINFIT_USER or the login name), when and why."""
    from ..stores import Registry

    Registry(root).promote(name, version, reason=reason)
    say(f"[green]Promoted[/] {escape(name)} version {version} to production")


@registry_app.command("rollback", epilog="Example: domainfit registry rollback models/ intents")
def registry_rollback(root: Path = typer.Argument(...), name: str = typer.Argument(...),
                      reason: Optional[str] = typer.Option(None, "--reason", help="Why, for the history.")) -> None:
    """Serve the previous production version again (recorded in the history)."""
    from ..stores import Registry

    entry = Registry(root).rollback(name, reason=reason)
    say(f"[green]Rolled back[/] {escape(name)} to version {entry['version']}")


@registry_app.command("history", epilog="Example: domainfit registry history models/ intents --json")
def registry_history(root: Path = typer.Argument(...), name: str = typer.Argument(...),
                     as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every promotion and rollback of a model: when, which version, the one before, who, why."""
    from ..stores import Registry

    events = Registry(root).history(name)
    if as_json:
        print_json(events)
        return
    for e in events:
        sys.stdout.write(f"{e['at']}\t{e['action']}\t{e['version']}\t{e.get('previous') or ''}\t"
                         f"{e.get('by') or ''}\t{e.get('reason') or ''}\n")


@registry_app.command("remove", epilog="Example: domainfit registry remove models/ intents 1")
def registry_remove(root: Path = typer.Argument(...), name: str = typer.Argument(...),
                    version: Optional[int] = typer.Argument(None, help="One version (default: the whole model).")
                    ) -> None:
    """Remove a version (never the production one), or a model without a production version."""
    from ..stores import Registry

    Registry(root).remove(name, version)
    say(f"[green]Removed[/] {escape(name)}" + (f" version {version}" if version else ""))


feedback_app = typer.Typer(help="Feedback captured by the server.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export", epilog="Example: domainfit feedback export --db sqlite:///feedback.db -o fix.csv")
def feedback_export(output: Path = typer.Option(..., "--output", "-o", help="CSV to write (text,label,...)."),
                    db: str = typer.Option("sqlite:///feedback.db", "--db", help="SQLAlchemy URL."),
                    model: Optional[str] = typer.Option(None, "--model", help="Only this model's feedback."),
                    all_rows: bool = typer.Option(False, "--all", help="Also rows without a corrected label."),
                    spreadsheet_safe: bool = typer.Option(False, "--spreadsheet-safe", help="Put ' before cells a "
                                                          "spreadsheet would run as a formula (=, +, -, @); for "
                                                          "people, not for training.")
                    ) -> None:
    """Write stored feedback as a labelled CSV that domainfit train reads (texts as stored)."""
    from ..stores import FeedbackStore

    count = FeedbackStore(db).export_csv(output, model=model, labelled_only=not all_rows,
                                         spreadsheet_safe=spreadsheet_safe)
    say(f"[green]Wrote[/] {count} feedback rows to {escape(str(output))}")
