"""``domainfit runs compare`` and ``domainfit runs list``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .output import escape, print_json, print_table, say

__all__ = ["app"]

app = typer.Typer()
runs_app = typer.Typer(help="Compare trained models side by side, and list the model folders under a folder.",
                       no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("compare", epilog="Example: domainfit runs compare runs/full runs/lora --output compare.html\n\n"
                  "domainfit runs compare runs/full runs/lora\n\ndomainfit runs compare runs/* --json")
def compare(
    folders: list[Path] = typer.Argument(..., metavar="DIR...", help="Model folders."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the comparison with its learning "
                                          "curves: .html (one file, the curves inline) or .md (the curves as a "
                                          "PNG beside it). Without it: tables on the terminal."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs, the settings that differ and the final "
                                 "metrics as one JSON object on stdout."),
) -> None:
    """The settings that differ between models, their final metrics side by side (the best
    highlighted), and their learning curves overlaid."""
    from ..artifact.runs import compare_runs
    from ..evaluation.runs import format_value, write_comparison

    comparison = compare_runs(folders)
    if output is not None:
        write_comparison(comparison, output)
        say(f"[green]Wrote[/] {escape(str(output))}")
    if as_json:
        print_json(comparison.as_dict(), default=str)
    if output is not None or as_json:
        return
    names = [r.name for r in comparison.runs]
    print_table("Runs", ["run", "folder", "task", "method", "base model", "created (UTC)", "final metrics on"],
                [[r.name, r.path, r.task, r.method, r.base_model, r.date, format_value(r.scored_data)]
                 for r in comparison.runs])
    if comparison.differences:
        print_table("Settings that differ", ["setting", *names],
                    [[row.name, *row.cells()] for row in comparison.differences])
    else:
        say("All settings are the same.")
    print_table("Final metrics (best in bold)", ["metric", *names],
                [[escape(row.name), *(f"[bold]{escape(cell)}[/]" if i in row.best else escape(cell)
                                      for i, cell in enumerate(row.cells()))] for row in comparison.results],
                markup=True)
    for note in comparison.notes:
        say(f"[yellow]note:[/] {escape(note)}")
    say("Learning curves: pass --output compare.html (or .md).")


@runs_app.command("list", epilog="Example: domainfit runs list models/\n\ndomainfit runs list models/ --json")
def list_(
    root: Path = typer.Argument(..., metavar="ROOT", help="Folder to search (with its subfolders)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list on stdout."),
) -> None:
    """The model folders at and under ROOT: task, method, base model, primary metric and its
    value, and when each was made (oldest first)."""
    from ..artifact.runs import list_runs
    from ..evaluation.runs import format_value

    runs = list_runs(root)
    if as_json:
        print_json([r.as_row() for r in runs])
        return
    if not runs:
        say(f"No model folders under {escape(str(root))}.")
        return
    print_table(f"{len(runs)} model folder(s) under {root}", ["model", "task", "method", "base model", "metric",
                                                             "value", "on", "created (UTC)"],
                [[r.name, r.task, r.method, r.base_model, r.primary_metric or "—",
                  format_value(r.primary_value, metric=True), r.scored_on or "—", r.date] for r in runs])
