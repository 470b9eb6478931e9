"""The web console below the browser: the job and review tables, the job runner with real
processes (done, failed, one at a time, stopped, killed, recovered after a restart), the
workspace's path checks, and the app's forms, uploads, sign-in and JSON API (TestClient)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import write_intents_csv
from domainfit.console.jobs import JobRunner, job_error, log_tail
from domainfit.console.workspace import ConsoleError, Workspace
from domainfit.core.errors import DomainfitError
from domainfit.stores import JobStore, ReviewStore


@pytest.fixture()
def ws(tmp_path) -> Workspace:
    return Workspace.open(tmp_path / "root")


@pytest.fixture()
def store(ws) -> JobStore:
    return JobStore(ws.db_url)


def wait_ended(runner: JobRunner, store: JobStore, job_id: int, timeout: float = 60) -> dict:
    """Tick the runner until ``job_id`` has ended; returns the job."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        runner.tick()
        job = store.get(job_id)
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {store.get(job_id)['status']} after {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


# --- the tables ----------------------------------------------------------------------------
def test_job_store_claims_one_at_a_time_and_requeues(store):
    first = store.add("train", "a", ["version"], "runs/a")
    second = store.add("train", "b", ["version"], "runs/b")
    assert [store.queue_position(first), store.queue_position(second)] == [1, 2]
    claimed = store.claim_next()
    assert claimed["id"] == first and claimed["status"] == "running" and claimed["attempts"] == 1
    assert claimed["argv"] == ["version"] and claimed["started_at"].tzinfo is not None
    assert store.claim_next() is None  # one job at a time
    assert store.queue_position(first) is None and store.queue_position(second) == 1
    assert store.finish(first, "failed", exit_code=2, error="boom")
    assert store.get(first)["error"] == "boom" and store.get(first)["exit_code"] == 2
    assert not store.finish(first, "done")  # ended already
    with pytest.raises(ValueError):
        store.finish(second, "running")
    assert store.requeue(first)
    again = store.get(first)
    assert again["status"] == "queued" and again["error"] is None and again["finished_at"] is None
    assert [store.queue_position(first), store.queue_position(second)] == [1, 2]
    assert store.claim_next()["attempts"] == 2
    assert store.finish(first, "done", exit_code=0)
    assert not store.requeue(first)  # a done job is not queued again
    assert store.get(first)["status"] == "done"
    assert store.requeue(second) is False  # queued, not ended
    assert [j["id"] for j in store.jobs()] == [second, first]


def test_review_store_dedupes_labels_and_exports(tmp_path):
    review = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    assert review.add("m", "select", [{"text": "where is my card"}, {"text": "refund"},
                                      {"text": "where is my card"}]) == 2
    assert review.add("m", "select", [{"text": "refund"}, {"text": "reset password"}]) == 1
    assert review.add("m", "audit", [{"text": "refund", "given": "card"}]) == 1  # another source
    assert review.add("other", "select", [{"text": "refund"}]) == 1  # another queue
    with pytest.raises(ValueError):
        review.add("m", "nowhere", [{"text": "x"}])
    assert review.queues() == [{"queue": "m", "open": 4, "labelled": 0, "skipped": 0},
                               {"queue": "other", "open": 1, "labelled": 0, "skipped": 0}]
    card, refund = review.items("m")[:2]
    assert card["text"] == "where is my card" and refund["text"] == "refund"
    assert review.label(card["id"], "card_arrival") and review.label(refund["id"], None)
    assert not review.label(10_000, "x")
    assert review.queues()[0] == {"queue": "m", "open": 2, "labelled": 1, "skipped": 1}
    assert review.next_open("m")["text"] == "reset password"
    out = tmp_path / "reviewed.csv"
    assert review.export_csv("m", out) == 1
    with open(out, encoding="utf-8", newline="") as fh:
        assert list(csv.reader(fh)) == [["text", "label"], ["where is my card", "card_arrival"]]


# --- the runner, with real processes -----------------------------------------------------------
@pytest.mark.integration
def test_runner_runs_jobs_one_at_a_time_and_reports_failures(ws, store):
    runner = JobRunner(store, ws, poll_seconds=0.2)
    first, second = store.add("misc", "v1", ["version"]), store.add("misc", "v2", ["version"])
    runner.tick()
    assert store.get(first)["status"] == "running" and store.get(first)["pid"]
    assert store.get(second)["status"] == "queued" and store.queue_position(second) == 1
    done = wait_ended(runner, store, first)
    assert (done["status"], done["exit_code"], done["error"]) == ("done", 0, None)
    shown = log_tail(ws.job_folder(first))
    assert "$ domainfit version\ndomainfit " in shown and "torch " in shown  # the command's own output
    assert wait_ended(runner, store, second)["status"] == "done"

    bad = store.add("train", "bad", ["train", "--data", "no-such-file.csv", "--output", "runs/x"], "runs/x")
    failed = wait_ended(runner, store, bad)
    assert failed["status"] == "failed" and failed["exit_code"] not in (0, None)
    assert "no-such-file.csv" in failed["error"] and "no such file" in failed["error"]
    assert failed["error"] == job_error(ws.job_folder(bad))
    assert store.requeue(bad) and store.get(bad)["status"] == "queued"


def test_recover_marks_a_vanished_job_interrupted_and_it_can_be_resumed(ws, store):
    job = store.add("train", "gone", ["version"], "runs/gone")
    store.claim_next()
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    store.set_pid(job, dead.pid)
    JobRunner(store, ws).recover()  # a console started again
    found = store.get(job)
    assert found["status"] == "interrupted" and found["exit_code"] is None
    assert "resume" in found["error"] and found["finished_at"] is not None
    assert store.requeue(job) and store.get(job)["status"] == "queued"


def test_recover_reads_the_exit_file_of_a_job_that_ended_while_the_console_was_down(ws, store):
    ok, bad = store.add("misc", "ok", ["version"]), store.add("misc", "bad", ["version"])
    for job, code in ((ok, "0"), (bad, "3")):
        store.claim_next()
        store.set_pid(job, 0)  # no process to look for
        ws.job_folder(job).mkdir(parents=True)
        (ws.job_folder(job) / "exit_code").write_text(code + "\n")
        (ws.job_folder(job) / "output.log").write_text("Traceback (most recent call last):\nValueError: bad row\n")
        JobRunner(store, ws).recover()
    assert store.get(ok)["status"] == "done"
    assert (store.get(bad)["status"], store.get(bad)["exit_code"]) == ("failed", 3)
    assert store.get(bad)["error"] == "ValueError: bad row"


@pytest.mark.integration
def test_stopped_and_killed_jobs(tmp_path, ws, store):
    runner = JobRunner(store, ws, poll_seconds=0.2)
    pids = []
    try:
        ports = [free_port(), free_port()]
        jobs = [store.add("misc", f"server {i}", ["console", "--root", str(tmp_path / f"other{i}"),
                                                  "--port", str(port)]) for i, port in enumerate(ports)]
        runner.tick()
        pids.append(store.get(jobs[0])["pid"])
        wait_listening(ports[0])
        assert store.get(jobs[0])["status"] == "running" and store.get(jobs[1])["status"] == "queued"
        assert runner.stop(jobs[0])
        stopped = store.get(jobs[0])
        for _ in range(300):
            runner.tick()  # settles the stopped job, then starts the next
            stopped = store.get(jobs[0])
            if stopped["status"] != "running":
                break
            time.sleep(0.2)
        assert stopped["status"] == "stopped" and "resume" in stopped["error"]
        assert not runner.stop(jobs[0])  # ended already

        if store.get(jobs[1])["status"] == "queued":
            runner.tick()
        killed = store.get(jobs[1])
        assert killed["status"] == "running"
        pids.append(killed["pid"])
        wait_listening(ports[1])
        os.killpg(killed["pid"], signal.SIGKILL)  # sh dies too: no exit file
        killed = wait_ended(runner, store, jobs[1])
        assert killed["status"] == "interrupted" and "resume" in killed["error"]
        assert not (ws.job_folder(jobs[1]) / "exit_code").exists()
        assert store.requeue(jobs[0]) and store.requeue(jobs[1])
        assert runner.stop(jobs[0]) and store.get(jobs[0])["error"] == "stopped before it started"
    finally:
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# --- the workspace -------------------------------------------------------------------------
def test_workspace_keeps_paths_inside_the_root(ws, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("text,label\nx,y\n")
    (ws.data / "link.csv").symlink_to(outside)
    for wrong in ("../x", "/etc/passwd", "data/link.csv", "data/../../secret.csv", ""):
        with pytest.raises(ConsoleError) as caught:
            ws.resolve(wrong)
        assert caught.value.status == 400
    assert ws.resolve("data/a.csv") == ws.data / "a.csv"

    assert ws.upload_path("../../evil.csv") == ws.data / "evil.csv"
    (ws.data / "evil.csv").write_text("text,label\n")
    assert ws.upload_path("evil.csv") == ws.data / "evil-2.csv"
    assert ws.upload_path("my data.CSV") == ws.data / "my-data.csv"
    with pytest.raises(ConsoleError) as caught:
        ws.upload_path("tool.exe")
    assert caught.value.status == 415


# --- the app -----------------------------------------------------------------------------
def csrf_of(client, page: str = "/console/data") -> str:
    answer = client.get(page)
    assert answer.status_code == 200, answer.text
    return re.search(r'<input type="hidden" name="csrf" value="([0-9a-f]{64})">', answer.text).group(1)


def client_for(tmp_path, **settings):
    from fastapi.testclient import TestClient

    from domainfit.console import ConsoleSettings, create_console_app

    return TestClient(create_console_app(ConsoleSettings(root=tmp_path / "root", **settings)))


def test_console_forms_uploads_and_paths(tmp_path):
    data = tmp_path / "root" / "data"
    with client_for(tmp_path) as client:
        token = csrf_of(client)
        good = write_intents_csv(tmp_path / "intents.csv").read_bytes()
        answer = client.post("/console/data/upload", data={"csrf": token},
                             files={"file": ("intents.csv", good, "text/csv")}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/console/data/view?file=data/intents.csv"
        assert (data / "intents.csv").read_bytes() == good

        answer = client.post("/console/data/upload", data={"csrf": "0" * 64}, headers={"accept": "text/html"},
                             files={"file": ("again.csv", good, "text/csv")})
        assert answer.status_code == 403 and answer.headers["content-type"].startswith("text/html")
        assert "security token" in answer.text and not (data / "again.csv").exists()

        answer = client.post("/v1/feedback", files={"file": ("x.csv", good, "text/csv")})
        assert answer.status_code == 415 and answer.json()["error"]["code"] == "unsupported_media_type"

        latin1 = b"text,label\nmy card is lost,card\n" + "caf\xe9 card,card\n".encode("latin-1")
        answer = client.post("/console/data/upload", data={"csrf": token},
                             files={"file": ("latin.csv", latin1, "text/csv")})
        assert answer.status_code == 422 and "UTF-8" in answer.text
        assert sorted(p.name for p in data.iterdir()) == ["intents.csv"]

        answer = client.get("/console/api/data", params={"file": "../../etc/passwd"})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "outside_root"
        report = client.get("/console/api/data", params={"file": "data/intents.csv"}).json()
        assert report["trainable"] and report["kept"] == 36 and report["columns"] == ["text", "label"]


def test_console_refuses_an_upload_over_the_limit(tmp_path):
    with client_for(tmp_path, max_upload_mb=0.001) as client:
        body = b"text,label\n" + b"where is my card,card\n" * 250  # ~5 KB, limit ~1 KB
        answer = client.post("/console/data/upload", data={"csrf": csrf_of(client)},
                             files={"file": ("big.csv", body, "text/csv")})
        assert answer.status_code == 413 and "upload limit" in answer.text
        assert list((tmp_path / "root" / "data").iterdir()) == []


def test_console_key_sign_in_and_api(tmp_path, monkeypatch):
    from domainfit.console import ConsoleSettings

    monkeypatch.delenv("DOMAINFIT_API_KEY", raising=False)
    with pytest.raises(DomainfitError, match="--api-key"):
        ConsoleSettings(root=tmp_path, host="0.0.0.0").check()
    assert ConsoleSettings(root=tmp_path, host="0.0.0.0", api_key="k").check().api_key == "k"

    with client_for(tmp_path, api_key="KEY") as client:
        answer = client.get("/console/", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
        token = csrf_of(client, "/console/login")
        answer = client.post("/console/login", data={"csrf": token, "key": "nope"}, follow_redirects=False)
        assert answer.status_code == 403
        assert client.get("/console/", follow_redirects=False).status_code == 303
        answer = client.post("/console/login", data={"csrf": token, "key": "KEY"}, follow_redirects=False)
        assert answer.status_code == 303 and "domainfit_console" in answer.cookies
        assert client.get("/console/", follow_redirects=False).status_code == 200

        client.cookies.clear()
        assert client.get("/console/api/jobs").status_code == 401
        answer = client.get("/console/api/jobs", headers={"Authorization": "Bearer KEY"})
        assert answer.status_code == 200 and answer.json() == []
        # With a key, the served models' API needs it too (the console may listen on a network).
        body = {"texts": ["hello"]}
        assert client.post("/v1/models/intents/predict", json=body).status_code == 401
        answer = client.post("/v1/models/intents/predict", json=body, headers={"Authorization": "Bearer KEY"})
        assert answer.status_code == 404  # past the key: no such model is served


def test_console_train_api_checks_before_queueing(tmp_path):
    data = tmp_path / "root" / "data"
    with client_for(tmp_path) as client:
        (data / "sentences.csv").write_text("sentence,intent\nwhere is my card,card\nrefund please,refund\n")
        answer = client.post("/console/api/jobs/train", json={"data": "data/sentences.csv"})
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        assert "text" in message and "sentence" in message and "intent" in message
        write_intents_csv(data / "intents.csv")
        answer = client.post("/console/api/jobs/train", json={"data": "data/intents.csv", "colour": "red"})
        assert answer.status_code == 422 and "colour" in answer.json()["error"]["message"]
        assert client.post("/console/api/jobs/train", json={"data": "data/none.csv"}).status_code == 404
        assert client.get("/console/api/jobs").json() == []
        assert client.app.console.jobs.jobs() == []


# --- pages and API without running anything (no lifespan: the runner is not started) -----------
def csv_lines(path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def alert_of(html: str) -> str:
    """The error page's message (HTML-unescaped)."""
    import html as _html

    found = re.search(r'<p class="error" role="alert">(.*?)</p>', html, re.DOTALL)
    assert found, html[:2000]
    return _html.unescape(found.group(1))


def option_of(argv: list[str], name: str) -> str:
    assert name in argv[:-1], argv
    return argv[argv.index(name) + 1]


def test_console_data_page_names_a_missing_text_column(tmp_path):
    import html

    client = client_for(tmp_path)
    (tmp_path / "root" / "data" / "x.csv").write_text("body,label\nwhere is my card,card\nrefund please,refund\n")
    # With no mapping given, the page guesses the text column (the one with the longest texts).
    answer = client.get("/console/data/view", params={"file": "data/x.csv"})
    assert answer.status_code == 200, answer.text
    assert '<option value="body" selected>body</option>' in answer.text and "2 can train" in answer.text
    # Naming a text column the file does not have: 422, the missing column and the ones found.
    answer = client.get("/console/data/view", params={"file": "data/x.csv", "text_column": "text"})
    assert answer.status_code == 422 and "cannot train a model yet" in answer.text
    shown = html.unescape(answer.text)
    assert "no text column named 'text'" in shown and "the columns are 'body', 'label'" in shown
    assert "Train a model on this file" not in answer.text
    answer = client.get("/console/data/view", params={"file": "data/x.csv", "text_column": "body"})
    assert answer.status_code == 200 and "2 rows read: 2 can train." in answer.text
    assert "Train a model on this file" in answer.text


def test_console_train_form_refuses_bad_rows_unless_skipped(tmp_path):
    root = tmp_path / "root"
    client = client_for(tmp_path)  # no lifespan: the job stays queued
    lines = write_intents_csv(root / "data" / "bad.csv").read_text().splitlines()
    lines[5], lines[11] = ",card_arrival", ",card_arrival"  # lines 6 and 12 of the file: no text
    (root / "data" / "bad.csv").write_text("\n".join(lines) + "\n")

    answer = client.get("/console/data/view", params={"file": "data/bad.csv"})
    assert answer.status_code == 200 and "36 rows read: 34 can train, <strong>2 have problems</strong>" in answer.text
    table = answer.text[answer.text.index("<h3>Rows with problems</h3>"):]
    table = table[:table.index("</tbody>")]
    assert re.findall(r"<tr><td>(\d+)</td><td>text</td><td>the text is missing or empty</td>", table) == ["6", "12"]

    token = csrf_of(client)
    answer = client.post("/console/train", data={"csrf": token, "data": "data/bad.csv"}, follow_redirects=False)
    assert answer.status_code == 422
    assert alert_of(answer.text).startswith("2 row(s) have problems (listed on the data page)")
    assert client.app.console.jobs.jobs() == []

    answer = client.post("/console/train", data={"csrf": token, "data": "data/bad.csv", "skip_bad_rows": "on"},
                         follow_redirects=False)
    assert answer.status_code == 303
    job_id = int(re.fullmatch(r"/console/jobs/(\d+)", answer.headers["location"]).group(1))
    job = client.app.console.jobs.get(job_id)
    assert job["kind"] == "train" and job["status"] == "queued"
    argv = job["argv"]
    assert argv[0] == "train" and option_of(argv, "--on-bad-rows") == "skip"
    assert option_of(argv, "--data") == "data/bad.csv"
    assert option_of(argv, "--output") == job["output"] and job["output"].startswith("runs/")
    assert [j["id"] for j in client.app.console.jobs.jobs()] == [job_id]


def test_console_api_queues_two_trainings_into_different_folders(tmp_path):
    root = tmp_path / "root"
    client = client_for(tmp_path)  # no lifespan: both stay queued
    write_intents_csv(root / "data" / "intents.csv")
    views = []
    for _ in range(2):
        answer = client.post("/console/api/jobs/train", json={"data": "data/intents.csv", "name": "demo"})
        assert answer.status_code == 201, answer.text
        views.append(answer.json())
    assert [v["output"] for v in views] == ["runs/demo", "runs/demo-2"]
    assert not (root / "runs" / "demo").exists() and not (root / "runs" / "demo-2").exists()
    for position, view in enumerate(views, 1):
        shown = client.get(f"/console/api/jobs/{view['id']}").json()
        assert (shown["status"], shown["position"]) == ("queued", position)
        assert option_of(shown["argv"], "--output") == view["output"]
    # Without a name: the data file's stem and the method, kept apart the same way.
    outputs = [client.post("/console/api/jobs/train", json={"data": "data/intents.csv"}).json()["output"]
               for _ in range(2)]
    assert outputs == ["runs/intents-auto", "runs/intents-auto-2"]


def test_console_review_queues_from_an_audit_and_feedback(tmp_path):
    from domainfit.stores import FeedbackStore

    root = tmp_path / "root"
    client = client_for(tmp_path)
    console = client.app.console
    (root / "data" / "x.csv").write_text("text,label\nwhere is my card,refund\nrefund please,card\nhi,greet\n")
    audit = root / ".console" / "audits" / "a"
    audit.mkdir(parents=True)
    (audit / "label_issues.csv").write_text("line,text,given_label,suggested_label,score\n"
                                            "2,where is my card,refund,card,0.1\n3,refund please,card,refund,0.2\n")
    job = console.jobs.add("audit", "audit data/x.csv",
                           ["audit", "--data", "data/x.csv", "--output", ".console/audits/a"], ".console/audits/a")
    assert console.jobs.claim_next()["id"] == job and console.jobs.finish(job, "done", exit_code=0)
    FeedbackStore(console.workspace.db_url).add(request_id="r1", model="intents", version=1, text="hello there",
                                                predicted="greet", correct_label=None, comment=None)

    for _ in range(2):  # the page refreshes the queues each time; nothing is queued twice
        answer = client.get("/console/review")
        assert answer.status_code == 200
        rows = re.findall(r'<tr><td><a href="/console/review/queue\?queue=[^"]+">([^<]+)</a></td>'
                          r"<td>(\d+)</td><td>(\d+)</td>", answer.text)
        assert rows == [("data/x.csv", "2", "0"), ("registry/intents", "1", "0")]
    assert len(console.review.items("data/x.csv")) == 2 and len(console.review.items("registry/intents")) == 1

    answer = client.get("/console/review/queue", params={"queue": "data/x.csv"})
    assert answer.status_code == 200
    assert '<blockquote id="review-text">where is my card</blockquote>' in answer.text
    assert "line 2" in answer.text and "the data says <strong>refund</strong>" in answer.text
    buttons = dict(re.findall(r'<button type="submit" name="label" value="([^"]*)" data-key="(\w)"', answer.text))
    assert buttons == {"card": "1", "refund": "2"}  # the model's suggestion first, then the data's label
    assert 'value="" class="secondary" data-key="s"' in answer.text  # and a skip
    item = int(re.search(r'<input type="hidden" name="item" value="(\d+)">', answer.text).group(1))
    assert item == console.review.next_open("data/x.csv")["id"]

    feedback = client.get("/console/review/queue", params={"queue": "registry/intents"})
    assert feedback.status_code == 200 and '<blockquote id="review-text">hello there</blockquote>' in feedback.text
    assert 'value="greet" data-key="1"' in feedback.text
    assert client.get("/console/review/queue", params={"queue": "nowhere"}).status_code == 404

    token = csrf_of(client)
    answer = client.post("/console/review/label", data={"csrf": token, "queue": "data/x.csv", "item": str(item),
                                                        "label": "card_arrival"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/review/queue?queue=data/x.csv"
    answer = client.post("/console/review/label", data={"csrf": "0" * 64, "queue": "data/x.csv",
                                                        "item": str(item + 1), "label": "x"}, follow_redirects=False)
    assert answer.status_code == 403
    answer = client.post("/console/review/label", data={"csrf": token, "queue": "data/x.csv", "item": "9999",
                                                        "label": "x"}, follow_redirects=False)
    assert answer.status_code == 404
    answer = client.get("/console/review")
    assert '<a href="/console/review/queue?queue=data%2Fx.csv">data/x.csv</a></td><td>1</td><td>1</td>' in answer.text
    assert "Save the labels of data/x.csv" in answer.text and "Save the labels of registry/intents" not in answer.text
    assert "refund please" in client.get("/console/review/queue", params={"queue": "data/x.csv"}).text

    answer = client.post("/console/review/export", data={"csrf": token, "queue": "data/x.csv"})
    assert answer.status_code == 200 and "1 labelled row(s) written to data/reviewed-data-x-csv.csv" in answer.text
    assert csv_lines(root / "data" / "reviewed-data-x-csv.csv") == [["text", "label"],
                                                                   ["where is my card", "card_arrival"]]
    client.get("/console/review")
    assert console.review.queues() == [{"queue": "data/x.csv", "open": 1, "labelled": 1, "skipped": 0},
                                       {"queue": "registry/intents", "open": 1, "labelled": 0, "skipped": 0}]


def test_console_job_events_of_an_ended_job(tmp_path):
    client = client_for(tmp_path)
    jobs = client.app.console.jobs
    job = jobs.add("misc", "version", ["version"])
    assert jobs.claim_next()["id"] == job and jobs.finish(job, "failed", exit_code=1, error="boom")
    answer = client.get(f"/console/api/jobs/{job}/events")  # returns: the stream ends with the job
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n", 1) for block in answer.text.strip().split("\n\n")]
    assert [name for name, _ in events] == ["event: job", "event: end"]
    shown = json.loads(events[0][1].removeprefix("data: "))
    assert (shown["id"], shown["status"], shown["error"], shown["exit_code"]) == (job, "failed", "boom", 1)
    assert shown["resumable"] and shown["command"] == "domainfit version"
    assert events[1][1] == "data: {}"
    assert client.get("/console/api/jobs/999/events").status_code == 404


def test_console_apps_page_lists_bundles(tmp_path):
    apps = tmp_path / "root" / "apps"
    client = client_for(tmp_path)
    assert "No app bundles yet." in client.get("/console/apps").text
    (apps / "helpdesk").mkdir()
    (apps / "helpdesk" / "bundle.json").write_text(json.dumps({"kind": "customer-service"}))
    for name, text in (("broken", "{not json"), ("other", json.dumps({"kind": "spreadsheet"}))):
        (apps / name).mkdir()
        (apps / name / "bundle.json").write_text(text)
    (apps / "empty").mkdir()  # no bundle.json
    answer = client.get("/console/apps")
    assert answer.status_code == 200
    items = re.findall(r"<li><strong>(.*?)</strong>: (\S+) —", answer.text)
    assert items == [("Customer-service chat", "helpdesk")]
    assert '<input type="hidden" name="name" value="helpdesk"><button type="submit" aria-label="Start helpdesk">' \
           'Start</button>' in answer.text
    assert client.get("/console/").status_code == 200  # the home page lists bundles too


def test_console_apps_page_skips_a_bundle_json_that_is_not_an_object(tmp_path):
    apps = tmp_path / "root" / "apps"
    client = client_for(tmp_path)
    (apps / "helpdesk").mkdir()
    (apps / "helpdesk" / "bundle.json").write_text(json.dumps({"kind": "customer-service"}))
    (apps / "listed").mkdir()
    (apps / "listed" / "bundle.json").write_text("[1, 2]")
    answer = client.get("/console/apps")
    assert answer.status_code == 200 and "helpdesk" in answer.text and "listed" not in answer.text


def test_console_run_job_and_deploy_pages_answer_errors_as_pages(tmp_path):
    client = client_for(tmp_path)
    (tmp_path / "secret").write_text("not for the console")
    for path, params in (("/console/runs/view", {"run": "../../etc"}), ("/console/runs/view", {"run": "nothing"}),
                         ("/console/runs/file", {"run": "x", "name": "../../secret"})):
        answer = client.get(path, params=params)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"), path
        assert "no model named" in alert_of(answer.text)
        assert "not for the console" not in answer.text

    # A run folder (its manifest is all run_folder looks for): only files in its report/ are served.
    run = tmp_path / "root" / "runs" / "x"
    (run / "report").mkdir(parents=True)
    (run / "domainfit.json").write_text("{}")
    (run / "report" / "matrix.txt").write_text("the report")
    (run / "report" / "page.html").write_text("<p>report</p><script>alert(1)</script>")
    (run / "report" / "out.txt").symlink_to(tmp_path / "secret")
    (tmp_path / "root" / "runs" / "secret").write_text("not for the console")
    answer = client.get("/console/runs/file", params={"run": "x", "name": "matrix.txt"})
    assert answer.status_code == 200 and answer.text == "the report"
    answer = client.get("/console/runs/file", params={"run": "x", "name": "page.html"})
    assert answer.status_code == 200 and "default-src 'none'" in answer.headers["content-security-policy"]
    for name in ("../../secret", "../domainfit.json", "out.txt", "/etc/passwd", "missing.txt"):
        answer = client.get("/console/runs/file", params={"run": "x", "name": name})
        assert answer.status_code == 404 and f"no report file {name!r} in x" in alert_of(answer.text), name
        assert "not for the console" not in answer.text

    token = csrf_of(client)
    answer = client.post("/console/deploy/promote", data={"csrf": token, "name": "nope", "version": "1"},
                         follow_redirects=False)
    assert 400 <= answer.status_code < 500 and "no model named 'nope'" in alert_of(answer.text)
    answer = client.post("/console/deploy/promote", data={"csrf": token, "name": "nope", "version": "one"},
                         follow_redirects=False)
    assert answer.status_code == 422 and "'one' is not a number" in alert_of(answer.text)
    answer = client.post("/console/deploy/rollback", data={"csrf": token, "name": "../etc"}, follow_redirects=False)
    assert 400 <= answer.status_code < 500

    answer = client.post("/console/jobs/999/stop", data={"csrf": token}, follow_redirects=False)
    assert answer.status_code == 404 and alert_of(answer.text) == "no job 999"
    answer = client.post("/console/jobs/999/resume", data={"csrf": token}, follow_redirects=False)
    assert answer.status_code == 404
    assert client.app.console.jobs.jobs() == []


def test_console_api_refuses_a_stop_without_the_key(tmp_path):
    from domainfit.console.security import AUTH_COOKIE

    client = client_for(tmp_path, api_key="KEY")  # no lifespan: the job stays queued
    jobs = client.app.console.jobs
    job = jobs.add("misc", "version", ["version"])
    answer = client.post(f"/console/api/jobs/{job}/stop")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "missing_key"
    answer = client.post(f"/console/api/jobs/{job}/stop", headers={"Authorization": "Bearer WRONG"})
    assert answer.status_code == 401
    answer = client.post(f"/console/jobs/{job}/stop", data={"csrf": "0" * 64}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
    assert jobs.get(job)["status"] == "queued"

    # Signed in (the browser's cookie) but a form without its token: a forged form, refused.
    token = csrf_of(client, "/console/login")
    assert client.post("/console/login", data={"csrf": token, "key": "KEY"},
                       follow_redirects=False).cookies.get(AUTH_COOKIE)
    answer = client.post(f"/console/api/jobs/{job}/stop", data={"x": "1"})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "csrf"
    assert jobs.get(job)["status"] == "queued"

    client.cookies.clear()
    answer = client.post(f"/console/api/jobs/{job}/stop", headers={"Authorization": "Bearer KEY"})
    assert answer.status_code == 200 and answer.json()["status"] == "stopped"
    assert jobs.get(job)["error"] == "stopped before it started"
    answer = client.post(f"/console/api/jobs/{job}/stop", headers={"Authorization": "Bearer KEY"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "job_ended"


def test_console_reads_a_parquet_upload_like_a_csv(tmp_path):
    import pandas as pd

    source = tmp_path / "tickets.parquet"
    pd.DataFrame({"text": ["where is my card", "refund please", "card lost", "money back"],
                  "label": ["card", "refund", "card", "refund"]}).to_parquet(source)
    client = client_for(tmp_path)
    answer = client.post("/console/data/upload", data={"csrf": csrf_of(client)},
                         files={"file": ("tickets.parquet", source.read_bytes(), "application/octet-stream")},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].endswith("data/tickets.parquet")
    report = client.get("/console/api/data", params={"file": "data/tickets.parquet"}).json()
    assert report["kept"] == 4 and report["trainable"]
    assert report["labels"] == [{"label": "card", "count": 2}, {"label": "refund", "count": 2}]
