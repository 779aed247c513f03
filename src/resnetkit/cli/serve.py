"""`resnetkit serve`: an HTTP inference service (FastAPI + uvicorn) with dynamic batching."""

from __future__ import annotations

import argparse
import dataclasses
import signal

from .common import add_runtime_args, add_weights_args, float_above, int_at_least


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP: /v1/predict with dynamic batching, a web page at /",
        description="Serve SRC (anything predict accepts) on the fastest backend optimize() finds here. "
        "Endpoints: POST /v1/predict, GET /healthz /readyz /v1/model /metrics, and a page at /.",
    )
    add_weights_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int_at_least(1), default=8000, help="port (default 8000)")
    add_runtime_args(p, "a run's val data")
    p.add_argument("--max-batch", type=int_at_least(1), default=16, help="images per model call (default 16)")
    p.add_argument(
        "--max-wait-ms",
        type=float_above(0, inclusive=True),
        default=5.0,
        help="wait for a batch to fill (default 5 ms)",
    )
    p.add_argument(
        "--max-queue", type=int_at_least(1), default=64, help="images waiting before 503 + Retry-After (default 64)"
    )
    p.add_argument("--max-body-mb", type=float_above(0), default=20.0, help="request size limit (default 20 MB)")
    p.add_argument("--max-images", type=int_at_least(1), default=16, help="images per request (default 16)")
    p.add_argument(
        "--timeout", dest="timeout_s", type=float_above(0), default=30.0, help="per-request timeout, s (default 30)"
    )
    p.add_argument(
        "--read-timeout",
        dest="read_timeout_s",
        type=float_above(0),
        default=10.0,
        help="seconds a client gets to send a request's headers and to start its body; a stalled client is "
        "answered 408 (default 10)",
    )
    p.add_argument(
        "--min-upload-rate",
        dest="min_upload_kib_s",
        type=float_above(0),
        default=32.0,
        metavar="KIB_S",
        help="after --read-timeout, a body must keep arriving at this many KiB/s on average, or 408 (default 32)",
    )
    p.add_argument("--workers", type=int_at_least(1), default=1, help="uvicorn worker processes (default 1)")
    p.add_argument(
        "--decode", choices=["resnetkit", "reference"], default="resnetkit",
        help="how uploads are decoded: resnetkit (default: EXIF orientation, alpha on white) or reference "
        "(Image.open().convert('RGB'), as torchvision's and timm's examples)",
    )  # fmt: skip
    p.set_defaults(handler=run)


def listening_socket(host: str, port: int):
    """A socket bound to host:port and listening, made before the model is loaded: a port in use or
    an address that is not this machine's is named at once, in one line, not after seconds of
    loading (and after a "ready" line, as uvicorn binding it itself would). Connections that arrive
    before the server loop runs wait in the backlog."""
    import errno
    import socket

    from ..errors import InvalidOption

    try:
        # The address as getaddrinfo gives it, protocol included: asyncio sets TCP_NODELAY only on
        # connections of a socket made with IPPROTO_TCP; without it every sequential request waited
        # ~40 ms for a delayed ACK (measured: 8 ms -> 52 ms per request).
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidOption(
            f"cannot listen on {host}:{port}: not an address or host name of this machine ({exc})"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without waiting
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = {
            errno.EADDRINUSE: f"port {port} is already in use (another server?): stop it or pick another --port",
            errno.EADDRNOTAVAIL: "that address is not one of this machine's: use 127.0.0.1, or 0.0.0.0 for all",
            errno.EACCES: f"permission denied for port {port} (ports below 1024 need root): pick --port 8000",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise InvalidOption(f"cannot listen on {host}:{port}: {hint}") from None
    return sock


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidOption, MissingDependency

    try:
        import uvicorn  # noqa: F401

        from ..serve.config import ServeConfig
    except ImportError:
        raise MissingDependency("serve needs FastAPI and uvicorn: pip install 'resnetkit[serve]'") from None
    if args.device == "cuda":
        raise InvalidOption("serve runs on the CPU backends optimize() picks; --device cuda is not supported")
    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    cfg = ServeConfig(**values).check()
    sock = listening_socket(cfg.host, cfg.port)
    try:
        if cfg.workers > 1:
            return run_workers(cfg, sock)
        return run_one(cfg, sock)
    finally:
        sock.close()


def uvicorn_config(app, cfg, **options):
    """uvicorn's settings for resnetkit's app: its own HTTP protocol (a deadline for request heads,
    JSON answers to malformed requests), quiet logs, a drain as long as a request may take."""
    import uvicorn

    from ..serve.protocol import GuardedH11Protocol

    return uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        http=GuardedH11Protocol,
        log_level="warning",
        timeout_graceful_shutdown=int(cfg.timeout_s) + 1,
        **options,
    )


def run_one(cfg, sock) -> int:
    import uvicorn

    from ..serve.app import create_app, ensure_log_handler, load_service

    def say(line: str) -> None:
        print(line, flush=True)

    ensure_log_handler()
    app = create_app(load_service(cfg, log=say), cfg, log=say)
    # uvicorn drains on SIGTERM (stops accepting, finishes requests in flight, shuts the batcher
    # down) and then re-raises the signal to the handler it found: make that one a no-op, so a
    # drained shutdown exits 0 as process managers expect.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        uvicorn.Server(uvicorn_config(app, cfg)).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    say("stopped: every request in flight was answered")
    return 0


def run_workers(cfg, sock) -> int:
    """N worker processes serving one socket, each loading the model from ``cfg`` (passed through
    the environment), their metrics summed through a shared folder (prometheus_client's multiprocess
    mode). uvicorn's supervisor is given resnetkit's socket rather than binding its own: uvicorn makes
    that one without IPPROTO_TCP, so its connections lacked TCP_NODELAY (measured: 54 ms per
    sequential request instead of 8)."""
    import inspect
    import os
    import shutil
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from ..serve.metrics import MULTIPROC_ENV

    metrics_dir = tempfile.mkdtemp(prefix="resnetkit-metrics-")
    saved = {name: os.environ.get(name) for name in (MULTIPROC_ENV, "RESNETKIT_SERVE_CONFIG")}
    os.environ[MULTIPROC_ENV] = metrics_dir  # read by prometheus_client when each worker imports it
    cfg.to_environment()
    try:
        config = uvicorn_config("resnetkit.serve.app:app_from_environment", cfg, factory=True, workers=cfg.workers)
        if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.30
            Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()  # type: ignore[call-arg]
        else:
            Multiprocess(config, sockets=[sock]).run()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
