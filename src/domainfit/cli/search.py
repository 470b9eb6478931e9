"""``domainfit index`` and ``domainfit search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .output import escape, print_json, quiet_libraries, say

__all__ = ["app"]

app = typer.Typer()


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
    from ..inference import build_index

    quiet_libraries()
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
    from ..inference import Predictor

    quiet_libraries()
    hits = Predictor(model_dir).search(query, k, rerank=rerank, candidates=candidates)
    if as_json:
        print_json(hits, ensure_ascii=False, default=str)
        return
    for rank, hit in enumerate(hits, start=1):
        text = hit["text"] if len(hit["text"]) <= 120 else hit["text"][:117] + "..."
        say(f"{rank}. [bold]{escape(str(hit['id']))}[/] {hit['score']:.4f}  {escape(text)}")
