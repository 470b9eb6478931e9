"""API keys: where a request carries one, and whether it is the server's.

Used by the routers' dependencies (which also declare the schemes in the OpenAPI schema) and
by the guard, which checks the key before it reads a body when every endpoint needs one."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi.security import APIKeyHeader, HTTPBearer

from .errors import ApiError

__all__ = ["presented_key", "key_error", "BEARER", "API_KEY_HEADER"]

BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request sent (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``;
    header names in lower case), or None."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key")


def key_error(key: str | None, expected: str | None) -> ApiError | None:
    """What is wrong with ``key`` (401 none sent, 403 wrong or admin disabled), or None."""
    if not expected:
        return ApiError(403, "admin_disabled", "admin endpoints are disabled: start the server with --api-key "
                        "or DOMAINFIT_API_KEY")
    if key is None:
        return ApiError(401, "missing_key", "this endpoint needs an API key: send 'Authorization: Bearer KEY' "
                        "or 'X-API-Key: KEY'")
    if not hmac.compare_digest(key.encode("utf-8", "replace"), expected.encode()):
        return ApiError(403, "wrong_key", "the API key is not valid")
    return None
