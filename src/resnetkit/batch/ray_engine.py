"""The same batch job on Ray Data, for more than one machine: the file list is a Ray Dataset, Ray
tasks read and decode the files (``Decoder``), an actor pool predicts - each actor builds its model
once, with the backend the driver chose, through the same ``Predictor`` as the local engine - and the
rows are written as Parquet. Ray is an extra: ``pip install 'resnetkit[ray]'``.

From Python::

    from resnetkit.batch.ray_engine import predictions
    ds = predictions(["photos/"], "runs/digits", precision="int8")   # a ray.data.Dataset of rows
    ds.write_parquet("out/predictions")

On a cluster: ``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the others,
then ``resnetkit predict photos/ --weights W --engine ray --address HEAD:6379 --out r.parquet`` (the
inputs and the weights must be readable at the same paths on every machine)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InvalidOption, MissingDependency
from .inputs import walk

COLUMNS = ("path", "top_indices", "top_classes", "top_probs", "error")


def require_ray() -> None:
    try:
        with warnings.catch_warnings():  # Ray Data's own deprecation notices about its settings
            warnings.simplefilter("ignore")
            import ray  # noqa: F401
            import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependency("--engine ray needs Ray Data: pip install 'resnetkit[ray]'") from None


class DecodeBatch:
    """A Ray task's work: a batch of paths -> their crops (uint8 N, H, W, C) and errors."""

    def __init__(self, preprocess: Dict[str, Any], in_chans: int, draft: bool, policy: str = "resnetkit") -> None:
        from ..card import Preprocess
        from .decode import Decoder

        self.decoder = Decoder(Preprocess.from_dict(preprocess), in_chans, draft, policy)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        pre = self.decoder.preprocess
        crops = np.zeros((len(batch["path"]), pre.crop_size, pre.crop_size, self.decoder.in_chans), np.uint8)
        errors: List[str] = []
        for i, path in enumerate(batch["path"]):
            _, _, crop, error = self.decoder.item(i, str(path))
            if crop is not None:
                crops[i] = crop.numpy()
            errors.append(error or "")
        return {
            "index": batch["index"],
            "path": batch["path"],
            "pixels": crops,
            "error": np.array(errors, dtype=object),
        }


class PredictActor:
    """A Ray actor: the model is loaded and put on ``backend`` once (int8: calibrated on the crops the
    driver chose, the same for every actor), then predicts batch after batch."""

    def __init__(self, weights: str, arch: Optional[str], precision: str, backend: str, topk: int,
                 embeddings: bool, logits: bool, batch_size: int, calibration: Optional[np.ndarray] = None,
                 tta: str = "none", threshold: Optional[float] = None) -> None:  # fmt: skip
        import torch

        from ..deploy.loading import load_inference_model
        from ..errors import ResnetkitError
        from .predictor import build_predictor

        self.failure: Optional[ResnetkitError] = None
        try:
            model = load_inference_model(weights, arch=arch, progress=False)
            crops = torch.from_numpy(calibration) if calibration is not None else None
            self.predictor = build_predictor(
                model, precision, embeddings, batch_size, (lambda: crops) if crops is not None else None,
                log=lambda s: None, backend=backend, tta=tta,
            )  # fmt: skip
        except ResnetkitError as exc:  # raised from the first batch: a task's error keeps the exception itself
            self.failure = exc
        self.topk, self.logits, self.threshold, self._torch = topk, logits, threshold, torch
        self.columns = list(COLUMNS) + (["embedding"] if embeddings else []) + (["logits"] if logits else [])

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        if self.failure is not None:
            raise self.failure
        torch = self._torch
        items = [
            (i, str(p), torch.from_numpy(np.ascontiguousarray(batch["pixels"][i])) if not e else None, e or None)
            for i, (p, e) in enumerate(zip(batch["path"], batch["error"]))
        ]
        rows = self.predictor.rows(items, self.topk, self.logits, self.threshold)
        # Every batch has every column (None where an input failed): a batch of unreadable files
        # must not make a table whose columns differ from the others'.
        out = {k: [r.get(k) for r in rows] for k in self.columns}
        out["index"] = list(batch["index"])
        return out


def _calibration(sources: Sequence[str], card, draft: bool, policy: str = "resnetkit") -> np.ndarray:
    """int8: the first readable inputs' crops (the local engine's choice), decoded by the driver."""
    import itertools

    import torch

    from .decode import Decoder
    from .job import calibration_from

    decoder = Decoder(card.preprocess, card.in_chans, draft, policy)
    items = [decoder.item(i, p) for i, p in itertools.islice(enumerate(walk(sources)), 256)]
    crops: torch.Tensor = calibration_from(items)
    return crops.numpy()


def predictions(
    sources: Sequence[str],
    weights: str,
    arch: Optional[str] = None,
    precision: str = "fp32",
    backend: Optional[str] = None,
    topk: int = 5,
    batch_size: int = 32,
    embeddings: bool = False,
    logits: bool = False,
    draft: bool = False,
    actors: int = 1,
    decode: str = "resnetkit",
    tta: str = "none",
    threshold: Optional[float] = None,
) -> Any:
    """A lazy ``ray.data.Dataset`` of prediction rows (index: the input's position in the walk, path,
    top_indices, top_classes, top_probs, error[, embedding, logits]) for the files under ``sources``.
    ``backend`` None takes ``$RESNETKIT_BACKEND`` or "auto"; "auto" lets the driver measure once
    (optimize()) and gives every actor that choice. Everything that can be checked (the weights, the
    backend and precision, int8's calibration) is checked here, on the driver, so a bad option is a
    one-line error rather than an actor that dies. ``tta="flip"`` averages each image's outputs with
    its mirror image's; ``threshold`` (multi-label models) replaces the card's per-class thresholds. Call
    after ``ray.init()``."""
    require_ray()
    from ..deploy.loading import load_inference_model

    model = load_inference_model(weights, arch=arch, progress=False)
    return _dataset(
        model, sources, weights, arch, precision, backend, topk, batch_size, embeddings, logits, draft, actors, decode,
        tta, threshold,
    )[0]  # fmt: skip


def _dataset(
    model, sources, weights, arch, precision, backend, topk, batch_size, embeddings, logits, draft, actors, decode,
    tta="none", threshold=None,
):  # fmt: skip
    import ray.data

    from ..deploy.formats import preferred_backend, require
    from ..deploy.loading import is_exported

    card = model.card
    from .predictor import check_threshold

    check_threshold(card, threshold)
    backend = preferred_backend(backend, precision)
    exported = is_exported(model)
    from .decode import Decoder

    Decoder(card.preprocess, card.in_chans, draft, decode)  # refuses, here, a model images cannot feed
    calibration = _calibration(sources, card, draft, decode) if precision == "int8" and not exported else None
    if exported:
        backend = _exported_predictor(model, precision, embeddings, tta).backend  # refuses what it cannot do
    elif backend == "auto":
        backend = _driver_choice(model, precision, embeddings, batch_size, calibration, tta)
    else:
        require(backend, precision)
    files = ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(walk(sources))])
    decoded = files.map_batches(
        DecodeBatch, fn_constructor_kwargs=dict(preprocess=card.preprocess.to_dict(), in_chans=card.in_chans, draft=draft,
                                   policy=decode),
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, actors * 2)),
        batch_format="numpy",
    )  # fmt: skip
    return (decoded.map_batches(
        PredictActor,
        fn_constructor_kwargs=dict(weights=weights, arch=arch, precision=precision, backend=backend, topk=topk,
                                   embeddings=embeddings, logits=logits, batch_size=batch_size,
                                   calibration=calibration, tta=tta, threshold=threshold),
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors), batch_format="numpy",
    ), backend)  # fmt: skip


def _exported_predictor(model, precision: str, embeddings: bool, tta: str):
    from .predictor import build_predictor

    return build_predictor(model, precision, embeddings, log=lambda s: None, tta=tta)


def _driver_choice(model, precision: str, embeddings: bool, batch_size: int, calibration, tta: str) -> str:
    """optimize()'s choice, measured (or remembered) once on the driver."""
    import torch

    from .predictor import build_predictor

    crops = torch.from_numpy(calibration) if calibration is not None else None
    return build_predictor(
        model,
        precision,
        embeddings,
        batch_size,
        (lambda: crops) if crops is not None else None,
        log=lambda s: None,
        tta=tta,
    ).backend


def engine_error(exc: BaseException) -> BaseException:
    """What a user is told when the Ray job fails: the resnetkit error raised inside a task or an
    actor (Ray wraps it in RayTaskError, ActorDiedError, ...), else one line naming the original
    exception rather than Ray's wrapping of it."""
    from ..errors import ResnetkitError

    seen, stack = set(), [exc]
    original: Optional[BaseException] = None
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ResnetkitError):
            return e
        named = _named_in_text(str(e))  # an actor that died keeps only the text of what killed it
        if named is not None:
            return named
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            original = cause
        stack += [x for x in (cause, e.__cause__, e.__context__) if isinstance(x, BaseException)]
    from ..errors import EngineFailed

    if original is not None:
        said = f"{type(original).__name__}: {' '.join(str(original).split())[:300]}"
    else:  # only text is left (an actor that died): its last "SomeError: message" line
        import re

        lines = re.findall(r"(?m)^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception|Interrupt)): (.+)$", str(exc))
        if not lines:
            return exc
        said = f"{lines[-1][0]}: {lines[-1][1].strip()[:300]}"
    return EngineFailed(
        f"the Ray job failed: {said}; run with --engine local (the default) to see whether it fails there too"
    )


def _named_in_text(text: str):
    """The resnetkit error a Ray error message reports ("resnetkit.errors.BadFile: ..."), rebuilt."""
    import re

    from .. import errors

    found = None
    for m in re.finditer(r"(?:resnetkit\.errors\.)?\b([A-Z]\w+): (.+)", text):
        cls = getattr(errors, m[1], None)
        if isinstance(cls, type) and issubclass(cls, errors.ResnetkitError):
            found = cls(m[2].strip())
    return found


def run_cli(args: argparse.Namespace, cfg) -> int:
    """`predict --engine ray`: the rows as a Parquet table (--out: under its lock, never over an
    existing table without exist_ok, with the provenance every table has), or printed."""
    require_ray()
    import ray
    import ray.data

    from ..fileio import OneWriter
    from ..quiet import third_party_output

    if cfg.resume or cfg.shard.count > 1:
        raise InvalidOption(
            "resume and shard belong to the local engine (Ray splits the work itself)",
            field="resume",
            related=("shard",),
        )
    out = Path(cfg.out) if cfg.out else None
    if out is not None and out.suffix.lower() != ".parquet":
        raise InvalidOption("--engine ray writes Parquet: give out NAME.parquet", field="out")
    lock = OneWriter(out, "results table").acquire() if out is not None else None
    try:
        if out is not None and out.exists() and not cfg.exist_ok:
            raise InvalidOption(f"out {out} already exists; exist_ok replaces it", field="out", related=("exist_ok",))
        # Ray's own logs and progress lines (and its native core's) are held back unless --verbose.
        with third_party_output(stdout=False):
            ray.init(address=args.address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
            try:
                ray.data.DataContext.get_current().enable_progress_bars = False
                summary = _run(args, cfg, out)
            except Exception as exc:
                raise engine_error(exc) from None
            finally:
                ray.shutdown()
        if summary:
            print(summary, file=sys.stderr)
        return 1 if summary and " 0 failed" not in summary else 0
    finally:
        if lock is not None:
            lock.release()


def _run(args: argparse.Namespace, cfg, out: Optional[Path]) -> str:
    """The job; with an out table, the summary line to print."""
    from ..deploy.loading import load_inference_model
    from .job import table_meta
    from .predictor import weights_identity

    model = load_inference_model(args.weights, arch=args.arch, progress=not args.no_progress)
    ds, backend = _dataset(
        model, cfg.sources, args.weights, args.arch, cfg.precision, args.backend, cfg.topk, cfg.batch_size,
        cfg.embeddings, cfg.logits, cfg.draft, 1, cfg.decode, cfg.tta, cfg.threshold,
    )  # fmt: skip
    if out is None:
        for row in ds.iter_rows():
            row.pop("index", None)
            print(json.dumps({k: v.tolist() if hasattr(v, "tolist") else v for k, v in row.items()}), flush=True)
        return ""
    # The metadata every results table records (the local engine's), for the Ray engine's table.
    return _write(ds, out, dict(table_meta(model.card, cfg, weights_identity(model)), engine="ray"), backend)


def _write(ds, out: Path, meta: Dict[str, Any], backend: str) -> str:
    import pyarrow.parquet as pq

    from ..fileio import atomic_path
    from .table import arrow_schema, with_runs

    columns = meta["columns"]
    parts = out.with_name(out.name + ".ray")
    shutil.rmtree(parts, ignore_errors=True)
    ds.write_parquet(str(parts))
    import pyarrow as pa

    tables = [pq.read_table(f) for f in sorted(parts.glob("*.parquet"))]
    table = pa.concat_tables(tables, promote_options="default") if tables else None
    meta = with_runs(meta, [{"engine": "ray", "backend": backend}])
    schema = arrow_schema(columns, meta)
    if table is None:
        table = schema.empty_table()
    else:  # the walk's order, as the local engine writes it
        table = table.sort_by("index").select(columns).cast(schema)
    with atomic_path(out, "results table") as tmp:
        pq.write_table(table, tmp)
    shutil.rmtree(parts, ignore_errors=True)
    failed = sum(1 for e in table.column("error").to_pylist() if e)
    return f"predict: {table.num_rows} inputs, {table.num_rows - failed} predicted, {failed} failed -> {out}"
