"""Console output shared by the library and the command line (stderr, so stdout stays data)."""

from __future__ import annotations

import json
import os
import sys

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "say", "escape", "track", "print_json"]

console = Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """Print a status line for the user (rich markup allowed); only the first process of a
    distributed run speaks."""
    if os.environ.get("RANK", "0") == "0":
        console.print(message)


def track(items, description: str, total: int | None = None, min_items: int = 50):
    """Iterate ``items`` with a rich progress bar on stderr (only for long loops, only on the
    first process)."""
    total = total if total is not None else len(items)
    if total < min_items or os.environ.get("RANK", "0") != "0":
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, console=console, transient=True)


def print_json(value, **kwargs) -> None:
    """One JSON document on stdout (status lines go to stderr)."""
    sys.stdout.write(json.dumps(value, **kwargs) + "\n")
