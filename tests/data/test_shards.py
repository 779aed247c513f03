"""WebDataset shards: the digits written as tar shards train, evaluate and predict like a folder; the
sample order deals each sample once per epoch over ranks and loader workers and resumes exactly; bad
shards and bad settings are refused in one line. The long checks (the accuracy of a folder run, a
killed process resumed) are in tests/scale/test_shard_runs.py."""

import io
import json
import tarfile

import pytest
import torch

from resnetkit.data.shards import ShardStream, expand, load_shards, scan
from resnetkit.errors import BadFile, InvalidOption

from ..clirun import cli
from ..engine.test_train_cli import assert_same_weights
from ..imagegen import write_digit_shards

pytest.importorskip("webdataset")

SMALL = ["--train-crop", "16", "--eval-resize", "16", "--eval-crop", "16", "--amp", "none", "--quiet"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_digit_shards(tmp_path_factory.mktemp("shards"), {"train": 4, "val": 2})


def spec(root, split="train", count=4):
    return f"{root}/{split}-{{000..{count - 1:03d}}}.tar"


class Keys(ShardStream):
    """The stream's order as sample keys (nothing decoded)."""

    def _batch(self, pairs):
        return [sample["__key__"] for _, sample in pairs]


def keys_stream(shards, **kw):
    index = scan(expand(spec(shards)))
    return Keys(index, {i: i for i in range(10)}, lambda image: image, seed=3, buffer=50, **kw)


def order_of(stream, epoch, world, slots, start=0):
    """Global batches (key lists, ranks concatenated) as torchrun ranks with loader workers see them."""
    batches = {}
    for rank in range(world):
        stream.arrange(batch=64, rank=rank, world=world, slots=slots)
        stream.set_epoch(epoch, start)
        for worker in range(slots):
            for k, keys in zip(range(start + worker, stream.num_batches(), slots), stream._train_batches(worker)):
                batches.setdefault(k, []).extend(keys)
    return [batches[k] for k in sorted(batches)]


@pytest.mark.parametrize("world, slots", [(1, 1), (1, 2), (2, 2)])
def test_each_sample_once_per_epoch_over_ranks_and_workers(shards, world, slots):
    stream = keys_stream(shards)
    batches = order_of(stream, epoch=0, world=world, slots=slots)
    seen = [key for batch in batches for key in batch]
    assert len(batches) == 1437 // 64 and len(seen) == len(set(seen)) == len(batches) * 64
    assert order_of(stream, epoch=0, world=world, slots=slots) == batches  # a pure function of (seed, epoch)
    assert order_of(stream, epoch=1, world=world, slots=slots) != batches  # shuffled anew each epoch


def test_a_resumed_epoch_continues_at_the_batch_it_stopped_at(shards):
    stream = keys_stream(shards)
    full = order_of(stream, epoch=2, world=2, slots=2)
    for start in (1, 5, 6):
        assert order_of(stream, epoch=2, world=2, slots=2, start=start) == full[start:]


def test_a_shard_run_trains_evaluates_and_resumes_exactly(shards, tmp_path):
    common = [
        "--data", spec(shards), "--val-data", spec(shards, "val", 2), *SMALL, "--batch-size", "64", "--epochs", "1",
        "--workers", "2", "--deterministic", "--schedule", "constant", "--lr", "0.05", "--shuffle-buffer", "100",
    ]  # fmt: skip
    ref, stopped = tmp_path / "ref", tmp_path / "stopped"
    result = cli("train", *common, "--max-steps", "9", "--out", ref)
    assert result.returncode == 0, result.stderr
    assert cli("train", *common, "--max-steps", "4", "--out", stopped).returncode == 0
    resumed = cli("train", "--resume", stopped, "--quiet", "--max-steps", "9")
    assert resumed.returncode == 0, resumed.stderr
    want, got = (torch.load(run / "last.pt", weights_only=True) for run in (ref, stopped))
    assert want["global_step"] == got["global_step"] == 9
    assert_same_weights(want["model"], got["model"])
    changed = cli("train", "--resume", stopped, "--workers", "0")
    assert changed.returncode != 0 and "resume with --workers 2" in changed.stderr
    evaluated = cli("eval", "--weights", ref, "--json")  # the run's own validation shards
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["images"] == 360
    given = cli("eval", "--weights", ref, "--data", spec(shards, "val", 2), "--json", "--workers", "2")
    assert json.loads(given.stdout)["acc1"] == json.loads(evaluated.stdout)["acc1"]
    from resnetkit.engine.rundir import validation_images

    calibration = validation_images(ref, limit=100)  # int8's calibration: the first validation images, decoded
    assert isinstance(calibration, torch.Tensor) and calibration.shape == (100, 3, 16, 16)


def test_json_labels_and_a_classes_file(tmp_path):
    root = write_digit_shards(tmp_path / "s", {"train": 2, "val": 1}, label="json")
    train, classes = load_shards(spec(root, count=2), None, lambda image: image, 0, 16)
    assert classes == [f"digit-{d}" for d in range(10)]
    (tmp_path / "classes.txt").write_text("\n".join(f"digit-{d}" for d in reversed(range(10))))
    _, named = load_shards(spec(root, count=2), str(tmp_path / "classes.txt"), lambda image: image, 0, 16)
    assert named[0] == "digit-9"


def _shard(path, members):
    with tarfile.open(path, "w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_bad_shards_are_refused_naming_the_shard(shards, tmp_path):
    with pytest.raises(BadFile, match="does not exist"):
        expand(f"{tmp_path}/none-{{000..001}}.tar")
    _shard(tmp_path / "nolabel.tar", [("a.png", b"x")])
    with pytest.raises(BadFile, match="no .cls or .json label"):
        scan([str(tmp_path / "nolabel.tar")])
    _shard(tmp_path / "badlabel.tar", [("a.png", b"x"), ("a.cls", b"three")])
    with pytest.raises(BadFile, match="does not parse"):
        scan([str(tmp_path / "badlabel.tar")])
    data = (shards / "train-000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(BadFile, match="cut.tar cannot be read"):
        scan([str(tmp_path / "cut.tar")])
    result = cli("train", "--data", str(tmp_path / "cut.tar"), "--val-data", spec(shards, "val", 2), *SMALL)
    assert result.returncode == 1 and "cut.tar cannot be read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "extra, field",
    [
        ([], "val-data"),
        (["--val-data", "x/val", "--repeated-aug", "2"], "val-data"),
        (["--val-data", "VAL", "--repeated-aug", "2"], "repeated"),
        (["--val-data", "VAL", "--workers", "8"], "workers"),
    ],
    ids=["no-val", "val-not-shards", "repeated-aug", "more-workers-than-shards"],
)
def test_bad_settings_are_refused_in_one_line(shards, extra, field):
    extra = [spec(shards, "val", 2) if e == "VAL" else e for e in extra]
    result = cli("train", "--data", spec(shards), *extra, *SMALL, "--epochs", "1")
    assert result.returncode != 0 and field in result.stderr.replace("_", "-"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_shard_settings_without_shards_are_refused():
    with pytest.raises(InvalidOption, match="belongs to WebDataset shards"):
        from resnetkit.engine.config import make_config

        make_config("digits", val_data="x-{0..1}.tar")
