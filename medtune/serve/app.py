"""The FastAPI application of ``medtune serve`` (imported only when serving: needs ``medtune[serve]``).

``create_app(targets, settings, token=...)`` builds it; :mod:`medtune.serve.command` runs it with
uvicorn. Endpoints: ``POST /v1/analyze``, ``GET /v1/models``, ``GET /health``, ``GET /ready``,
``/openapi.json``, ``/docs`` and the page at ``/``. Every error is ``{"error": {"code", "message",
"fix"}}`` (codes in :mod:`medtune.serve.errors`). The service's own access log names the method, the
route (never the raw path or query), the status, the time and counts; uvicorn's access log is off,
so no note text, token or body reaches a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import traceback
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import torch
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from medtune import __version__
from medtune.document import Document
from medtune.errors import MedtuneError
from medtune.serve.ask import KnowledgeBaseTarget, register_ask
from medtune.serve.batcher import MicroBatcher, document_size
from medtune.serve.errors import ServiceError, error_body
from medtune.serve.page import STATIC, docs_html, static_file
from medtune.serve.schema import AnalyzeRequest, AnalyzeResponse, ErrorResponse, parse_analyze
from medtune.serve.security import ServeSettings, load_token, token_matches
from medtune.serve.targets import WARMUP_TEXT, Target, TargetSpec

logger = logging.getLogger("medtune.serve")
access_logger = logging.getLogger("medtune.serve.access")

SPEC_ENV = "MEDTUNE_SERVE_SPEC"  # how `--workers N` hands the targets and settings to each process
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store")]
ROUTES = {"/", "/health", "/ready", "/v1/analyze", "/v1/models", "/v1/ask", "/openapi.json", "/docs"}
_ERRORS = {code: {"model": ErrorResponse} for code in (401, 404, 413, 415, 422, 500, 503, 504)}


class Service:
    """The served targets, their batchers and whether they are loaded."""

    def __init__(self, targets: list[Target], settings: ServeSettings, token: str | None) -> None:
        self.targets = {t.name: t for t in targets}
        self.settings, self.token = settings, token
        self.batchers = {t.name: self._batcher(t, t.name, settings.model_workers) for t in targets}
        # documents of --long-chars or more run on a lane of their own: while one computes, the short
        # ones keep flowing on theirs instead of waiting for it
        self.long_batchers = {t.name: self._batcher(t, f"{t.name}-long", 1) for t in targets} \
            if settings.long_chars else {}
        self.ready = threading.Event()
        self.failure: MedtuneError | None = None
        self.extra_loads: list[Any] = []  # loaded with the models, before ready (the knowledge base of /v1/ask)

    def _batcher(self, target: Target, name: str, workers: int) -> MicroBatcher:
        s = self.settings
        return MicroBatcher(target.run, max_batch=s.batch_size, max_wait_s=s.max_wait_ms / 1000,
                            max_batch_chars=s.max_batch_chars, max_queue=s.max_queue, name=name, workers=workers)

    def submit(self, name: str, docs: list[Document]) -> list[Future]:
        """Queue documents on the target's lanes; futures in the order of ``docs``."""
        short, long = self.batchers[name], self.long_batchers.get(name)
        if long is None:
            return short.submit(docs)
        lanes = [long if document_size(d) >= self.settings.long_chars else short for d in docs]
        futures: dict[int, Future] = {}
        try:
            for lane in (short, long):
                picked = [k for k, chosen in enumerate(lanes) if chosen is lane]
                if picked:
                    futures.update(zip(picked, lane.submit([docs[k] for k in picked])))
        except ServiceError:  # one lane is full: the other lane's part of the request is withdrawn
            for future in futures.values():
                future.cancel()
            raise
        return [futures[k] for k in range(len(docs))]

    def load(self) -> None:
        """Load and warm up every target, then start its batchers; a failure is kept for /ready."""
        try:
            if self.settings.threads:
                torch.set_num_threads(self.settings.threads)
            for name, target in self.targets.items():
                started = time.monotonic()
                target.load()
                self.batchers[name].run_now([_warm_up_doc()])
                self.batchers[name].start()
                if name in self.long_batchers:
                    self.long_batchers[name].start()
                logger.info("loaded '%s' (%s) in %.1f s", name, target.spec.kind, time.monotonic() - started)
            for load in self.extra_loads:
                load()
            self.ready.set()
            logger.info("ready: %s", ", ".join(self.targets))
        except MedtuneError as err:
            self.failure = err
            logger.error("loading failed: %s", err)
        except Exception as err:  # noqa: BLE001 - logged without its message (it may quote text)
            self.failure = ServiceError("E622", f"loading failed ({type(err).__name__}){_where(err)}",
                                        fix="run the same targets with `medtune analyze` / `medtune predict` to see why")
            logger.error("loading failed: %s", self.failure)

    def stop(self) -> None:
        for batcher in [*self.batchers.values(), *self.long_batchers.values()]:
            batcher.stop()

    def check_ready(self) -> None:
        if self.failure is not None:
            raise ServiceError("E622", f"the models failed to load ({self.failure.code})",
                               fix="see the service log, fix the targets and restart the service")
        if not self.ready.is_set():
            raise ServiceError("E622", "the models are still loading", fix="retry when GET /ready answers 200")

    def check_token(self, request: Request) -> None:
        if self.token is not None and not token_matches(self.token, request.headers.get("authorization")):
            raise ServiceError("E610", "missing or invalid bearer token",
                               fix="send the header 'Authorization: Bearer TOKEN' with the service's token")

    def target(self, name: str | None) -> Target:
        if name is None:
            if len(self.targets) == 1:
                return next(iter(self.targets.values()))
            raise ServiceError("E606", f"{len(self.targets)} pipelines or models are served and the request "
                                       "names none", fix=f"add \"model\": one of {', '.join(self.targets)}")
        if name not in self.targets:
            raise ServiceError("E605", "the requested model is not served here",
                               fix=f"use one of {', '.join(self.targets)} (GET /v1/models)")
        return self.targets[name]


def _warm_up_doc() -> Document:
    return Document(id="warm-up", text=WARMUP_TEXT)


def _where(err: BaseException) -> str:
    """`` at medtune/x.py:12``: the innermost frame inside medtune, never the message."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f"{os.sep}medtune{os.sep}" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" at medtune{f.filename.rsplit(os.sep + 'medtune', 1)[-1]}:{f.lineno}"


def _error_response(err: MedtuneError, status: int | None = None) -> JSONResponse:
    status = status or getattr(err, "status", None) or 422
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif status == 503:
        headers["Retry-After"] = "1"
    return JSONResponse(error_body(err), status_code=status, headers=headers)


class Guard:
    """Pure ASGI middleware: security headers on every response, and the access log without paths or text."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in SECURITY_HEADERS if h[0] not in names]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            path = scope.get("path", "")
            route = path if path in ROUTES else "/static/*" if path.startswith("/static/") else "-"
            counts = scope.get("medtune.log") or {}
            extra = "".join(f" {k}={v}" for k, v in counts.items())
            access_logger.info("%s %s %d %.1f ms%s", scope.get("method", "-"), route, status[0],
                               (time.perf_counter() - started) * 1000, extra)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ServiceError("E601", f"the request body is larger than {limit} bytes",
                             fix="send fewer or shorter documents per request, or raise --max-body-bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(targets: list[Target | TargetSpec], settings: ServeSettings | None = None, *,
               token: str | None = None, background_load: bool = True, kb: str | Path | None = None) -> FastAPI:
    """The service over ``targets``. With ``background_load`` the models load on a thread after
    start-up (``/health`` answers at once, ``/ready`` once they are loaded); without, start-up waits.
    ``kb``: a knowledge-base directory answered at ``POST /v1/ask`` (:mod:`medtune.serve.ask`)."""
    settings = (settings or ServeSettings()).check()
    loaded = [t if isinstance(t, Target) else Target(t, mode=settings.mode, model_batch_size=settings.model_batch_size)
              for t in targets]
    service = Service(loaded, settings, token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background_load:
            threading.Thread(target=service.load, name="medtune-serve-load", daemon=True).start()
        else:
            await run_in_threadpool(service.load)
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="medtune", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="Language models on medical text. The output assists and does not replace "
                              "clinical judgement.")
    app.state.service = service
    if kb is not None:
        kb_target = KnowledgeBaseTarget(Path(kb))
        service.extra_loads.append(kb_target.load)
        register_ask(app, service, kb_target, settings, _read_body, _ERRORS)
    app.add_middleware(Guard)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(MedtuneError)
    async def _medtune_error(request: Request, err: MedtuneError) -> JSONResponse:
        return _error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 405:
            return _error_response(ServiceError("E608", "this method is not allowed here", fix="see /docs"), 405)
        return _error_response(ServiceError("E608", "no such endpoint", fix="see /docs for the endpoints"), 404)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return static_file("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC:  # a fixed list of packaged files: nothing is read from a path in the request
            raise StarletteHTTPException(404)
        return static_file(name)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return Response(docs_html(app.openapi()), media_type="text/html; charset=utf-8")

    @app.get("/health", summary="Alive", tags=["service"])
    async def health() -> dict[str, str]:
        """Answers 200 while the process serves requests (models may still be loading)."""
        return {"status": "alive"}

    @app.get("/ready", summary="Models loaded", tags=["service"], responses=_ERRORS)
    async def ready() -> dict[str, Any]:
        """200 once every model is loaded and warmed up; 503 (E622) before, or when loading failed."""
        service.check_ready()
        return {"status": "ready", "models": list(service.targets)}

    @app.get("/v1/models", summary="What is served", tags=["v1"], responses=_ERRORS)
    async def models(request: Request) -> dict[str, Any]:
        """Each served pipeline or model: task, labels, version, metrics and model card (pipelines: their
        components and the models they run)."""
        service.check_token(request)
        return {"version": __version__, "ready": service.ready.is_set(),
                "models": [t.info for t in service.targets.values()]}

    @app.post("/v1/analyze", summary="Annotate documents", tags=["v1"],
              responses={200: {"model": AnalyzeResponse}, **_ERRORS},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"$ref": "#/components/schemas/AnalyzeRequest"}}}}})
    async def analyze(request: Request) -> Response:
        """One text or several documents in; the same documents out with spans (offsets into the text you
        sent, in Unicode code points), assertions, linked ids, relations and labels. Field names are those
        of the JSONL that `medtune predict` writes."""
        service.check_token(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ServiceError("E607", "the body must be sent as application/json",
                               fix="send the header 'Content-Type: application/json'")
        body = await _read_body(request, settings.max_body_bytes)
        name, docs = parse_analyze(body, settings) if len(body) < 65536 else \
            await run_in_threadpool(parse_analyze, body, settings)
        target = service.target(name)
        service.check_ready()
        request.scope["medtune.log"] = {"model": target.name, "documents": len(docs),
                                        "characters": sum(len(d.text) for d in docs)}
        futures = service.submit(target.name, docs)
        waiting = [asyncio.wrap_future(f) for f in futures]
        try:
            results = await asyncio.wait_for(asyncio.gather(*waiting), settings.timeout_s)
        except asyncio.TimeoutError:
            for f in futures:
                f.cancel()
            raise ServiceError("E620", f"the request did not finish within {settings.timeout_s:g} s",
                               fix="send fewer or shorter documents, retry later, or raise --timeout") from None
        except MedtuneError:
            raise
        except Exception as err:  # noqa: BLE001 - never the message: it may quote note text
            logger.error("internal error (%s)%s while annotating", type(err).__name__, _where(err))
            raise ServiceError("E699", f"internal error ({type(err).__name__})",
                               fix="see the service log; report it if it persists") from None
        payload = {"model": target.name, "documents": [d.to_dict() for d in results]}
        return Response(json.dumps(payload, ensure_ascii=False), media_type="application/json")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {})
            request_schema = AnalyzeRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            for key, value in request_schema.pop("$defs", {}).items():
                components.setdefault("schemas", {}).setdefault(key, value)
            components.setdefault("schemas", {})["AnalyzeRequest"] = request_schema
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path in ("/v1/analyze", "/v1/models", "/v1/ask"):
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process of ``medtune serve --workers N`` (uvicorn's factory)."""
    spec = json.loads(os.environ[SPEC_ENV])
    targets = [TargetSpec(name, Path(path), kind) for name, path, kind in spec["targets"]]
    # each process loads before it accepts connections: no process answers 503 while another is ready
    return create_app(targets, ServeSettings.from_dict(spec["settings"]), token=load_token(spec.get("token_file")),
                      background_load=False, kb=spec.get("kb"))
