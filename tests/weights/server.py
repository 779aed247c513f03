"""A loopback HTTP server standing in for a weights host, with failure modes for tests."""

import http.server
import threading
from contextlib import contextmanager
from pathlib import Path


class WeightsHost:
    """Serves files from a directory on 127.0.0.1. ``mode`` per file name: 'ok', 'truncate'
    (announce the full length, send half), 'flaky:N' (HTTP 503 for the first N requests),
    'html' / 'text' (status 200 with a page instead of the file)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.modes = {}
        self.requests = {}
        self.lock = threading.Lock()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _handler(self):
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                """Keep the test output free of access logs."""

            def do_GET(self):
                name = self.path.lstrip("/")
                with host.lock:
                    count = host.requests.get(name, 0) + 1
                    host.requests[name] = count
                mode = host.modes.get(name, "ok")
                path = host.root / name
                if not path.is_file():
                    self.send_error(404, "not found")
                    return
                if mode.startswith("flaky:") and count <= int(mode.split(":")[1]):
                    self.send_error(503, "busy")
                    return
                data = path.read_bytes()
                if mode == "html":  # a login or error page served with status 200
                    data = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
                elif mode == "text":
                    data = b"rate limit exceeded, try again later"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                # Send in pieces, slowly enough that concurrent clients overlap.
                step = max(1, len(data) // 8)
                for i in range(0, len(data), step):
                    self.wfile.write(data[i : i + step])

        return Handler

    @contextmanager
    def running(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)  # shutdown waits a poll
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
