"""Progressive resizing (--train-size-schedule START:END): the training images' size follows the
schedule epoch by epoch, for in-memory data and for folders, and evaluation stays at the eval size."""

import pytest

from resnetkit.engine.config import make_config, train_size
from resnetkit.engine.state import TrainState
from resnetkit.engine.trainer import Trainer
from resnetkit.errors import InvalidOption

from ..clirun import cli
from ..imagegen import make_image_folder


def _sizes(cfg):
    trainer = Trainer(cfg, log=lambda s: None)
    try:
        sizes = []
        for epoch in range(cfg.epochs):
            state = TrainState()
            state.epoch = epoch
            x, _, _ = next(iter(trainer._batches(state)))
            sizes.append(tuple(x.shape[-2:]))
        return sizes
    finally:
        trainer.close()


def test_the_schedule_is_linear_from_start_to_end():
    cfg = make_config("digits", epochs=5, train_size_schedule="16:32")
    assert [train_size(cfg, e) for e in range(5)] == [16, 20, 24, 28, 32]
    assert train_size(make_config("digits", epochs=1, train_size_schedule="16:32"), 0) == 16
    for bad in ("160", "160:x", "4:8", "1:2:3"):
        with pytest.raises(InvalidOption, match="train_size_schedule .* is not START:END"):
            make_config("digits", train_size_schedule=bad)


def test_in_memory_and_folder_batches_follow_it(tmp_path):
    digits = make_config("digits", image_size=16, epochs=3, train_size_schedule="16:32", amp="none", quiet=True,
                         workers=0, out=str(tmp_path / "d"))  # fmt: skip
    assert _sizes(digits) == [(16, 16), (24, 24), (32, 32)]
    folder = make_image_folder(tmp_path / "imgs")
    cfg = make_config("tv-v1", data=str(folder), epochs=2, batch_size=4, train_size_schedule="24:40", amp="none",
                      quiet=True, workers=0, eval_resize=40, eval_crop=32, out=str(tmp_path / "f"))  # fmt: skip
    assert _sizes(cfg) == [(24, 24), (40, 40)]


def test_a_run_with_a_schedule_trains_and_records_its_eval_size(tmp_path):
    run = tmp_path / "run"
    result = cli("train", "--image-size", "16", "--epochs", "2", "--train-size-schedule", "12:16", "--amp", "none", "-b", "128",
                 "-j", "0", "--quiet", "--out", run)  # fmt: skip
    assert result.returncode == 0, result.stderr
    verify = cli("weights", "verify", run / "model.safetensors")
    assert verify.returncode == 0 and "16 px" in verify.stdout, verify.stdout
