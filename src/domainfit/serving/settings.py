"""Server settings: every limit has a safe default."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.errors import DomainfitError
from ..tasks import RequestLimits

__all__ = ["ServeSettings"]


@dataclass
class ServeSettings:
    """How a server authenticates, what a request may hold, and how requests are batched.

    Attributes:
        api_key: the key of admin endpoints (and of every endpoint with ``require_key``);
            ``DOMAINFIT_API_KEY`` when not given.
        require_key: predictions need the key too.
        max_body_bytes, max_texts, max_chars: request limits.
        max_batch, max_wait_ms: micro-batching (items per model call, longest wait).
        db_url: the feedback store (a SQLAlchemy URL).
        poll_seconds: how often a registry server looks for promotions.
    """

    api_key: str | None = None
    require_key: bool = False
    max_body_bytes: int = 1 << 20
    max_texts: int = 256
    max_chars: int = 10_000
    max_batch: int = 256
    max_wait_ms: float = 5.0
    db_url: str = "sqlite:///feedback.db"
    poll_seconds: float = 1.0

    def __post_init__(self):
        if self.api_key is None:
            self.api_key = os.environ.get("DOMAINFIT_API_KEY") or None
        if self.require_key and not self.api_key:
            raise DomainfitError("--require-key needs an API key: pass --api-key or set DOMAINFIT_API_KEY.")
        for name in ("max_body_bytes", "max_texts", "max_chars", "max_batch"):
            if getattr(self, name) < 1:
                raise DomainfitError(f"{name} must be at least 1.")

    @property
    def limits(self) -> RequestLimits:
        """What one prediction request may hold (checked by the model's task)."""
        return RequestLimits(max_texts=self.max_texts, max_chars=self.max_chars)
