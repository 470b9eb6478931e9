"""The web console: from an uploaded file to a deployed, improving model without a terminal.

Server-rendered pages (Jinja2) and a small script of our own, on the model server of
:mod:`domainfit.serving`; long work runs as ``domainfit`` commands in separate processes,
recorded in SQLite (:mod:`.jobs`). Parts: ``workspace`` (the root folder), ``datasets``
(uploads, validation reports), ``training`` (the train form), ``jobs`` (the runner),
``service`` (what the pages and the API do), ``security`` (sign-in, CSRF), ``pages``,
``api``, ``app``.
"""

from __future__ import annotations

from .app import ConsoleSettings, create_console_app, run_console

__all__ = ["ConsoleSettings", "create_console_app", "run_console"]
