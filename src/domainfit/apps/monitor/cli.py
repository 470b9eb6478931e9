"""``domainfit app monitor ...``: this app's commands, registered by the command line under
``domainfit app``. Parsing and printing only; the work is in the app's modules."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...core.ui import escape, print_json, say

__all__ = ["app"]

app = typer.Typer(help="Financial sentiment and public-opinion monitoring: entities, de-duplicated streams, "
                       "windowed aggregates, alerts, dashboard (docs/monitoring.md).", no_args_is_help=True)

DB_HELP = "Where documents and alerts are stored: a SQLAlchemy URL."


@app.command("train", epilog="Example: domainfit app monitor train recipes/finance_monitoring.yaml --output "
                             "finance-monitor\n\nExample: domainfit app monitor train --sentiment-data sentences.csv "
                             "--entities companies.csv --output finance-monitor")
def monitor_train(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (see docs/monitoring.md)."),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle folder to write."),
    sentiment_data: Optional[str] = typer.Option(None, "--sentiment-data", help="Without a recipe: labelled "
                                                 "sentences (text,label with positive|negative|neutral)."),
    entities: Optional[str] = typer.Option(None, "--entities", help="Without a recipe: the entities file "
                                           "(id,name,aliases,ticker; aliases separated by |)."),
    topics_data: Optional[str] = typer.Option(None, "--topics-data", help="Labelled texts (text,label) for an "
                                              "optional topic classifier."),
    rules: Optional[str] = typer.Option(None, "--rules", help="Alert rules YAML the bundle carries (default: the "
                                        "built-in surge rules)."),
    method: Optional[str] = typer.Option(None, "--method", help="Sentiment model's method (default full)."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the packaged one)."),
    set_: list[str] = typer.Option([], "--set", help="A training setting for the sentiment model, e.g. "
                                   "training.epochs=3 (repeatable)."),
    int8: Optional[bool] = typer.Option(None, "--int8/--no-int8", help="Score the stream with an int8 ONNX copy "
                                        "[default: on]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle."),
) -> None:
    """Build a monitoring bundle: sentiment model (+ int8 copy), entity linker, calibration, alert rules."""
    from ...modeling.base_models import quiet_transformers
    from .bundle import train_bundle
    from .recipe import recipe_from_options

    r = recipe_from_options(recipe, sentiment_data=sentiment_data, entities=entities, topics_data=topics_data,
                            rules=rules, method=method, model=model, overrides=list(set_), int8=int8)
    quiet_transformers()
    train_bundle(r, output, overwrite=overwrite)


@app.command("ingest", epilog="Example: domainfit app monitor ingest finance-monitor --source news.jsonl --db "
                              "sqlite:///monitor.db --replay\n\nExample: tail -f feed.jsonl | domainfit app monitor "
                              "ingest finance-monitor --source -")
def monitor_ingest(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    source: str = typer.Option(..., "--source", help="A CSV/JSONL file (id,time,text[,source,url]), a folder "
                               "(watched for new files), or - for standard input."),
    db: str = typer.Option("sqlite:///monitor.db", "--db", help=DB_HELP),
    rules: Optional[Path] = typer.Option(None, "--rules", help="Alert rules YAML (default: the bundle's)."),
    replay: bool = typer.Option(False, "--replay", help="Backfill history: judge alerts by the documents' own "
                                "times (found alerts are stored, not sent)."),
    once: bool = typer.Option(False, "--once", help="A folder: read the files there now and stop (no watching)."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between looks at a watched folder."),
    batch_size: int = typer.Option(256, "--batch-size", help="Documents per transaction."),
    max_chars: int = typer.Option(20_000, "--max-chars", help="Longer texts are skipped (written to --skipped)."),
    skipped: Path = typer.Option(Path("skipped_rows.csv"), "--skipped", help="Where rows that could not be "
                                 "ingested are written, with the reason."),
    no_explain: bool = typer.Option(False, "--no-explain", help="Do not add word explanations to alert documents."),
    as_json: bool = typer.Option(False, "--json", help="Print the totals as JSON."),
) -> None:
    """Score, link, de-duplicate and store documents; judge the alert rules as windows close."""
    from ...modeling.base_models import quiet_transformers
    from .ingest import run_ingest, source_for
    from .monitor import Monitor

    quiet_transformers()
    monitor = Monitor(bundle, db, rules=rules, explain=not no_explain, batch_size=min(batch_size, 128))
    try:
        src = source_for(source, monitor.store, batch_size=batch_size, max_chars=max_chars, watch=not once,
                         interval=interval)
        try:
            totals = run_ingest(monitor, src, replay=replay, skipped_path=skipped)
        except KeyboardInterrupt:
            say("Stopped; every batch acknowledged so far is stored.")
            raise typer.Exit(130) from None
    finally:
        monitor.close()
    if as_json:
        print_json(totals)
        return
    say(f"{totals['received']:,} documents: {totals['stored']:,} stored, {totals['repeated']:,} already there, "
        f"{totals['skipped']:,} skipped{f' (see {escape(str(skipped))})' if totals['skipped'] else ''}; "
        f"{totals['alerts']} alert(s); {totals['seconds']} s.")


@app.command("alerts", epilog="Example: domainfit app monitor alerts finance-monitor --db sqlite:///monitor.db "
                              "--since 2026-03-01 --json")
def monitor_alerts(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    db: str = typer.Option("sqlite:///monitor.db", "--db", help=DB_HELP),
    since: Optional[str] = typer.Option(None, "--since", help="2026-03-01, 2026-03-01T08:00, or back from now "
                                        "(7d, 12h)."),
    entity: Optional[str] = typer.Option(None, "--entity", help="Only this entity's alerts."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List the stored alerts (oldest first)."""
    from ...stores.predictions import parse_since
    from .bundle import read_bundle
    from .store import MonitorStore

    read_bundle(bundle)
    moment = parse_since(since)
    store = MonitorStore(db)
    try:
        alerts = store.alerts(since=int(moment.timestamp()) if moment else None, entity=entity, limit=100_000)
    finally:
        store.close()
    if as_json:
        for a in alerts:
            print_json(a, indent=None)
        return
    if not alerts:
        say("No alerts.")
    for a in alerts:
        value = "-" if a.get("value") is None else f"{a['value']:.3f}"
        say(f"{a['time']}  {a['state']:9s} {escape(a['rule'])} · {escape(a['entity_name'])} · {a['metric']} {value}"
            f" · {len(a.get('documents', []))} document(s)")


@app.command("aggregates", epilog="Example: domainfit app monitor aggregates finance-monitor --db "
                                  "sqlite:///monitor.db --window 1d --entity nokia --csv nokia.csv")
def monitor_aggregates(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    db: str = typer.Option("sqlite:///monitor.db", "--db", help=DB_HELP),
    window: str = typer.Option("1h", "--window", help="15m, 1h, 1d, ..."),
    by: str = typer.Option("entity", "--by", help="entity, topic, source or all."),
    entity: Optional[str] = typer.Option(None, "--entity", help="Only this key (an entity id, topic or source)."),
    since: Optional[str] = typer.Option(None, "--since", help="Start (default: the first stored document)."),
    until: Optional[str] = typer.Option(None, "--until", help="End (default: after the newest document)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write the table as CSV here."),
) -> None:
    """Per key and window: volume, unique volume, reprints, mean sentiment, negative share, buzz."""
    from .bundle import read_bundle
    from .views import aggregates_table

    read_bundle(bundle)
    frame = aggregates_table(db, window=window, by=by, key=entity, since=since, until=until)
    if csv_path is not None:
        frame.to_csv(csv_path, index=False)
        say(f"[green]Saved[/] {escape(str(csv_path))} ({len(frame)} rows).")
        return
    typer.echo(frame.to_csv(index=False), nl=False)


@app.command("evaluate", epilog="Example: domainfit app monitor evaluate finance-monitor --data test.csv --json")
def monitor_evaluate(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    data: str = typer.Option(..., "--data", help="Labelled sentences (text,label: positive|negative|neutral)."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    scorer: str = typer.Option("stream", "--scorer", help="stream (the model ingest uses, int8 where built) or "
                               "model (the trained torch model)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sentiment accuracy and macro-F1 of a bundle on labelled sentences."""
    from ...modeling.base_models import quiet_transformers
    from .evaluate import evaluate_bundle

    quiet_transformers()
    metrics = evaluate_bundle(bundle, data, text_column=text_column, label_column=label_column, scorer=scorer)
    if as_json:
        print_json(metrics)
        return
    say(f"accuracy {metrics['accuracy']:.4f} · macro_f1 {metrics['macro_f1']:.4f} · {metrics['rows']} rows "
        f"({metrics['scorer']})")


@app.command("serve", epilog="Example: domainfit app monitor serve finance-monitor --db sqlite:///monitor.db "
                             "--port 8000 (then open http://127.0.0.1:8000/monitor)")
def monitor_serve(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    db: str = typer.Option("sqlite:///monitor.db", "--db", help=DB_HELP),
    rules: Optional[Path] = typer.Option(None, "--rules", help="Alert rules YAML (default: the bundle's)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key for POST /v1/documents and admin endpoints "
                                          "(or DOMAINFIT_API_KEY)."),
    require_key: bool = typer.Option(False, "--require-key", help="Require the key for reading too."),
    max_batch: int = typer.Option(64, "--max-batch", help="Texts per model call."),
    max_chars: int = typer.Option(20_000, "--max-chars", help="Characters per document."),
    max_documents: int = typer.Option(1000, "--max-documents", help="Documents per POST /v1/documents."),
) -> None:
    """Serve POST /v1/documents, the monitoring API and the dashboard (/monitor)."""
    from ...modeling.base_models import quiet_transformers
    from ...serving import ServeSettings, run_app
    from .server import create_monitor_app

    quiet_transformers()
    settings = ServeSettings(api_key=api_key, require_key=require_key, max_batch=max_batch, max_chars=max_chars,
                             db_url=db)
    run_app(create_monitor_app(bundle, settings, db_url=db, rules=rules, max_documents=max_documents),
            host=host, port=port)
