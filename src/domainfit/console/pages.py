"""The console's pages: server-rendered HTML (Jinja2) under ``/console/``; each form posts
back here with its CSRF token and is answered with a redirect (or the page again with the
problem named on it, under a 4xx status)."""

from __future__ import annotations

import asyncio
import base64
import functools
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..core.errors import DomainfitError
from ..core.version import __version__
from .api import set_session_cookie
from .datasets import TASK_CHOICES
from .service import Console
from .training import METHOD_CHOICES, TrainForm, defaults
from .workspace import ConsoleError

__all__ = ["page_routes", "templates"]

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["urlq"] = lambda v: quote(str(v), safe="")


def markdown_html(text: str, base: str) -> str:
    """A report's Markdown as HTML (raw HTML in it is not passed through); relative image
    links point at ``base``."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or ():
            src = child.attrGet("src") if child.type == "image" else None
            if src and "://" not in src and not src.startswith("/"):
                child.attrSet("src", base + quote(src))
    return md.renderer.render(tokens, md.options, {})


def page_routes(console: Console, security, ctx, require_page) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    def render(request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
        sid, new = security.session(request)
        values.update(request=request, csrf=security.csrf_token(sid), version=__version__,
                      page=template.split(".")[0], keyed=bool(security.api_key))
        response = templates.TemplateResponse(request, template, values, status_code=status)
        if new:
            set_session_cookie(response, sid)
        return response

    def handled(page: str):
        """Answer a ConsoleError (or a DomainfitError from the library) with the error page."""
        def wrap(fn):
            @functools.wraps(fn)
            async def inner(request: Request, *args, **kwargs):
                try:
                    return await fn(request, *args, **kwargs)
                except DomainfitError as exc:
                    status = getattr(exc, "status", 409)
                    status = status if isinstance(status, int) and 400 <= status < 500 else 409
                    message = str(exc).replace(str(console.workspace.root) + "/", "")
                    return render(request, "error.html", status, message=message, back=page)
            return inner
        return wrap

    async def form_of(request: Request) -> dict:
        form = await request.form()
        security.check_csrf(request, form.get("csrf"))
        return {k: v for k, v in form.items() if k != "csrf"}

    def later(fn, *args, **kwargs):
        return asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    @router.get("/login")
    async def login_page(request: Request, next: str = "/console/"):
        return render(request, "login.html", next=next if next.startswith("/console/") else "/console/")

    @router.post("/login")
    @handled("/console/login")
    async def login(request: Request):
        form = await form_of(request)
        if not security.check_key(str(form.get("key", ""))):
            return render(request, "login.html", 403, next="/console/", error="That is not the console's key.")
        target = str(form.get("next") or "/console/")
        response = RedirectResponse(target if target.startswith("/console/") else "/console/", 303)
        from .security import AUTH_COOKIE

        response.set_cookie(AUTH_COOKIE, security.auth_cookie(), httponly=True, samesite="strict", path="/")
        return response

    @router.get("/", dependencies=[require_page])
    async def home(request: Request):
        jobs = console.jobs.jobs(limit=5)
        return render(request, "home.html", jobs=jobs, files=console.workspace.data_files()[:10],
                      runs=console.runs()[-5:], bundles=console.bundles(), registry=console.registry.listing())

    # --- data --------------------------------------------------------------------------
    @router.get("/data", dependencies=[require_page])
    async def data_page(request: Request):
        return render(request, "data.html", files=console.workspace.data_files(),
                      max_bytes=console.max_upload_bytes)

    @router.post("/data/upload", dependencies=[require_page])
    @handled("/console/data")
    async def upload(request: Request):
        form = await form_of(request)
        item = form.get("file")
        if item is None or not hasattr(item, "read") or not item.filename:
            raise ConsoleError("choose a file to upload", 422, "no_file")
        relative = await later(console.save_upload, item.filename, item.file, item.size)
        return RedirectResponse(f"/console/data/view?file={quote(relative)}", 303)

    @router.get("/data/view", dependencies=[require_page])
    @handled("/console/data")
    async def data_view(request: Request, file: str, task: str = "classification", text_column: str = "",
                        label_column: str = "", text_pair_column: str = ""):
        report = await later(console.report, file, task=task, text_column=text_column or None,
                             label_column=label_column or None, text_pair_column=text_pair_column or None)
        status = 422 if report.problems else 200
        return render(request, "dataset.html", status, report=report, tasks=TASK_CHOICES,
                      top=report.labels[:30], most=max([c for _, c in report.labels] or [1]))

    # --- training ----------------------------------------------------------------------
    @router.get("/train", dependencies=[require_page])
    @handled("/console/data")
    async def train_page(request: Request, file: str, task: str = "classification", text_column: str = "text",
                         label_column: str = "label", text_pair_column: str = "", method: str = "auto",
                         model: str = "default", epochs: str = ""):
        form = TrainForm(data=file, task=task, text_column=text_column, label_column=label_column,
                         text_pair_column=text_pair_column, method=method, model=model, epochs=epochs)
        report = await later(console.report, file, task=task, text_column=text_column, label_column=label_column,
                             text_pair_column=text_pair_column or None)
        hint = await later(console.suggestion, report, form) if not report.problems else None
        return render(request, "train.html", form=form, report=report, suggestion=hint, methods=METHOD_CHOICES,
                      defaults=defaults(), files=console.workspace.data_files())

    @router.post("/train", dependencies=[require_page])
    @handled("/console/data")
    async def train(request: Request):
        form = await form_of(request)
        fields = set(TrainForm.__dataclass_fields__)
        train_form = TrainForm(**{k: str(v) for k, v in form.items() if k in fields and k != "skip_bad_rows"},
                               skip_bad_rows=form.get("skip_bad_rows") == "on")
        job = await later(console.start_training, train_form)
        return RedirectResponse(f"/console/jobs/{job}", 303)

    # --- jobs --------------------------------------------------------------------------
    @router.get("/jobs", dependencies=[require_page])
    async def jobs_page(request: Request):
        return render(request, "jobs.html", jobs=[console.job_view(j["id"]) for j in console.jobs.jobs()])

    @router.get("/jobs/{job_id}", dependencies=[require_page])
    @handled("/console/jobs")
    async def job_page(request: Request, job_id: int):
        return render(request, "job.html", job=console.job_view(job_id))

    @router.post("/jobs/{job_id}/{action}", dependencies=[require_page])
    @handled("/console/jobs")
    async def job_action(request: Request, job_id: int, action: str):
        await form_of(request)
        if action not in ("stop", "resume"):
            raise ConsoleError(f"unknown action {action!r}", 404, "not_found")
        (console.stop if action == "stop" else console.resume)(job_id)
        return RedirectResponse(f"/console/jobs/{job_id}", 303)

    # --- runs --------------------------------------------------------------------------
    @router.get("/runs", dependencies=[require_page])
    async def runs_page(request: Request):
        return render(request, "runs.html", runs=console.runs())

    @router.get("/runs/compare", dependencies=[require_page])
    @handled("/console/runs")
    async def compare_page(request: Request):
        names = request.query_params.getlist("run")
        comparison = await later(console.compare, names)
        from ..evaluation.runs import curves_png

        png = await later(curves_png, comparison)
        return render(request, "compare.html", comparison=comparison,
                      curves=base64.b64encode(png).decode("ascii") if png else None)

    @router.get("/runs/view", dependencies=[require_page])
    @handled("/console/runs")
    async def run_page(request: Request, run: str):
        return render(request, "run.html", **_run_values(console, run))

    @router.post("/runs/try", dependencies=[require_page])
    @handled("/console/runs")
    async def try_it(request: Request):
        form = await form_of(request)
        run, text = str(form.get("run", "")), str(form.get("text", "")).strip()
        if not text:
            raise ConsoleError("type a text to try the model on", 422, "no_text")
        answer = await later(_predict, console.run_folder(run), text, form.get("explain") == "on")
        return render(request, "run.html", **_run_values(console, run), tried=text, answer=answer)

    @router.get("/runs/file", dependencies=[require_page])
    @handled("/console/runs")
    async def run_file(request: Request, run: str, name: str):
        folder = console.run_folder(run) / "report"
        path = (folder / name).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise ConsoleError(f"no report file {name!r} in {run}", 404, "not_found")
        if path.suffix == ".html":  # the report's own page: shown as a document of its own, no scripts run
            return Response(path.read_bytes(), media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": "default-src 'none'; img-src data:; "
                                     "style-src 'unsafe-inline'"})
        return FileResponse(path)

    # --- deployment --------------------------------------------------------------------
    @router.get("/deploy", dependencies=[require_page])
    async def deploy_page(request: Request):
        return render(request, "deploy.html", **_deploy_values(console, ctx))

    @router.post("/deploy/{action}", dependencies=[require_page])
    @handled("/console/deploy")
    async def deploy_action(request: Request, action: str):
        form = await form_of(request)
        if action == "export":
            job = console.export(str(form.get("run", "")), form.get("quantize") == "on")
            return RedirectResponse(f"/console/jobs/{job}", 303)
        if action == "add":
            await later(console.add_to_registry, str(form.get("run", "")), str(form.get("name", "")).strip())
        elif action == "promote":
            await later(console.promote, str(form.get("name", "")), _number(form.get("version")))
        elif action == "rollback":
            await later(console.rollback, str(form.get("name", "")))
        else:
            raise ConsoleError(f"unknown action {action!r}", 404, "not_found")
        return RedirectResponse("/console/deploy", 303)

    @router.post("/predict", dependencies=[require_page])
    @handled("/console/deploy")
    async def predict_served(request: Request):
        """Predict with a served (production) model of the registry, as a client would."""
        form = await form_of(request)
        name, text = str(form.get("name", "")), str(form.get("text", "")).strip()
        loaded = ctx.host.models.get(name)
        if loaded is None:
            raise ConsoleError(f"{name!r} is not served yet: promote a version (the server picks it up within a "
                               "second or two) and try again", 409, "not_served")
        if not text:
            raise ConsoleError("type a text to predict", 422, "no_text")
        answer = (await later(loaded.predictor.predict, [text]))[0]
        return render(request, "deploy.html", **_deploy_values(console, ctx), served_name=name, tried=text,
                      answer=answer, served_version=loaded.version)

    # --- review ------------------------------------------------------------------------
    @router.get("/review", dependencies=[require_page])
    async def review_page(request: Request):
        await later(console.refresh_review)
        return render(request, "review.html", queues=console.review.queues(), runs=console.runs(),
                      files=console.workspace.data_files(), registry=console.registry.names())

    @router.get("/review/queue", dependencies=[require_page])
    @handled("/console/review")
    async def review_queue(request: Request, queue: str):
        item = console.review.next_open(queue)
        counts = next((q for q in console.review.queues() if q["queue"] == queue), None)
        if counts is None:
            raise ConsoleError(f"no review queue {queue!r}", 404, "not_found")
        return render(request, "queue.html", queue=queue, item=item, counts=counts,
                      labels=_queue_labels(console, queue), done=console.review.items(queue, "labelled")[-10:])

    @router.post("/review/{action}", dependencies=[require_page])
    @handled("/console/review")
    async def review_action(request: Request, action: str):
        form = await form_of(request)
        queue = str(form.get("queue", ""))
        if action == "label":
            label = str(form.get("label", "")).strip()
            if not console.review.label(_number(form.get("item")), label or None):
                raise ConsoleError("no such review item", 404, "not_found")
            return RedirectResponse(f"/console/review/queue?queue={quote(queue)}", 303)
        if action == "export":
            path, count = console.export_reviewed(queue)
            return render(request, "error.html", 200, title="Labels saved",
                          message=f"{count} labelled row(s) written to {path}", back="/console/review")
        if action in ("select", "audit", "retrain", "gate"):
            job = _improve_job(console, action, form)
            return RedirectResponse(f"/console/jobs/{job}", 303)
        raise ConsoleError(f"unknown action {action!r}", 404, "not_found")

    # --- apps --------------------------------------------------------------------------
    @router.get("/apps", dependencies=[require_page])
    async def apps_page(request: Request):
        return render(request, "apps.html", bundles=console.bundles(), host=request.url.hostname)

    @router.post("/apps/start", dependencies=[require_page])
    @handled("/console/apps")
    async def start_app(request: Request):
        form = await form_of(request)
        console.start_app(str(form.get("name", "")))
        return RedirectResponse("/console/apps", 303)

    return router


def _number(value) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConsoleError(f"{value!r} is not a number", 422, "bad_number") from None


def _run_values(console: Console, run: str) -> dict:
    view = console.run_view(run)
    base = f"/console/runs/file?run={quote(run)}&name="
    view["report_html"] = markdown_html(view["report_md"], base) if view["report_md"] else None
    view["report_base"] = base
    return view


def _predict(folder: Path, text: str, explain: bool) -> dict:
    from ..inference import Predictor

    predictor = Predictor(folder)
    answer = predictor.predict([text])[0]
    if explain:
        try:
            answer["explanation"] = predictor.explain([text])[0]["explanation"]
        except DomainfitError as exc:
            answer["explanation_error"] = str(exc)
    return answer


def _deploy_values(console: Console, ctx) -> dict:
    from prometheus_client import generate_latest

    exports = [(r.name, console.run_view(r.name)["export"]) for base, r in console.runs() if base == "exports"]
    metrics = [line for line in generate_latest(ctx.metrics["registry"]).decode().splitlines()
               if line.startswith(("domainfit_requests_total", "domainfit_predicted_items_total"))]
    return {"registry": console.registry.listing(), "names": console.registry.names(),
            "problems": console.registry.problems(), "runs": console.runs(), "exports": exports,
            "served": {n: m.version for n, m in ctx.host.models.items()}, "failures": dict(ctx.host.failures),
            "metrics": metrics[:40]}


def _queue_labels(console: Console, queue: str) -> list[str]:
    """The labels a person may choose in ``queue``: the model's (a model queue) or those
    the items name."""
    labels: list[str] = []
    try:
        from ..artifact import read_manifest

        folder = console.workspace.resolve(queue)
        if (folder / "domainfit.json").is_file():
            labels = list(read_manifest(folder).get("labels") or [])
        elif queue.startswith("registry/"):
            production = console.registry.production(queue.split("/", 1)[1])
            labels = list(read_manifest(production[1]).get("labels") or []) if production else []
    except DomainfitError:
        pass
    for item in console.review.items(queue, limit=10_000):
        for label in (item["suggested"], item["given"], item["label"]):
            if label and label not in labels:
                labels.append(label)
    return labels


def _improve_job(console: Console, action: str, form: dict) -> int:
    get = lambda k: str(form.get(k, "")).strip()  # noqa: E731
    if action == "select":
        run = console.workspace.relative(console.run_folder(get("run")))
        pool = console.workspace.relative(console.data_file(get("pool")))
        budget = _number(get("budget") or "20")
        out = f".console/picks/{Path(run).name}-{_stamp()}.csv"
        return console.queue("select", f"pick {budget} texts to label for {run}",
                             ["select", run, "--pool", pool, "--budget", str(budget), "--output", out], out)
    if action == "audit":
        data = console.workspace.relative(console.data_file(get("data")))
        out = f".console/audits/{Path(data).stem}-{_stamp()}"
        return console.queue("audit", f"audit the labels of {data}", ["audit", "--data", data, "--output", out], out)
    if action == "retrain":
        run = console.workspace.relative(console.run_folder(get("run")))
        added = console.workspace.relative(console.data_file(get("add")))
        name = console.workspace.new_run_name(Path(run).name + "-retrained", console.taken_outputs())
        given = TrainForm(data="", epochs=get("epochs")).settings().get("epochs")
        epochs = ["--epochs", f"{given:g}"] if given else []
        return console.queue("retrain", f"retrain {run} with {added}",
                             ["retrain", run, "--add", added, "--output", f"runs/{name}", *epochs], f"runs/{name}")
    candidate = console.workspace.relative(console.run_folder(get("run")))
    data = console.workspace.relative(console.data_file(get("data")))
    champion = f"registry/{get('champion')}"
    out = f".console/gates/{Path(candidate).name}-{_stamp()}"
    return console.queue("gate", f"gate {candidate} against {champion}",
                         ["gate", candidate, "--champion", champion, "--data", data, "--output", out], out)



def _stamp() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1000:03d}"
