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
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import InvalidOption, MissingDependency
from .inputs import walk

COLUMNS = ("path", "top_indices", "top_classes", "top_probs", "error")


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependency("--engine ray needs Ray Data: pip install 'resnetkit[ray]'") from None


class DecodeBatch:
    """A Ray task's work: a batch of paths -> their crops (uint8 N, H, W, C) and errors."""

    def __init__(self, preprocess: Dict[str, Any], in_chans: int, draft: bool) -> None:
        from ..card import Preprocess
        from .decode import Decoder

        self.decoder = Decoder(Preprocess.from_dict(preprocess), in_chans, draft)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        pre = self.decoder.preprocess
        crops = np.zeros((len(batch["path"]), pre.crop_size, pre.crop_size, self.decoder.in_chans), np.uint8)
        errors: List[str] = []
        for i, path in enumerate(batch["path"]):
            _, _, crop, error = self.decoder.item(i, str(path))
            if crop is not None:
                crops[i] = crop.numpy()
            errors.append(error or "")
        return {"path": batch["path"], "pixels": crops, "error": np.array(errors, dtype=object)}


class PredictActor:
    """A Ray actor: the model is loaded and put on ``backend`` once (int8: calibrated on the crops the
    driver chose, the same for every actor), then predicts batch after batch."""

    def __init__(self, weights: str, arch: Optional[str], precision: str, backend: str, topk: int,
                 embeddings: bool, logits: bool, batch_size: int, calibration: Optional[np.ndarray] = None) -> None:  # fmt: skip
        import torch

        from ..deploy.loading import load_inference_model
        from .predictor import build_predictor

        model = load_inference_model(weights, arch=arch, progress=False)
        crops = torch.from_numpy(calibration) if calibration is not None else None
        self.predictor = build_predictor(
            model, precision, embeddings, batch_size, (lambda: crops) if crops is not None else None,
            log=lambda s: None, backend=backend,
        )  # fmt: skip
        self.topk, self.logits, self._torch = topk, logits, torch

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        torch = self._torch
        items = [
            (i, str(p), torch.from_numpy(np.ascontiguousarray(batch["pixels"][i])) if not e else None, e or None)
            for i, (p, e) in enumerate(zip(batch["path"], batch["error"]))
        ]
        rows = self.predictor.rows(items, self.topk, self.logits)
        keys = list(COLUMNS) + [k for k in ("embedding", "logits") if any(k in r for r in rows)]
        return {k: [r.get(k) for r in rows] for k in keys}


def _calibration(sources: Sequence[str], card, draft: bool) -> np.ndarray:
    """int8: the first readable inputs' crops (the local engine's choice), decoded by the driver."""
    import itertools

    import torch

    from .decode import Decoder
    from .job import calibration_from

    decoder = Decoder(card.preprocess, card.in_chans, draft)
    items = [decoder.item(i, p) for i, p in itertools.islice(enumerate(walk(sources)), 256)]
    crops: torch.Tensor = calibration_from(items)
    return crops.numpy()


def predictions(
    sources: Sequence[str],
    weights: str,
    arch: Optional[str] = None,
    precision: str = "fp32",
    backend: str = "auto",
    topk: int = 5,
    batch_size: int = 32,
    embeddings: bool = False,
    logits: bool = False,
    draft: bool = True,
    actors: int = 1,
) -> Any:
    """A lazy ``ray.data.Dataset`` of prediction rows (path, top_indices, top_classes, top_probs,
    error[, embedding, logits]) for the files under ``sources``. ``backend="auto"`` lets the driver
    measure once (optimize()) and gives every actor that choice. Call after ``ray.init()``."""
    require_ray()
    import ray.data
    import torch

    from ..deploy.loading import is_exported, load_inference_model
    from .predictor import build_predictor

    model = load_inference_model(weights, arch=arch, progress=False)
    card = model.card
    calibration = _calibration(sources, card, draft) if precision == "int8" and not is_exported(model) else None
    if backend == "auto" and not is_exported(model):
        crops = torch.from_numpy(calibration) if calibration is not None else None
        backend = build_predictor(
            model, precision, embeddings, batch_size, (lambda: crops) if crops is not None else None, log=lambda s: None
        ).backend
    files = ray.data.from_items([{"path": p} for p in walk(sources)])
    decoded = files.map_batches(
        DecodeBatch, fn_constructor_kwargs=dict(preprocess=card.preprocess.to_dict(), in_chans=card.in_chans, draft=draft),
        batch_size=batch_size, concurrency=(1, max(1, actors * 2)), batch_format="numpy",
    )  # fmt: skip
    return decoded.map_batches(
        PredictActor,
        fn_constructor_kwargs=dict(weights=weights, arch=arch, precision=precision, backend=backend, topk=topk,
                                   embeddings=embeddings, logits=logits, batch_size=batch_size,
                                   calibration=calibration),
        batch_size=batch_size, concurrency=actors, batch_format="numpy",
    )  # fmt: skip


def run_cli(args: argparse.Namespace, cfg) -> int:
    """`predict --engine ray`: the rows as a Parquet table (--out, required), or printed."""
    require_ray()
    import ray

    if cfg.resume or cfg.shard.count > 1:
        raise InvalidOption(
            "resume and shard belong to the local engine (Ray splits the work itself)",
            field="resume",
            related=("shard",),
        )
    out = Path(cfg.out) if cfg.out else None
    if out is not None and out.suffix.lower() != ".parquet":
        raise InvalidOption("--engine ray writes Parquet: give out NAME.parquet", field="out")
    if out is not None and out.exists() and not cfg.exist_ok:
        raise InvalidOption(f"out {out} already exists; exist_ok replaces it", field="out", related=("exist_ok",))
    ray.init(address=args.address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    try:
        ds = predictions(
            cfg.sources, args.weights, args.arch, cfg.precision, args.backend, cfg.topk, cfg.batch_size,
            cfg.embeddings, cfg.logits, cfg.draft,
        )  # fmt: skip
        if out is None:
            for row in ds.iter_rows():
                print(json.dumps({k: v.tolist() if hasattr(v, "tolist") else v for k, v in row.items()}), flush=True)
            return 0
        return _write(ds, out)
    finally:
        ray.shutdown()


def _write(ds, out: Path) -> int:
    import pyarrow.parquet as pq

    from ..fileio import atomic_path

    parts = out.with_name(out.name + ".ray")
    shutil.rmtree(parts, ignore_errors=True)
    ds.write_parquet(str(parts))
    tables = [pq.read_table(f) for f in sorted(parts.glob("*.parquet"))]
    import pyarrow as pa

    table = pa.concat_tables(tables).sort_by("path") if tables else pa.table({c: [] for c in COLUMNS})
    with atomic_path(out, "results table") as tmp:
        pq.write_table(table, tmp)
    shutil.rmtree(parts, ignore_errors=True)
    failed = sum(1 for e in table.column("error").to_pylist() if e)
    print(
        f"predict: {table.num_rows} inputs, {table.num_rows - failed} predicted, {failed} failed -> {out}",
        file=sys.stderr,
    )
    return 1 if failed else 0
