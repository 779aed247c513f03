"""The serve app behind Ray Serve on a local single-node Ray: deploy, predict, read /readyz and
/metrics, shut down. Not part of `make test` (Ray's start-up alone is several seconds, and Ray is not
a dependency of resnetkit); run it by hand where Ray is installed (`pip install 'ray[serve]'`):

    python scripts/ray_serve_check.py [--weights runs/digits] [--port 8123]
"""

import argparse
import io
import sys
import time

import httpx
import ray
from PIL import Image
from ray import serve

from resnetkit.serve import ServeConfig
from resnetkit.serve.app import app_builder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="runs/digits")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    # The builder runs in the replica: the model is loaded there, never pickled from here.
    deployment = serve.deployment(serve.ingress(app_builder(ServeConfig(weights=args.weights)))())
    started = time.perf_counter()
    serve.run(deployment.bind(), route_prefix="/")
    print(f"deployed in {time.perf_counter() - started:.1f} s")
    base = f"http://127.0.0.1:{args.port}"
    try:
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), "white").save(buf, format="PNG")
        answer = httpx.post(f"{base}/v1/predict?topk=3", files={"file": ("x.png", buf.getvalue(), "image/png")})
        print("POST /v1/predict", answer.status_code, answer.text[:300])
        bad = httpx.post(f"{base}/v1/predict", content=b"not an image", headers={"content-type": "image/png"})
        print("POST /v1/predict (broken)", bad.status_code, bad.text[:300])
        ready = httpx.get(f"{base}/readyz")
        print("GET /readyz", ready.status_code)
        metrics = httpx.get(f"{base}/metrics").text
        counted = [line for line in metrics.splitlines() if line.startswith("resnetkit_requests_total{")]
        print("GET /metrics", counted)
        ok = answer.status_code == 200 and bad.status_code == 422 and ready.status_code == 200 and counted
    finally:
        serve.shutdown()
        ray.shutdown()
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
