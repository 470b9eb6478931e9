"""The web console below the browser: the job and review tables, the job runner with real
processes (done, failed, one at a time, stopped, killed, recovered after a restart), the
workspace's path checks, and the app's forms, uploads, sign-in and JSON API (TestClient)."""

from __future__ import annotations

import csv
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
