"""The ASGI app: the routes (``routes.py``) around a ``Service``, one JSON error shape for every
failure, request counting, and the factories other hosts use (`serve --workers N`, gunicorn, Ray)."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import asynccontextmanager
from typing import Callable, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import ServeConfig
from .protocol import HeadGuard
from .routes import ENDPOINTS, KNOWN_PATHS, router
from .service import ServedModel, Service, load_service
from .uploads import ClientGone, RequestError

LOG = logging.getLogger("resnetkit.serve")
CLIENT_GONE = 499  # nginx's "client closed request": not the server's failure


def error_response(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _routing_message(request: Request, exc: StarletteHTTPException) -> str:
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return f"no such endpoint: {where}; the endpoints are {ENDPOINTS}"
    if exc.status_code == 405:
        return f"{where} is not allowed here; the endpoints are {ENDPOINTS}"
    return str(exc.detail)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone):
        LOG.info("%s %s: %s", request.method, request.url.path, exc)
        return Response(status_code=CLIENT_GONE)  # nobody is left to read it; counted as 499

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, exc: StarletteHTTPException):
        # Unknown paths and wrong methods answer in the same JSON shape as every other error.
        return error_response(exc.status_code, _routing_message(request, exc), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return error_response(422, f"bad request parameter ({problems})")


def _install_counting(app: FastAPI, service: Service) -> None:
    @app.middleware("http")
    async def count_and_guard(request: Request, call_next):
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # the last line of defence: no traceback reaches a client, the log has it
            LOG.error("internal error answering %s %s", request.method, request.url.path, exc_info=exc)
            response = error_response(500, f"internal error ({type(exc).__name__}); see the server log")
        path = request.url.path if request.url.path in KNOWN_PATHS else "other"
        seconds = time.perf_counter() - start if path == "/v1/predict" else None
        service.metrics.count_request(path, response.status_code, seconds)
        return response


def create_app(served: ServedModel, cfg: ServeConfig, log: Callable[[str], None] = print) -> FastAPI:
    """The ASGI app serving ``served`` (see ``routes.py`` for the endpoints)."""
    service = Service(served, cfg.check(), log)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="resnetkit", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.service = service
    app.state.head_guard = HeadGuard(cfg.read_timeout_s, lambda reason: service.metrics.rejected.labels(reason).inc())
    app.include_router(router)
    _install_error_handlers(app)
    _install_counting(app, service)
    return app


def ensure_log_handler() -> None:
    """Server errors are logged to stderr (uvicorn configures only its own loggers)."""
    if not LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("resnetkit serve: %(levelname)s: %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


def app_from_environment() -> FastAPI:
    """The app for `serve --workers N` and gunicorn: each worker process loads the model from the
    settings in ``RESNETKIT_SERVE_CONFIG`` (a JSON object of ServeConfig fields)."""
    ensure_log_handler()
    return app_builder(ServeConfig.from_environment())()


def app_builder(cfg: ServeConfig) -> Callable[[], FastAPI]:
    """A zero-argument function that loads the model and returns the app, for hosts that build the
    app where it will run - Ray Serve replicas: ``serve.ingress(app_builder(cfg))``. A plain function
    (a closure; cloudpickle sends it), as Ray tells builders from ASGI apps by that."""
    cfg = cfg.check()

    def build_app() -> FastAPI:
        return create_app(load_service(cfg), cfg)

    return build_app
