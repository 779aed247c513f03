"""Dynamic batching: concurrent requests' images are grouped (up to ``max_batch`` images, or what
arrived within ``max_wait_s`` of the first), run as one batch on one worker thread, and each
request gets its own rows back.

Hand-written because the batching libraries (LitServe, Ray Serve's ``@serve.batch``) bring their
own server or cluster runtime; this is a small asyncio loop inside a plain ASGI app, so the app
also runs under uvicorn/gunicorn workers and behind ``serve.ingress``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Tuple

import torch


class QueueFull(Exception):
    """More images are waiting than the queue bound allows: answer 503 and let the client retry."""


class Batcher:
    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        max_queue: int = 64,
        on_batch: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.run, self.max_batch, self.max_wait_s, self.max_queue = run, max_batch, max_wait_s, max_queue
        self.on_batch = on_batch or (lambda n: None)
        # One thread runs the model: runtimes use every core for one batch already.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resnetkit-model")
        self.queue: asyncio.Queue[Tuple[torch.Tensor, asyncio.Future]] = asyncio.Queue()
        self.waiting = 0  # images queued and not yet taken into a batch
        self.running = 0  # images in the batch being computed
        self.task: Optional[asyncio.Task] = None
        self.changed = asyncio.Event()  # set whenever images are queued or a batch starts or ends

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, re-checking at each change of the queue's state."""
        while not condition():
            self.changed.clear()
            await self.changed.wait()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def in_model_thread(self, fn: Callable, *args):
        """Run ``fn`` on the model's thread (between batches, never beside one)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def submit(self, images: List[torch.Tensor]) -> List[torch.Tensor]:
        """Logits for each (C, H, W) image; QueueFull if the queue cannot take them all."""
        if self.waiting + len(images) > self.max_queue:
            raise QueueFull(f"{self.waiting} images are waiting (limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        futures = []
        for image in images:
            future = loop.create_future()
            self.queue.put_nowait((image, future))
            futures.append(future)
        self.waiting += len(images)
        self.changed.set()
        try:
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:  # the request timed out or its client left: skip its images
            for f in futures:
                f.cancel()
            raise

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            self.waiting -= len(batch)
            live = [(x, f) for x, f in batch if not f.done()]
            if not live:
                continue
            self.running = len(live)
            self.changed.set()
            try:
                out = await loop.run_in_executor(self.executor, self._forward, torch.stack([x for x, _ in live]))
            except Exception as exc:  # a failed batch fails its requests, not the server
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)
            else:
                self.on_batch(len(live))
                for row, (_, f) in zip(out, live):
                    if not f.done():
                        f.set_result(row)
            finally:
                self.running = 0
                self.changed.set()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.run(x).float()

    async def close(self) -> None:
        """Finish every queued image, then stop (graceful shutdown)."""
        await self.wait_until(lambda: not self.waiting and not self.running)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)
