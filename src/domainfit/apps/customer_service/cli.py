"""``domainfit app customer-service ...``: this app's commands, registered by the command line
under ``domainfit app``. Parsing and printing only; the work is in the app's modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ...core.ui import escape, print_json, say

__all__ = ["app"]

app = typer.Typer(help="Intelligent customer service: intents, FAQ/document answers, out-of-scope "
                     "fallback with hand-off, chat API and web chat (docs/customer-service.md).",
                     no_args_is_help=True)


@app.command("train", epilog="Example: domainfit app customer-service train recipes/customer_service_banking.yaml "
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
    oos_data: Optional[str] = typer.Option(None, "--oos-data", help="Out-of-scope texts (text column), e.g. "
                                           "messages about other products; trained with --exposure."),
    exposure: Optional[str] = typer.Option(None, "--exposure", help="How out-of-scope examples train the intent "
                                           "model: class (one more intent) [default] | outlier (unsure on them)."),
    max_accuracy_loss: Optional[float] = typer.Option(None, "--max-accuracy-loss", help="Calibrate the fallback to "
                                                      "cost at most this in-scope accuracy on validation [0.01]."),
    fallback_rate: Optional[float] = typer.Option(None, "--fallback-rate", help="Instead, hand off at most this "
                                                  "share of the validation texts."),
    method: Optional[str] = typer.Option(None, "--method", help="Intent model's method (default full)."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the packaged one)."),
    set_: list[str] = typer.Option([], "--set", help="A training setting for the intent model, e.g. "
                                   "training.epochs=3 (repeatable)."),
    client_slot: list[str] = typer.Option([], "--client-slot", help="A slot a chat request's context may set, "
                                          "e.g. card_type (repeatable; default none)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle."),
) -> None:
    """Build a customer-service bundle: intent model, calibrated out-of-scope thresholds, retrieval index."""
    from ...modeling.base_models import quiet_transformers
    from .bundle import train_bundle
    from .recipe import recipe_from_options

    r = recipe_from_options(recipe, intents=intents, answers=answers, faq=faq, docs=docs, oos_label=oos_label,
                            method=method, model=model, overrides=list(set_), client_slots=list(client_slot),
                            oos_data=oos_data, exposure=exposure, max_accuracy_loss=max_accuracy_loss,
                            fallback_rate=fallback_rate)
    quiet_transformers()
    train_bundle(r, output, overwrite=overwrite)


@app.command("evaluate", epilog="Example: domainfit app customer-service evaluate cs-bundle --data test.csv "
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
    from ...modeling.base_models import quiet_transformers
    from .evaluate import evaluate_bundle

    quiet_transformers()
    metrics = evaluate_bundle(bundle, data, oos_label=oos_label, text_column=text_column, label_column=label_column,
                              plot=plot)
    if as_json:
        print_json(metrics)
        return
    for key in ("in_scope_accuracy", "no_fallback_accuracy", "oos_recall", "oos_precision", "auroc"):
        if metrics.get(key) is not None:
            say(f"{key:22s} {metrics[key]:.4f}")
    say(f"routes: {metrics['routes']}")


@app.command("ask", epilog='Example: domainfit app customer-service ask cs-bundle "my card has not arrived"')
def cs_ask(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    message: str = typer.Argument(..., help="The customer's message."),
    generate: bool = typer.Option(False, "--generate", help="Compose FAQ/document answers with the generative model."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON."),
) -> None:
    """Answer one message (no conversation log)."""
    from ...modeling.base_models import quiet_transformers
    from .assistant import Assistant

    quiet_transformers()
    result = Assistant(bundle, generation=generate or None).answer(message)
    if as_json:
        print_json(result, default=float)
        return
    sys.stdout.write(result["answer"] + "\n")
    sources = [s for s in result["sources"] if s["kind"] != "intent"]
    say(f"route: {result['route']}" + (f" · intent: {escape(result['intent'])}" if result["intent"] else "")
        + (f" · sources: {escape('; '.join(s.get('source') or s['id'] for s in sources))}" if sources else ""))


@app.command("serve", epilog="Example: domainfit app customer-service serve cs-bundle --port 8000 "
                "(then open http://127.0.0.1:8000/chat)")
def cs_serve(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port."),
    db: str = typer.Option("sqlite:///conversations.db", "--db", help="Conversation log and feedback (/v1/feedback): "
                           "a SQLAlchemy URL."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key for admin endpoints (or DOMAINFIT_API_KEY)."),
    require_key: bool = typer.Option(False, "--require-key", help="Require the key for chat too."),
    generate: bool = typer.Option(False, "--generate", help="Compose FAQ/document answers with the generative model."),
    max_batch: int = typer.Option(64, "--max-batch", help="Micro-batching: messages per model call."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="Micro-batching: longest wait for a batch."),
    max_chars: int = typer.Option(10_000, "--max-chars", help="Characters per message."),
    max_queue: Optional[int] = typer.Option(None, "--max-queue", help="Messages that may wait; beyond, 503 with "
                                            "Retry-After at once (default: 8 x --max-batch)."),
    request_timeout: float = typer.Option(60.0, "--request-timeout", help="Seconds a message may wait for its "
                                          "answer (504 after)."),
    max_connections: int = typer.Option(1000, "--max-connections", help="Open connections and requests at once; "
                                        "beyond, 503."),
    allow_origin: Optional[list[str]] = typer.Option(None, "--allow-origin", help="A web origin whose pages may "
                                                     "call the chat API (repeat for more); /chat on this server "
                                                     "always may."),
) -> None:
    """Serve the chat API (POST /v1/chat), the web chat page (/chat) and the intent model."""
    from ...modeling.base_models import quiet_transformers
    from ...serving import ServeSettings, run_app
    from .server import create_chat_app

    quiet_transformers()
    settings = ServeSettings(api_key=api_key, require_key=require_key, max_batch=max_batch, max_wait_ms=max_wait_ms,
                             max_chars=max_chars, db_url=db, max_queue=max_queue, request_timeout=request_timeout,
                             max_connections=max_connections, allowed_origins=tuple(allow_origin or ()))
    run_app(create_chat_app(bundle, settings, db_url=db, generation=generate or None), host=host, port=port)
