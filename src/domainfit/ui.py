"""Console output shared by the library and the command line (stderr, so stdout stays data)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "say", "escape"]

console = Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """Print a status line for the user (rich markup allowed); only the first process of a
    distributed run speaks."""
    if os.environ.get("RANK", "0") == "0":
        console.print(message)
