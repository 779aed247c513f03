"""A real `resnetkit serve` process: SIGTERM stops accepting, finishes the request in flight, exits 0."""

import io
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from ..imagegen import class_image, write_small_weights

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_drains_the_request_in_flight(tmp_path):
    weights = write_small_weights(tmp_path / "w.safetensors")
    port = free_port()
    env = dict(os.environ, RESNETKIT_HOME=str(tmp_path / "home"), RESNETKIT_BACKEND="auto")  # the measured choice
    # A 4-image batch that one request never fills: the request waits in the queue for 3 s.
    cmd = [sys.executable, "-m", "resnetkit", "serve", "--weights", str(weights), "--port", str(port)]
    cmd += ["--max-batch", "4", "--max-wait-ms", "3000", "--max-queue", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not (lines and lines[-1].startswith("ready: ")):  # optimize's lines come first
            lines.append(proc.stdout.readline())
            assert lines[-1], "".join(lines) + f"\nexit {proc.wait()}: " + proc.stderr.read()
        assert lines[-1].startswith("ready: resnet18") and any(line.startswith("optimize: ") for line in lines)
        base = f"http://127.0.0.1:{port}"
        buf = io.BytesIO()
        class_image(1, 0).save(buf, format="PNG")
        answer = {}

        def send():
            answer["r"] = httpx.post(
                f"{base}/v1/predict", content=buf.getvalue(), headers={"content-type": "image/png"}, timeout=60
            )

        sender = threading.Thread(target=send)
        sender.start()
        for _ in range(10_000):  # until the server holds the request in its queue (state, not time)
            if "resnetkit_queue_depth 1.0" in httpx.get(f"{base}/metrics").text:
                break
        else:
            raise AssertionError("the request never reached the queue")
        proc.send_signal(signal.SIGTERM)
        sender.join(60)
        assert answer["r"].status_code == 200, answer["r"].text
        assert answer["r"].json()["predictions"][0]["top"][0]["class"] in "abc"
        assert proc.wait(60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.sweep  # several server processes: make test-scale
def test_two_workers_report_the_same_totals(tmp_path):
    """`serve --workers 2`: whichever worker answers a scrape, /metrics shows the requests of both."""
    import re

    from ..clirun import cli

    weights = write_small_weights(tmp_path / "w.safetensors")
    # An exported model: each worker runs it as it is (no optimize() measurement per worker).
    assert cli("export", "--weights", weights, "--format", "onnx", "--out", tmp_path / "w.onnx").returncode == 0
    port = free_port()
    env = dict(os.environ, RESNETKIT_HOME=str(tmp_path / "home"))
    cmd = [sys.executable, "-m", "resnetkit", "serve", "--weights", str(tmp_path / "w.onnx"), "--port", str(port)]
    cmd += ["--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        pids = set()
        while len(pids) < 2:  # each worker prints its own ready line
            line = proc.stdout.readline()
            assert line, f"exit {proc.wait()}: " + proc.stderr.read()
            if line.startswith("ready: "):
                pids.add(re.search(r"pid (\d+)", line).group(1))
        base = f"http://127.0.0.1:{port}"
        buf = io.BytesIO()
        class_image(0, 0).save(buf, format="PNG")
        with httpx.Client(base_url=base) as client:
            for _ in range(10):
                answer = client.post("/v1/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
                assert answer.status_code == 200
        scrapes = []
        for _ in range(6):  # new connections: spread over the workers
            scrapes.append(httpx.get(f"{base}/metrics").text)
        for text in scrapes:
            assert 'resnetkit_requests_total{path="/v1/predict",status="200"} 10.0' in text, text[:2000]
            assert "resnetkit_images_total 10.0" in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
