"""The endpoints, on an APIRouter: each takes the running ``Service`` as a dependency, and answers
with a pydantic model (so /docs shows the real schemas).

POST /v1/predict   multipart upload (one or more files) or a raw image body; ?topk=5&cam=1
GET  /healthz      alive        GET /readyz   model loaded and warmed up
GET  /v1/model     arch, classes, preprocessing, backend, precision, limits
GET  /metrics      Prometheus: requests by status, latency, batch sizes, queue depth
GET  /             a page to try it: pick or drop an image, top-5 bars and a Grad-CAM heat map
"""

from __future__ import annotations

import secrets
from importlib import resources
from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..web import script_json
from .service import Service
from .uploads import uploaded_images

ENDPOINTS = "POST /v1/predict, GET /healthz, /readyz, /v1/model, /metrics and the page at /"
KNOWN_PATHS = ("/v1/predict", "/healthz", "/readyz", "/v1/model", "/metrics", "/")


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong, and the fix")
    status: int


class TopClass(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class", description="class name")
    prob: float = Field(ge=0, le=1)


class ImageResult(BaseModel):
    name: str = Field(description="the uploaded file's name ('body' for a raw image body)")
    top: Optional[List[TopClass]] = Field(None, description="most likely classes first")
    labels: Optional[List[TopClass]] = Field(
        None, description="a multi-label model: the classes above their thresholds (maybe none), most likely first"
    )
    error: Optional[str] = Field(None, description="why this image got no prediction")
    cam_png: Optional[str] = Field(None, description="Grad-CAM overlay, base64 PNG (with ?cam=1)")


class PredictResponse(BaseModel):
    predictions: List[ImageResult]
    backend: str
    precision: str


class ModelInfo(BaseModel):
    weights: str
    arch: Optional[str]
    num_classes: int
    classes: Optional[List[str]]
    in_chans: int
    preprocess: Dict[str, Any]
    backend: str
    precision: str
    grad_cam: bool
    task: str = Field(description="multiclass (answers: top) or multilabel (answers: labels)")
    limits: Dict[str, Any]


class Status(BaseModel):
    status: str


ERRORS: Dict[int | str, Dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "malformed upload",
        408: "the request did not arrive in time",
        413: "body or file count over the limit",
        415: "not an upload or an image",
        422: "no readable image, or a bad parameter",
        503: "busy (Retry-After) or still loading",
        504: "no answer within --timeout",
    }.items()
}

router = APIRouter()


def get_service(request: Request) -> Service:
    return request.app.state.service


@router.post("/v1/predict", response_model=PredictResponse, response_model_exclude_none=True, responses=ERRORS)
async def predict(
    request: Request,
    topk: int = 5,
    cam: bool = False,
    threshold: Optional[float] = None,
    service: Service = Depends(get_service),
):
    """Top-k classes of each uploaded image (multipart files, or one raw image body); for a multi-label
    model the labels above ``threshold`` (default: the model's tuned per-class thresholds), at most topk."""
    async with service.admission():
        service.check_request(topk, cam, threshold)
        files = await uploaded_images(request, service.body_limits, service.cfg.max_images)
        return await service.predict(files, topk, cam, threshold)


@router.get("/healthz", response_model=Status)
async def healthz():
    """200 while the process is alive."""
    return {"status": "alive"}


@router.get("/readyz", response_model=Status, responses={503: {"model": ErrorBody}})
async def readyz(service: Service = Depends(get_service)):
    """200 once the model is loaded and warmed up; 503 before, and while shutting down."""
    if not service.ready:
        return JSONResponse(
            {"error": "not ready: loading or warming up the model", "status": 503},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    return {"status": "ready"}


@router.get("/v1/model", response_model=ModelInfo)
async def model_info(service: Service = Depends(get_service)):
    """What is served: architecture, classes, preprocessing, backend, precision and limits."""
    return service.served.info


@router.get("/metrics", response_class=Response)
async def metrics(service: Service = Depends(get_service)):
    """Prometheus text exposition (summed over the workers of `serve --workers N`)."""
    if service.batcher is not None:
        service.metrics.queue.set(service.batcher.waiting)
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/", response_class=HTMLResponse)
async def page(service: Service = Depends(get_service)):
    """A page to try the model: the model's description is delivered as JSON data and shown with
    textContent, never as markup."""
    nonce = secrets.token_urlsafe(16)
    html = resources.files("resnetkit.serve").joinpath("page.html").read_text()
    html = html.replace("__MODEL_JSON__", script_json(service.served.info)).replace("__NONCE__", nonce)
    # Defence in depth: only the page's own script (it carries the nonce) may run.
    policy = (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data: blob:; "
        "object-src 'none'; base-uri 'none'"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


@router.get("/explain", response_class=HTMLResponse)
async def explain(service: Service = Depends(get_service)):
    """The explain page of the served model (resnetkit explain): built once, on the model's thread."""
    from ..inspect.explain import policy, render

    nonce = secrets.token_urlsafe(16)
    html = render(await service.explain_data(), nonce)
    return HTMLResponse(html, headers={"Content-Security-Policy": policy(nonce)})
