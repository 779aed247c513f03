"""A real uvicorn server in a thread, serving an app on a loopback socket with resnetkit's HTTP
protocol, started on an event set once it listens (waited for, never polled)."""

import asyncio
import contextlib
import socket
import threading

import uvicorn

from resnetkit.serve.protocol import GuardedH11Protocol


class _Server(uvicorn.Server):
    def __init__(self, config):
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        self.listening.set()


@contextlib.contextmanager
def serving(app):
    """Yield (host, port) of ``app`` served by uvicorn with GuardedH11Protocol."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = _Server(uvicorn.Config(app, log_level="warning", lifespan="on", http=GuardedH11Protocol))
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        assert srv.listening.wait(120), "the server did not start"
        yield "127.0.0.1", port
    finally:
        srv.should_exit = True
        thread.join(60)
        sock.close()
