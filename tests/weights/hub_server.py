"""A stand-in for the Hugging Face Hub on 127.0.0.1, speaking the parts of its HTTP API that
huggingface_hub's client uses to download (resolve) and to publish (create a repository, preupload,
commit), so tests run the real client code path through ``HF_ENDPOINT``.

Repositories live in memory: ``hub.repos[repo_id] = {"files": {path: bytes}, "gated": bool}``. A gated
repository answers 401 unless the request carries ``Authorization: Bearer <hub.token>``."""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
RESOLVE = re.compile(r"^/(?:models/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
API = re.compile(r"^/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/]+)$")


class StandInHub:
    def __init__(self) -> None:
        self.repos: dict = {}
        self.token = "hf_test_token"
        self.require_token = False  # True: creating and committing need the token
        self.fail_with = 0  # an HTTP status (500, 503) every request is answered with: a Hub that is down
        self.requests: list = []
        self.log: list = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # kept, not printed: a test can read hub.log
                hub.log.append(format % args)

            def do_HEAD(self):
                if hub.fail_with:
                    return self._error(hub.fail_with, "ServerError", "Internal Error", head=True)
                self._resolve(head=True)

            def do_GET(self):
                if hub.fail_with:
                    return self._error(hub.fail_with, "ServerError", "Internal Error")
                if self.path.startswith("/api/agent-harnesses"):  # the client's registry of agents: none here
                    hub.requests.append(("GET", self.path))
                    return self._json(200, {"standardEnvVars": [], "harnesses": {}})
                self._resolve(head=False)

            def do_POST(self):
                hub.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if hub.fail_with:
                    return self._error(hub.fail_with, "ServerError", "Internal Error")
                if hub.require_token and self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
                if self.path.startswith("/api/validate-yaml"):  # the README's metadata, checked before a commit
                    return self._json(200, {"errors": [], "warnings": []})
                if self.path.startswith("/api/repos/create"):
                    request = json.loads(body)
                    repo = f"{request.get('organization') or 'user'}/{request['name']}"
                    hub.repos.setdefault(repo, {"files": {}, "gated": False})
                    return self._json(200, {"url": f"{hub.url}/{repo}", "name": repo})
                m = API.match(self.path.split("?")[0])
                if not m or m[1] not in hub.repos:
                    return self._error(404, "RepoNotFound", "Repository not found")
                repo = hub.repos[m[1]]
                if m[2] == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(
                        200,
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                    )
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item.get("key") == "file":
                        value = item["value"]
                        repo["files"][value["path"]] = base64.b64decode(value["content"])
                return self._json(200, {"commitUrl": f"{hub.url}/{m[1]}/commit/{COMMIT}", "commitOid": COMMIT})

            def _resolve(self, head: bool):
                hub.requests.append(("HEAD" if head else "GET", self.path))
                m = RESOLVE.match(self.path.split("?")[0])
                if not m or m[1] not in hub.repos:
                    return self._error(404, "RepoNotFound", "Repository not found", head)
                repo = hub.repos[m[1]]
                if repo["gated"] and self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._error(401, "GatedRepo", "Access to this model is restricted", head)
                if m[2] not in ("main", COMMIT):
                    return self._error(404, "RevisionNotFound", "Invalid rev id", head)
                data = repo["files"].get(m[3])
                if data is None:
                    return self._error(404, "EntryNotFound", "Entry not found", head)
                self.send_response(200)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _error(self, status, code, message, head=False):
                body = json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.02,), daemon=True
        )  # shutdown waits a poll

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
