"""Deterministic batch order: a pure function of (seed, epoch, rank), so a resumed or distributed
run sees exactly the batches an uninterrupted single-process run would."""

from __future__ import annotations

import math
from typing import Callable, Iterator, List, Tuple

import torch

from ..errors import InvalidOption


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool, repeats: int = 1) -> List[int]:
    """Sample order for one epoch. ``repeats > 1`` is repeated augmentation (Hoffer et al. 2019):
    ceil(n / repeats) distinct samples, each shown ``repeats`` times, epoch length kept at n."""
    if not shuffle:
        return list(range(n))
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    if repeats > 1:
        distinct = perm[: math.ceil(n / repeats)]
        perm = [i for i in distinct for _ in range(repeats)][:n]
        # Spread the copies of a sample over different batches (and so different ranks / augmentations).
        shuffle_again = torch.randperm(n, generator=g).tolist()
        perm = [perm[i] for i in shuffle_again]
    return perm


class BatchOrder:
    """Yields this rank's share of each global batch as ``(epoch, index)`` pairs.

    Global batch ``k`` is ``order[k*B:(k+1)*B]``; rank ``r`` of ``W`` takes the r-th contiguous
    slice of it, so the union over ranks equals the single-process batch. The epoch travels with
    each index so per-sample augmentation can be seeded without the dataset knowing the epoch
    (persistent workers keep an old copy of the dataset).
    """

    def __init__(
        self,
        n: int,
        global_batch: int,
        *,
        seed: int,
        shuffle: bool,
        drop_last: bool,
        rank: int = 0,
        world: int = 1,
        repeats: int = 1,
    ) -> None:
        if global_batch % world:
            raise InvalidOption(f"batch size {global_batch} is not divisible by the {world} processes; pick a multiple")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.shuffle, self.drop_last, self.repeats = shuffle, drop_last and n >= global_batch, repeats
        self.rank, self.world = rank, world
        self.set_epoch(0)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order; ``start_batch`` skips batches already trained on (resume)."""
        self.epoch, self.start_batch = epoch, start_batch
        self.order = epoch_order(self.n, self.seed, epoch, self.shuffle, self.repeats)

    def num_batches(self) -> int:
        n = len(self.order)
        return n // self.global_batch if self.drop_last else math.ceil(n / self.global_batch)

    def __len__(self) -> int:
        return max(0, self.num_batches() - self.start_batch)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        local = self.global_batch // self.world
        for k in range(self.start_batch, self.num_batches()):
            chunk = self.order[k * self.global_batch : (k + 1) * self.global_batch]
            # A short last batch is split as evenly as possible.
            per = math.ceil(len(chunk) / self.world) if len(chunk) < self.global_batch else local
            mine = chunk[self.rank * per : (self.rank + 1) * per]
            yield [(self.epoch, i) for i in mine]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Seed for one sample's augmentation in one epoch."""
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % (2**63)


def seeded(transform: Callable, image, seed: int):
    """``transform(image)`` with torch's and Python's random generators seeded by ``seed`` (one
    sample's augmentation), both left as they were."""
    import random

    state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            return transform(image)
    finally:
        random.setstate(state)


def shard(n: int, rank: int, world: int) -> List[int]:
    """Evaluation split: every sample exactly once across ranks, no padding."""
    return list(range(rank, n, world))
