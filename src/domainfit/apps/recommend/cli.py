"""``domainfit app recommend ...``: this app's commands, registered by the command line under
``domainfit app``. Parsing and printing only; the work is in the app's modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ...core.errors import ConfigError, DataError, Problem
from ...core.ui import escape, print_json, say

__all__ = ["app"]

app = typer.Typer(help="Personalized recommendation from interactions and item text: a hybrid ranking that also "
                       "serves brand-new items (docs/recommendation.md).", no_args_is_help=True)

K_HELP = "How many items (1 to 1000)."


def _ids(value: Optional[str]) -> list[str] | None:
    """Item ids from ``a,b,c`` or from a file of ids (one per line)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [v.strip() for v in value.split(",") if v.strip()]


def _read_users(path: Path) -> list[str]:
    """User ids from a file: one per line, or a CSV with a ``user`` column, or JSONL with ``"user"``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError([Problem(str(path), None, None, f"cannot be read as UTF-8 text ({exc})")]) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError([Problem(str(path), None, None, "has no users")])
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        users = []
        for n, line in enumerate(lines, 1):
            try:
                users.append(str(json.loads(line)["user"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError([Problem(str(path), n, "user", "is not a JSON object with a \"user\"")]) from None
        return users
    if path.suffix.lower() == ".csv":
        import csv
        import io

        rows = list(csv.reader(io.StringIO(text)))
        header = [h.strip() for h in rows[0]]
        for name in ("user", "user_id"):
            if name in header:
                col = header.index(name)
                return [r[col].strip() for r in rows[1:] if len(r) > col and r[col].strip()]
        raise DataError([Problem(str(path), 1, None, "has no user (or user_id) column")])
    return lines


@app.command("train", epilog="Example: domainfit app recommend train recipes/recommend_movies.yaml --output "
                             "movies-rec\n\nExample: domainfit app recommend train --interactions ratings.csv "
                             "--items catalogue.csv --positive-rating 3.5 --output shop-rec")
def recommend_train(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (see docs/recommendation.md)."),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle folder to write."),
    interactions: Optional[str] = typer.Option(None, "--interactions", help="Without a recipe: user,item[,rating]"
                                               "[,time] (CSV, TSV or JSONL)."),
    items: Optional[str] = typer.Option(None, "--items", help="Without a recipe: item,text[,time][,title]."),
    positive_rating: Optional[float] = typer.Option(None, "--positive-rating", help="Ratings at or above it are "
                                                    "likes (default: every interaction is one)."),
    model: Optional[str] = typer.Option(None, "--model", help="Text encoder (default: the packaged one)."),
    skip_unknown_items: bool = typer.Option(False, "--skip-unknown-items", help="Leave out interactions naming "
                                            "items the items file lacks (default: an error listing them)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="The text tower's epochs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle."),
) -> None:
    """Build a recommendation bundle: the components, the hybrid's weights (chosen on validation), the encoder."""
    from ...modeling.base_models import quiet_transformers
    from .bundle import train_bundle
    from .recipe import recipe_from_options

    r = recipe_from_options(recipe, interactions=interactions, items=items, positive_rating=positive_rating,
                            model=model, skip_unknown_items=skip_unknown_items, epochs=epochs)
    quiet_transformers()
    train_bundle(r, output, overwrite=overwrite)


def _show(user: str, recs: list[dict]) -> None:
    from rich.table import Table

    from ...core.ui import console

    table = Table(title=f"Recommended for {escape(user)}", show_lines=False)
    for col in ("#", "item", "title", "score", "because you liked"):
        table.add_column(col)
    for n, r in enumerate(recs, 1):
        because = r["because"]["title"] if r.get("because") else ""
        table.add_row(str(n), escape(r["item"]), escape(r["title"]), f"{r['score']:.3f}", escape(because))
    console.print(table)


@app.command("recommend", epilog="Example: domainfit app recommend recommend movies-rec --user 1 -k 10\n\n"
                                 "Example: domainfit app recommend recommend movies-rec --users users.txt -k 10 "
                                 "--output recs.jsonl\n\nExample: domainfit app recommend recommend movies-rec "
                                 "--history 1,260 --text \"space adventure\" --json")
def recommend_recommend(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    user: Optional[str] = typer.Option(None, "--user", help="A user of the training data."),
    users: Optional[Path] = typer.Option(None, "--users", help="A file of users (one per line, or CSV/JSONL with "
                                         "a user column): one JSON line each to --output."),
    history: Optional[str] = typer.Option(None, "--history", help="A new user: items they liked (a,b,c or a file, "
                                          "oldest first)."),
    text: Optional[str] = typer.Option(None, "--text", help="A new user: a short text of interests."),
    k: int = typer.Option(10, "-k", "--k", help=K_HELP),
    include: Optional[str] = typer.Option(None, "--include", help="Only these items (a,b,c or a file)."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Never these items (a,b,c or a file)."),
    keep_seen: bool = typer.Option(False, "--keep-seen", help="Also recommend items the user already has."),
    output: Optional[Path] = typer.Option(None, "--output", help="With --users: the JSONL file to write."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recommend items for a user, a batch of users, or a new user's few items or text of interests."""
    from ...core.io import atomic_file
    from ...modeling.base_models import quiet_transformers
    from .bundle import load_recommender
    from .model import check_k

    chosen = sum(x is not None for x in (user, users)) + (history is not None or text is not None)
    if chosen != 1:
        raise ConfigError("give one of --user ID, --users FILE, or --history/--text for a new user.")
    if users is not None and output is None:
        raise ConfigError("--users writes JSON lines: give --output FILE.jsonl.")
    check_k(k)
    quiet_transformers()
    rec = load_recommender(bundle)
    filters = {"include": _ids(include), "exclude": _ids(exclude), "exclude_seen": not keep_seen}
    if users is not None:
        ids = _read_users(users)
        unknown = [u for u in ids if not rec.known_user(u)]
        known = [u for u in ids if rec.known_user(u)]
        found: dict[str, list[dict]] = {}
        for start in range(0, len(known), 256):
            batch = known[start:start + 256]
            for u, row in zip(batch, rec.recommend(rec.user_histories(batch), k, **filters)):
                found[u] = row
        with atomic_file(output) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for u in ids:
                line = {"user": u, "items": found[u]} if u in found else {"user": u, "items": [],
                                                                           "error": "unknown user"}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        say(f"[green]Saved[/] {escape(str(output))}: {len(known):,} users × {k} items"
            + (f"; {len(unknown):,} unknown users written with an error (first: {escape(unknown[0])})"
               if unknown else "") + ".")
        return
    if user is not None:
        hist, label = rec.user_histories([user]), user
    else:
        hist, label = rec.session(_ids(history), text), "a new user"
    result = rec.recommend(hist, k, **filters)[0]
    if as_json:
        print_json({"user": user, "items": result}, ensure_ascii=False)
        return
    _show(label, result)


@app.command("similar", epilog="Example: domainfit app recommend similar movies-rec 260 -k 5")
def recommend_similar(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    item: str = typer.Argument(..., help="An item of the catalogue."),
    k: int = typer.Option(10, "-k", "--k", help=K_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Items like an item: the hybrid's ranking for someone who liked it."""
    from ...modeling.base_models import quiet_transformers
    from .bundle import load_recommender
    from .model import check_k

    check_k(k)
    quiet_transformers()
    rec = load_recommender(bundle)
    result = rec.similar(item, k)
    if as_json:
        print_json({"item": item, "items": result}, ensure_ascii=False)
        return
    for n, r in enumerate(result, 1):
        typer.echo(f"{n:>3}  {r['item']}  {r['title']}  ({r['score']:.3f})")


@app.command("add-items", epilog="Example: domainfit app recommend add-items movies-rec --items new_films.csv")
def recommend_add_items(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    items: Path = typer.Option(..., "--items", help="New items: item,text[,time][,title] (the training file's "
                               "column names work too)."),
) -> None:
    """Add items to a bundle's catalogue: embedded now, recommendable at once, no retraining."""
    from ...modeling.base_models import quiet_transformers
    from .bundle import add_items, read_bundle

    quiet_transformers()
    columns = read_bundle(bundle).get("recipe", {}).get("columns", {}).get("items", {})
    header = ""
    if items.is_file():
        with open(items, encoding="utf-8", errors="replace") as f:
            header = f.readline()
    if "item" in [h.strip() for h in header.split(",")] or items.suffix.lower() in (".jsonl", ".ndjson"):
        columns = {}  # the file uses our own names
    added = add_items(bundle, items, columns)
    say(f"[green]Added[/] {added:,} items to {escape(str(bundle))}; they can be recommended now.")


@app.command("evaluate", epilog="Example: domainfit app recommend evaluate movies-rec --data test.csv --json")
def recommend_evaluate(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    data: Path = typer.Option(..., "--data", help="Held-out interactions (same layout as the training file)."),
    k: int = typer.Option(10, "-k", "--k", help="Cut-off of the metrics."),
    positive_rating: Optional[float] = typer.Option(None, "--positive-rating", help="Test rows at or above it "
                                                    "count (default: the bundle's)."),
    skip_unknown_items: bool = typer.Option(False, "--skip-unknown-items", help="Leave out rows naming unknown "
                                            "items."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """recall@k, ndcg@k, mrr@k, coverage@k and cold_recall@k, full ranking, training items excluded."""
    from ...modeling.base_models import quiet_transformers
    from .bundle import load_recommender, read_bundle
    from .evaluate import evaluate_bundle
    from .model import check_k

    check_k(k)
    quiet_transformers()
    recipe = read_bundle(bundle).get("recipe", {})
    rec = load_recommender(bundle)
    threshold = positive_rating if positive_rating is not None else recipe.get("positive_rating")
    metrics = evaluate_bundle(rec, data, recipe.get("columns", {}).get("interactions", {}), k=k,
                              cold_threshold=recipe.get("hybrid", {}).get("cold_threshold", 5),
                              positive_rating=threshold, skip_unknown_items=skip_unknown_items)
    if as_json:
        print_json(metrics)
        return
    say(" · ".join(f"{name} {metrics[name]:.4f}" for name in (f"recall@{k}", f"ndcg@{k}", f"mrr@{k}",
                                                               f"coverage@{k}", f"cold_recall@{k}"))
        + f" · {metrics['users']:,} users, {metrics['cold_pairs']:,} cold pairs"
        + (f" · {metrics['unknown_users']:,} unknown users left out" if metrics["unknown_users"] else ""))


@app.command("serve", epilog="Example: domainfit app recommend serve movies-rec --port 8000 (then GET "
                             "/v1/recommendations?user=1&k=10)")
def recommend_serve(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key for POST /v1/items and admin endpoints "
                                          "(or DOMAINFIT_API_KEY)."),
    require_key: bool = typer.Option(False, "--require-key", help="Require the key for recommendations too."),
    max_items: int = typer.Option(1000, "--max-items", help="Items per POST /v1/items."),
) -> None:
    """Serve GET/POST /v1/recommendations, GET /v1/items/{id}/similar and POST /v1/items."""
    from ...modeling.base_models import quiet_transformers
    from ...serving import ServeSettings, run_app
    from .server import create_recommend_app

    quiet_transformers()
    settings = ServeSettings(api_key=api_key, require_key=require_key)
    run_app(create_recommend_app(bundle, settings, max_items=max_items), host=host, port=port)
