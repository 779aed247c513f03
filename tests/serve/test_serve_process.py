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
    env = dict(os.environ, RESNETKIT_HOME=str(tmp_path / "home"))
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
