"""The service's Prometheus metrics: one process's, or summed over the processes of
`serve --workers N`.

With several workers each scrape of /metrics lands on one of them; prometheus_client's multiprocess
mode makes every process write its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape read
them all, so any worker answers with the totals. The variable must be set before prometheus_client is
imported in the workers: `serve` sets it (to a fresh folder) before starting them.
"""

from __future__ import annotations

import os
from typing import Optional

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Optional[str]:
    """The folder the workers share their values through, if this is a multi-worker server."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """Counters, histograms and gauges of one app, in the app's own registry (several apps in one
    process stay apart; in multiprocess mode a scrape reads every worker's files instead)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "resnetkit_requests",
            "HTTP requests by path and status (499: the client left before its request was read)",
            ["path", "status"],
            registry=self.registry,
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
        # livesum: in multiprocess mode the depths of the live workers' queues add up.
        self.queue = Gauge(
            "resnetkit_queue_depth", "Images waiting for a batch", registry=self.registry, multiprocess_mode="livesum"
        )
        self.images = Counter("resnetkit_images", "Images classified", registry=self.registry)
        self.rejected = Counter(
            "resnetkit_rejected_connections",
            "Connections closed before a request reached the app: timeout (the request head did not "
            "arrive in time) or malformed (not parsable HTTP)",
            ["reason"],
            registry=self.registry,
        )

    def count_request(self, path: str, status: int, seconds: Optional[float] = None) -> None:
        self.requests.labels(path, str(status)).inc()
        if seconds is not None:
            self.latency.labels(str(status)).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition: this process's values, or every worker's summed."""
        from prometheus_client import CollectorRegistry, generate_latest

        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
