"""Hugging Face transformers ResNet checkpoints: keys renamed, config.json read and either
reproduced (ResNet v1 stride placement) or refused by name; transformers is the oracle."""

import shutil

import pytest
import torch

import resnetkit as rk
from resnetkit.cli import main

from ..models.helpers import max_abs_diff, randomize_norm_stats

transformers = pytest.importorskip("transformers")

SMALL = dict(depths=[1, 1, 1, 1])  # enough for the config checks; full depths where an arch must match


def hf_folder(tmp_path, name="hf", seed=0, **config):
    cfg = transformers.ResNetConfig(num_labels=7, **config)
    torch.manual_seed(seed)
    model = transformers.ResNetForImageClassification(cfg).eval()
    randomize_norm_stats(model)
    model.save_pretrained(tmp_path / name)
    return model, tmp_path / name


@pytest.mark.parametrize(
    "arch,layer_type,depths,hidden,v1",
    [
        pytest.param("resnet50", "bottleneck", [3, 4, 6, 3], [256, 512, 1024, 2048], False, marks=pytest.mark.sweep),
        ("resnet50", "bottleneck", [3, 4, 6, 3], [256, 512, 1024, 2048], True),  # downsample_in_bottleneck
        ("resnet18", "basic", [2, 2, 2, 2], [64, 128, 256, 512], False),
    ],
)
def test_save_pretrained_folder_loads_with_its_config(tmp_path, arch, layer_type, depths, hidden, v1):
    hf, folder = hf_folder(
        tmp_path, depths=depths, hidden_sizes=hidden, layer_type=layer_type, downsample_in_bottleneck=v1
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = hf(x).logits
    for source in (folder, folder / "model.safetensors"):  # the folder, or the file beside its config.json
        ours = rk.get_model(arch, weights=str(source)).eval()
        assert ours.stride_in_1x1 is v1
        with torch.no_grad():
            assert max_abs_diff(want, ours(x)) <= 1e-4
    # `weights convert` keeps what the config said, so the converted file builds the same model.
    assert main(["weights", "convert", str(folder), str(tmp_path / "ours.safetensors")]) == 0
    state, meta = rk.load_safetensors(tmp_path / "ours.safetensors")
    assert (
        meta["arch"] == arch
        and meta["num_classes"] == 7
        and meta["model_options"] == ({"stride_in_1x1": True} if v1 else {})
    )
    again = rk.get_model(arch, weights=str(tmp_path / "ours.safetensors")).eval()
    with torch.no_grad():
        assert max_abs_diff(want, again(x)) <= 1e-4


@pytest.mark.parametrize(
    "option,value", [("downsample_in_first_stage", True), ("hidden_act", "gelu"), ("embedding_size", 32)]
)
def test_config_options_resnetkit_cannot_reproduce_are_refused(tmp_path, option, value, capsys):
    _, folder = hf_folder(tmp_path, **SMALL, layer_type="basic", hidden_sizes=[64, 128, 256, 512], **{option: value})
    with pytest.raises(rk.ResnetkitError, match=option):
        rk.get_model("resnet18", weights=str(folder))
    capsys.readouterr()
    assert main(["predict", str(folder), "--weights", str(folder)]) == 1
    err = capsys.readouterr().err
    assert option in err and err.count("\n") == 1


def test_a_bare_checkpoint_says_its_config_was_not_checked(tmp_path):
    _, folder = hf_folder(tmp_path, depths=[2, 2, 2, 2], layer_type="basic", hidden_sizes=[64, 128, 256, 512])
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(folder / "model.safetensors", bare / "model.safetensors")
    with pytest.warns(UserWarning, match="config.json.*not checked"):
        rk.get_model("resnet18", weights=str(bare / "model.safetensors"))
    # ... and a config passed alongside is read.
    with pytest.raises(rk.ResnetkitError, match="downsample_in_first_stage"):
        _, other = hf_folder(
            tmp_path,
            name="other",
            depths=[2, 2, 2, 2],
            layer_type="basic",
            hidden_sizes=[64, 128, 256, 512],
            downsample_in_first_stage=True,
        )
        rk.weights.resolve.resolve(bare / "model.safetensors", config=other / "config.json")


def test_class_names_come_from_id2label(tmp_path):
    cfg = transformers.ResNetConfig(
        depths=[2, 2, 2, 2],
        layer_type="basic",
        hidden_sizes=[64, 128, 256, 512],
        id2label={0: "cat", 1: "dog"},
        label2id={"cat": 0, "dog": 1},
    )
    transformers.ResNetForImageClassification(cfg).save_pretrained(tmp_path / "pets")
    model = rk.get_model("resnet18", weights=str(tmp_path / "pets"))
    assert model.pretrained_cfg["classes"] == ["cat", "dog"]


def test_the_config_is_honoured_or_refused_on_every_path(tmp_path):
    """load_weights into a model built without the option the config asks for: same keys and shapes,
    other outputs (7.85 max abs difference on ResNet-50), so it is refused naming the option."""
    hf, folder = hf_folder(
        tmp_path, depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048], layer_type="bottleneck",
        downsample_in_bottleneck=True,
    )  # fmt: skip
    with pytest.raises(
        rk.InvalidOption, match=r"need stride_in_1x1=True, but this model was built with stride_in_1x1=False"
    ):
        rk.load_weights(rk.resnet50(num_classes=7), str(folder))
    model = rk.load_weights(rk.resnet50(num_classes=7, stride_in_1x1=True).eval(), str(folder))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_abs_diff(hf(x).logits, model(x)) <= 1e-4


def test_a_one_channel_checkpoint_predicts_ordinary_images(tmp_path, capsys):
    from PIL import Image

    hf, folder = hf_folder(
        tmp_path, depths=[2, 2, 2, 2], layer_type="basic", hidden_sizes=[64, 128, 256, 512], num_channels=1
    )
    image = tmp_path / "rgb.png"
    Image.new("RGB", (48, 40), (200, 30, 60)).save(image)
    assert main(["predict", str(image), "--weights", str(folder), "--json"]) == 0
    model = rk.get_model("resnet18", weights=str(folder)).eval()
    x = model.card.preprocess.transform(1)(Image.open(image))
    assert x.shape[0] == 1 and model.card.in_chans == 1
    with torch.no_grad():
        assert max_abs_diff(hf(x[None]).logits, model(x[None])) <= 1e-4


def test_a_folders_preprocessor_config_is_the_preprocessing(tmp_path):
    """microsoft/resnet-*'s ConvNextImageProcessor (shortest edge / crop_pct, bicubic, its mean and std):
    the pixels transformers' PIL backend gives, up to float rounding; its default (torchvision)
    backend resizes tensors, within 2/255 of them."""
    import numpy as np
    from PIL import Image

    from resnetkit.batch.decode import Decoder
    from resnetkit.deploy.fused import normalise

    _, folder = hf_folder(tmp_path, layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512])
    processor = transformers.ConvNextImageProcessor(size={"shortest_edge": 56}, crop_pct=0.875, resample=3)
    processor.save_pretrained(folder)
    card = rk.resnet18(weights=str(folder)).card
    pre = card.preprocess
    assert (pre.resize_size, pre.crop_size, pre.interpolation, pre.mean) == (64, 56, "bicubic", (0.5, 0.5, 0.5))
    photo = Image.fromarray((np.random.default_rng(0).random((90, 131, 3)) * 255).astype(np.uint8))
    pil = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")(photo, return_tensors="pt")
    default = transformers.AutoImageProcessor.from_pretrained(folder)(photo, return_tensors="pt")
    crop = torch.from_numpy(Decoder(pre).crop(photo))[None]
    ours = normalise(crop, pre, 3)[0]
    assert (ours - pil["pixel_values"][0]).abs().max() < 1e-5
    assert (ours - default["pixel_values"][0]).abs().max() <= 2 / 255 / 0.5 + 1e-5
    (folder / "preprocessor_config.json").write_text('{"image_processor_type": "X", "resample": 1}')
    assert main(["eval", "--weights", str(folder)]) == 1  # lanczos: refused by name, not approximated
