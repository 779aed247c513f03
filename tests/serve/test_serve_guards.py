"""What a hostile or broken client can do to a real server, over real sockets: stall in the request
head or the body, send a malformed request, hang up mid-body. Each is answered (or counted) without
holding an admission slot, and other clients are served throughout."""

import dataclasses
import json
import logging
import socket

import pytest
import torch

from ..imagegen import write_small_weights
from .test_serve import png, run

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from resnetkit.serve import ServeConfig, create_app, load_service  # noqa: E402

from .server import serving  # noqa: E402

READ_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    weights = str(write_small_weights(tmp_path_factory.mktemp("w") / "w.safetensors"))
    return load_service(ServeConfig(weights=weights, max_batch=1), log=lambda s: None)


def small_app(served, **options):
    # max_batch 1 + max_queue 2: three requests in progress fill every admission slot.
    cfg = ServeConfig(weights=served.info["weights"], max_batch=1, max_queue=2, read_timeout_s=READ_TIMEOUT, **options)
    return create_app(served, cfg, log=lambda s: None)


def answer_of(sock: socket.socket) -> tuple:
    """(status, JSON body) of the one response the server writes before closing the connection."""
    sock.settimeout(60)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def connect(host, port, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection((host, port))
    if data:
        sock.sendall(data)
    return sock


def predict_head(length: int, kind: str = "image/png") -> bytes:
    return (
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_stalled_clients_get_408_and_never_lock_others_out(served):
    """Every admission slot taken by a client that sent its head and 10 bytes of a 100 kB body and
    stopped: each is answered 408 once its body stops arriving, and then everyone else is served.
    Clients stalled in the request head (or that never send a byte) get 408 too."""
    app = small_app(served)
    with serving(app) as (host, port):
        base = f"http://{host}:{port}"
        bodies = [connect(host, port, predict_head(100_000) + b"0123456789") for _ in range(3)]
        heads = [connect(host, port, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Le"), connect(host, port)]
        service = app.state.service
        with httpx.Client(base_url=base) as client:
            for _ in range(100_000):  # until the stalled bodies hold every slot (state, not time)
                if service.inflight == 3:
                    break
                client.get("/healthz")
        assert service.inflight == 3  # every slot held: until now, everyone else would get 503
        for sock in bodies:
            status, body = answer_of(sock)
            assert status == 408 and "stopped arriving" in body["error"] and body["status"] == 408
        for sock in heads:
            status, body = answer_of(sock)
            assert status == 408 and "headers did not arrive" in body["error"] and body["status"] == 408
        assert app.state.service.inflight == 0
        ok = [httpx.post(f"{base}/v1/predict", content=png(i), headers={"content-type": "image/png"}) for i in range(3)]
        assert [r.status_code for r in ok] == [200, 200, 200]
        metrics = httpx.get(f"{base}/metrics").text
    assert 'resnetkit_requests_total{path="/v1/predict",status="408"} 3.0' in metrics
    assert 'resnetkit_rejected_connections_total{reason="timeout"} 2.0' in metrics


def test_the_body_deadline_is_a_minimum_rate_not_a_fixed_time(served):
    """The next bytes are due ``grace`` seconds after the head plus the time the bytes received so
    far earn at the minimum rate: a large upload at a steady rate is never cut off. And a body that
    arrives in many small writes is read to the end."""
    from resnetkit.serve.uploads import BodyLimits

    limits = BodyLimits(max_bytes=20 * 2**20, grace_s=10.0, min_rate=32 * 1024)
    assert limits.deadline(100.0, 0) == 110.0
    assert limits.deadline(100.0, 20 * 2**20) == 110.0 + 640.0  # 20 MiB at 32 KiB/s
    app = small_app(served)
    image = png(1, size=64)
    with serving(app) as (host, port):
        sock = connect(host, port, predict_head(len(image)))
        for i in range(0, len(image), 256):
            sock.sendall(image[i : i + 256])
        data = b""
        sock.settimeout(60)
        while b'"precision"' not in data and (chunk := sock.recv(65536)):
            data += chunk
        sock.close()
    assert data.startswith(b"HTTP/1.1 200") and b'"top"' in data


def test_malformed_requests_get_the_json_error_shape(served):
    app = small_app(served)
    with serving(app) as (host, port):
        bad_length = connect(host, port, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        status, body = answer_of(bad_length)
        assert status == 400 and body["status"] == 400 and "malformed HTTP request" in body["error"]
        assert "Content-Length" in body["error"]
        garbage = connect(host, port, b"\x16\x03\x01 this is not http\r\n\r\n")
        status, body = answer_of(garbage)
        assert status == 400 and "malformed HTTP request" in body["error"]
        boundary = "XYZ"
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode() + png()
        cut = httpx.post(
            f"http://{host}:{port}/v1/predict",
            content=part,  # no closing boundary
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        metrics = httpx.get(f"http://{host}:{port}/metrics").text
    assert cut.status_code == 400 and "cut short" in cut.json()["error"], cut.text
    assert 'resnetkit_rejected_connections_total{reason="malformed"} 2.0' in metrics


def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(served):
    app = small_app(served)
    with serving(app) as (host, port):
        sock = connect(host, port, predict_head(50_000) + b"x" * 1000)
        with httpx.Client(base_url=f"http://{host}:{port}") as client:
            service = app.state.service
            for _ in range(100_000):  # until the server holds the request (state, not time)
                if service.inflight == 1:
                    break
                client.get("/healthz")
            sock.close()
            for _ in range(100_000):  # until the server has let it go
                if service.inflight == 0:
                    break
                client.get("/healthz")
            metrics = client.get("/metrics").text
    assert 'resnetkit_requests_total{path="/v1/predict",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics


class FailsOnImages(torch.nn.Module):
    """A runner that works for the warm-up (zeros) and fails on every real image."""

    def __init__(self, runner):
        super().__init__()
        self.runner = runner

    def forward(self, x):
        if x.float().sum() > 0:
            raise RuntimeError("simulated runtime failure")
        return self.runner(x)


def test_an_internal_error_is_answered_in_json_and_logged(served, caplog):
    """A failure the server did not expect: the client gets a JSON 500 without a traceback, and the
    server log gets the traceback."""
    broken = dataclasses.replace(served, run=FailsOnImages(served.run))
    app = create_app(broken, ServeConfig(weights=served.info["weights"], max_batch=1), log=lambda s: None)

    async def scenario(client):
        return await client.post("/v1/predict", content=png(), headers={"content-type": "image/png"})

    with caplog.at_level(logging.ERROR, logger="resnetkit.serve"):
        answer = run(app, scenario)
    assert answer.status_code == 500 and answer.json() == {
        "error": "internal error (RuntimeError); see the server log",
        "status": 500,
    }
    logged = [r for r in caplog.records if r.name == "resnetkit.serve" and r.exc_info]
    assert logged and "simulated runtime failure" in str(logged[0].exc_info[1])
