"""The FastAPI application: ``create_app(options) -> FastAPI``.

    from facecast.serve import ServeOptions, create_app
    app = create_app(ServeOptions(data_dir="data"))       # then uvicorn.run(app, ...)

What it sets up:
- ``app.state.facecast``: the ``ServerState`` (state.py: options, store, auth, runner, metrics,
  live slots); routes get it with ``Depends(get_state)`` and the caller with
  ``Depends(require_auth)`` (security.py; HTTP and WebSocket alike).
- the routers: ``ROUTER_MODULES`` (always), then ``OPTIONAL_ROUTER_MODULES`` that exist (the
  live session ``WS /v1/live`` in serve/live.py and the page at ``/`` in serve/page.py). Each
  module has a module-level ``router`` (an ``APIRouter``); a module that needs to run code at
  start-up / shut-down may also define ``async def startup(state)`` / ``async def shutdown(state)``.
- errors as JSON: ``{"error": "..."}`` for every refusal (4xx), FastAPI's own 422 ``detail`` for
  request validation; an unexpected exception is logged with its traceback and answered 500
  ``{"error": "internal error ..."}`` without one.
- CORS only when ``options.cors_origins`` is non-empty.
- the job runner starts with the app (jobs a killed server was running are re-queued) and stops
  with it (its worker processes are killed; their jobs re-run at the next start).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .. import __version__
from .jobs import JobRunner
from .options import ServeOptions
from .security import Auth
from .state import LiveSlots, Metrics, ServerState
from .store import Store

__all__ = ["OPTIONAL_ROUTER_MODULES", "ROUTER_MODULES", "create_app"]

log = logging.getLogger(__name__)

ROUTER_MODULES = ("facecast.serve.routes_jobs", "facecast.serve.routes_faces", "facecast.serve.routes_system")
"""Routers every server has: the job API, faces, health and metrics."""
OPTIONAL_ROUTER_MODULES = ("facecast.serve.live", "facecast.serve.page")
"""Routers included when their module exists: WS /v1/live and the web page at /."""


def router_modules() -> list:
    mods = [importlib.import_module(m) for m in ROUTER_MODULES]
    mods += [importlib.import_module(m) for m in OPTIONAL_ROUTER_MODULES if importlib.util.find_spec(m) is not None]
    return mods


def create_app(options: ServeOptions = ServeOptions()) -> FastAPI:
    """The server for ``options``: opens (or creates) the store under ``options.data_dir``, loads
    the tokens (InputError when a non-loopback host has none), and returns the app; the job
    runner starts when the app starts (uvicorn's lifespan, or ``with TestClient(app)``)."""
    auth = Auth.from_options(options)
    store = Store(options.data_dir)
    metrics = Metrics()
    state = ServerState(options=options, store=store, auth=auth, runner=JobRunner(store, options), metrics=metrics,
                        live=LiveSlots(options.live_streams, options.max_live_per_token))
    modules = router_modules()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.runner.start()
        for m in modules:
            if hasattr(m, "startup"):
                await m.startup(state)
        try:
            yield
        finally:
            for m in reversed(modules):
                if hasattr(m, "shutdown"):
                    await m.shutdown(state)
            await state.runner.stop()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, and facecast serves
    # nothing that needs the internet. /openapi.json is the schema.
    app = FastAPI(title="facecast", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Lip-synced talking heads: jobs (say, dub, twin training), faces, live sessions. "
                              "docs/serving.md has the guide.")
    app.state.facecast = state
    for m in modules:
        app.include_router(m.router)
    _error_handlers(app)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins), allow_credentials=True,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Range"],
                           expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"])
    from .openapi import install_openapi

    install_openapi(app)
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        body = exc.detail if isinstance(exc.detail, dict) else {"error": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, exc: StarletteHTTPException):  # 404 of unknown paths, 405
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": detail, "error": _first_error(detail)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the details"},
                            status_code=500)


def _first_error(detail: list[dict]) -> str:
    """One line for the first validation error: "spec.size: must be ..."."""
    if not detail:
        return "invalid request"
    e = detail[0]
    loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
    return f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid"))
