"""The HTTP server: FastAPI app, model host with hot swap, auth, limits, metrics, feedback.

Endpoints (OpenAPI at ``/openapi.json``):

* ``POST /v1/models/{name}/predict``: ``{"texts": [...]}`` (+ ``pairs`` for pair models,
  ``tokens`` instead of texts for pre-split NER input, ``query`` + ``k`` for retrieval,
  ``top_k``) → predictions with the model name, version and request id;
* ``GET /v1/models``, ``GET /healthz`` (alive), ``GET /readyz`` (models loaded),
  ``GET /metrics`` (Prometheus);
* ``POST /v1/feedback``; admin (API key always): ``GET /v1/feedback/export`` (CSV),
  ``GET /v1/admin/registry``, ``POST /v1/admin/registry/{name}/versions`` (add),
  ``POST /v1/admin/registry/{name}/promote``, ``POST /v1/admin/registry/{name}/rollback``,
  ``DELETE /v1/admin/registry/{name}/versions/{version}``.

Every error is JSON ``{"error": {"code", "message"}, "request_id"}`` with a 4xx status for
a bad request. Logs carry request ids, sizes and latency; never texts or keys.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..artifact import is_artifact
from ..errors import DomainfitError
from .batching import MicroBatcher
from .feedback import FeedbackStore
from .registry import Registry, check_name

__all__ = ["ServeSettings", "ServerContext", "ApiError", "create_app"]

log = logging.getLogger("domainfit.serve")


@dataclass
class ServeSettings:
    """Server settings; every limit has a safe default."""

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


class ApiError(Exception):
    """A client error answered as ``{"error": {"code", "message"}, "request_id"}``."""

    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


@dataclass
class ServerContext:
    """What an extension (e.g. an app's endpoints) gets from the server: the settings, the
    Prometheus metrics, auth dependencies, the request id, and start/stop/readiness hooks."""

    settings: ServeSettings
    metrics: dict
    predict_auth: Any
    admin_auth: Any
    request_id: Any
    on_start: list
    on_stop: list
    ready_checks: list


# ------------------------------------------------------------------------------- models host

@dataclass
class Loaded:
    name: str
    version: int
    predictor: Any
    batcher: MicroBatcher
    path: Path


def _runner(predictor):
    """The batch function for one model: items are dicts built from requests."""
    task = predictor.task

    def run(items: list[dict]) -> list:
        if task.name == "retrieval":
            k = max(i["k"] for i in items)
            hits = predictor.search([i["query"] for i in items], k)
            return [h[:i["k"]] for h, i in zip(hits, items)]
        if task.name == "token-classification":
            out: list = [None] * len(items)
            words = [n for n, i in enumerate(items) if "tokens" in i]
            texts = [n for n, i in enumerate(items) if "tokens" not in i]
            if words:
                for n, pred in zip(words, predictor.predict_tokens([items[n]["tokens"] for n in words])):
                    out[n] = pred
            if texts:
                for n, pred in zip(texts, predictor.predict([items[n]["text"] for n in texts])):
                    out[n] = pred
            return out
        pairs = [i["pair"] for i in items] if task.needs_pair else None
        scores = predictor.scores([i["text"] for i in items], pairs)
        return [task.decode(scores[n:n + 1], predictor.labels, i["top_k"])[0] for n, i in enumerate(items)]

    return run


class ModelHost:
    """The served models: one artifact, or every production model of a registry folder.
    A promotion is picked up by polling ``registry.json``; the new version is loaded in a
    thread, then swapped in, and the old one finishes its queued requests before it stops."""

    def __init__(self, source: Path | None, settings: ServeSettings, metrics):
        self.source = Path(source) if source is not None else None
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, Loaded] = {}
        self.registry = None if self.source is None or is_artifact(self.source) else Registry(self.source)
        self._mtimes: dict[str, int] = {}
        self._poller: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        if self.source is not None and self.registry is None and not self.source.is_dir():
            raise DomainfitError(f"{source} is neither a model folder nor a registry folder.")

    def _load(self, name: str, version: int, path: Path) -> Loaded:
        from ..inference import Predictor

        predictor = Predictor(path)
        histogram = self.metrics["batch"]
        batcher = MicroBatcher(_runner(predictor), self.settings.max_batch, self.settings.max_wait_ms,
                               on_batch=lambda n, s: histogram.labels(name).observe(n))
        return Loaded(name, version, predictor, batcher, path)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.source is None:
            return
        if self.registry is None:
            name = self.source.name if self.source.name and not self.source.name.startswith(".") else "model"
            name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)[:64]
            loaded = await loop.run_in_executor(None, self._load, name, 1, self.source)
            loaded.batcher.start()
            self.models[name] = loaded
            return
        for name in self.registry.names():
            await self.reload(name)
        self._poller = loop.create_task(self._poll())

    async def reload(self, name: str) -> None:
        """Serve the current production version of ``name`` (load it if it changed)."""
        async with self._lock:
            state_file = self.registry._folder(name) / "registry.json"
            try:
                self._mtimes[name] = state_file.stat().st_mtime_ns
                production = self.registry.production(name)
            except (OSError, DomainfitError):
                production = None
            current = self.models.get(name)
            if production is None:
                if current is not None:
                    del self.models[name]
                    await current.batcher.close()
                return
            version, path = production
            if current is not None and current.version == version:
                return
            loaded = await asyncio.get_running_loop().run_in_executor(None, self._load, name, version, path)
            loaded.batcher.start()
            self.models[name] = loaded  # new requests go to the new version from here on
            log.info("serving %s version %s", name, version)
            if current is not None:
                await current.batcher.close()  # requests already queued on the old version finish there

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                names = set(self.registry.names()) | set(self.models)
                for name in names:
                    state_file = self.registry._folder(name) / "registry.json"
                    mtime = state_file.stat().st_mtime_ns if state_file.exists() else -1
                    if mtime != self._mtimes.get(name):
                        await self.reload(name)
            except Exception:  # a poll must never kill the server; the next one tries again
                log.exception("registry poll failed")

    def get(self, name: str) -> Loaded:
        loaded = self.models.get(name)
        if loaded is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise ApiError(404, "unknown_model", f"no model named {name[:80]!r} is served (models: {known})")
        return loaded

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for loaded in list(self.models.values()):
            await loaded.batcher.close()


# ------------------------------------------------------------------------------- request bodies

class PredictRequest(BaseModel):
    """What to predict. Give ``texts`` (classification, regression, pair with ``pairs``, NER),
    ``tokens`` (NER on words you split yourself) or ``query`` (retrieval)."""

    model_config = ConfigDict(extra="forbid")
    texts: list[str] | None = Field(None, description="Texts to predict for.")
    pairs: list[str] | None = Field(None, description="Pair models: one second text per text.")
    tokens: list[list[str]] | None = Field(None, description="NER: pre-split words per sentence.")
    query: str | None = Field(None, description="Retrieval: the search query.")
    k: int = Field(5, ge=1, le=100, description="Retrieval: how many documents.")
    top_k: int = Field(3, ge=1, le=100, description="Classification: how many labels with scores.")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., min_length=1, description="The text the model saw.")
    correct_label: str | None = Field(None, description="What the answer should have been.")
    predicted: str | None = Field(None, description="What the model answered.")
    model: str | None = None
    version: int | None = None
    request_id: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)


class AddVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="An artifact folder on the server's disk.")
    stage: str = Field("staging", pattern="^(staging|production|archived)$")


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(..., ge=1)


# ------------------------------------------------------------------------------- middleware

def _error_body(status: int, code: str, message: str, request_id: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}, "request_id": request_id}).encode()


class Guard:
    """Pure ASGI middleware: request id, body size limit, latency and status metrics, logs."""

    def __init__(self, app, settings: ServeSettings, metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope.get("method") in ("POST", "PUT", "PATCH") and "json" not in headers.get("content-type", ""):
            # Every body of this API is JSON: read it as JSON whatever the client said
            # (curl -d sends application/x-www-form-urlencoded).
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"] + \
                [(b"content-type", b"application/json")]
        given = headers.get("x-request-id", "")
        request_id = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        limit = self.settings.max_body_bytes

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        async def respond(code: int, kind: str, text: str):
            body = _error_body(code, kind, text, request_id)
            await send_wrapped({"type": "http.response.start", "status": code,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send_wrapped({"type": "http.response.body", "body": body})

        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await respond(413, "body_too_large", f"the request body is larger than {limit} bytes")
        elif length is None and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            # No length given (chunked): read the body here, up to the limit, then replay it.
            chunks, size, more = [], 0, True
            while more and size <= limit:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
            if size > limit:
                await respond(413, "body_too_large", f"the request body is larger than {limit} bytes")
            else:
                replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

                async def receive_replayed():
                    return replay.pop() if replay else await receive()

                await self.app(scope, receive_replayed, send_wrapped)
        else:
            await self.app(scope, receive, send_wrapped)
        seconds = time.perf_counter() - started
        route = scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        self.metrics["requests"].labels(endpoint, str(status["code"])).inc()
        self.metrics["latency"].labels(endpoint).observe(seconds)
        if status["code"] >= 400:
            self.metrics["errors"].labels(endpoint, str(status["code"])).inc()
        log.info("request %s %s %s status=%s bytes=%s ms=%.1f", request_id, scope.get("method"), endpoint,
                 status["code"], length or "-", seconds * 1000)


def _metrics():
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    return {
        "registry": registry,
        "requests": Counter("domainfit_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                            registry=registry),
        "errors": Counter("domainfit_errors", "HTTP requests answered with an error status", ["endpoint", "status"],
                          registry=registry),
        "latency": Histogram("domainfit_request_latency_seconds", "Request latency", ["endpoint"], registry=registry,
                             buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)),
        "batch": Histogram("domainfit_batch_size", "Items per model call (micro-batching)", ["model"],
                           registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)),
        "texts": Counter("domainfit_predicted_items", "Texts, sentences or queries predicted", ["model"],
                         registry=registry),
    }


# ------------------------------------------------------------------------------- the app

def create_app(source: str | Path | None, settings: ServeSettings | None = None, *,
               extensions: list | tuple = (), title: str = "domainfit") -> FastAPI:
    """The FastAPI app serving one artifact folder or a registry folder (or no model, when
    an extension brings its own endpoints).

    ``extensions`` are callables ``ext(app, context)`` that add routes; ``context`` is a
    :class:`ServerContext` (auth dependencies, metrics, hooks), so an app's endpoints get the
    same auth, limits, error format, logs and metrics as the prediction endpoints."""
    settings = settings or ServeSettings()
    metrics = _metrics()
    host = ModelHost(Path(source) if source is not None else None, settings, metrics)
    on_start: list = []
    on_stop: list = []
    ready_checks: list = []
    store: dict[str, FeedbackStore] = {}

    def feedback_store() -> FeedbackStore:
        if "db" not in store:
            store["db"] = FeedbackStore(settings.db_url)
        return store["db"]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await host.start()
        for hook in on_start:
            await hook()
        app.state.ready = True
        yield
        app.state.ready = False
        for hook in on_stop:
            await hook()
        await host.stop()

    app = FastAPI(title=title, version=_version(), lifespan=lifespan,
                  description="Predictions from domainfit models, feedback capture and the model registry.")
    app.state.ready = False
    app.state.host = host

    def given_key(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return request.headers.get("x-api-key")

    def check_key(request: Request) -> None:
        key = given_key(request)
        if key is None:
            raise ApiError(401, "missing_key", "this endpoint needs an API key: send 'Authorization: Bearer KEY' "
                           "or 'X-API-Key: KEY'")
        if not hmac.compare_digest(key.encode("utf-8", "replace"), settings.api_key.encode()):
            raise ApiError(403, "wrong_key", "the API key is not valid")

    def predict_auth(request: Request) -> None:
        if settings.require_key:
            check_key(request)

    def admin_auth(request: Request) -> None:
        if not settings.api_key:
            raise ApiError(403, "admin_disabled", "admin endpoints are disabled: start the server with --api-key "
                           "or DOMAINFIT_API_KEY")
        check_key(request)

    def rid(request: Request) -> str:
        return request.scope.get("state", {}).get("request_id", "")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}, "request_id": rid(request)},
                            status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": {"code": "malformed_json", "message": "the body is not valid JSON"},
                                 "request_id": rid(request)}, status_code=400)
        shown = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
                          for e in errors[:5])
        return JSONResponse({"error": {"code": "invalid_request", "message": shown}, "request_id": rid(request)},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = "the body could not be read (is it UTF-8 JSON?)" if exc.status_code == 400 else str(exc.detail)
        return JSONResponse({"error": {"code": code, "message": message}, "request_id": rid(request)},
                            status_code=exc.status_code)

    @app.exception_handler(DomainfitError)
    async def _domainfit(request: Request, exc: DomainfitError):
        return JSONResponse({"error": {"code": "cannot_serve", "message": str(exc)}, "request_id": rid(request)},
                            status_code=409)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # a bug, not the client's fault: logged with its id
        log.exception("request %s failed", rid(request))
        return JSONResponse({"error": {"code": "internal", "message": "internal error; see the server log"},
                             "request_id": rid(request)}, status_code=500)

    @app.get("/healthz", summary="The process is alive")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Models are loaded and serving")
    async def readyz():
        loaded = bool(host.models) if host.source is not None else bool(ready_checks)
        if not app.state.ready or not loaded or not all(check() for check in ready_checks):
            return JSONResponse({"status": "not ready", "models": sorted(host.models)}, status_code=503)
        return {"status": "ready", "models": sorted(host.models)}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics_endpoint():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics["registry"]), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", summary="The served models", dependencies=[Depends(predict_auth)])
    async def list_models():
        return {"models": [{"name": m.name, "version": m.version, "task": m.predictor.task.name,
                            "labels": m.predictor.labels, "backend": m.predictor.backend}
                           for m in host.models.values()]}

    @app.post("/v1/models/{name}/predict", summary="Predict", dependencies=[Depends(predict_auth)])
    async def predict(name: str, body: PredictRequest, request: Request):
        loaded = host.get(name)
        items = _items(loaded.predictor, body, settings)
        results = await loaded.batcher.submit(items)
        metrics["texts"].labels(loaded.name).inc(len(items))
        key = "results" if loaded.predictor.task.name == "retrieval" else "predictions"
        value = results[0] if key == "results" else results
        return {"model": loaded.name, "version": loaded.version, "request_id": rid(request), key: value}

    @app.post("/v1/feedback", summary="Store feedback on a prediction", dependencies=[Depends(predict_auth)])
    async def feedback(body: FeedbackRequest, request: Request):
        if len(body.text) > settings.max_chars:
            raise ApiError(422, "text_too_long", f"text has more than {settings.max_chars} characters")
        db = feedback_store()
        row = await asyncio.get_running_loop().run_in_executor(None, lambda: db.add(
            request_id=body.request_id, model=body.model, version=body.version, text=body.text,
            predicted=body.predicted, correct_label=body.correct_label, comment=body.comment))
        return {"id": row, "request_id": rid(request)}

    @app.get("/v1/feedback/export", summary="Feedback as labelled CSV (admin)", dependencies=[Depends(admin_auth)])
    async def feedback_export(model: str | None = None, labelled_only: bool = True):
        import tempfile

        db = feedback_store()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "feedback.csv"
            db.export_csv(path, model=model, labelled_only=labelled_only)
            return Response(path.read_bytes(), media_type="text/csv")

    def registry() -> Registry:
        if host.registry is None:
            raise ApiError(409, "no_registry", "the server serves one model folder, not a registry")
        return host.registry

    @app.get("/v1/admin/registry", summary="Every version of every model (admin)",
             dependencies=[Depends(admin_auth)])
    async def registry_list():
        return {"versions": registry().listing()}

    @app.post("/v1/admin/registry/{name}/versions", summary="Add a version (admin)",
              dependencies=[Depends(admin_auth)])
    async def registry_add(name: str, body: AddVersion):
        _checked(name)
        version = await asyncio.get_running_loop().run_in_executor(None, registry().add, name, body.path, body.stage)
        await host.reload(name)
        return {"name": name, "version": version}

    @app.post("/v1/admin/registry/{name}/promote", summary="Promote a version to production (admin)",
              dependencies=[Depends(admin_auth)])
    async def registry_promote(name: str, body: Promote):
        entry = registry().promote(_checked(name), body.version)
        await host.reload(name)
        return {"name": name, "version": entry["version"], "stage": entry["stage"]}

    @app.post("/v1/admin/registry/{name}/rollback", summary="Roll back to the previous production version (admin)",
              dependencies=[Depends(admin_auth)])
    async def registry_rollback(name: str):
        entry = registry().rollback(_checked(name))
        await host.reload(name)
        return {"name": name, "version": entry["version"], "stage": entry["stage"]}

    @app.delete("/v1/admin/registry/{name}/versions/{version}", summary="Remove a version (admin)",
                dependencies=[Depends(admin_auth)])
    async def registry_remove(name: str, version: int):
        registry().remove(_checked(name), version)
        return {"name": name, "removed": version}

    context = ServerContext(settings, metrics, predict_auth, admin_auth, rid, on_start, on_stop, ready_checks)
    for extend in extensions:
        extend(app, context)
    return Guard(app, settings, metrics)


def _checked(name: str) -> str:
    try:
        return check_name(name)
    except DomainfitError as exc:
        raise ApiError(422, "invalid_name", str(exc)) from None


def _version() -> str:
    from .. import __version__

    return __version__


def _items(predictor, body: PredictRequest, settings: ServeSettings) -> list[dict]:
    """Validate a request for the model's task and turn it into batch items."""
    task = predictor.task

    def bad(message: str, status: int = 422, code: str = "invalid_request"):
        raise ApiError(status, code, message)

    def check_text(text: str, where: str) -> None:
        if not text.strip():
            bad(f"{where} is empty")
        if len(text) > settings.max_chars:
            bad(f"{where} has {len(text)} characters; the limit is {settings.max_chars}", 413, "text_too_long")

    if task.name == "retrieval":
        if body.query is None:
            bad("a retrieval model searches: send {\"query\": \"...\", \"k\": 5}")
        check_text(body.query, "query")
        if predictor.index is None:
            bad("this retrieval model has no index: build one with domainfit index", 409, "no_index")
        return [{"query": body.query, "k": body.k}]
    def check_count(values: list, what: str) -> None:
        if not values:
            bad(f"{what} is empty")
        if len(values) > settings.max_texts:
            bad(f"{len(values)} {what}; the limit is {settings.max_texts} per request", 413, "too_many_texts")

    if body.tokens is not None:
        if task.name != "token-classification":
            bad("tokens are for token-classification models; send texts")
        check_count(body.tokens, "tokens")
        for n, words in enumerate(body.tokens):
            if not words or any(not w.strip() for w in words):
                bad(f"tokens[{n}] is empty or holds an empty word")
            check_text(" ".join(words), f"tokens[{n}]")
        return [{"tokens": words} for words in body.tokens]
    if body.texts is None:
        bad("send {\"texts\": [\"...\"]}")
    check_count(body.texts, "texts")
    for n, text in enumerate(body.texts):
        check_text(text, f"texts[{n}]")
    if task.needs_pair:
        if body.pairs is None or len(body.pairs) != len(body.texts):
            bad("a pair model needs pairs: one second text per text")
        for n, text in enumerate(body.pairs):
            check_text(text, f"pairs[{n}]")
        return [{"text": t, "pair": p, "top_k": body.top_k} for t, p in zip(body.texts, body.pairs)]
    if body.pairs is not None:
        bad("pairs are only for pair models")
    return [{"text": t, "top_k": body.top_k} for t in body.texts]
