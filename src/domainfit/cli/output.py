"""What the command line prints, and the library noise it silences."""

from __future__ import annotations

from ..core.ui import escape, print_json, say

__all__ = ["quiet_libraries", "print_headline", "print_json", "print_table", "say", "escape"]

HEADLINE_KEYS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "subset_accuracy", "precision", "recall", "f1",
                 "token_accuracy", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "mae", "rmse", "r2",
                 "spearman", "roc_auc", "ece", "n")


def quiet_libraries() -> None:
    """Silence transformers for a command that loads models (called by the command, so that
    ``--help`` never imports it)."""
    from ..modeling.base_models import quiet_transformers

    quiet_transformers()


def print_headline(metrics: dict) -> None:
    """The main numbers of a metrics dict on one line."""
    keys = [k for k in HEADLINE_KEYS if metrics.get(k) is not None]
    say("  ".join(f"{k} [bold]{metrics[k]:.4f}[/]" if isinstance(metrics[k], float) else f"{k} {metrics[k]}"
                  for k in keys))


def print_table(title: str, header: list[str], rows: list[list[str]], *, markup: bool = False) -> None:
    """A table on stdout (it is the data; messages go to stderr). Cells are plain text, or
    rich markup with ``markup`` (the caller escapes what it did not write)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(cell if markup else Text(str(cell)) for cell in row))
    Console(highlight=False).print(table)
