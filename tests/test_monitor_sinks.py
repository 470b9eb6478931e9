"""Alert sinks against real local servers: an HTTP server in a thread for the webhook, aiosmtpd
for e-mail, a real file for JSONL. Nothing of the network is mocked; the servers live in this
process on 127.0.0.1, so the whole file runs in a few seconds (unit tier)."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from domainfit.apps.monitor.sinks import (ALERT_LOGGER, Delivery, EmailSink, JsonlSink, LogSink, SinkError,
                                          WebhookSink, sink_from_config)
from domainfit.core.errors import ConfigError


def make_alert(**changes) -> dict:
    alert = {"id": 17, "rule": "negative-surge", "entity": "nokia", "entity_name": "Nokia Oyj",
             "metric": "negative_share", "window": "1h", "window_start": "2026-03-01T10:00:00+00:00",
             "time": "2026-03-01T11:00:00+00:00", "state": "firing", "value": 0.82, "baseline": 0.21,
             "detector": "zscore", "score": 5.3,
             "documents": [{"id": "d1", "time": "2026-03-01T10:12:00+00:00", "sentiment": -0.9, "url": None,
                            "text": "Nokia cuts its outlook; shares fall 9 % to 3,10 €\nanalysts worried. "
                                    + "x" * 300},
                           {"id": "d2", "time": "2026-03-01T10:40:00+00:00", "sentiment": -0.6,
                            "url": "https://news.example.com/nokia", "text": "Nokia layoffs announced",
                            "explanation": {"tokens": ["layoffs"], "weights": [0.7]}}]}
    alert.update(changes)
    return alert


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder(BaseHTTPRequestHandler):
    """Answers POSTs with the server's next status (200 when none is left), after its delay."""

    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.received.append((dict(self.headers), json.loads(body)))
        time.sleep(server.delay)
        status, headers = server.answers.pop(0) if server.answers else (200, {})
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "11")
            self.end_headers()
            self.wfile.write(b"bad payload" if status == 400 else b"ok ok ok ok")
        except OSError:  # the client gave up waiting (the timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.received, server.answers, server.delay = [], [], 0.0
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret-token"
    yield server
    server.shutdown()
    server.server_close()


class MailBox:
    def __init__(self, refuse: str | None = None):
        self.envelopes, self.refuse = [], refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse and address == self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    def start(**kw):
        box = MailBox(kw.pop("refuse", None))
        controller = Controller(box, hostname="127.0.0.1", port=free_port(), **kw)
        controller.start()
        started.append(controller)
        return box, controller.port

    started: list[Controller] = []
    yield start
    for controller in started:
        controller.stop()


def recording_sleep():
    delays: list[float] = []
    return delays, delays.append


# --- webhook --------------------------------------------------------------------------------------------------

def test_webhook_posts_the_alert_as_json_with_headers(http_server):
    sink = WebhookSink(http_server.url, headers={"Authorization": "Bearer s3cret"})
    assert Delivery(sink).deliver(make_alert()) == (True, None)
    (headers, body), = http_server.received
    assert body == make_alert()
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"


def test_webhook_retries_5xx_with_growing_backoff(http_server):
    http_server.answers = [(500, {}), (500, {})]
    delays, sleep = recording_sleep()
    ok, reason = Delivery(WebhookSink(http_server.url), attempts=5, backoff=0.5, sleep=sleep).deliver(make_alert())
    assert (ok, reason) == (True, None)
    assert len(http_server.received) == 3
    assert len(delays) == 2 and 0.5 <= delays[0] < delays[1] <= 1.1


def test_webhook_400_is_not_retried_and_keeps_secrets_out_of_the_reason(http_server):
    http_server.answers = [(400, {})]
    delays, sleep = recording_sleep()
    sink = WebhookSink(http_server.url, headers={"Authorization": "Bearer s3cret"})
    ok, reason = Delivery(sink, sleep=sleep).deliver(make_alert())
    assert not ok and "400" in reason and "bad payload" in reason and "not retryable" in reason
    assert "secret-token" not in reason and "s3cret" not in reason and "secret-token" not in sink.name
    assert delays == [] and len(http_server.received) == 1


@pytest.mark.parametrize("status, retryable", [(408, True), (429, True), (503, True), (404, False), (301, False)])
def test_webhook_status_classes(http_server, status, retryable):
    http_server.answers = [(status, {"Location": "http://elsewhere"} if status == 301 else {})]
    with pytest.raises(SinkError) as caught:
        WebhookSink(http_server.url).send(make_alert())
    assert caught.value.retryable is retryable and str(status) in str(caught.value)


def test_webhook_honours_retry_after(http_server):
    http_server.answers = [(429, {"Retry-After": "7"})]
    delays, sleep = recording_sleep()
    assert Delivery(WebhookSink(http_server.url), backoff=0.1, max_backoff=30, sleep=sleep).deliver(make_alert())[0]
    assert delays == [7.0]


def test_webhook_timeout_is_retried_then_given_up(http_server):
    http_server.delay = 0.5
    delays, sleep = recording_sleep()
    ok, reason = Delivery(WebhookSink(http_server.url, timeout=0.2), attempts=2, sleep=sleep).deliver(make_alert())
    assert not ok and "timed out" in reason and "timeout 0.2 s" in reason and "gave up after 2" in reason
    assert len(delays) == 1


def test_webhook_connection_refused_is_retryable():
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", timeout=1)
    with pytest.raises(SinkError) as caught:
        sink.send(make_alert())
    assert caught.value.retryable
    delays, sleep = recording_sleep()
    ok, reason = Delivery(sink, attempts=3, sleep=sleep).deliver(make_alert())
    assert not ok and "cannot connect" in reason and len(delays) == 2


# --- e-mail ---------------------------------------------------------------------------------------------------

def test_email_arrives_with_subject_recipients_and_documents(smtp_server):
    box, port = smtp_server()
    sink = EmailSink("127.0.0.1", port, sender="monitor@example.com",
                     recipients=["desk@example.com", "cfo@example.com"], timeout=5)
    assert Delivery(sink).deliver(make_alert()) == (True, None)
    (envelope,) = box.envelopes
    assert envelope.mail_from == "monitor@example.com"
    assert envelope.rcpt_tos == ["desk@example.com", "cfo@example.com"]
    msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert msg["Subject"] == "[domainfit] negative_share surge: Nokia Oyj"
    assert msg["Message-ID"] == "<domainfit-alert-17-firing@127.0.0.1>"
    body = msg.get_body(("plain",)).get_content()
    assert "Nokia Oyj (nokia)" in body and "value:    0.82" in body and "baseline: 0.21" in body
    assert "1h from 2026-03-01T10:00:00+00:00" in body
    assert "Nokia cuts its outlook; shares fall 9 % to 3,10 € analysts worried." in body  # one line, UTF-8
    assert "x" * 200 not in body  # the text is cut at 200 characters
    assert "https://news.example.com/nokia" in body and "sentiment -0.90" in body


def test_email_subject_for_recovered_and_drop():
    sink = EmailSink("localhost", sender="a@b.c", recipients=["d@e.f"])
    recovered = sink.message(make_alert(state="recovered"))["Subject"]
    assert recovered == "[domainfit] recovered: negative_share for Nokia Oyj"
    assert sink.message(make_alert(value=0.1))["Subject"] == "[domainfit] negative_share drop: Nokia Oyj"
    assert sink.message(make_alert(entity_name="Evil\r\nBcc: x@y.z"))["Subject"].endswith("Evil Bcc: x@y.z")


def test_email_refused_recipient_is_not_retryable(smtp_server):
    box, port = smtp_server(refuse="nobody@example.com")
    sink = EmailSink("127.0.0.1", port, sender="m@example.com", recipients=["nobody@example.com"], timeout=5)
    ok, reason = Delivery(sink, sleep=lambda s: None).deliver(make_alert())
    assert not ok and "nobody@example.com" in reason and "550" in reason and "not retryable" in reason
    assert box.envelopes == []


def test_email_partly_refused_says_who_got_it(smtp_server):
    box, port = smtp_server(refuse="nobody@example.com")
    sink = EmailSink("127.0.0.1", port, sender="m@example.com", recipients=["desk@example.com", "nobody@example.com"],
                     timeout=5)
    with pytest.raises(SinkError) as caught:
        sink.send(make_alert())
    assert not caught.value.retryable
    assert "delivered to desk@example.com but refused nobody@example.com" in str(caught.value)
    assert len(box.envelopes) == 1


def test_email_bad_login_is_not_retryable(smtp_server):
    _, port = smtp_server(auth_require_tls=False, authenticator=lambda *args: AuthResult(success=False, handled=False))
    sink = EmailSink("127.0.0.1", port, sender="m@example.com", recipients=["d@example.com"], username="alerts",
                     password="wrong", timeout=5)
    with pytest.raises(SinkError) as caught:
        sink.send(make_alert())
    assert not caught.value.retryable and "alerts" in str(caught.value) and "wrong" not in str(caught.value)


def test_email_connection_refused_is_retryable():
    sink = EmailSink("127.0.0.1", free_port(), sender="m@example.com", recipients=["d@example.com"], timeout=1)
    with pytest.raises(SinkError) as caught:
        sink.send(make_alert())
    assert caught.value.retryable and "refused the connection" in str(caught.value)


# --- JSONL and log --------------------------------------------------------------------------------------------

def test_jsonl_appends_one_parseable_line_per_alert(tmp_path):
    path = tmp_path / "new" / "folder" / "alerts.jsonl"
    sink = JsonlSink(path)
    sink.send(make_alert())
    sink.send(make_alert(id=18, state="recovered", value=float("nan")))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [17, 18]
    assert json.loads(lines[0]) == make_alert() and json.loads(lines[1])["value"] is None


def test_jsonl_writers_never_interleave(tmp_path):
    path = tmp_path / "alerts.jsonl"
    big = "y" * 50_000

    def write(n):
        sink = JsonlSink(path)
        for i in range(20):
            sink.send(make_alert(id=n * 100 + i, documents=[{"id": "d", "text": big}]))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines())
    assert ids == sorted(n * 100 + i for n in range(4) for i in range(20))


def test_jsonl_unwritable_is_retryable(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SinkError) as caught:
        JsonlSink(tmp_path / "file" / "alerts.jsonl").send(make_alert())
    assert caught.value.retryable and "alerts.jsonl" in str(caught.value)


def test_log_sink_levels(caplog):
    caplog.set_level(logging.INFO, logger=ALERT_LOGGER)
    sink = LogSink()
    sink.send(make_alert())
    sink.send(make_alert(state="recovered"))
    firing, recovered = caplog.records
    assert firing.levelno == logging.WARNING and recovered.levelno == logging.INFO
    assert firing.name == ALERT_LOGGER and "\n" not in firing.getMessage()
    assert "Nokia Oyj" in firing.getMessage() and "negative_share=0.82" in firing.getMessage()
    assert "recovered" in recovered.getMessage() and recovered.alert["id"] == 17


# --- Delivery -------------------------------------------------------------------------------------------------

def test_next_delay_doubles_with_small_jitter_and_caps():
    for attempt in range(5):
        delay = Delivery.next_delay(attempt, 1.0, 60.0)
        assert 2 ** attempt <= delay <= 2 ** attempt * 1.1
    assert Delivery.next_delay(10, 1.0, 60.0) == 60.0
    assert Delivery.next_delay(1000, 1.0, 60.0) == 60.0


class Flaky:
    name = "flaky"

    def __init__(self, errors):
        self.errors, self.calls = list(errors), 0

    def send(self, alert):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def test_delivery_stops_on_a_permanent_error_and_refuses_bad_settings():
    sink = Flaky([SinkError("busy", retryable=True), SinkError("gone", retryable=False)])
    delays, sleep = recording_sleep()
    assert Delivery(sink, sleep=sleep).deliver({}) == (False, "flaky: gone (not retryable)")
    assert sink.calls == 2 and len(delays) == 1
    with pytest.raises(ValueError):
        Delivery(sink, attempts=0)


def test_delivery_lets_programming_errors_through():
    with pytest.raises(ZeroDivisionError):
        Delivery(Flaky([ZeroDivisionError()])).deliver({})


# --- configuration --------------------------------------------------------------------------------------------

def test_config_builds_each_sink(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_HOST", "hooks.example.com")
    monkeypatch.setenv("HOOK_AUTH", "Bearer from-env")
    monkeypatch.setenv("SMTP_PASSWORD", "pw-from-env")
    assert isinstance(sink_from_config({"type": "log"}), LogSink)

    jsonl = sink_from_config({"type": "jsonl", "path": "out/alerts.jsonl"}, base=tmp_path)
    assert isinstance(jsonl, JsonlSink) and jsonl.path == tmp_path.resolve() / "out" / "alerts.jsonl"

    hook = sink_from_config({"type": "webhook", "url": "https://${HOOK_HOST}/x?token=${NOT_SET:-t0k}",
                             "headers": {"X-Team": "${TEAM:-risk}"}, "headers_env": {"Authorization": "HOOK_AUTH"},
                             "timeout": 2, "name": "risk-desk"})
    assert isinstance(hook, WebhookSink) and hook.name == "risk-desk" and hook.timeout == 2
    assert hook.url == "https://hooks.example.com/x?token=t0k"
    assert hook.headers == {"X-Team": "risk", "Authorization": "Bearer from-env"}

    mail = sink_from_config({"type": "email", "host": "smtp.example.com", "port": 587, "from": "m@example.com",
                             "to": ["desk@example.com"], "username": "alerts", "password_env": "SMTP_PASSWORD",
                             "starttls": True})
    assert isinstance(mail, EmailSink) and mail.password == "pw-from-env" and mail.starttls and mail.port == 587
    assert mail.sender == "m@example.com" and mail.recipients == ["desk@example.com"]
    assert mail.name.startswith("email:desk@example.com")


@pytest.mark.parametrize("cfg, named", [
    ({"type": "pager"}, "sink.type: unknown sink type 'pager'"),
    ({"url": "http://x"}, "sink.type: missing"),
    ({"type": "webhook"}, "sink.url: missing"),
    ({"type": "webhook", "url": "http://x", "retries": 3}, "sink.retries: unknown key"),
    ({"type": "webhook", "url": "ftp://x"}, "sink.url: needs an http:// or https:// URL"),
    ({"type": "webhook", "url": "http://x", "timeout": 0}, "sink.timeout"),
    ({"type": "webhook", "url": "http://x", "headers_env": {"Authorization": "NO_SUCH_VAR_1"}},
     "sink.headers_env.Authorization: the environment variable NO_SUCH_VAR_1 is not set"),
    ({"type": "webhook", "url": "${NO_SUCH_VAR_2}"}, "sink.url: ${NO_SUCH_VAR_2} names the environment variable"),
    ({"type": "jsonl"}, "sink.path: missing"),
    ({"type": "email", "host": "h", "from": "a@b", "to": ["c@d"], "ssl": True, "starttls": True}, "exclude each other"),
    ({"type": "email", "host": "h", "from": "a@b", "to": ["c@d"], "password": "x"}, "a password needs a username"),
    ({"type": "email", "host": "h", "to": ["c@d"]}, "sink.from: missing"),
    ({"type": "email", "host": "h", "from": "a@b", "to": ["c@d"], "sender": "a@b"}, "sink.sender: unknown key"),
    ({"type": "email", "host": "h", "from": "a@b", "to": ["nobody"]}, "sink.to: not e-mail addresses: 'nobody'"),
])
def test_config_errors_name_the_field(cfg, named):
    with pytest.raises(ConfigError) as caught:
        sink_from_config(cfg)
    assert named in str(caught.value)


def test_config_error_uses_the_given_place():
    with pytest.raises(ConfigError, match=r"^rules.yaml: sinks\[2\].url: missing"):
        sink_from_config({"type": "webhook"}, where="rules.yaml: sinks[2]")
