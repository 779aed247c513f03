"""The HTTP service in-process (ASGI client): predict, batching, bad input, limits, metrics."""

import asyncio
import base64
import dataclasses
import io
import threading

import pytest
import torch
from PIL import Image

import resnetkit as rk

from ..imagegen import class_image, write_small_weights

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from resnetkit.errors import ResnetkitError  # noqa: E402
from resnetkit.serve import (  # noqa: E402
    ServeConfig,
    create_app,
    load_service,
)

CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return str(write_small_weights(tmp_path_factory.mktemp("w") / "w.safetensors"))


@pytest.fixture(scope="module")
def service(weights):
    return load_service(ServeConfig(weights=weights, max_batch=4), log=lambda s: None)


def png(cls=0, size=40) -> bytes:
    buf = io.BytesIO()
    class_image(cls, 1, size=size).save(buf, format="PNG")
    return buf.getvalue()


def run(app, scenario):
    """Run ``scenario(client)`` against the app with its lifespan (startup warm-up, shutdown drain)."""

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await scenario(client)

    return asyncio.run(main())


def test_predict_upload_raw_batch_and_info(service, weights):
    app = create_app(service, ServeConfig(weights=weights, max_batch=4), log=lambda s: None)

    async def scenario(client):
        one = await client.post("/v1/predict?topk=2", files={"file": ("x.png", png(), "image/png")})
        raw = await client.post("/v1/predict", content=png(), headers={"content-type": "image/png"})
        files = [("f", (f"{i}.png", png(i), "image/png")) for i in range(3)] + [
            ("f", ("bad.png", b"not an image", "image/png"))
        ]
        many = await client.post("/v1/predict", files=files)
        info = await client.get("/v1/model")
        ready, health = await client.get("/readyz"), await client.get("/healthz")
        metrics = await client.get("/metrics")
        page = await client.get("/")
        return one, raw, many, info, ready, health, metrics, page

    one, raw, many, info, ready, health, metrics, page = run(app, scenario)
    assert one.status_code == 200, one.text
    top = one.json()["predictions"][0]["top"]
    assert len(top) == 2 and top[0]["class"] in CLASSES and top[0]["prob"] >= top[1]["prob"]
    model = rk.resnet18(weights=weights).eval()
    x = service.card.preprocess.transform()(Image.open(io.BytesIO(png())).convert("RGB"))
    with torch.no_grad():
        expected = model(x[None]).softmax(1)[0]
    assert abs(top[0]["prob"] - float(expected.max())) < 1e-3 and top[0]["class"] == CLASSES[int(expected.argmax())]
    assert raw.status_code == 200 and raw.json()["predictions"][0]["top"][0]["class"] == top[0]["class"]
    predictions = many.json()["predictions"]
    assert many.status_code == 200 and [p["name"] for p in predictions] == ["0.png", "1.png", "2.png", "bad.png"]
    assert "not an image file" in predictions[3]["error"] and all("top" in p for p in predictions[:3])
    assert info.json()["classes"] == CLASSES and info.json()["backend"] == service.info["backend"]
    assert ready.json() == {"status": "ready"} and health.status_code == 200
    text = metrics.text
    assert 'resnetkit_requests_total{path="/v1/predict",status="200"} 3.0' in text
    assert "resnetkit_batch_size_bucket" in text and "resnetkit_queue_depth" in text
    assert 'resnetkit_request_seconds_count{status="200"} 3.0' in text
    assert page.status_code == 200 and "Grad-CAM" in page.text and '"arch": "resnet18"' in page.text


def test_bad_requests_get_json_errors_and_the_server_goes_on(service, weights):
    cfg = ServeConfig(weights=weights, max_batch=4, max_body_mb=0.05, max_images=2)
    app = create_app(service, cfg, log=lambda s: None)

    async def scenario(client):
        out = {}
        out["text"] = await client.post("/v1/predict", content=b"hello", headers={"content-type": "text/plain"})
        out["json"] = await client.post("/v1/predict", json={"image": "x"})
        out["corrupt"] = await client.post("/v1/predict", content=png()[:60], headers={"content-type": "image/png"})
        out["empty"] = await client.post("/v1/predict", content=b"", headers={"content-type": "image/png"})
        out["big"] = await client.post("/v1/predict", content=b"0" * 60_000, headers={"content-type": "image/png"})
        files = [("f", (f"{i}.png", png(i), "image/png")) for i in range(3)]
        out["too_many"] = await client.post("/v1/predict", files=files)
        out["topk"] = await client.post("/v1/predict?topk=0", content=png(), headers={"content-type": "image/png"})
        out["topk_text"] = await client.post("/v1/predict?topk=x", content=png(), headers={"content-type": "image/png"})
        wide = io.BytesIO()
        Image.new("RGB", (20000, 2), "white").save(wide, format="PNG")
        out["wide"] = await client.post("/v1/predict", content=wide.getvalue(), headers={"content-type": "image/png"})
        boundary = "b0undary"
        fields = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(4000)
        )
        flood = (fields + f"--{boundary}--\r\n").encode()  # 4,000 tiny text fields, under the size limit
        flood_type = {"content-type": f"multipart/form-data; boundary={boundary}"}
        out["fields"] = await client.post("/v1/predict", content=flood[:49_000], headers=flood_type)
        out["no_such_path"] = await client.get("/v2/predict")
        out["wrong_method"] = await client.get("/v1/predict")
        out["after"] = await client.post("/v1/predict", content=png(), headers={"content-type": "image/png"})
        return out

    out = run(app, scenario)
    expected = {
        "text": (415, "Content-Type"),
        "json": (415, "Content-Type"),
        "corrupt": (422, "corrupt or truncated"),
        "empty": (422, "empty"),
        "big": (413, "limit"),
        "too_many": (413, "the limit is 2"),
        "fields": (413, "parts in one multipart upload"),
        "topk": (422, "topk"),
        "wide": (422, "aspect ratio"),
        "no_such_path": (404, "no such endpoint: GET /v2/predict; the endpoints are POST /v1/predict"),
        "wrong_method": (405, "GET /v1/predict is not allowed here"),
    }
    for name, (status, words) in expected.items():  # one JSON shape for every error
        assert out[name].status_code == status, (name, out[name].text)
        assert out[name].json().keys() == {"error", "status"} and out[name].json()["status"] == status, name
        assert words in out[name].json()["error"], (name, out[name].json())
    assert out["topk_text"].status_code == 422 and "Traceback" not in out["topk_text"].text
    assert out["after"].status_code == 200


class Gate(torch.nn.Module):
    """A runner that holds each batch until the test opens the gate, and records batch sizes."""

    def __init__(self, model):
        super().__init__()
        self.model, self.open, self.sizes = model, threading.Event(), []
        self.open.set()

    def forward(self, x):
        self.open.wait(30)
        self.sizes.append(len(x))
        return self.model(x)


def test_dynamic_batching_queue_bound_and_recovery(service, weights):
    gate = Gate(service.run)
    gated = dataclasses.replace(service, run=gate, model=None, info=dict(service.info, grad_cam=False))
    cfg = ServeConfig(weights=weights, max_batch=4, max_wait_ms=60_000, max_queue=4)
    app = create_app(gated, cfg, log=lambda s: None)

    def send(client, i=0):
        return client.post("/v1/predict", content=png(i % 3), headers={"content-type": "image/png"})

    async def scenario(client):
        gate.sizes.clear()
        # 4 concurrent requests fill one batch of 4 (the 60 s wait never runs out: the batch is full).
        first = await asyncio.gather(*[send(client, i) for i in range(4)])
        assert gate.sizes == [4]
        gate.open.clear()  # hold the next batch in the model
        batcher = app.state.service.batcher
        running = [asyncio.ensure_future(send(client, i)) for i in range(4)]
        await batcher.wait_until(lambda: batcher.running == 4)
        queued = [asyncio.ensure_future(send(client, i)) for i in range(4)]
        await batcher.wait_until(lambda: batcher.waiting == 4)
        refused = await send(client)  # the queue holds 4: the fifth image is refused at once
        gate.open.set()
        done = await asyncio.gather(*running, *queued)
        after = await asyncio.gather(*[send(client, i) for i in range(4)])
        return first, refused, done, after

    first, refused, done, after = run(app, scenario)
    assert all(r.status_code == 200 for r in first + done + after)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1" and "busy" in refused.json()["error"]
    assert gate.sizes == [4, 4, 4, 4]


def test_grad_cam_in_json_and_page_flag(service, weights):
    app = create_app(service, ServeConfig(weights=weights, max_batch=4), log=lambda s: None)

    async def scenario(client):
        return await client.post("/v1/predict?cam=1", files={"file": ("x.png", png(2), "image/png")})

    answer = run(app, scenario)
    assert answer.status_code == 200, answer.text
    heat = Image.open(io.BytesIO(base64.b64decode(answer.json()["predictions"][0]["cam_png"])))
    assert heat.size == (32, 32) and heat.mode == "RGB"


def test_app_builder_for_ray_builds_a_working_app(weights):
    """Ray Serve tells an app builder from an ASGI app by it being a plain function; the app it
    builds (in the replica) loads the model and answers."""
    import inspect

    from resnetkit.serve.app import app_builder

    build = app_builder(ServeConfig(weights=weights, max_batch=2))
    assert inspect.isfunction(build) and not inspect.signature(build).parameters

    async def scenario(client):
        return await client.get("/readyz"), await client.post(
            "/v1/predict", files={"file": ("x.png", png(), "image/png")}
        )

    ready, answer = run(build(), scenario)
    assert ready.status_code == 200 and answer.status_code == 200, answer.text
    with pytest.raises(ResnetkitError, match="max_batch must be an integer >= 1"):
        app_builder(ServeConfig(weights=weights, max_batch=0))


def test_cli_names_a_port_in_use_or_a_foreign_address_before_loading(weights):
    """One line and exit 1, before the model is loaded (so no "ready" line is printed first)."""
    import socket

    from ..clirun import cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = cli("serve", "--weights", weights, "--port", port)
    assert result.returncode == 1 and "ready" not in result.stdout and "optimize" not in result.stdout
    assert f"port {port} is already in use" in result.stderr and result.stderr.count("\n") == 1
    for host, words in (("192.0.2.1", "not one of this machine's"), ("no-such-host.invalid", "not an address")):
        result = cli("serve", "--weights", weights, "--host", host, "--port", "8000")
        assert result.returncode == 1 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_connections_on_the_served_socket_do_not_wait_for_delayed_acks():
    """The socket `serve` binds must give asyncio's connections TCP_NODELAY (it sets it only for
    IPPROTO_TCP sockets): without it each sequential request took ~40 ms more."""
    import socket

    from resnetkit.cli.serve import listening_socket

    sock = listening_socket("127.0.0.1", 0)

    async def main():
        seen = asyncio.get_running_loop().create_future()

        def on_connection(reader, writer):
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        nodelay = await seen
        writer.close()
        server.close()
        await server.wait_closed()
        return nodelay

    assert asyncio.run(main()) != 0
