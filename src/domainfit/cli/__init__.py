"""The command line: parses, calls the library, prints. No logic of its own.

Each area is a module here (``train``, ``evaluate``, ``search``, ``deploy``) whose commands
are merged into :data:`app`; each app brings its own sub-command group, which ``cli.apps``
mounts under ``domainfit app``.
Importing this package imports typer and rich only (``domainfit --help`` answers without
loading torch); a command imports the library when it runs.

A user mistake (a :class:`DomainfitError`) exits with code 2 and a short message; pass
``--debug`` to see the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from ..core.errors import DomainfitError
from ..core.ui import console, escape, print_json
from . import deploy, evaluate, improve, runs, search, train, webconsole
from .apps import apps_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="domainfit",
    help="Turn a pretrained language model into a domain-specific model: train, evaluate, predict, search, "
    "export and serve it, compare runs (runs compare, runs list), keep it improving from its own use (drift, "
    "audit, select, retrain, gate, improve), build apps on it (app customer-service, monitor, recommend), or do "
    "it all in a browser (console).\n\n"
    "Example: domainfit train --data train.csv --eval-data test.csv --output my-model",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_DEBUG = {"on": False}


def _print_version(value: bool) -> None:
    if value:
        version(as_json=False)
        raise typer.Exit()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
          show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                            help="Print the versions and CPU features (as `domainfit version`).")
          ) -> None:
    # Only ever switch on: main() takes --debug out of argv first, so here it reads False.
    if debug:
        _DEBUG["on"] = True


@app.command(epilog="Example: domainfit version --json")
def version(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The versions of domainfit, Python and the libraries it runs on, and the CPU features
    that decide its speed (bf16, VNNI, AVX2): paste this into a bug report."""
    from ..core.environment import SPEED_FEATURES, environment, native_bf16

    env = environment()
    if as_json:
        print_json(env)
        return
    features = env["instruction_sets"]
    shown = "unknown" if features is None else "  ".join(
        f"{f}:{'yes' if f in features else 'no'}" for f in SPEED_FEATURES)
    bf16 = native_bf16(features)
    off = os.environ.get("DOMAINFIT_NO_BF16", "") not in ("", "0")
    for line in (f"domainfit {env['domainfit']}", f"python {env['python']} on {env['platform']}",
                 "  ".join(f"{k} {env[k] or '(not installed)'}" for k in ("torch", "transformers", "onnxruntime",
                                                                         "peft")),
                 f"cpu {env['cpu_model'] or 'unknown'} ({env['cpu_count']} cores)  {shown}",
                 f"--precision auto trains in {'bf16' if bf16 and not off else 'fp32'} here"
                 + (" (DOMAINFIT_NO_BF16 is set)" if bf16 and off else "")):
        typer.echo(line)


for _area in (train, evaluate, search, deploy, improve, runs, webconsole):
    app.add_typer(_area.app)
app.add_typer(apps_app, name="app")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``domainfit`` console script."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:  # accepted anywhere on the line, not only before the command
        argv.remove("--debug")
        _DEBUG["on"] = True
    try:
        # Outside standalone mode click returns (not raises) a command's typer.Exit code.
        code = app(args=argv, standalone_mode=False)
    except DomainfitError as exc:
        if _DEBUG["on"]:
            raise
        # escape: file names and values in the message may hold [brackets] that rich would eat
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    except (typer.Exit,) as exc:
        return exc.exit_code
    except typer.Abort:
        console.print("aborted")
        return 130
    except Exception as exc:
        if _is_usage_error(exc):
            exc.show()
            return 2
        raise
    return code if isinstance(code, int) else 0


def _is_usage_error(exc: Exception) -> bool:
    """True for command-line usage errors (unknown option, missing argument, bad value).

    Recent typer vendors click, so its errors are ``typer.TyperException``s rather than
    ``click.ClickException``s; both are accepted.
    """
    kinds: list[type] = [typer.TyperException] if hasattr(typer, "TyperException") else []
    try:
        import click

        kinds.append(click.ClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(kinds)) and hasattr(exc, "show")
