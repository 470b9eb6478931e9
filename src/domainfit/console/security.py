"""Who may use the console, and which forms it accepts.

* **Key.** With a key (``--api-key``, required when the console listens beyond this
  machine), a browser signs in once on ``/console/login`` and gets an HTTP-only cookie
  holding an HMAC of the key (never the key); scripts send the key as the model server's
  API does (``Authorization: Bearer KEY`` or ``X-API-Key``). Without a key (bound to
  127.0.0.1 only) the console is open to this machine's users.
* **CSRF.** Every form carries a token, an HMAC of the browser's session cookie; a form post
  without the right token gets 403. Together with the server's cross-site check (``Origin``
  / ``Sec-Fetch-Site``) a page on another site can neither read nor forge a console form.
  JSON requests need no token (a browser cannot send JSON cross-site without CORS, which
  this server never grants); a request signed with the key needs none either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from ..serving.auth import presented_key
from .workspace import ConsoleError

__all__ = ["Security", "SESSION_COOKIE", "AUTH_COOKIE"]

SESSION_COOKIE = "domainfit_session"
AUTH_COOKIE = "domainfit_console"


class Security:
    def __init__(self, secret: bytes, api_key: str | None):
        self.secret, self.api_key = secret, api_key

    def _sign(self, what: str) -> str:
        return hmac.new(self.secret, what.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    # --- sign-in -----------------------------------------------------------------------
    def auth_cookie(self) -> str:
        return self._sign("signed-in:" + (self.api_key or ""))

    def check_key(self, given: str) -> bool:
        return bool(self.api_key) and hmac.compare_digest(given.encode("utf-8", "replace"), self.api_key.encode())

    def signed_in(self, request: Request) -> bool:
        """True without a key, with the sign-in cookie, or with the key in a header."""
        if not self.api_key:
            return True
        cookie = request.cookies.get(AUTH_COOKIE, "")
        if cookie and hmac.compare_digest(cookie, self.auth_cookie()):
            return True
        key = presented_key(request.headers)
        return key is not None and self.check_key(key)

    def key_in_header(self, request: Request) -> bool:
        key = presented_key(request.headers)
        return key is not None and self.check_key(key)

    # --- forms -------------------------------------------------------------------------
    @staticmethod
    def session(request: Request) -> tuple[str, bool]:
        """The browser's session id, and whether it is new (then the answer sets the cookie)."""
        current = request.cookies.get(SESSION_COOKIE, "")
        if len(current) == 32 and all(c in "0123456789abcdef" for c in current):
            return current, False
        return secrets.token_hex(16), True

    def csrf_token(self, session: str) -> str:
        return self._sign("csrf:" + session)

    def check_csrf(self, request: Request, given: str | None) -> None:
        """Raises ConsoleError 403 unless ``given`` (or the ``X-CSRF-Token`` header) is this
        browser's token, or the request carries the key."""
        if self.key_in_header(request):
            return
        given = given or request.headers.get("x-csrf-token") or ""
        session = request.cookies.get(SESSION_COOKIE, "")
        if not session or not given or not hmac.compare_digest(given, self.csrf_token(session)):
            raise ConsoleError("the form's security token is missing or wrong (a form from another page, or an "
                               "old tab): reload the page and send it again.", 403, "csrf")
