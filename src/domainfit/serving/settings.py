"""Server settings: every limit has a safe default."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.errors import DomainfitError
from ..tasks import RequestLimits

__all__ = ["ServeSettings", "check_db_url"]


@dataclass
class ServeSettings:
    """How a server authenticates, what a request may hold, and how requests are batched.

    Attributes:
        api_key: the key of admin endpoints (and of every endpoint with ``require_key``);
            ``DOMAINFIT_API_KEY`` when not given.
        require_key: predictions need the key too.
        max_body_bytes, max_texts, max_chars: request limits.
        max_batch, max_wait_ms: micro-batching (items per model call, longest wait).
        max_queue: items that may wait for one model; beyond, a request gets 503 with
            ``Retry-After`` at once (default: 8 batches).
        request_timeout: seconds a prediction may wait for its answer (504 after; a client
            may ask for less with the ``X-Request-Timeout`` header, in seconds).
        max_connections: open connections and requests at once; beyond, 503.
        header_timeout, body_timeout: seconds a client may take to send its request's
            headers, and its body; a slower one gets 408 and is disconnected.
        allowed_origins: web origins (``https://shop.example``) whose pages may call the
            API from a browser; other cross-site browser requests are refused (403).
        db_url: the feedback store (a SQLAlchemy URL), checked when the settings are made.
        poll_seconds: how often a registry server looks for promotions.
        form_paths: path prefixes of web pages that post HTML forms (the console): there a
            body may also be a form (``application/x-www-form-urlencoded``,
            ``multipart/form-data``, e.g. a file upload) of up to ``max_form_bytes``, and an
            error a browser asked a page for is an HTML page; the cross-site check holds there too.
        key_paths: path prefixes whose writing requests need the key besides the admin
            endpoints (the console keeps its own pages' sign-in, and puts ``/v1/`` here).
        log_predictions: keep each prediction in the prediction log (same database as the
            feedback): request id, time, model and version, sha256 of the input, top label
            and score. log_sample: the share of predicted items kept. log_texts: keep the
            input texts too. log_retention_days: delete logged predictions older than this.
    """

    api_key: str | None = None
    require_key: bool = False
    max_body_bytes: int = 1 << 20
    max_texts: int = 256
    max_chars: int = 10_000
    max_batch: int = 256
    max_wait_ms: float = 5.0
    max_queue: int | None = None
    request_timeout: float = 60.0
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    allowed_origins: tuple[str, ...] = ()
    db_url: str = "sqlite:///feedback.db"
    poll_seconds: float = 1.0
    form_paths: tuple[str, ...] = ()
    max_form_bytes: int = 1 << 20
    key_paths: tuple[str, ...] = ()
    log_predictions: bool = False
    log_sample: float = 1.0
    log_texts: bool = False
    log_retention_days: float | None = None

    def __post_init__(self):
        if self.api_key is None:
            self.api_key = os.environ.get("DOMAINFIT_API_KEY") or None
        if self.require_key and not self.api_key:
            raise DomainfitError("--require-key needs an API key: pass --api-key or set DOMAINFIT_API_KEY.")
        if self.max_queue is None:
            self.max_queue = 8 * self.max_batch
        for name in ("max_body_bytes", "max_texts", "max_chars", "max_batch", "max_queue", "max_connections",
                     "max_form_bytes"):
            if getattr(self, name) < 1:
                raise DomainfitError(f"{name} must be at least 1.")
        for name in ("request_timeout", "header_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise DomainfitError(f"{name} must be more than 0 seconds.")
        if not 0 < self.log_sample <= 1:
            raise DomainfitError(f"--log-sample must be more than 0 and at most 1 (a share of predictions), "
                                 f"not {self.log_sample}.")
        if self.log_retention_days is not None and not self.log_retention_days > 0:
            raise DomainfitError(f"--log-retention-days must be more than 0, not {self.log_retention_days}.")
        if (self.log_texts or self.log_sample != 1 or self.log_retention_days is not None) and not self.log_predictions:
            raise DomainfitError("--log-sample, --log-texts and --log-retention-days shape the prediction log: "
                                 "add --log-predictions.")
        self.allowed_origins = tuple(o.rstrip("/").lower() for o in self.allowed_origins)
        check_db_url(self.db_url)

    @property
    def limits(self) -> RequestLimits:
        """What one prediction request may hold (checked by the model's task)."""
        return RequestLimits(max_texts=self.max_texts, max_chars=self.max_chars)


def check_db_url(url: str) -> None:
    """Fail now, with a clear message, on a database URL that cannot work: one SQLAlchemy
    cannot parse, a driver that is not installed, or a SQLite file in a folder that does not
    exist (nothing is created here)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = sa.engine.make_url(url)
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise DomainfitError(f"--db {url!r} is not a usable SQLAlchemy URL ({exc}); e.g. sqlite:///feedback.db "
                             "or postgresql+psycopg://user@host/db") from None
    except ImportError as exc:
        raise DomainfitError(f"--db {url!r} needs a database driver that is not installed: {exc}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(parsed.database))
        if not os.path.isdir(folder):
            raise DomainfitError(f"--db {url!r}: the folder {folder} does not exist")
