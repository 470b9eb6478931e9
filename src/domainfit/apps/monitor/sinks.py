"""Where alerts go: a log, a JSON-lines file, a webhook or e-mail, and the retry policy that
delivers one alert to one sink.

A sink's ``send`` either delivers the alert or raises :class:`SinkError`, whose
``retryable`` says whether trying again later may help (a timeout, a 5xx) or not (a 400, a
refused recipient). :class:`Delivery` retries the retryable ones with exponential back-off
and always answers ``(delivered, reason)``; the caller keeps an undelivered alert as
pending and offers it again later, so no failure is ever dropped silently.

Sinks are built from a rules file's entries with :func:`sink_from_config`::

    - {type: log}
    - {type: jsonl, path: alerts/alerts.jsonl}          # relative to the rules file
    - {type: webhook, url: "https://hooks.example.com/x", timeout: 5,
       headers_env: {Authorization: WEBHOOK_AUTH}}      # header value read from $WEBHOOK_AUTH
    - {type: email, host: smtp.example.com, port: 587, starttls: true, from: alerts@example.com,
       to: [desk@example.com], username: alerts, password_env: SMTP_PASSWORD}

``${NAME}`` and ``${NAME:-default}`` in any string are read from the environment, so that a
rules file need not hold secrets.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Optional, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...core.errors import ConfigError
from ...core.io import to_jsonable

__all__ = ["SinkError", "Sink", "LogSink", "JsonlSink", "WebhookSink", "EmailSink", "Delivery",
           "sink_from_config", "ALERT_LOGGER"]

ALERT_LOGGER = "domainfit.monitor.alerts"
_DOCS_IN_EMAIL = 20  # an alert on a busy entity may carry hundreds; the rest is in the JSON sinks
_TEXT_IN_EMAIL = 200


class SinkError(Exception):
    """A delivery that failed; the message says why, in terms of the sink (never a secret).

    Attributes:
        retryable: whether trying again later may succeed (timeouts, refused connections,
            5xx, 408, 429) or not (a 4xx, a refused recipient, a bad login).
        retry_after: seconds the receiver asked us to wait (HTTP ``Retry-After``), or None.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable, self.retry_after = retryable, retry_after


@runtime_checkable
class Sink(Protocol):
    """Delivers alerts somewhere. ``name`` is stable across restarts (deliveries are stored
    by it) and distinct between the sinks of one monitor."""

    name: str

    def send(self, alert: dict) -> None:
        """Deliver one alert, or raise :class:`SinkError`."""


def _alert_json(alert: dict) -> str:
    """The alert as one line of JSON (NaN as null; dates as ISO 8601)."""
    def other(value: Any) -> str:
        return value.isoformat() if isinstance(value, (_dt.date, _dt.time)) else str(value)
    return json.dumps(to_jsonable(alert), ensure_ascii=False, allow_nan=False, default=other)


def _one_line(value: Any, limit: int = 200) -> str:
    """A value as a single line of at most ``limit`` characters (no header or log injection)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


class LogSink:
    """One line per alert to the ``domainfit.monitor.alerts`` logger: WARNING when firing,
    INFO when recovered; the alert itself rides along as ``record.alert``."""

    def __init__(self, logger: logging.Logger | str = ALERT_LOGGER, *, name: str = "log"):
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.name = name

    def send(self, alert: dict) -> None:
        firing = alert.get("state") != "recovered"
        self.logger.log(logging.WARNING if firing else logging.INFO,
                        "alert %s %s: %s %s=%s (baseline %s, %s window at %s, %s %s, %d document(s)) rule %s",
                        alert.get("id"), "firing" if firing else "recovered",
                        _one_line(alert.get("entity_name") or alert.get("entity")), alert.get("metric"),
                        alert.get("value"), alert.get("baseline"), alert.get("window"), alert.get("window_start"),
                        alert.get("detector"), alert.get("score"), len(alert.get("documents") or ()),
                        _one_line(alert.get("rule")), extra={"alert": alert})


class JsonlSink:
    """Appends each alert as one JSON line to ``path`` (its folder made when missing).

    Each line goes out in one ``write`` to a file opened in append mode, then is fsynced:
    two monitors appending to the same file never interleave within a line, and a line that
    was acknowledged survives a crash.
    """

    def __init__(self, path: str | os.PathLike, *, name: str | None = None):
        self.path = Path(path)
        self.name = name or f"jsonl:{self.path}"

    def send(self, alert: dict) -> None:
        data = (_alert_json(alert) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, data)
                if written < len(data):  # only on a full disk or a signal; finish the line rather than cut it
                    os.write(fd, data[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # A full disk or a folder made read-only may be fixed by an operator: try again later.
            raise SinkError(f"cannot append to {self.path}: {exc.strerror or exc}", retryable=True) from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds()) if when.tzinfo else None


class WebhookSink:
    """POSTs each alert as JSON to ``url``; any 2xx answer means delivered.

    Not retryable: a 3xx (use the URL it points to) and a 4xx other than 408 and 429.
    Retryable: 5xx, 408, 429 (honouring ``Retry-After``), timeouts and connection errors.
    Messages name the URL's scheme and host only: its path and the headers may hold tokens.
    """

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0,
                 name: str | None = None):
        self.url, self.headers, self.timeout = url, dict(headers or {}), timeout
        parts = urlsplit(url)
        self.where = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
        self.name = name or f"webhook:{parts.hostname}#{_short_hash(url)}"

    def send(self, alert: dict) -> None:
        headers = {"Content-Type": "application/json", **self.headers}
        try:
            # A client per alert: alerts are rare, and nothing is left open between them.
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
                response = client.post(self.url, content=_alert_json(alert).encode("utf-8"), headers=headers)
        except httpx.TimeoutException:
            raise SinkError(f"webhook {self.where} timed out (timeout {self.timeout:g} s)", retryable=True) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise SinkError(f"webhook {self.where}: bad URL ({exc})", retryable=False) from None
        except httpx.TransportError as exc:
            raise SinkError(f"webhook {self.where}: cannot connect ({exc or type(exc).__name__})",
                            retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        said = _one_line(response.text, 200)
        message = f"webhook {self.where} answered HTTP {status} {response.reason_phrase}"
        message += f": {said}" if said else ""
        if 300 <= status < 400:
            raise SinkError(f"{message} (redirects to {response.headers.get('location')}; configure that URL)",
                            retryable=False)
        retryable = status >= 500 or status in (408, 429)
        raise SinkError(message, retryable=retryable, retry_after=_retry_after(response) if retryable else None)


class EmailSink:
    """Sends each alert as a plain-text e-mail over SMTP.

    The subject reads ``[domainfit] negative_share surge: Nokia Oyj`` (``drop`` when the value
    is below the baseline) or ``[domainfit] recovered: negative_share for Nokia Oyj``; the body
    lists the metric, value, baseline, window and up to 20 documents (time, sentiment, the
    first 200 characters of the text, URL). The Message-ID is derived from the alert's id and
    state, so a mail delivered twice (after a retry) can be recognised as the same one.

    Retryable: refused connections, timeouts, a dropped connection and SMTP 4xx replies. Not
    retryable: a bad login, refused recipients (unless every refusal is a 4xx) or sender, and
    5xx replies. When only some recipients are refused the mail went to the others and the
    error is not retryable (retrying would send it to them again); its message names both.
    """

    def __init__(self, host: str, port: int = 25, *, sender: str, recipients: list[str],
                 username: str | None = None, password: str | None = None, starttls: bool = False,
                 ssl: bool = False, timeout: float = 10.0, name: str | None = None):
        self.host, self.port, self.sender, self.recipients = host, port, sender, list(recipients)
        self.username, self.password, self.starttls, self.ssl, self.timeout = username, password, starttls, ssl, timeout
        self.name = name or f"email:{_one_line(','.join(self.recipients), 150)}#{_short_hash(host)}"

    def message(self, alert: dict) -> EmailMessage:
        """The e-mail for ``alert`` (headers and plain-text body), as it would be sent."""
        msg = EmailMessage()
        msg["Subject"] = _subject(alert)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = email.utils.formatdate(localtime=False)
        if alert.get("id") is not None:
            left = re.sub(r"[^A-Za-z0-9.-]", "_", f"domainfit-alert-{alert['id']}-{alert.get('state')}")[:100]
            msg["Message-ID"] = f"<{left}@{re.sub(r'[^A-Za-z0-9.-]', '_', self.host)[:100]}>"
        else:
            msg["Message-ID"] = email.utils.make_msgid("domainfit-alert")
        msg.set_content(_body(alert))
        return msg

    def send(self, alert: dict) -> None:
        msg = self.message(alert)
        where = f"SMTP {self.host}:{self.port}"
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise SinkError(f"{where} refused every recipient: {_refusals(exc.recipients)}",
                            retryable=all(400 <= c < 500 for c in codes)) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise SinkError(f"{where} refused the login of {self.username!r}: {_reply(exc)}", retryable=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise SinkError(f"{where} does not support what this mail needs: {exc}", retryable=False) from None
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, HELO refused, ...
            raise SinkError(f"{where} answered {_reply(exc)}", retryable=400 <= exc.smtp_code < 500) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise SinkError(f"{where} closed the connection: {exc}", retryable=True) from None
        except ssl.SSLCertVerificationError as exc:
            raise SinkError(f"{where}: its TLS certificate does not verify ({exc.verify_message})",
                            retryable=False) from None
        except TimeoutError:
            raise SinkError(f"{where} timed out (timeout {self.timeout:g} s)", retryable=True) from None
        except ConnectionRefusedError:
            raise SinkError(f"{where} refused the connection", retryable=True) from None
        except (OSError, smtplib.SMTPException) as exc:  # unreachable host, TLS failure, ...
            raise SinkError(f"{where}: {exc or type(exc).__name__}", retryable=True) from None
        if refused:
            delivered = [r for r in self.recipients if r not in refused]
            raise SinkError(f"{where} delivered to {', '.join(delivered)} but refused {_refusals(refused)}",
                            retryable=False)

    def _connect(self) -> smtplib.SMTP:
        if self.ssl:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    said = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {_one_line(said)}"


def _refusals(refused: dict) -> str:
    return "; ".join(f"{who} ({code} {_one_line(said.decode('utf-8', 'replace') if isinstance(said, bytes) else said)})"
                     for who, (code, said) in refused.items())


def _subject(alert: dict) -> str:
    who = _one_line(alert.get("entity_name") or alert.get("entity") or "?", 120)
    metric = _one_line(alert.get("metric") or "alert", 60)
    if alert.get("state") == "recovered":
        return f"[domainfit] recovered: {metric} for {who}"
    value, baseline = alert.get("value"), alert.get("baseline")
    change = "alert" if value is None or baseline is None else ("surge" if value >= baseline else "drop")
    return f"[domainfit] {metric} {change}: {who}"


def _body(alert: dict) -> str:
    docs = alert.get("documents") or []
    lines = [_subject(alert).removeprefix("[domainfit] "), ""]
    rows = [("entity", f"{alert.get('entity_name')} ({alert.get('entity')})"), ("rule", alert.get("rule")),
            ("state", alert.get("state")), ("metric", alert.get("metric")), ("value", alert.get("value")),
            ("baseline", alert.get("baseline")), ("score", f"{alert.get('score')} ({alert.get('detector')})"),
            ("window", f"{alert.get('window')} from {alert.get('window_start')}"), ("time", alert.get("time")),
            ("alert id", alert.get("id"))]
    lines += [f"{key + ':':<10}{_one_line(value, 300)}" for key, value in rows]
    lines += ["", f"Documents ({len(docs)}):"]
    for doc in docs[:_DOCS_IN_EMAIL]:
        sentiment = doc.get("sentiment")
        shown = f"{sentiment:+.2f}" if isinstance(sentiment, (int, float)) else str(sentiment)
        lines.append(f"- {doc.get('time')}  sentiment {shown}  [{_one_line(doc.get('id'), 100)}]")
        lines.append(f"  {_one_line(doc.get('text') or '', _TEXT_IN_EMAIL)}")
        if doc.get("url"):
            lines.append(f"  {_one_line(doc['url'], 500)}")
    if len(docs) > _DOCS_IN_EMAIL:
        lines.append(f"... and {len(docs) - _DOCS_IN_EMAIL} more")
    return "\n".join(lines) + "\n"


class Delivery:
    """Delivers alerts to one sink, retrying the retryable failures with back-off.

    Args:
        sink: where to deliver.
        attempts: tries per :meth:`deliver` call (at least 1).
        backoff: the first delay in seconds; each next one doubles, up to ``max_backoff``.
        sleep: how to wait (tests pass one that records the delays).

    ``deliver`` blocks for the back-off (by default up to about 15 s of sleep plus the
    sink's timeouts): call it from a worker thread, not an event loop.

    Example:
        >>> ok, reason = Delivery(LogSink(), attempts=3).deliver({"id": 1, "state": "firing"})
        >>> ok, reason
        (True, None)
    """

    def __init__(self, sink: Sink, *, attempts: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
                 sleep: Callable[[float], Any] = time.sleep):
        if attempts < 1 or backoff < 0 or max_backoff < 0:
            raise ValueError(f"Delivery needs attempts >= 1 and back-offs >= 0, got attempts={attempts}, "
                             f"backoff={backoff}, max_backoff={max_backoff}")
        self.sink, self.attempts, self.sleep = sink, attempts, sleep
        self.backoff, self.max_backoff = backoff, max_backoff

    @staticmethod
    def next_delay(attempt: int, backoff: float, max_backoff: float) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based): ``backoff * 2**attempt``
        plus up to 10 % jitter (so that sinks failing together do not retry in step), capped
        at ``max_backoff``."""
        delay = backoff * 2.0 ** min(attempt, 60) * (1.0 + 0.1 * random.random())
        return min(delay, max_backoff)

    def deliver(self, alert: dict) -> tuple[bool, str | None]:
        """Send ``alert``, trying again after retryable failures.

        Returns:
            ``(True, None)`` once delivered; ``(False, reason)`` after a failure that is not
            retryable or after the last attempt, ``reason`` naming the sink and the error.
        """
        tried = 0
        while True:
            try:
                self.sink.send(alert)
                return True, None
            except SinkError as exc:
                tried += 1
                if not exc.retryable:
                    return False, f"{self.sink.name}: {exc} (not retryable)"
                if tried >= self.attempts:
                    return False, f"{self.sink.name}: {exc} (gave up after {tried} attempt(s))"
                delay = self.next_delay(tried - 1, self.backoff, self.max_backoff)
                if exc.retry_after is not None:  # the receiver's wish, within our cap
                    delay = min(max(delay, exc.retry_after), self.max_backoff)
                self.sleep(delay)


# --- configuration -------------------------------------------------------------------------------------------

class _SinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Optional[str] = Field(None, min_length=1, max_length=200,
                                description="How deliveries to this sink are stored; default derived from it.")


class LogConfig(_SinkConfig):
    type: Literal["log"]
    logger: str = Field(ALERT_LOGGER, description="The logging.Logger to write to.")


class JsonlConfig(_SinkConfig):
    type: Literal["jsonl"]
    path: str = Field(..., min_length=1, description="The file to append to, relative to the rules file.")


class WebhookConfig(_SinkConfig):
    type: Literal["webhook"]
    url: str = Field(..., description="http(s) URL that receives a POST of the alert as JSON.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    headers_env: dict[str, str] = Field(default_factory=dict,
                                        description="Header name → environment variable holding its value.")
    timeout: float = Field(5.0, gt=0, le=300, description="Seconds to wait for connecting and for the answer.")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"needs an http:// or https:// URL with a host, got {url.split('?')[0]!r}")
        return url


class EmailConfig(_SinkConfig):
    type: Literal["email"]
    host: str = Field(..., min_length=1)
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(..., alias="from", pattern=r"@", description="The From: address.")
    to: list[str] = Field(..., min_length=1, description="Recipients' addresses.")
    username: Optional[str] = None
    password: Optional[str] = None
    password_env: Optional[str] = Field(None, description="Environment variable holding the password.")
    starttls: bool = False
    ssl: bool = False
    timeout: float = Field(10.0, gt=0, le=300)

    @field_validator("to")
    @classmethod
    def _addresses(cls, to: list[str]) -> list[str]:
        bad = [a for a in to if "@" not in a]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(map(repr, bad))}")
        return to

    @model_validator(mode="after")
    def _consistent(self) -> EmailConfig:
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other: ssl (port 465) is TLS from the start, "
                             "starttls (port 587) upgrades a plain connection")
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        if (self.password is not None or self.password_env is not None) and not self.username:
            raise ValueError("a password needs a username")
        return self


_CONFIGS: dict[str, type[_SinkConfig]] = {"log": LogConfig, "jsonl": JsonlConfig, "webhook": WebhookConfig,
                                          "email": EmailConfig}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str) -> Any:
    """``${NAME}`` / ``${NAME:-default}`` replaced from the environment, in every string.
    Unlike ``core.config.expand_env`` a value is never turned into a path: these are URLs,
    tokens and passwords."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{n}]") for n, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        found = os.environ.get(match.group(1))
        if found:
            return found
        if match.group(2) is None:
            raise ConfigError(f"{where}: {match.group(0)} names the environment variable {match.group(1)}, which is "
                              f"not set; set it, or write ${{{match.group(1)}:-default}}.")
        return match.group(2)

    return _VAR.sub(one, value)


def _from_env(variable: str, where: str) -> str:
    found = os.environ.get(variable)
    if not found:
        raise ConfigError(f"{where}: the environment variable {variable} is not set (or empty).")
    return found


def _explain(exc: ValidationError, kind: str, where: str) -> ConfigError:
    model = _CONFIGS[kind]
    lines = []
    for e in exc.errors()[:10]:
        at = ".".join([where, *(str(p) for p in e["loc"])])
        if e["type"] == "extra_forbidden":
            keys = ", ".join(f.alias or n for n, f in model.model_fields.items())
            lines.append(f"{at}: unknown key; the keys of a {kind} sink are {keys}")
        elif e["type"] == "missing":
            lines.append(f"{at}: missing (required)")
        else:
            lines.append(f"{at}: {e['msg'].removeprefix('Value error, ')}")
    return ConfigError("\n".join(lines))


def sink_from_config(cfg: dict, *, base: Path | None = None, where: str = "sink") -> Sink:
    """The sink a rules file's entry describes.

    Args:
        cfg: a mapping with ``type`` (``log``, ``jsonl``, ``webhook`` or ``email``) and that
            type's keys (see the module docstring); ``${NAME}`` in strings is read from the
            environment, ``password_env`` and ``headers_env`` name variables holding secrets.
        base: the folder a relative ``jsonl`` path is relative to (the rules file's folder;
            the working folder when None).
        where: how messages name this entry, e.g. ``"rules.yaml: sinks[2]"``.

    Raises:
        ConfigError: an unknown type, a missing, unknown or bad key, or an unset variable;
            the message names the key.

    Example:
        >>> sink_from_config({"type": "log"}).name
        'log'
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: a sink is a mapping with a type ({', '.join(_CONFIGS)}), got {cfg!r}.")
    kind = cfg.get("type")
    if kind not in _CONFIGS:
        shown = "missing" if kind is None else f"unknown sink type {kind!r}"
        raise ConfigError(f"{where}.type: {shown}; the types are {', '.join(_CONFIGS)}.")
    try:
        c = _CONFIGS[kind].model_validate(_expand(cfg, where))
    except ValidationError as exc:
        raise _explain(exc, kind, where) from None
    if isinstance(c, LogConfig):
        return LogSink(c.logger, name=c.name or "log")
    if isinstance(c, JsonlConfig):
        path = Path(c.path).expanduser()
        return JsonlSink(path if path.is_absolute() else Path(base or Path.cwd()).resolve() / path, name=c.name)
    if isinstance(c, WebhookConfig):
        headers = {**c.headers, **{h: _from_env(v, f"{where}.headers_env.{h}") for h, v in c.headers_env.items()}}
        return WebhookSink(c.url, headers=headers, timeout=c.timeout, name=c.name)
    assert isinstance(c, EmailConfig)
    password = _from_env(c.password_env, f"{where}.password_env") if c.password_env else c.password
    return EmailSink(c.host, c.port, sender=c.sender, recipients=c.to, username=c.username, password=password,
                     starttls=c.starttls, ssl=c.ssl, timeout=c.timeout, name=c.name)
