"""A batch prediction job on this machine (the local engine): stream the inputs, decode them in worker
processes, predict in batches, write the rows (a table, committed in chunks, or standard output),
show progress, and say at the end what was done."""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch

from ..card import ModelCard
from ..data.decode import check_policy
from ..errors import InvalidOption
from ..targets import TTA_CHOICES
from ..version import __version__
from .decode import Decoder, Inputs, Item, batches, stream
from .inputs import Counter, Shard, default_workers, selected
from .predictor import Predictor, check_run_precision, check_threshold
from .table import ResultTable, columns_for, table_format

CALIBRATION_IMAGES = 64  # int8 without a run's validation data: this many readable inputs
# A job of fewer inputs than this is "small": make_predictor is told how many, and predict runs it on
# PyTorch at once rather than converting the model for a runtime whose speed would not pay the
# conversion back (ResNet-50 fp32 on 2 cores: ONNX Runtime's 4-6 s export and session saves ~17 ms an
# image over PyTorch's, so it pays back only after a few hundred images).
SMALL_JOB = 64
# A job this small decodes in the main process: starting worker processes would cost more than they save.
SMALL_JOB = 32
INPUTS_PER_WORKER = 16  # a decode process is started for at least this many inputs


@dataclass
class JobConfig:
    """What `resnetkit predict` was asked for (field names are the flags' Python spelling)."""

    sources: List[str]
    out: Optional[str] = None
    topk: int = 5
    batch_size: int = 32
    workers: int = field(default_factory=default_workers)
    draft: bool = False
    decode: str = "resnetkit"
    embeddings: bool = False
    logits: bool = False
    resume: bool = False
    exist_ok: bool = False
    shard: Shard = Shard()
    chunk: int = 512
    quiet: bool = False
    precision: str = "fp32"
    tta: str = "none"  # test-time augmentation (targets.TTA_CHOICES)
    threshold: Optional[float] = None  # multi-label: one threshold for every class (None: the card's tuned ones)

    def check(self) -> JobConfig:
        for name, low in (("topk", 1), ("batch_size", 1), ("workers", 0), ("chunk", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidOption(f"{name} must be an integer >= {low}, got {value!r}", field=name)
        check_policy(self.decode)
        check_run_precision(self.precision)
        if self.tta not in TTA_CHOICES:
            raise InvalidOption(f"tta {self.tta!r} is not one of {', '.join(TTA_CHOICES)}", field="tta")
        if (self.resume or self.exist_ok) and not self.out:
            raise InvalidOption(
                "resume and exist_ok apply to an out table; give out FILE", field="resume", related=("out",)
            )
        if self.out:
            columns_for(table_format(Path(self.out)), self.topk, self.embeddings, self.logits)
        return self


@dataclass
class JobSummary:
    inputs: int = 0
    predicted: int = 0
    failed: int = 0
    skipped: int = 0  # already in a resumed table
    seconds: float = 0.0  # predicting: from the first batch to the last row written
    startup_s: float = 0.0  # before the first batch: loading the model, calibrating, compiling
    total_s: Optional[float] = None  # the whole command, when the caller knows when it began
    out: Optional[str] = None

    @property
    def images_per_s(self) -> float:
        """The steady rate (start-up excluded)."""
        return self.predicted / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (
            f"{self.inputs} inputs, {self.predicted} predicted, {self.failed} failed"
            + (f", {self.skipped} already done" if self.skipped else "")
            + f", {self.images_per_s:.1f} images/s, {self.seconds:.1f} s"
        )
        total = self.total_s if self.total_s is not None else self.startup_s + self.seconds
        share = 100.0 * (total - self.seconds) / total if total > 0 else 0.0
        text += f"; {total:.1f} s in all, {total - self.seconds:.1f} s ({share:.0f} %) of it start-up (loading, calibration, compilation)"
        return text + (f" -> {self.out}" if self.out else "")


def out_path(out: str, shard: Shard) -> Path:
    """A shard's own table: NAME.shard-I-of-N.parquet (the parts of one job never share a file)."""
    path = Path(out)
    suffix = shard.suffix()
    return path.with_name(f"{path.stem}.{suffix}{path.suffix}") if suffix else path


def table_meta(card: ModelCard, cfg: JobConfig, weights_sha256: Optional[str]) -> Dict[str, Any]:
    """What makes the table: the job's identity (checked on resume: the model, its preprocessing, the
    precision, the decode mode, the columns); how it ran (the backend) is added once it is known."""
    return {
        "resnetkit_version": __version__,
        "arch": card.arch,
        "weights": card.source,
        "format": card.format,
        "weights_sha256": weights_sha256,
        "classes": list(card.classes) if card.classes else None,
        "preprocess": card.preprocess.to_dict(),
        "in_chans": card.in_chans,
        # An exported model runs at the precision it was exported in, whatever was asked.
        "precision": card.precision if _is_export_format(card.format) else cfg.precision,
        "draft": cfg.draft,
        "decode": cfg.decode,
        "topk": cfg.topk,
        "tta": cfg.tta,
        "threshold": cfg.threshold,
        "columns": columns_for(table_format(Path(cfg.out or "x.jsonl")), cfg.topk, cfg.embeddings, cfg.logits),
        "shard": str(cfg.shard),
    }


def _is_export_format(name: str) -> bool:
    from ..deploy.formats import FORMATS

    return name in FORMATS and FORMATS[name].load is not None


def decode_workers(sources: Sequence[str], shard: Shard, done, asked: int) -> int:
    """Decode processes for this job: none for a small job (starting them costs more than they
    save), else as asked, but no more than the inputs can keep busy (a few batches' worth each)."""
    limit = max(SMALL_JOB, INPUTS_PER_WORKER * asked) + 1
    count = sum(1 for _ in itertools.islice(selected(sources, shard, done), limit))
    if count <= SMALL_JOB:
        return 0
    return min(asked, -(-count // INPUTS_PER_WORKER))


class Progress:
    """A bar with images/s and (once the inputs are counted) an ETA, on a terminal only."""

    def __init__(self, quiet: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=None, unit="img", desc="predict", disable=True if quiet else None, file=sys.stderr, dynamic_ncols=True
        )

    def set_total(self, total: int) -> None:
        if not self.bar.disable:
            self.bar.total = total
            self.bar.refresh()

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def calibration_from(items: List[Item], count: int = CALIBRATION_IMAGES) -> torch.Tensor:
    crops = [item[2] for item in items if item[2] is not None][:count]
    if len(crops) < 32:
        raise InvalidOption(
            f"int8 needs at least 32 readable images among the first inputs to calibrate on, found {len(crops)}; "
            "pass calibration DIR",
            field="calibration",
        )
    return torch.stack(crops)


def run_job(
    cfg: JobConfig,
    card: ModelCard,
    make_predictor: Callable[[Callable[[], torch.Tensor], Optional[int]], Predictor],
    emit: Callable[[List[Dict[str, Any]]], None],
    weights_sha256: Optional[str] = None,
    log: Callable[[str], None] = print,
    on_chunk: Optional[Callable[[int], None]] = None,
    began: Optional[float] = None,
) -> JobSummary:
    """Run the job. ``make_predictor(sample, inputs)`` builds the predictor once the decode workers have
    started (they fork: before any runtime starts its threads); ``sample()`` gives int8 calibration
    crops from the first inputs; ``inputs`` is the job's number of inputs when it is small (under
    ``SMALL_JOB``), else None. ``emit(rows)`` gets the rows of each batch (standard output); with
    ``cfg.out`` they go to the table too. ``on_chunk(n)`` is called after the n-th committed chunk.
    ``began`` (a ``time.perf_counter()`` value): when the command began, for the summary's whole time."""
    entered = time.perf_counter()
    began = entered if began is None else began
    cfg = cfg.check()
    check_threshold(card, cfg.threshold)
    decoder = Decoder(card.preprocess, card.in_chans, cfg.draft, cfg.decode)  # refuses what cannot be fed images
    table = None
    if cfg.out:
        table = ResultTable(
            out_path(cfg.out, cfg.shard), table_meta(card, cfg, weights_sha256), cfg.resume, cfg.exist_ok
        )
    done = table.open() if table is not None else set()
    summary = JobSummary(skipped=len(done), out=str(table.path) if table else None)
    progress = Progress(cfg.quiet)
    items = None
    try:
        workers = decode_workers(cfg.sources, cfg.shard, done, cfg.workers)
        items = stream(Inputs(cfg.sources, cfg.shard, done, decoder), workers)
        head: List[Item] = list(itertools.islice(items, CALIBRATION_IMAGES if cfg.precision == "int8" else 1))
        few = sum(1 for _ in itertools.islice(selected(cfg.sources, cfg.shard, done), SMALL_JOB))
        predictor = make_predictor(lambda: calibration_from(head), few if few < SMALL_JOB else None)
        if table is not None:
            table.describe(backend=predictor.backend, choice=predictor.choice, precision=predictor.precision)
        Counter(cfg.sources, cfg.shard, done, progress.set_total)
        start = time.perf_counter()
        summary.startup_s = start - began
        _process(itertools.chain(head, items), predictor, cfg, table, emit, summary, progress, on_chunk)
        summary.seconds = time.perf_counter() - start
        if table is not None:
            table.close(complete=True)
            table = None
        summary.total_s = time.perf_counter() - began
    finally:
        progress.close()
        if items is not None:
            items.close()  # the decode workers go now, not when the garbage collector gets to them
        if table is not None:
            table.close(complete=False)
    return summary


def _process(
    items: Iterator[Item], predictor: Predictor, cfg: JobConfig, table, emit, summary, progress, on_chunk
) -> None:
    pending: List[Dict[str, Any]] = []
    chunks = 0
    for batch in batches(items, cfg.batch_size):
        rows = predictor.rows(batch, cfg.topk, cfg.logits, cfg.threshold)
        summary.inputs += len(rows)
        summary.failed += sum(r.get("error") is not None for r in rows)
        summary.predicted += sum(r.get("error") is None for r in rows)
        progress.update(len(rows))
        emit(rows)
        if table is None:
            continue
        pending += rows
        while len(pending) >= cfg.chunk:
            table.write(pending[: cfg.chunk])
            pending = pending[cfg.chunk :]
            chunks += 1
            if on_chunk is not None:
                on_chunk(chunks)
    if table is not None and pending:
        table.write(pending)
        chunks += 1
        if on_chunk is not None:
            on_chunk(chunks)


def describe_sources(sources: Sequence[str]) -> str:
    return " ".join(sources) if len(sources) <= 3 else f"{' '.join(sources[:3])} and {len(sources) - 3} more"
