"""CIFAR from the authors' python batches: a hostile pickle refused, the paper's augmentation, the
paper's recipe as published, and train / eval / export on a small generated set."""

import json
import pickle

import numpy as np
import pytest
import torch

from resnetkit.data.cifar import MEAN, STD, load_cifar, write_batches
from resnetkit.engine.config import RECIPES, make_config
from resnetkit.engine.schedule import lr_factor
from resnetkit.errors import BadFile

from ..clirun import cli

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _make(root, kind="cifar10", train=120, test=40, classes=10):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, train + test)
    pixels = rng.integers(0, 256, (train + test, 3072), dtype=np.uint8)
    names = NAMES if classes == 10 else [f"class{i}" for i in range(classes)]
    return write_batches(kind, root, pixels[:train], labels[:train], pixels[train:], labels[train:], names)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    _make(root)
    return root


def test_the_batches_load_as_the_archive_lays_them_out(cifar, tmp_path):
    split = load_cifar("cifar10", cifar)  # the folder holding cifar-10-batches-py
    assert len(split.train) == 120 and len(split.val) == 40 and split.classes == NAMES
    assert split.train.images.shape == (120, 3, 32, 32) and split.train.flip and not split.val.flip
    again = load_cifar("cifar10", cifar / "cifar-10-batches-py")  # or that folder itself
    assert torch.equal(again.val.images, split.val.images)
    hundred = _make(tmp_path / "c100", "cifar100", train=30, test=10, classes=100)
    assert len(load_cifar("cifar100", hundred.parent).classes) == 100


def test_a_pickle_that_asks_for_anything_but_arrays_is_refused_before_it_runs(cifar, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in (cifar / "cifar-10-batches-py").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    with pytest.raises(BadFile, match=r"data_batch_3: not a CIFAR python batch \(it asks to load io.open"):
        load_cifar("cifar10", tmp_path)
    assert not marker.exists()
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(BadFile, match="data_batch_3: not a CIFAR python batch"):
        load_cifar("cifar10", tmp_path)
    with pytest.raises(BadFile, match=r"unpack cifar-100-python.tar.gz"):
        load_cifar("cifar100", tmp_path)


def test_the_papers_augmentation_pads_with_black_crops_and_flips(cifar):
    train = load_cifar("cifar10", cifar).train
    a, _ = train.shifted_batch(list(range(64)), 4, seed=0, epoch=0)
    b, _ = train.shifted_batch(list(range(64)), 4, seed=0, epoch=0)
    assert torch.equal(a, b)  # a function of (seed, epoch, sample): the same after a resume
    black = torch.tensor([-m / s for m, s in zip(MEAN, STD)]).view(3, 1, 1)
    flipped = shifted = 0
    for k in range(64):
        image = train.images[k]
        found = False
        for top in range(9):
            for left in range(9):
                padded = torch.nn.functional.pad(image - black, (4, 4, 4, 4)) + black
                crop = padded[:, top : top + 32, left : left + 32]
                for flip in (False, True):
                    if torch.allclose(a[k], crop.flip(-1) if flip else crop, atol=1e-6):
                        found, flipped, shifted = True, flipped + flip, shifted + ((top, left) != (4, 4))
        assert found, k
    assert 16 < flipped < 48 and shifted > 48


def test_the_cifar_recipe_is_the_papers():
    # He et al. 2016, section 4.2: SGD, lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr / 10 at
    # 32k and 48k of 64k iterations (epochs 82 and 123 of 164 at 50k images), 4-pixel pad and crop, flip.
    cfg = make_config("cifar", data="cifar10:x")
    published = dict(arch="resnet20", optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                     batch_size=128, epochs=164, schedule="multistep", milestones="82,123", gamma=0.1, pad_crop=4)  # fmt: skip
    assert {k: getattr(cfg, k) for k in published} == published and set(published) >= set(RECIPES["cifar"]) - {
        "label_smoothing"
    }
    steps = 390
    factors = [lr_factor(e * steps, steps, 164, "multistep", milestones=(82, 123)) for e in (0, 81, 82, 122, 123, 163)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    result = cli("train", "--recipe", "cifar", "--data", "cifar10:x", "--milestones", "123,82")
    assert result.returncode == 1 and "--milestones '123,82' must be increasing" in result.stderr


def test_train_eval_and_export_a_cifar_run(cifar, tmp_path):
    run = tmp_path / "run"
    result = cli(
        "train", "--recipe", "cifar", "--data", f"cifar10:{cifar}", "--epochs", "1", "--batch-size", "32",
        "--amp", "none", "-j", "0", "--quiet", "--out", run,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    card = json.loads((run / "config.json").read_text())
    assert card["data"] == f"cifar10:{cifar}" and card["arch"] == "resnet20"
    # eval without --data takes the run's own data: CIFAR's test images, not the digits.
    own = json.loads(cli("eval", "--weights", run, "--json").stdout)
    given = json.loads(cli("eval", "--weights", run, "--json", "--data", f"cifar10:{cifar}").stdout)
    assert own["data"] == given["data"] == "cifar10 test images" and own["images"] == 40
    assert own["acc1"] == given["acc1"]
    # int8 calibrates on the run's own test images.
    result = cli("export", "--weights", run, "--format", "onnx", "--int8", "--out", tmp_path / "q.onnx")
    assert result.returncode == 0, result.stderr
