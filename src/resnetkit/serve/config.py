"""The service's settings: one frozen record, checked once, passed to every part of the server (and
as JSON to each `serve --workers N` process)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..errors import InvalidOption
from ..targets import BACKEND_CHOICES, RUN_PRECISIONS

ENV_CONFIG = "RESNETKIT_SERVE_CONFIG"  # how `serve --workers N` hands its settings to each worker

INTEGER_MINIMUMS = {"max_batch": 1, "max_queue": 1, "max_images": 1, "workers": 1}
POSITIVE = ("max_body_mb", "timeout_s", "read_timeout_s", "min_upload_kib_s")


@dataclass(frozen=True)
class ServeConfig:
    """What `resnetkit serve` was asked for. Field names are the Python spelling of the flags
    (``max_batch`` is ``--max-batch``)."""

    weights: str
    arch: Optional[str] = None
    precision: str = "fp32"
    # auto: the fastest, measured once by optimize(); or one runtime. None: $RESNETKIT_BACKEND where
    # that runtime offers the precision, else auto (deploy.formats.preferred_backend).
    backend: Optional[str] = None
    calibration: Optional[str] = None
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 64  # images waiting; beyond it requests get 503 + Retry-After
    max_body_mb: float = 20.0
    max_images: int = 16  # per request
    timeout_s: float = 30.0  # from the body being read to the answer
    # A client gets this long to send its request line and headers, and to start its body; the body
    # must then keep arriving at min_upload_kib_s. A stalled client is answered 408 and let go.
    read_timeout_s: float = 10.0
    min_upload_kib_s: float = 32.0
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    hf_config: Optional[str] = None
    decode: str = "resnetkit"  # or "reference" (data.decode): how uploads are decoded

    def check(self) -> ServeConfig:
        """This config, or InvalidOption naming the first field out of range."""
        from ..data.decode import check_policy

        check_policy(self.decode)
        for name, low in INTEGER_MINIMUMS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidOption(f"{name} must be an integer >= {low}, got {value!r}", field=name)
        for name in ("max_wait_ms", *POSITIVE):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (name != "max_wait_ms" and value == 0):
                relation = ">= 0" if name == "max_wait_ms" else "> 0"
                raise InvalidOption(f"{name} must be a number {relation}, got {value!r}", field=name)
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port < 65536:
            raise InvalidOption(f"port must be 0-65535 (0: any free port), got {self.port!r}", field="port")
        if self.max_queue < self.max_batch:
            raise InvalidOption(
                f"max_queue ({self.max_queue}) must be >= max_batch ({self.max_batch})", field="max_queue"
            )
        if self.backend is not None and self.backend not in BACKEND_CHOICES:
            raise InvalidOption(f"backend {self.backend!r} is not one of {', '.join(BACKEND_CHOICES)}", field="backend")
        if self.precision not in RUN_PRECISIONS:
            raise InvalidOption(
                f"precision {self.precision!r} is not one of {', '.join(RUN_PRECISIONS)}", field="precision"
            )
        return self

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)

    @property
    def admission_limit(self) -> int:
        """Requests that may be in progress at once (being read, decoded, queued or computed)."""
        return self.max_queue + self.max_batch

    def limits(self) -> Dict[str, Any]:
        """What a client may send (shown by GET /v1/model)."""
        return {
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait_ms,
            "max_queue": self.max_queue,
            "max_body_mb": self.max_body_mb,
            "max_images_per_request": self.max_images,
            "timeout_s": self.timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "min_upload_kib_s": self.min_upload_kib_s,
        }

    def to_environment(self) -> None:
        os.environ[ENV_CONFIG] = json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_environment(cls) -> ServeConfig:
        text = os.environ.get(ENV_CONFIG)
        if not text:
            raise InvalidOption(f"{ENV_CONFIG} is not set: give it a JSON object of ServeConfig fields")
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise InvalidOption(f"{ENV_CONFIG} is not valid JSON ({exc})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known) if isinstance(values, dict) else []
        if not isinstance(values, dict) or unknown or "weights" not in values:
            raise InvalidOption(
                f"{ENV_CONFIG} must be a JSON object of ServeConfig fields with 'weights'"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        return cls(**values).check()
