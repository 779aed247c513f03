"""The service object: the model being served, its batcher and metrics, and the admission count;
what a prediction request does, from uploaded bytes to the answer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..card import ModelCard
from ..deploy.fused import normalise
from ..errors import ImageDecodeError, InvalidOption, ResnetkitError
from .batcher import Batcher, QueueFull
from .config import ServeConfig
from .metrics import Metrics
from .uploads import BodyLimits, RequestError

BUSY = {"Retry-After": "1"}


@dataclass(frozen=True)
class ServedModel:
    """What the app serves: ``run`` (uint8 crops -> logits; the Predictor's), the decoder that makes
    the crops from uploads, the PyTorch model for Grad-CAM (None for an exported artifact), the card,
    and a description (GET /v1/model)."""

    run: Callable[[torch.Tensor], torch.Tensor]
    decoder: Any  # batch.decode.Decoder
    model: Optional[nn.Module]
    card: ModelCard
    info: Dict[str, Any]

    @property
    def classes(self) -> Optional[List[str]]:
        return list(self.card.classes) if self.card.classes else None

    @property
    def preprocess(self):
        return self.card.preprocess

    @property
    def in_chans(self) -> int:
        return self.card.in_chans


def load_service(cfg: ServeConfig, log: Callable[[str], None] = print) -> ServedModel:
    """Load the model ``cfg.weights`` names into a Predictor - the fastest backend ``optimize()`` finds
    here with the preprocessing fused, or an exported artifact as it is - then check it end to end on
    a synthetic image, so a model that cannot answer is refused at start-up rather than on every request."""
    from ..batch.predictor import build_predictor
    from ..deploy.formats import preferred_backend
    from ..deploy.loading import load_inference_model

    cfg = cfg.check()
    model: Any = load_inference_model(cfg.weights, arch=cfg.arch, progress=False, hf_config=cfg.hf_config)
    card = model.card
    predictor = build_predictor(
        model,
        cfg.precision,
        False,
        cfg.max_batch,
        _calibration(model, cfg, log),
        log=log,
        backend=preferred_backend(cfg.backend, cfg.precision),
    )
    info = {
        "weights": card.source or cfg.weights,
        "arch": card.arch,
        "num_classes": card.num_classes,
        "classes": list(card.classes) if card.classes else None,
        "in_chans": card.in_chans,
        "preprocess": card.preprocess.to_dict(),
        "decode": cfg.decode,
        "backend": predictor.backend,
        "precision": predictor.precision,
        "grad_cam": predictor.pytorch_model is not None,
        "task": card.task,
        "limits": cfg.limits(),
    }
    served = ServedModel(
        lambda x: predictor(x)[0], predictor.decoder(policy=cfg.decode), predictor.pytorch_model, card, info
    )
    self_check(served)
    return served


def _calibration(model: Any, cfg: ServeConfig, log) -> Optional[Callable[[], torch.Tensor]]:
    if cfg.precision != "int8":
        return None
    from ..deploy.calibration import lazy_calibration
    from ..engine.rundir import calibration_source

    card = model.card
    source = calibration_source(cfg.calibration, card.source or cfg.weights, log)
    return lazy_calibration(source, card.preprocess, card.in_chans)


def self_check(served: ServedModel) -> None:
    """One synthetic image through decoding, preprocessing and the model: what every request does."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 60, 30)).save(buf, format="PNG")
    try:
        x = prepare(served, "self-check.png", buf.getvalue())
        with torch.no_grad():
            out = served.run(x[None])
    except ResnetkitError as exc:
        raise InvalidOption(f"the model cannot answer a request: {exc}") from None
    if out.shape != (1, served.info["num_classes"]) or not torch.isfinite(out).all():
        raise InvalidOption(
            f"the model cannot answer a request: a test image gave logits of shape {list(out.shape)} "
            f"{'with non-finite values' if not torch.isfinite(out).all() else ''}; check the weights"
        )


def prepare(served: ServedModel, name: str, data: bytes) -> torch.Tensor:
    """Uploaded bytes -> the model's uint8 crop (same limits and messages as ``predict``)."""
    return torch.from_numpy(served.decoder.from_bytes(data, name))


class Service:
    """The running service: the served model, its batcher and metrics, and how many requests are in
    progress (admission control). Created by the app; started and stopped by its lifespan."""

    def __init__(self, served: ServedModel, cfg: ServeConfig, log: Callable[[str], None] = print) -> None:
        self.served, self.cfg, self.log = served, cfg, log
        self.metrics = Metrics()
        self.batcher: Optional[Batcher] = None
        self.ready = False
        self.inflight = 0
        rate = cfg.min_upload_kib_s * 1024
        self.body_limits = BodyLimits(cfg.max_body_bytes, cfg.read_timeout_s, rate)
        self._explained: Optional[Dict[str, Any]] = None
        self._explain_lock = asyncio.Lock()

    # ---- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the batcher and warm the runner up (the first calls of a runtime are slow)."""
        cfg, served = self.cfg, self.served
        self.batcher = Batcher(
            served.run,
            cfg.max_batch,
            cfg.max_wait_ms / 1000,
            cfg.max_queue,
            on_batch=self._count_batch,
        )
        self.batcher.start()
        size = served.preprocess.crop_size
        for batch in sorted({1, cfg.max_batch}):
            crops = torch.zeros(batch, size, size, served.in_chans, dtype=torch.uint8)
            await self.batcher.in_model_thread(served.run, crops)
        self.ready = True
        info = served.info
        self.log(
            f"ready: {info['arch']} ({info['precision']} on {info['backend']}) at "
            f"http://{cfg.host}:{cfg.port}/ (pid {os.getpid()})"
        )

    def _count_batch(self, images: int) -> None:
        self.metrics.batch.observe(images)
        self.metrics.images.inc(images)

    async def stop(self) -> None:
        """Refuse new requests, answer the queued ones, stop the batcher."""
        self.ready = False
        if self.batcher is not None:
            await self.batcher.close()

    @contextlib.asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Admission control before the body is read: requests being read, decoded, queued or computed
        are bounded (the queue plus one running batch), so a burst gets quick 503s, not memory growth."""
        limit = self.cfg.admission_limit
        if self.inflight >= limit:
            raise RequestError(
                503, f"server busy: {self.inflight} requests in progress (limit {limit}); retry shortly", BUSY
            )
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1

    def check_request(self, topk: int, cam: bool, threshold: Optional[float] = None) -> None:
        if not self.ready:
            raise RequestError(503, "the model is still loading; retry shortly", BUSY)
        if topk < 1:
            raise RequestError(422, f"topk must be >= 1, got {topk}")
        from ..batch.predictor import check_threshold

        try:
            check_threshold(self.served.card, threshold)
        except InvalidOption as exc:
            raise RequestError(422, str(exc)) from None
        if cam and self.served.model is None:
            raise RequestError(
                422, "Grad-CAM needs PyTorch weights; this server runs an exported model (serve the weights instead)"
            )

    # ---- a prediction ------------------------------------------------------------------------------

    async def predict(
        self, files: List[Tuple[str, bytes]], topk: int, cam: bool, threshold: Optional[float] = None
    ) -> Dict[str, Any]:
        """The answer to one request: top-k per image, or (a multi-label model) the labels above the
        thresholds; an error entry for each unusable image."""
        from ..batch.predictor import answers

        decoded: List[Any] = []
        for name, data in files:  # decoded on worker threads, off the event loop
            try:
                decoded.append(await asyncio.to_thread(prepare, self.served, name, data))
            except ImageDecodeError as exc:
                decoded.append(str(exc))
        good = [t for t in decoded if isinstance(t, torch.Tensor)]
        if not good:
            raise RequestError(422, f"no readable image: {'; '.join(str(d) for d in decoded)}")
        logits = torch.stack(await self._run(good))
        finite = torch.isfinite(logits).all(1).tolist()
        card = self.served.card
        tops = iter(answers(torch.nan_to_num(logits), card, topk, threshold))
        heat = iter(await self.batcher.in_model_thread(self.cam_pngs, good) if cam else [])  # type: ignore[union-attr]
        results = []
        for (name, _), item in zip(files, decoded):
            if isinstance(item, str):
                results.append({"name": name, "error": item})
                continue
            top, ok, overlay = next(tops), finite.pop(0), next(heat, None)
            if not ok:
                results.append({"name": name, "error": f"{name}: the model's output is not finite (NaN or Inf)"})
                continue
            classes = [{"class": c, "prob": round(p, 6)} for _, c, p in top]
            entry: Dict[str, Any] = {"name": name, "labels" if card.multilabel else "top": classes}
            if overlay is not None:
                entry["cam_png"] = overlay
            results.append(entry)
        info = self.served.info
        return {"predictions": results, "backend": info["backend"], "precision": info["precision"]}

    async def _run(self, images: List[torch.Tensor]) -> List[torch.Tensor]:
        assert self.batcher is not None
        try:
            logits = await asyncio.wait_for(self.batcher.submit(images), self.cfg.timeout_s)
        except QueueFull as exc:
            raise RequestError(503, f"server busy: {exc}; retry shortly", BUSY) from None
        except asyncio.TimeoutError:
            raise RequestError(504, f"no answer within {self.cfg.timeout_s:g} s; the server is overloaded") from None
        except ResnetkitError as exc:
            raise RequestError(422, str(exc)) from None
        self.metrics.queue.set(self.batcher.waiting)
        return logits

    async def explain_data(self) -> Dict[str, Any]:
        """The facts of the explain page for the served model: computed once, on the model's thread
        (its hooks and Grad-CAM never run beside a batch), then kept."""
        if self._explained is None:
            async with self._explain_lock:
                if self._explained is None:
                    import types

                    from ..inspect.explain import explain_data

                    served = self.served
                    target = served.model if served.model is not None else types.SimpleNamespace(card=served.card)
                    run = functools.partial(explain_data, target)
                    try:
                        self._explained = await self.batcher.in_model_thread(run)  # type: ignore[union-attr]
                    except ResnetkitError as exc:
                        raise RequestError(404, f"no explain page for this model: {exc}") from None
        return self._explained

    def cam_pngs(self, tensors: List[torch.Tensor]) -> List[str]:
        """A Grad-CAM overlay PNG (base64) per image, computed on the PyTorch model."""
        from ..inspect.cam import cam_overlays
        from ..web import image_base64

        assert self.served.model is not None
        pre = self.served.preprocess
        images = normalise(torch.stack(tensors), pre, self.served.in_chans)
        return [image_base64(image) for image in cam_overlays(self.served.model, images, pre.mean, pre.std)]
