"""Errors that mean "the user asked for something wrong", as opposed to bugs.

The command line turns a :class:`DomainfitError` into a short message and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DomainfitError", "DataError", "Problem", "ModelNotFoundError", "ConfigError", "ManifestError",
           "RequestError", "RegistryError", "RegistryConflict"]


class DomainfitError(Exception):
    """A mistake in the user's input, configuration or environment (exit code 2)."""


class ConfigError(DomainfitError):
    """An invalid configuration value or override."""


class ModelNotFoundError(DomainfitError):
    """A base model could not be resolved (offline, not installed, or a bad path)."""


class ManifestError(DomainfitError):
    """A model folder's ``domainfit.json`` is missing, unreadable or has a bad field, or a
    file it names is missing, damaged or outside the folder."""


class RegistryError(DomainfitError):
    """A registry entry that cannot be read (a corrupt ``registry.json``) or a name it does
    not hold. ``status`` and ``code`` say how a server answers it (404 ``unknown_model``, or
    409 ``corrupt_registry``)."""

    def __init__(self, message: str, code: str = "corrupt_registry", status: int = 409):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class RegistryConflict(RegistryError):
    """A registry change refused because it would serve a version that does not load (code
    ``broken_version``, HTTP 409); ``registry.json`` is left as it was."""

    def __init__(self, message: str, code: str = "broken_version", status: int = 409):
        super().__init__(message, code, status)


class RequestError(DomainfitError):
    """A prediction request that cannot be answered as sent.

    Raised by the task that reads the request (see ``Task.request_items``), so that every
    front end (the HTTP server, an app) answers it the same way: ``status`` is the HTTP
    status to answer with (422 for a bad value, 413 for too much, 409 for a model that
    cannot do it) and ``code`` a stable machine-readable name.
    """

    def __init__(self, message: str, code: str = "invalid_request", status: int = 422):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass(frozen=True)
class Problem:
    """One problem found in input data, in the user's terms.

    Attributes:
        file: the file name (or ``"<dataframe>"`` / ``"<records>"`` for in-memory data).
        line: 1-based line number in the file (the header is line 1 for CSV/TSV, so the
            first data row is line 2; JSONL lines count from 1), or the 0-based row index
            for in-memory data; ``None`` for problems about the whole file.
        column: the column concerned, or ``None``.
        reason: a short sentence saying what is wrong.
    """

    file: str
    line: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"


class DataError(DomainfitError):
    """Input data failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem], hint: str | None = None):
        self.problems = list(problems)
        self.hint = hint
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        if more > 0:
            shown += f"\n  ... and {more} more"
        msg = f"{len(self.problems)} problem(s) in the input data:\n{shown}"
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)
