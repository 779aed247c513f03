"""WebDataset shards: tar files of samples ``KEY.jpg|jpeg|png|webp`` with ``KEY.cls`` (the class index
as text) or ``KEY.json`` (an object with a ``label``: an index or a class name), named with the
webdataset brace convention (``DIR/train-{000..099}.tar``; local paths or http(s) URLs).

Reading the tar streams, grouping members into samples, brace expansion and opening URLs are the
``webdataset`` package's (the ``shards`` extra); what it leaves to its user is written here: a sample
order that is a pure function of (seed, epoch), so that a run split over torchrun ranks and loader
workers sees each sample once per epoch, and a killed run resumes at the sample it stopped at with the
result of an unbroken run.

The order of one epoch: the shards are permuted (seed, epoch) and dealt to ``world x slots`` slots
(rank r's loader worker w reads slot r x slots + w: its own shards, never another's); each slot
streams its shards through a shuffle buffer seeded by (seed, epoch, slot) and cuts the stream into
per-rank batches; global batch k is rank r's k-th batch of slot r x slots + (k mod slots). A resume at
batch b re-reads each slot's first batches without decoding them. A slot that runs out before the
epoch's last batch (shards of unequal size) reads its shards again, in a new order."""

from __future__ import annotations

import importlib
import json
import math
import random
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import BadFile, InvalidOption, MissingDependency
from .decode import ImageDecodeError, decode_image_bytes
from .sampling import sample_seed, seeded

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
LABEL_KEYS = ("cls", "json")
SHUFFLE_BUFFER = 1000  # samples: webdataset's usual size; the order a slot reads is mixed within it
NEEDS = "WebDataset shards need the webdataset package: pip install 'resnetkit[shards]'"


def is_shards(data: Optional[str]) -> bool:
    """True when ``data`` names tar shards (a .tar pattern or URL) rather than a folder."""
    return isinstance(data, str) and (".tar" in data.rsplit("/", 1)[-1] or data.startswith(("http://", "https://")))


def _webdataset():
    try:
        return importlib.import_module("webdataset.tariterators"), importlib.import_module("webdataset.gopen")
    except ImportError:
        raise MissingDependency(NEEDS, field="data") from None


def expand(spec: str) -> List[str]:
    """The shards ``spec`` names (brace patterns expanded, ``::`` separating several patterns); local
    ones checked to exist."""
    _webdataset()
    from braceexpand import braceexpand

    shards = [name for part in spec.split("::") for name in braceexpand(part)]
    missing = [s for s in shards if not s.startswith(("http://", "https://")) and not Path(s).is_file()]
    if missing:
        raise BadFile(
            f"shard {missing[0]} does not exist ({len(missing)} of the {len(shards)} shards {spec} names are missing); "
            "check the pattern, e.g. 'DIR/train-{000..099}.tar'"
        )
    return shards


def read_shard(url: str) -> Iterator[Dict[str, Any]]:
    """The samples of one shard (dicts of ``__key__`` and one bytes value per extension); a damaged
    shard is refused naming it."""
    tariterators, gopen = _webdataset()
    try:
        stream = gopen.gopen(url) if url.startswith(("http://", "https://")) else open(url, "rb")
        with stream:
            files = tariterators.tar_file_expander([{"url": url, "stream": stream}])
            yield from tariterators.group_by_keys(files)
    except (OSError, ValueError, EOFError, tarfile.TarError) as exc:  # a cut member: EOFError or ReadError
        detail = exc.args[0] if exc.args else type(exc).__name__  # webdataset appends the stream and the url
        raise BadFile(f"shard {url} cannot be read ({detail}); it is damaged or not a tar file: rewrite it") from None


def raw_label(sample: Dict[str, Any], url: str) -> int | str:
    key = sample.get("__key__")
    try:
        if "cls" in sample:
            return int(sample["cls"].decode().strip())
        if "json" in sample:
            meta = json.loads(sample["json"])
            label = meta.get("label", meta.get("cls")) if isinstance(meta, dict) else None
            if isinstance(label, bool) or not isinstance(label, (int, str)):
                raise ValueError("no integer or string 'label'")
            return label
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFile(f"shard {url}, sample {key}: its label does not parse ({exc})") from None
    raise BadFile(f"shard {url}, sample {key}: no .cls or .json label (samples are KEY.jpg with KEY.cls or KEY.json)")


def image_bytes(sample: Dict[str, Any]) -> Tuple[str, Optional[bytes]]:
    for ext in IMAGE_KEYS:
        if ext in sample:
            return ext, sample[ext]
    return "", None


@dataclass
class ShardIndex:
    """What a pass over shards finds: the samples per shard and the labels they use."""

    shards: List[str]
    counts: List[int]
    labels: List[int | str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts)


def scan(shards: Sequence[str]) -> ShardIndex:
    """Count each shard's samples and collect their labels (one read of every shard)."""
    counts, labels = [], set()
    for url in shards:
        n = 0
        for sample in read_shard(url):
            if image_bytes(sample)[1] is None:
                raise BadFile(f"shard {url}, sample {sample.get('__key__')}: no image ({', '.join(IMAGE_KEYS)})")
            labels.add(raw_label(sample, url))
            n += 1
        counts.append(n)
    kinds = {type(label) for label in labels}
    if len(kinds) > 1:
        raise BadFile("the shards mix integer and name labels; use one kind (KEY.cls indices, or names in KEY.json)")
    return ShardIndex(list(shards), counts, sorted(labels))  # type: ignore[type-var]


def class_names(index: ShardIndex, classes_file: Optional[str]) -> Tuple[List[str], Dict[int | str, int]]:
    """(class names, raw label -> class index): from ``classes_file`` (one name a line, in index
    order) when given, else from the labels (indices 0..max named by number; names sorted)."""
    labels = index.labels
    if classes_file:
        try:
            names = [line.strip() for line in Path(classes_file).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise BadFile(f"classes file {classes_file} cannot be read ({exc}); one class name a line") from None
        if len(set(names)) != len(names) or len(names) < 2:
            raise BadFile(f"classes file {classes_file} must name at least 2 distinct classes, one a line")
        mapping: Dict[int | str, int] = {name: i for i, name in enumerate(names)}
        mapping.update({i: i for i in range(len(names))})
        unknown = [label for label in labels if label not in mapping]
        if unknown:
            raise BadFile(f"the shards use label(s) {unknown[:5]} that {classes_file} does not name")
        return names, mapping
    indices = [label for label in labels if isinstance(label, int)]
    if indices:
        if min(indices) < 0:
            raise BadFile(f"the shards' .cls labels must be >= 0, found {min(indices)}")
        names = [str(i) for i in range(max(indices) + 1)]
        return names, {i: i for i in range(len(names))}
    names = [str(label) for label in labels]
    return names, {label: i for i, label in enumerate(labels)}


def _stable_id(url: str, key: str) -> int:
    return zlib.crc32(f"{Path(url).name}/{key}".encode())


class ShardStream(IterableDataset):
    """Shards as batches ``(images, targets, skipped messages)`` in the order the module docstring
    defines. ``arrange()`` sets the batch geometry (rank, world, batch, loader workers), ``set_epoch()``
    the epoch and the batch to start at; it is also the run's batch order (``num_batches``)."""

    def __init__(
        self,
        index: ShardIndex,
        mapping: Dict[int | str, int],
        transform: Callable,
        seed: int = 0,
        train: bool = True,
        short_side: Optional[int] = None,
        policy: str = "resnetkit",
        buffer: int = SHUFFLE_BUFFER,
    ) -> None:
        self.index, self.mapping, self.transform = index, mapping, transform
        self.seed, self.train, self.short_side, self.policy, self.buffer = seed, train, short_side, policy, buffer
        self.arrange(batch=64, rank=0, world=1, slots=1)
        self.set_epoch(0)

    def __len__(self) -> int:
        return self.index.total

    def arrange(self, batch: int, rank: int, world: int, slots: int) -> ShardStream:
        """``batch``: the global batch (training) or each rank's batch (evaluation); ``slots``: the loader
        workers of each rank (1 when the main process decodes)."""
        self.batch, self.rank, self.world, self.slots = batch, rank, world, max(1, slots)
        shards, readers = len(self.index.shards), self.world * self.slots
        if self.train and shards < readers:
            raise InvalidOption(
                f"{shards} shard(s) cannot feed {self.world} process(es) x {self.slots} loader worker(s): each reads "
                f"shards of its own; write at least {readers} shards, or lower --workers",
                field="workers",
            )
        return self

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def num_batches(self) -> int:
        return self.index.total // self.batch if self.train else math.ceil(self.index.total / self.batch)

    # ---- the order ----------------------------------------------------------------------------------

    def _slot_shards(self, slot: int, cycle: int) -> List[str]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 7_919 + cycle)
        order = torch.randperm(len(self.index.shards), generator=g).tolist()
        return [self.index.shards[i] for i in order[slot :: self.world * self.slots]]

    def _raw(self, slot: int) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """(shard, undecoded sample) of a training slot, shuffled through the buffer: each pass over
        the slot's shards is drained before the next begins, so a pass yields each sample once."""
        rng = random.Random(f"{self.seed}/{self.epoch}/{slot}")
        for cycle in range(1_000_000):
            pool: List[Tuple[str, Dict[str, Any]]] = []
            seen = 0
            for url in self._slot_shards(slot, cycle):
                for sample in read_shard(url):
                    pool.append((url, sample))
                    seen += 1
                    if len(pool) >= self.buffer:
                        yield pool.pop(rng.randrange(len(pool)))
            if not seen:
                raise BadFile(f"the shards of reader {slot} hold no samples; write shards of similar sizes")
            while pool:
                yield pool.pop(rng.randrange(len(pool)))

    def _decoded(self, url: str, sample: Dict[str, Any]):
        ext, data = image_bytes(sample)
        key = str(sample.get("__key__"))
        target = self.mapping[raw_label(sample, url)]
        try:
            image = decode_image_bytes(data or b"", f"{url}:{key}.{ext}", self.short_side, policy=self.policy)
        except ImageDecodeError as exc:
            return None, str(exc)
        if not self.train:
            return self.transform(image), target
        return seeded(self.transform, image, sample_seed(self.seed, self.epoch, _stable_id(url, key))), target

    def _batch(self, pairs) -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
        from .datasets import collate

        return collate([self._decoded(url, sample) for url, sample in pairs])

    def _train_batches(self, worker: int) -> Iterator:
        role = (self.start_batch + worker) % self.slots  # global batch k comes from role k mod slots
        slot = self.rank * self.slots + role
        local = self.batch // self.world
        stream = self._raw(slot)
        done = len(range(role, self.start_batch, self.slots))  # this role's batches before the start
        for _ in range(done * local):
            next(stream)
        for _ in range(self.start_batch + worker, self.num_batches(), self.slots):
            yield self._batch([next(stream) for _ in range(local)])

    def _eval_batches(self, worker: int, workers: int) -> Iterator:
        """Every sample once over all ranks and workers, in shard order (each reader its shards)."""
        readers = self.world * workers
        pending: List[Tuple[str, Dict[str, Any]]] = []
        for url in self.index.shards[self.rank * workers + worker :: readers]:
            for sample in read_shard(url):
                pending.append((url, sample))
                if len(pending) == self.batch:
                    yield self._batch(pending)
                    pending = []
        if pending:
            yield self._batch(pending)

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if not self.train:
            return self._eval_batches(worker, workers)
        if workers != self.slots:
            raise InvalidOption(
                f"the shard order was arranged for {self.slots} loader worker(s), the loader has {workers}",
                field="workers",
            )
        return self._train_batches(worker)


def load_shards(
    spec: str,
    classes_file: Optional[str],
    transform: Callable,
    seed: int,
    short_side: Optional[int],
    train: bool = True,
    names: Optional[Tuple[List[str], Dict[int | str, int]]] = None,
    buffer: int = SHUFFLE_BUFFER,
    policy: str = "resnetkit",
) -> Tuple[ShardStream, List[str]]:
    """The stream of ``spec``'s shards and its class names (``names``: the classes of another stream)."""
    index = scan(expand(spec))
    if index.total == 0:
        raise BadFile(f"the shards {spec} hold no samples")
    classes, mapping = names if names is not None else class_names(index, classes_file)
    unknown = [label for label in index.labels if label not in mapping]
    if unknown:
        raise BadFile(f"the shards {spec} use label(s) {unknown[:5]} the training shards do not")
    if len(classes) < 2:
        raise BadFile(f"the shards {spec} hold a single class; a classifier needs at least 2")
    return ShardStream(index, mapping, transform, seed, train, short_side, policy, buffer), classes


def evaluation_shards(spec: str, classes: Sequence[str], transform: Callable, short_side: int, policy: str):
    """Validation shards read for a model with ``classes``: a .cls label is the class index, a name in
    KEY.json the class of that name."""
    mapping: Dict[int | str, int] = {name: i for i, name in enumerate(classes)}
    mapping.update({i: i for i in range(len(classes))})
    stream, _ = load_shards(
        spec, None, transform, 0, short_side, train=False, names=(list(classes), mapping), policy=policy
    )
    return stream
