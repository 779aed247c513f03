"""Decoding inputs into the model's crops, in worker processes overlapped with inference.

Workers (a torch DataLoader over an iterable of the walk) each take every W-th input of the job's
share and return its crop as uint8 (H, W, C) - a quarter of a float image's bytes, through shared
memory - or the reason it cannot be used. The main process receives them in the walk's order (the
DataLoader takes from the workers in turn), with at most ``prefetch`` items per worker in flight, so
memory stays flat however many files there are."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import AbstractSet, Generator, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..card import Preprocess
from ..data.decode import check_policy, decode_image_bytes, load_image
from ..errors import ImageDecodeError, InvalidOption
from ..targets import NATIVE_THREAD_MODULES
from .inputs import Shard, selected

# (position in the walk, path, crop or None, error or None)
Item = Tuple[int, str, Optional[torch.Tensor], Optional[str]]


@dataclass(frozen=True)
class Decoder:
    """A file (or uploaded bytes) to the model's crop: decoded (``policy``: resnetkit's, or the
    reference ``Image.open(...).convert("RGB")``; ``draft``, opt-in: JPEG DCT-domain downscaling when
    the file is at least twice the resize size), made RGB or grayscale, resized and cropped exactly as
    ``Preprocess.transform()`` does, as uint8 (H, W, C)."""

    preprocess: Preprocess
    in_chans: int = 3
    draft: bool = False
    policy: str = "resnetkit"  # or "reference": Image.open(...).convert("RGB"), as peers' examples decode

    def __post_init__(self) -> None:
        if self.in_chans not in (1, 3):
            raise InvalidOption(
                f"the model takes {self.in_chans}-channel images; image files decode to RGB or grayscale, so feed "
                "it tensors you prepared yourself (the Python API)",
                field="in_chans",
            )
        check_policy(self.policy)

    def crop(self, image: Image.Image) -> np.ndarray:
        if self.in_chans == 1:
            image = image.convert("L")
        image = self.preprocess.geometry(image)
        array = np.array(image, dtype=np.uint8)  # a copy PyTorch may own (asarray's is read-only)
        return array[:, :, None] if array.ndim == 2 else array

    def __call__(self, path: str) -> np.ndarray:
        return self.crop(load_image(path, self.preprocess.resize_size, draft=self.draft, policy=self.policy))

    def from_bytes(self, data: bytes, name: str) -> np.ndarray:
        return self.crop(
            decode_image_bytes(data, name, self.preprocess.resize_size, draft=self.draft, policy=self.policy)
        )

    def item(self, index: int, path: str) -> Item:
        try:
            return index, path, torch.from_numpy(np.ascontiguousarray(self(path))), None
        except ImageDecodeError as exc:
            return index, path, None, str(exc)


class Inputs(IterableDataset):
    """The job's inputs, decoded; in a DataLoader worker, only that worker's turn of them."""

    def __init__(self, sources: Sequence[str], shard: Shard, done: AbstractSet[str], decoder: Decoder) -> None:
        super().__init__()
        self.sources, self.shard, self.done, self.decoder = list(sources), shard, done, decoder

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for turn, (index, path) in enumerate(selected(self.sources, self.shard, self.done)):
            if turn % workers == worker:
                yield self.decoder.item(index, path)


def _as_is(item: Item) -> Item:
    return item


def stream(inputs: Inputs, workers: int, prefetch: int = 16) -> Generator[Item, None, None]:
    """The decoded inputs in the walk's order; ``workers`` 0 decodes in this process. The worker
    processes are shut down when the stream ends or is closed, and the SIGCHLD handler torch's
    DataLoader installs process-wide (it turns any child's death into an error of the loader) is
    put back as it was: a later, unrelated child process (a server a test starts, say) must not
    trip a loader that is gone."""
    if workers == 0:
        yield from inputs
        return
    import signal

    from torch.utils.data._utils import signal_handling

    saved = signal.getsignal(signal.SIGCHLD), signal_handling._SIGCHLD_handler_set
    loader = DataLoader(
        inputs, batch_size=None, num_workers=workers, prefetch_factor=prefetch, collate_fn=_as_is,  # type: ignore[arg-type]
        worker_init_fn=_quiet_worker, multiprocessing_context=start_method(),
    )  # fmt: skip
    it = iter(loader)
    try:
        yield from it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        if saved[0] is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGCHLD, saved[0])
            signal_handling._SIGCHLD_handler_set = saved[1]


def start_method() -> str:
    """fork (workers start at once, sharing the parent's memory), unless a runtime that runs thread
    pools of its own (ONNX Runtime, OpenVINO) is loaded in this process already - an exported model
    was opened, or an earlier job ran here: forking a process whose native threads may hold locks can
    deadlock the child, so the workers then start from a fresh interpreter (forkserver)."""
    return "forkserver" if any(name in sys.modules for name in NATIVE_THREAD_MODULES) else "fork"


def _quiet_worker(_: int) -> None:
    # One thread per decode process (the runtime has the cores), and Ctrl-C is the main process's.
    import signal

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def batches(items: Iterator[Item], size: int) -> Iterator[List[Item]]:
    chunk: List[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
