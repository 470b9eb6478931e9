"""The console's job runner: each job is a ``domainfit`` command run as a separate process,
one at a time (a 2-core machine trains one model at a time; the others wait in the queue),
recorded in the job table so that a page reload, a closed tab or a console restart loses
nothing.

The process is started through ``sh``, which writes the command's exit status to the job's
folder when it ends, so that a console started again later still learns how a job it did not
start ended. At start-up, a job recorded as running whose process is gone without an exit
status is marked ``interrupted``; a queued job again resumes it from its checkpoints (the
training command continues an unfinished output folder).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..stores import JobStore
from .workspace import Workspace

__all__ = ["JobRunner", "job_error", "log_tail", "command_line"]

log = logging.getLogger("domainfit.console")

EXIT_FILE = "exit_code"
LOG_FILE = "output.log"
STOP_FILE = "stop"
PROCESS_FILE = "process"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def command_line(argv: list[str]) -> str:
    """The job's command as a terminal user types it (``domainfit ARGS``, quoted for a shell)."""
    return "domainfit " + shlex.join(argv)


def log_tail(folder: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a job's output (terminal colours removed)."""
    path = folder / LOG_FILE
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64_000))
        text = fh.read().decode("utf-8", "replace")
    return _ANSI.sub("", "\n".join(text.splitlines()[-lines:]))


def job_error(folder: Path) -> str:
    """What went wrong, from a failed job's output: the command's one-paragraph ``error:``
    message, else the last line of a traceback, else the last lines."""
    text = log_tail(folder, 200)
    found = text.rfind("error:")
    if found >= 0:
        return " ".join(text[found + len("error:"):].split())[:2000]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if any(ln.startswith("Traceback") for ln in lines):
        return lines[-1][:2000]
    return "\n".join(lines[-5:])[:2000] or "the command failed without a message"


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _group_alive(pgid: int | None, folder: Path | None = None) -> bool:
    """Whether any process of the job's process group (``sh`` and the command it runs) is
    still there: a stopped job counts as ended only when its command has ended too. With the
    job's ``folder``, a group leader that started at another time than the job's (its id
    reused after a reboot) is not the job's."""
    if not pgid:
        return False
    if folder is not None and (folder / PROCESS_FILE).is_file():
        recorded = (folder / PROCESS_FILE).read_text().split()
        now = _started(pgid)
        if now is not None and len(recorded) == 2 and recorded[1] != now:
            return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """Runs queued jobs one at a time in a background thread (see the module docstring)."""

    def __init__(self, store: JobStore, workspace: Workspace, *, poll_seconds: float = 0.5,
                 env: dict | None = None):
        self.store, self.workspace, self.poll_seconds = store, workspace, poll_seconds
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("HF_HUB_OFFLINE", "1")
        self.env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._process: subprocess.Popen | None = None
        self._current: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="domainfit-console-jobs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching (running jobs go on; a console started again adopts them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def recover(self) -> None:
        """Settle the jobs recorded as running when the console starts: ended ones get their
        result, ones whose process is gone without a result are ``interrupted``; a job still
        running (started by an earlier console) is watched until it ends."""
        for job in self.store.jobs("running"):
            if not self._settle(job):
                self._current = job["id"]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # never let one bad record stop the runner
                log.exception("the job runner failed a round; trying again")
            self._stop.wait(self.poll_seconds)

    def tick(self) -> None:
        """One round: settle the running job if it ended, else start the next queued one."""
        with self._lock:
            if self._current is not None:
                job = self.store.get(self._current)
                if job is None or job["status"] != "running" or self._settle(job):
                    self._current, self._process = None, None
                else:
                    return
            job = self.store.claim_next()
            if job is not None:
                self._launch(job)

    # --- one job -----------------------------------------------------------------------
    def _launch(self, job: dict) -> None:
        folder = self.workspace.job_folder(job["id"])
        folder.mkdir(parents=True, exist_ok=True)
        for name in (EXIT_FILE, STOP_FILE, PROCESS_FILE):
            (folder / name).unlink(missing_ok=True)
        command = [sys.executable, "-m", "domainfit.cli", *job["argv"]]
        # sh writes the exit status when the command ends: how a later console learns it.
        script = f'"$@"; echo $? > {shlex.quote(str(folder / EXIT_FILE))}'
        with open(folder / LOG_FILE, "ab") as out:
            out.write(f"\n$ {command_line(job['argv'])}\n".encode())
            out.flush()
            try:
                process = subprocess.Popen(["sh", "-c", script, "sh", *command], cwd=self.workspace.root,
                                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=self.env, start_new_session=True)
            except OSError as exc:
                self.store.finish(job["id"], "failed", error=f"the job could not start: {exc}")
                return
        self._process, self._current = process, job["id"]
        (folder / PROCESS_FILE).write_text(f"{process.pid} {_started(process.pid) or '-'}")
        self.store.set_pid(job["id"], process.pid)

    def _settle(self, job: dict) -> bool:
        """Record the end of a running job whose process has ended; False while it runs."""
        if self._process is not None and self._current == job["id"] and self._process.poll() is None:
            return False
        folder = self.workspace.job_folder(job["id"])
        if _group_alive(job["pid"], folder):
            return False
        stopped = (folder / STOP_FILE).exists()
        exit_file = folder / EXIT_FILE
        code = int(exit_file.read_text().strip() or 1) if exit_file.is_file() else None
        if code == 0:
            self.store.finish(job["id"], "done", exit_code=0)
        elif stopped:
            self.store.finish(job["id"], "stopped", exit_code=code, error="stopped from the console; "
                              "resume it to continue from its last checkpoint")
        elif code is None:
            self.store.finish(job["id"], "interrupted", error="the job's process ended without finishing (it was "
                              "killed, or the machine or the console stopped); resume it to continue from its "
                              "last checkpoint")
        else:
            self.store.finish(job["id"], "failed", exit_code=code, error=job_error(folder))
        return True

    def stop(self, job_id: int) -> bool:
        """Stop a queued or running job; False when it had ended already."""
        job = self.store.get(job_id)
        if job is None or job["status"] not in ("queued", "running"):
            return False
        if job["status"] == "queued":
            return self.store.finish(job_id, "stopped", error="stopped before it started")
        folder = self.workspace.job_folder(job_id)
        (folder / STOP_FILE).write_text("stop")
        if job["pid"]:
            try:
                os.killpg(job["pid"], signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            threading.Thread(target=_kill_later, args=(job["pid"],), daemon=True).start()
        return True


def _kill_later(pid: int, grace: float = 10.0) -> None:
    deadline = time.time() + grace
    while time.time() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
