"""The model card refuses what cannot be right, from any file, naming the field: statistics for other
channels, class names for other outputs, a crop larger than its resize, sizes no image needs, a card
from a newer resnetkit; and a card whose class count disagrees with the weights or the graph."""

import json

import pytest

import resnetkit as rk
from resnetkit.card import ModelCard, Preprocess
from resnetkit.errors import BadFile, InvalidOption

from .clirun import cli
from .imagegen import class_image, write_small_weights

GOOD = {
    "arch": "resnet18",
    "num_classes": 3,
    "classes": ["a", "b", "c"],
    "preprocess": {"resize_size": 36, "crop_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3},
}


@pytest.mark.parametrize(
    "change,words",
    [
        ({"preprocess": dict(GOOD["preprocess"], mean=[0.5, 0.5], std=[0.2, 0.2])}, "2 values for a 3-channel model"),
        ({"classes": ["a", "b", "c", "d"]}, "4 names for 3 outputs"),
        ({"preprocess": dict(GOOD["preprocess"], crop_size=40)}, "larger than resize_size"),
        ({"preprocess": dict(GOOD["preprocess"], crop_size=20000, resize_size=20000)}, "in [1, "),
        ({"card_version": 99}, "written by a newer resnetkit"),
        ({"card_version": "two"}, "card_version must be an integer"),
        ({"preprocess": dict(GOOD["preprocess"], crop_mode="zoom")}, "crop_mode 'zoom'"),
    ],
)
def test_metadata_that_cannot_be_right_is_refused_by_name(tmp_path, change, words):
    path = tmp_path / "w.safetensors"
    rk.save_safetensors(rk.resnet18(num_classes=3).state_dict(), path, dict(GOOD, **change))
    with pytest.raises(BadFile, match="does not parse") as info:
        rk.resnet18(weights=str(path))
    assert words in str(info.value)
    class_image(0, 0, size=40).save(tmp_path / "x.png")
    result = cli("predict", tmp_path / "x.png", "--weights", path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and words in lines[0]


def test_a_class_count_that_disagrees_with_the_classifier_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    meta = dict(GOOD, num_classes=4, classes=["a", "b", "c", "d"])
    rk.save_safetensors(rk.resnet18(num_classes=3).state_dict(), path, meta)
    with pytest.raises(BadFile, match="says 4 classes but its classifier"):
        rk.resnet18(weights=str(path))


def test_one_statistic_for_every_channel_and_rgb_statistics_for_gray_are_read():
    assert Preprocess(mean=(0.5,), std=(0.25,)).channel_stats(3) == ([0.5] * 3, [0.25] * 3)
    mean, _ = Preprocess().channel_stats(1)
    assert len(mean) == 1 and abs(mean[0] - sum(Preprocess().mean) / 3) < 1e-9
    with pytest.raises(InvalidOption, match="2 values for a 1-channel"):
        Preprocess(mean=(0.5, 0.5), std=(0.2, 0.2)).channel_stats(1)


def test_a_model_that_images_cannot_feed_is_refused_in_one_line(tmp_path):
    path = tmp_path / "two.safetensors"
    meta = dict(GOOD, in_chans=2, preprocess=dict(GOOD["preprocess"], mean=[0.5] * 2, std=[0.25] * 2))
    rk.save_safetensors(rk.resnet18(num_classes=3, in_chans=2).state_dict(), path, meta)
    class_image(0, 0, size=40).save(tmp_path / "x.png")
    result = cli("predict", tmp_path / "x.png", "--weights", path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and "2-channel images" in lines[0], result.stderr


def test_the_card_round_trips_through_every_writer(tmp_path):
    card = ModelCard(arch="resnet18", num_classes=3, classes=("a", "b", "c"),
                     preprocess=Preprocess(40, 32, "bicubic", crop_mode="squash"), source="42")  # fmt: skip
    assert ModelCard.from_metadata(ModelCard.decode_metadata(card.to_metadata())) == card.but(source="42")
    assert ModelCard.from_metadata(json.loads(card.to_json())) == card
    weights = write_small_weights(tmp_path / "w.safetensors")
    assert rk.resnet18(weights=str(weights)).card.preprocess.crop_mode == "center"  # files before crop_mode
