"""The HTTP inference service: a FastAPI (ASGI) app around a model and a dynamic batcher.

POST /v1/predict   multipart upload (one or more files) or a raw image body; ?topk=5&cam=1
GET  /healthz      alive        GET /readyz   model loaded and warmed up
GET  /v1/model     arch, classes, preprocessing, backend, precision, limits
GET  /metrics      Prometheus: requests by status, latency, batch sizes, queue depth
GET  /             a page to try it: pick or drop an image, top-5 bars and a Grad-CAM heat map
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Dict, List, Optional, Tuple

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from torch import nn

from ..errors import InvalidOption, ResnetkitError
from .batcher import Batcher, QueueFull

ENV_CONFIG = "RESNETKIT_SERVE_CONFIG"  # how `serve --workers N` hands its settings to each worker


@dataclass
class ServeConfig:
    weights: str
    arch: Optional[str] = None
    precision: str = "fp32"
    calibration: Optional[str] = None
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 64  # images waiting; beyond it requests get 503 + Retry-After
    max_body_mb: float = 20.0
    max_images: int = 16  # per request
    timeout_s: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    hf_config: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def check(self) -> ServeConfig:
        for name, low in (("max_batch", 1), ("max_queue", 1), ("max_images", 1), ("workers", 1)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                raise InvalidOption(f"--{name.replace('_', '-')} must be an integer >= {low}")
        for name in ("max_wait_ms", "max_body_mb", "timeout_s"):
            value = getattr(self, name)
            if not value >= 0 or (name != "max_wait_ms" and value == 0):
                raise InvalidOption(f"--{name.replace('_', '-')} must be a number > 0, got {value}")
        if not 0 < self.port < 65536:
            raise InvalidOption(f"--port must be 1-65535, got {self.port}")
        if self.max_queue < self.max_batch:
            raise InvalidOption(f"--max-queue ({self.max_queue}) must be >= --max-batch ({self.max_batch})")
        return self


@dataclass
class Service:
    """What the app serves: a runner for predictions, the PyTorch model for Grad-CAM (None for an
    exported artifact), preprocessing, classes and a description."""

    runner: nn.Module
    model: Optional[nn.Module]
    preprocess: Any
    classes: Optional[List[str]]
    info: Dict[str, Any]


def load_service(cfg: ServeConfig, log=print) -> Service:
    """Load the model SRC names and put it on the fastest backend ``optimize()`` finds here."""
    from ..deploy.loading import load_any
    from ..deploy.optimize import optimize

    model, loaded, preprocess, classes = load_any(cfg.weights, arch=cfg.arch, progress=False, hf_config=cfg.hf_config)
    fmt = getattr(model, "format", None)
    if fmt:  # an exported artifact runs as it is, on its runtime
        precision = model.pretrained_cfg.get("precision", "fp32")
        if cfg.precision not in ("fp32", precision):
            raise InvalidOption(
                f"{cfg.weights} is a {precision} {fmt} export; --precision {cfg.precision} needs the weights it was "
                "exported from"
            )
        runner: nn.Module = model
        backend, pytorch_model = {"onnx": "onnxruntime"}.get(fmt, fmt), None
    else:
        calibration = None
        if cfg.precision == "int8":
            from ..deploy.quantize import calibration_batches
            from ..engine.rundir import calibration_source

            source = calibration_source(cfg.calibration, loaded.source, log)
            calibration = calibration_batches(source, preprocess)
        runner = optimize(
            model,
            cfg.precision,
            calibration=calibration,
            input_size=preprocess.crop_size,
            batch_size=cfg.max_batch,
            log=log,
        )
        choice = getattr(runner, "choice", None)  # what optimize() picked, and why
        backend = choice.backend if choice is not None else "pytorch"
        precision, pytorch_model = cfg.precision, model
    info = {
        "weights": loaded.source,
        "arch": getattr(model, "arch", None),
        "num_classes": model.num_classes,
        "classes": classes,
        "preprocess": preprocess.to_dict(),
        "backend": backend,
        "precision": precision,
        "grad_cam": pytorch_model is not None,
        "limits": {
            "max_batch": cfg.max_batch,
            "max_wait_ms": cfg.max_wait_ms,
            "max_queue": cfg.max_queue,
            "max_body_mb": cfg.max_body_mb,
            "max_images_per_request": cfg.max_images,
            "timeout_s": cfg.timeout_s,
        },
    }
    return Service(runner, pytorch_model, preprocess, classes, info)


class Metrics:
    """Prometheus metrics in the app's own registry (several apps in one process stay apart)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "resnetkit_requests", "HTTP requests by path and status", ["path", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "resnetkit_request_seconds",
            "Prediction request latency, by status (a 503's time shows how fast overload is refused)",
            ["status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch = Histogram(
            "resnetkit_batch_size", "Images per model call", buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry
        )
        self.queue = Gauge("resnetkit_queue_depth", "Images waiting for a batch", registry=self.registry)
        self.images = Counter("resnetkit_images", "Images classified", registry=self.registry)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class RequestError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


async def read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (never held whole)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def uploaded_images(request, limit: int, max_images: int) -> List[Tuple[str, bytes]]:
    """(name, bytes) of each image in the request: multipart files or one raw image body."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, limit)
    if kind == "multipart/form-data":

        async def stream():
            yield body
            yield b""

        try:
            form = await MultiPartParser(
                request.headers, stream(), max_files=max_images, max_fields=max_images, max_part_size=limit
            ).parse()
        except MultiPartException as exc:
            raise RequestError(400, f"malformed multipart upload: {exc.message}") from None
        files = []
        try:
            for _, value in form.multi_items():
                if not isinstance(value, str):  # an uploaded file, not a text field
                    files.append((value.filename or "upload", await value.read()))
        finally:
            await form.close()  # the parser's spooled temporary files
        if not files:
            raise RequestError(422, "the multipart upload holds no file; send the image as a file field")
        return files
    if kind.startswith("image/") or kind == "application/octet-stream":
        return [("body", body)]
    raise RequestError(
        415,
        f"unsupported Content-Type {kind or '(none)'!r}: send a multipart/form-data upload or a raw image "
        "body with Content-Type image/*",
    )


def create_app(service: Service, cfg: ServeConfig, log=print):
    """The ASGI app serving ``service`` (see the module docstring for the endpoints)."""
    from ..data.decode import ImageDecodeError, decode_image_bytes
    from ..engine.predict import top_classes

    metrics = Metrics()
    transform = service.preprocess.transform()
    state: Dict[str, Any] = {"ready": False, "batcher": None, "inflight": 0}

    @asynccontextmanager
    async def lifespan(app):
        batcher = Batcher(
            service.runner,
            cfg.max_batch,
            cfg.max_wait_ms / 1000,
            cfg.max_queue,
            on_batch=lambda n: (metrics.batch.observe(n), metrics.images.inc(n)),
        )
        batcher.start()
        state["batcher"] = app.state.batcher = batcher
        size = service.preprocess.crop_size
        in_chans = service.info.get("in_chans") or getattr(service.runner, "in_chans", 3)
        for batch in sorted({1, cfg.max_batch}):  # warm up: the first calls of a runtime are slow
            await batcher.in_model_thread(service.runner, torch.zeros(batch, in_chans, size, size))
        state["ready"] = True
        log(
            f"ready: {service.info['arch']} ({service.info['precision']} on {service.info['backend']}) at "
            f"http://{cfg.host}:{cfg.port}/ (pid {os.getpid()})"
        )
        try:
            yield
        finally:
            state["ready"] = False
            await batcher.close()

    app = FastAPI(title="resnetkit", lifespan=lifespan, docs_url="/docs", redoc_url=None)

    def error(status: int, message: str, headers: Optional[Dict[str, str]] = None):
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.middleware("http")
    async def count_and_guard(request: Request, call_next):
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # the last line of defence: no traceback reaches a client
            response = error(500, f"internal error ({type(exc).__name__}); see the server log")
        path = request.url.path if request.url.path in KNOWN_PATHS else "other"
        metrics.requests.labels(path, str(response.status_code)).inc()
        if path == "/v1/predict":
            metrics.latency.labels(str(response.status_code)).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, exc: StarletteHTTPException):
        # Unknown paths and wrong methods answer in the same JSON shape as every other error.
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            message = f"no such endpoint: {where}; the endpoints are {ENDPOINTS}"
        elif exc.status_code == 405:
            message = f"{where} is not allowed here; the endpoints are {ENDPOINTS}"
        else:
            message = str(exc.detail)
        return error(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return error(422, f"bad request parameter ({problems})")

    def prepare(name: str, data: bytes) -> torch.Tensor:
        return transform(decode_image_bytes(data, name, service.preprocess.resize_size))

    def cam_pngs(tensors: List[torch.Tensor]) -> List[str]:
        from ..inspect.cam import cam_overlays

        assert service.model is not None
        images = cam_overlays(service.model, torch.stack(tensors), service.preprocess.mean, service.preprocess.std)
        out = []
        for image in images:
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            out.append(base64.b64encode(buf.getvalue()).decode())
        return out

    @app.post("/v1/predict")
    async def predict(request: Request, topk: int = 5, cam: bool = False):
        # Admission control before the body is read: requests being decoded, queued or computed are
        # bounded (the queue plus one running batch), so a burst gets quick 503s, not memory growth.
        limit = cfg.max_queue + cfg.max_batch
        if state["inflight"] >= limit:
            raise RequestError(
                503,
                f"server busy: {state['inflight']} requests in progress (limit {limit}); retry shortly",
                {"Retry-After": "1"},
            )
        state["inflight"] += 1
        try:
            return await answer(request, topk, cam)
        finally:
            state["inflight"] -= 1

    async def answer(request: Request, topk: int, cam: bool):
        if not state["ready"]:
            raise RequestError(503, "the model is still loading; retry shortly", {"Retry-After": "1"})
        if topk < 1:
            raise RequestError(422, f"topk must be >= 1, got {topk}")
        if cam and service.model is None:
            raise RequestError(
                422, "Grad-CAM needs PyTorch weights; this server runs an exported model (serve the weights instead)"
            )
        files = await uploaded_images(request, int(cfg.max_body_mb * 2**20), cfg.max_images)
        if len(files) > cfg.max_images:
            raise RequestError(413, f"{len(files)} images in one request; the limit is {cfg.max_images}")
        decoded: List[Any] = []
        for name, data in files:  # decoded on worker threads, off the event loop
            try:
                decoded.append(await asyncio.to_thread(prepare, name, data))
            except ImageDecodeError as exc:
                decoded.append(str(exc))
        good = [t for t in decoded if isinstance(t, torch.Tensor)]
        if not good:
            problems = "; ".join(str(d) for d in decoded)
            raise RequestError(422, f"no readable image: {problems}")
        batcher: Batcher = state["batcher"]
        try:
            logits = await asyncio.wait_for(batcher.submit(good), cfg.timeout_s)
        except QueueFull as exc:
            raise RequestError(503, f"server busy: {exc}; retry shortly", {"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise RequestError(504, f"no answer within {cfg.timeout_s:g} s; the server is overloaded") from None
        except ResnetkitError as exc:
            raise RequestError(422, str(exc)) from None
        metrics.queue.set(batcher.waiting)
        tops = iter(top_classes(torch.stack(logits), service.classes, topk))
        heat = iter(await batcher.in_model_thread(cam_pngs, good) if cam else [])
        results = []
        for (name, _), item in zip(files, decoded):
            if isinstance(item, str):
                results.append({"name": name, "error": item})
                continue
            entry: Dict[str, Any] = {"name": name, "top": [{"class": c, "prob": round(p, 6)} for c, p in next(tops)]}
            if cam:
                entry["cam_png"] = next(heat)
            results.append(entry)
        return {"predictions": results, "backend": service.info["backend"], "precision": service.info["precision"]}

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if not state["ready"]:
            return error(503, "not ready: loading or warming up the model", {"Retry-After": "1"})
        return {"status": "ready"}

    @app.get("/v1/model")
    async def model_info():
        return service.info

    @app.get("/metrics")
    async def metrics_endpoint():
        if state["batcher"] is not None:
            metrics.queue.set(state["batcher"].waiting)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def page():
        html = resources.files("resnetkit.serve").joinpath("page.html").read_text()
        return html.replace("__MODEL__", json.dumps(service.info))

    return app


ENDPOINTS = "POST /v1/predict, GET /healthz, /readyz, /v1/model, /metrics and the page at /"
KNOWN_PATHS = ("/v1/predict", "/healthz", "/readyz", "/v1/model", "/metrics", "/")


def app_from_environment():
    """The app for `serve --workers N`: each uvicorn worker loads the model from the settings the
    parent put in ``RESNETKIT_SERVE_CONFIG``."""
    return app_builder(ServeConfig(**json.loads(os.environ[ENV_CONFIG])))()


def config_to_environment(cfg: ServeConfig) -> None:
    os.environ[ENV_CONFIG] = json.dumps(asdict(cfg))


def app_builder(cfg: ServeConfig):
    """A zero-argument function that loads the model and returns the app, for hosts that build the
    app where it will run - Ray Serve replicas: ``serve.ingress(app_builder(cfg))``. A plain function
    (a closure; cloudpickle sends it), as Ray tells builders from ASGI apps by that."""
    cfg = cfg.check()

    def build_app():
        return create_app(load_service(cfg), cfg)

    return build_app
