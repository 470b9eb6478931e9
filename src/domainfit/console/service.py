"""What the console does, apart from HTTP: the pages and the JSON API both call these.

Each long action (training, export, evaluation, active-learning picks, label audit,
retraining, the champion/challenger gate) becomes a job running the same ``domainfit``
command a terminal user would type, so that what the console does can be repeated, scripted
and resumed outside it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..artifact import is_artifact, read_manifest
from ..stores import FeedbackStore, JobStore, Registry, ReviewStore, check_name
from .datasets import DataReport, check_readable, inspect
from .jobs import JobRunner, command_line, log_tail
from .training import TrainForm, suggest, train_argv
from .workspace import ConsoleError, Workspace

__all__ = ["Console", "APP_PAGES"]

# The app bundles the console links to: bundle kind → (title, serve command, page path).
APP_PAGES = {
    "customer-service": ("Customer-service chat", "customer-service", "/chat"),
    "monitor": ("Sentiment monitoring dashboard", "monitor", "/monitor"),
    "recommend": ("Recommendations API", "recommend", "/docs"),
}


@dataclass
class Console:
    """The console's state: its folder, job table and runner, review queue and registry."""

    workspace: Workspace
    jobs: JobStore
    runner: JobRunner
    review: ReviewStore
    max_upload_bytes: int

    @classmethod
    def open(cls, root: str | Path, max_upload_bytes: int = 200 << 20, env: dict | None = None) -> "Console":
        ws = Workspace.open(root)
        jobs = JobStore(ws.db_url)
        return cls(ws, jobs, JobRunner(jobs, ws, env=env), ReviewStore(ws.db_url), max_upload_bytes)

    @property
    def registry(self) -> Registry:
        return Registry(self.workspace.registry)

    # --- data --------------------------------------------------------------------------
    def save_upload(self, filename: str, source, size: int | None = None) -> str:
        """Store an uploaded file (a binary file object) under ``data/``, checked readable;
        returns its path relative to the root. A file that is not readable is not kept.

        Raises:
            ConsoleError: 413 too large, 415 a type the loader does not read, 422 unreadable.
        """
        if size is not None and size > self.max_upload_bytes:
            raise ConsoleError(_too_large(self.max_upload_bytes), 413, "file_too_large")
        path = self.workspace.upload_path(filename)
        partial = path.with_name(f".{path.name}.partial")
        written = 0
        try:
            with open(partial, "wb") as out:
                while chunk := source.read(1 << 20):
                    written += len(chunk)
                    if written > self.max_upload_bytes:
                        raise ConsoleError(_too_large(self.max_upload_bytes), 413, "file_too_large")
                    out.write(chunk)
            if written == 0:
                raise ConsoleError(f"{filename!r} is empty", 422, "empty_file")
            os.replace(partial, path)
            try:
                check_readable(path, filename)
            except ConsoleError:
                path.unlink(missing_ok=True)
                raise
        finally:
            partial.unlink(missing_ok=True)
        return self.workspace.relative(path)

    def data_file(self, relative: str) -> Path:
        path = self.workspace.resolve(relative)
        if not path.is_file():
            raise ConsoleError(f"no file {relative!r} under the console's root", 404, "no_such_file")
        return path

    def report(self, relative: str, **mapping) -> DataReport:
        return inspect(self.data_file(relative), relative, **mapping)

    # --- training ----------------------------------------------------------------------
    def suggestion(self, report: DataReport, form: TrainForm) -> dict:
        return suggest(report.examples, form)

    def start_training(self, form: TrainForm) -> int:
        """Queue ``domainfit train`` for a submitted form; returns the job id.

        Raises:
            ConsoleError: a missing file, bad settings, or data with problems that the form
                did not choose to skip.
        """
        self.data_file(form.data)
        eval_data = form.eval_data or None
        if eval_data:
            self.data_file(eval_data)
        form.settings()
        check = self.report(form.data, task=form.task, text_column=form.text_column,
                            label_column=form.label_column, text_pair_column=form.text_pair_column or None)
        if check.problems:
            raise ConsoleError("the data cannot train a model: " + "; ".join(check.problems[:3]), 422, "bad_data")
        if check.skipped and not form.skip_bad_rows:
            raise ConsoleError(f"{len(check.skipped)} row(s) have problems (listed on the data page): fix the file, "
                               "or choose to train without them", 422, "bad_rows")
        taken = self.taken_outputs()
        name = self.workspace.new_run_name(form.name or f"{Path(form.data).stem}-{form.method}", taken)
        output = f"runs/{name}"
        return self.jobs.add("train", f"train {name} ({form.task}, {form.method})",
                             train_argv(form, form.data, output, eval_data), output)

    def taken_outputs(self) -> set[str]:
        """The output folder names of every recorded job: a job queued again later writes
        where it wrote before, so no new job takes its name."""
        return {Path(j["output"]).name for j in self.jobs.jobs(limit=100_000) if j["output"]}

    # --- jobs --------------------------------------------------------------------------
    def job(self, job_id: int) -> dict:
        job = self.jobs.get(job_id)
        if job is None:
            raise ConsoleError(f"no job {job_id}", 404, "no_such_job")
        return job

    def job_view(self, job_id: int) -> dict:
        """A job with its progress, log tail, queue position and the command that resumes it."""
        job = self.job(job_id)
        view = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in job.items()}
        view["progress"] = self.progress(job)
        view["log"] = log_tail(self.workspace.job_folder(job_id), 30)
        view["position"] = self.jobs.queue_position(job_id)
        view["command"] = command_line(job["argv"])
        view["resumable"] = job["status"] in ("stopped", "interrupted", "failed")
        view["result"] = job["output"] if job["status"] == "done" and job["output"] else None
        view["result_run"] = None
        if view["result"] and is_artifact(self.workspace.root / view["result"]):
            view["result_run"] = view["result"][len("runs/"):] if view["result"].startswith("runs/") else view["result"]
        return view

    def progress(self, job: dict) -> dict:
        """Training steps done and planned, the loss curve and the validation points, read
        from the run's ``metrics.jsonl``."""
        out = {"step": 0, "total": None, "loss": [], "validation": [], "metric": None}
        if not job["output"]:
            return out
        path = self.workspace.root / job["output"] / "metrics.jsonl"
        if not path.is_file():
            return out
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if "loss" in record:
                out["loss"].append([record["step"], record["loss"]])
                out["step"], out["total"] = record["step"], record.get("total", out["total"])
            for key, value in record.items():
                if key.startswith("val_") and isinstance(value, (int, float)):
                    out["metric"] = out["metric"] or key[4:]
                    if key[4:] == out["metric"]:
                        out["validation"].append([record["step"], value])
        return out

    def stop(self, job_id: int) -> None:
        self.job(job_id)
        if not self.runner.stop(job_id):
            raise ConsoleError(f"job {job_id} has ended already", 409, "job_ended")

    def resume(self, job_id: int) -> None:
        """Queue a stopped, interrupted or failed job again: the same command, which continues
        an unfinished training run from its last checkpoint."""
        job = self.job(job_id)
        if not self.jobs.requeue(job_id):
            raise ConsoleError(f"job {job_id} is {job['status']}; only a stopped, interrupted or failed job "
                               "can be resumed", 409, "not_resumable")

    def queue(self, kind: str, title: str, argv: list[str], output: str | None) -> int:
        return self.jobs.add(kind, title, argv, output)

    # --- runs --------------------------------------------------------------------------
    def run_folder(self, name: str) -> Path:
        """The model folder a page names: ``NAME`` under ``runs/``, ``exports/NAME`` under
        ``exports/``."""
        base, rest = (self.workspace.exports, name[8:]) if name.startswith("exports/") else (self.workspace.runs, name)
        path = (base / rest).resolve() if rest else base
        if path.is_relative_to(base) and path != base and is_artifact(path):
            return path
        raise ConsoleError(f"no model named {name!r} under runs/ or exports/", 404, "no_such_run")

    def runs(self) -> list:
        """``(kind, run)`` for every model under ``runs/`` (kind ``runs``) and ``exports/``
        (``exports``), each run named as :meth:`run_folder` takes it."""
        from ..artifact.runs import list_runs

        found = [("runs", run) for run in list_runs(self.workspace.runs)]
        for run in list_runs(self.workspace.exports):
            run.name = "exports/" + run.name
            found.append(("exports", run))
        return found

    def run_view(self, name: str) -> dict:
        folder = self.run_folder(name)
        manifest = read_manifest(folder)
        report = folder / "report"
        return {"name": name, "folder": self.workspace.relative(folder), "manifest": manifest,
                "report_md": (report / "report.md").read_text(encoding="utf-8") if (report / "report.md").is_file()
                else None,
                "explanations": (report / "explanations.html").is_file(),
                "export": manifest.get("export")}

    def compare(self, names: list[str]):
        from ..artifact.runs import read_run
        from ..evaluation.runs import compare

        if len(names) < 2:
            raise ConsoleError("choose at least two runs to compare", 422, "too_few_runs")
        return compare([read_run(self.run_folder(n), n) for n in names])

    # --- deployment --------------------------------------------------------------------
    def export(self, name: str, quantize: bool) -> int:
        folder = self.run_folder(name)
        taken = self.taken_outputs()
        target = Path(name).name + ("-int8" if quantize else "-onnx")
        out_name, n = target, 1
        while (self.workspace.exports / out_name).exists() or out_name in taken:
            n += 1
            out_name = f"{target}-{n}"
        argv = ["export", self.workspace.relative(folder), "--output", f"exports/{out_name}"]
        if quantize:
            argv += ["--quantize", "int8"]
        return self.queue("export", f"export {name} to ONNX{' int8' if quantize else ''}", argv,
                          f"exports/{out_name}")

    def add_to_registry(self, run: str, model_name: str) -> int:
        check_name(model_name)
        return self.registry.add(model_name, self.run_folder(run))

    def promote(self, model_name: str, version: int, by: str = "console") -> None:
        self.registry.promote(model_name, version, by=by, reason="promoted from the console")

    def rollback(self, model_name: str, by: str = "console") -> None:
        self.registry.rollback(model_name, by=by, reason="rolled back from the console")

    # --- review queue ------------------------------------------------------------------
    def feedback(self) -> FeedbackStore:
        return FeedbackStore(self.workspace.db_url)

    def refresh_review(self) -> None:
        """Queue what finished jobs found (active-learning picks, audit flags) and the
        feedback that names no correct label."""
        for job in self.jobs.jobs("done"):
            if job["kind"] not in ("select", "audit") or not job["output"]:
                continue
            queue = job["argv"][1] if job["kind"] == "select" else _option(job["argv"], "--data")
            out = self.workspace.root / job["output"]
            rows = _read_csv(out if job["kind"] == "select" else out / "label_issues.csv")
            if job["kind"] == "select":
                items = [{"text": r["text"], "line": _int(r.get("line")), "suggested": r.get("guess"),
                          "reason": f"the model is unsure (score {r.get('score')})"} for r in rows]
            else:
                items = [{"text": r["text"], "line": _int(r.get("line")), "suggested": r.get("suggested_label"),
                          "given": r.get("given_label"),
                          "reason": f"the label looks wrong (quality {r.get('score')})"} for r in rows]
            self.review.add(queue, job["kind"], items)
        unlabelled = [r for r in self.feedback().rows(labelled_only=False) if not r[1]]
        for model in {r[3] for r in unlabelled}:
            self.review.add(f"registry/{model}" if model else "feedback", "feedback",
                            [{"text": r[0], "suggested": r[2] or None, "reason": "a user said the answer was wrong"}
                             for r in unlabelled if r[3] == model])

    def export_reviewed(self, queue: str) -> tuple[str, int]:
        """The labelled items of ``queue`` as ``data/reviewed-<queue>.csv`` (text,label)."""
        name = "reviewed-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in queue).strip("-")
        path = self.workspace.data / f"{name}.csv"
        count = self.review.export_csv(queue, path)
        return self.workspace.relative(path), count

    # --- app bundles -------------------------------------------------------------------
    def bundles(self) -> list[dict]:
        """App bundles under ``apps/``: name, kind, title, and the page of its server when the
        console started one."""
        found = []
        for folder in sorted(self.workspace.apps.iterdir()):
            manifest = folder / "bundle.json"
            if not manifest.is_file():
                continue
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
                kind = data.get("kind") if isinstance(data, dict) else None
            except (OSError, ValueError):
                continue
            if kind in APP_PAGES:
                title, _, page = APP_PAGES[kind]
                port = _read_port(self.workspace.state / f"app-{folder.name}.port")
                found.append({"name": folder.name, "kind": kind, "title": title, "page": page, "port": port})
        return found

    def start_app(self, name: str) -> int:
        """Start the server of bundle ``name`` on a free local port (a process of its own,
        not a queued job: it serves until the console's machine stops it); returns the port."""
        bundle = next((b for b in self.bundles() if b["name"] == name), None)
        if bundle is None:
            raise ConsoleError(f"no app bundle {name!r} under apps/", 404, "no_such_bundle")
        if bundle["port"]:
            return bundle["port"]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        folder = self.workspace.state
        command = [sys.executable, "-m", "domainfit.cli", "app", APP_PAGES[bundle["kind"]][1], "serve",
                   f"apps/{name}", "--host", "127.0.0.1", "--port", str(port)]
        with open(folder / f"app-{name}.log", "ab") as out:
            process = subprocess.Popen(command, cwd=self.workspace.root, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=self.runner.env, start_new_session=True)
        (folder / f"app-{name}.port").write_text(f"{port} {process.pid}")
        return port


def _read_port(path: Path) -> int | None:
    """The port of an app server the console started, while its process lives."""
    try:
        port, pid = path.read_text().split()
        os.kill(int(pid), 0)
        return int(port)
    except (OSError, ValueError):
        return None


def _too_large(limit: int) -> str:
    return (f"the file is larger than the console's upload limit of {limit / (1 << 20):.3g} MB; split it, or start "
            "the console with a larger --max-upload-mb (or put the file under the root folder and pick it)")


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1] if name in argv[:-1] else "data"


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _read_csv(path: Path) -> list[dict]:
    import csv

    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
