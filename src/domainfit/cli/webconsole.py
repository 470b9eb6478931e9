"""``domainfit console``: the web console."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .output import escape, say

__all__ = ["app"]

app = typer.Typer()


@app.command("console", epilog="Example: domainfit console --root work (then open http://127.0.0.1:8080)\n\n"
             "domainfit console --root /srv/domainfit --host 0.0.0.0 --port 8080 --api-key $KEY")
def console(
    root: Path = typer.Option(Path("."), "--root", help="The folder the console works in: uploads go to data/, "
                              "models to runs/, the registry to registry/ (created if missing)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but this machine needs "
                             "--api-key."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key (password) to sign in with and for the API "
                                          "[env DOMAINFIT_API_KEY]."),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", help="The largest file a page may upload, in MB."),
    log_level: str = typer.Option("info", "--log-level", help="debug | info | warning | error."),
) -> None:
    """A web console for the whole path without a terminal: upload and check data, train with live progress,
    read reports, compare runs, export, promote, and label what the model is unsure of."""
    from ..console import ConsoleSettings, run_console

    settings = ConsoleSettings(root=root, host=host, port=port, api_key=api_key, max_upload_mb=max_upload_mb).check()
    say(f"domainfit console on [bold]http://{escape(host)}:{port}/[/] (folder {escape(str(Path(root).resolve()))})")
    run_console(settings, log_level=log_level)
