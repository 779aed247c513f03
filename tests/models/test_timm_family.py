"""The whole family of timm's resnet.py and resnetv2.py (timm is the oracle, a test dependency): every
name has timm's keys, shapes and parameter count (on the meta device: no memory, no init time); one
model of every distinct code path is built under the same seed as timm's and gives timm's outputs
exactly (max abs difference 0), and so does every name in make test-scale; the table, the catalog
and `resnetkit models` agree with timm's registry."""

import json

import pytest
import torch

import resnetkit as rk
from resnetkit.models import ARCHITECTURES, TORCHVISION_NAMES

from ..clirun import cli
from ..sweep import sweep
from .helpers import max_abs_diff, randomize_norm_stats

timm = pytest.importorskip("timm")
from timm.models import _registry  # noqa: E402

TIMM_NAMES = [n for n in timm.list_models() if _registry._model_to_module.get(n) in ("resnet", "resnetv2")]
# One of each code path: plain (torchvision), tiered stem, deep stem + average-pool shortcut, mixed
# blocks and widths, GroupNorm, SE (BasicBlock), SE with 3x3 shortcuts and reduce-first (SENet-154's
# options, on a small depth), ECA, a pruned channel map, BlurPool, average-pool AA (BasicBlock),
# ResNet-RS's stem pool and SE ratio, ResNetV2 (BatchNorm, BasicBlock, deep stem), BiT (StdConv,
# GroupNorm, fixed stem), EvoNorm-S0, FRN.
PATHS = [
    "resnet18", "resnet10t", "resnet50d", "test_resnet", "resnet50_gn", "seresnet18", "ecaresnet26t",
    "ecaresnet50d_pruned", "resnetblur18", "resnetaa34d", "resnetrs50", "resnetv2_18d", "resnetv2_50x1_bit",
    "resnetv2_50d_evos", "resnetv2_50d_frn", "resnext50d_32x4d", "resnet50s", "seresnetaa50d",
]  # fmt: skip


def test_every_timm_name_is_registered():
    assert len(TIMM_NAMES) == 101
    assert set(TIMM_NAMES) <= set(rk.list_models())


@pytest.mark.parametrize("name", sweep(TIMM_NAMES, PATHS))
def test_timms_keys_shapes_and_parameter_count(name):
    with torch.device("meta"):
        theirs, mine = timm.create_model(name).state_dict(), rk.create_model(name).state_dict()
    assert list(theirs) == list(mine)  # the same keys, in the same order
    assert all(theirs[k].shape == mine[k].shape for k in theirs)
    assert sum(t.numel() for t in theirs.values()) == sum(t.numel() for t in mine.values())


@pytest.mark.parametrize("name", sweep(TIMM_NAMES, PATHS))
def test_same_seed_same_parameters_and_the_same_outputs_as_timm(name):
    """Built under the same seed, the parameters equal timm's (construction and initialisation in
    timm's order; torchvision's ten keep torchvision's init, so timm's zero-init is asked for); with
    the same weights (norm statistics randomised), forward_features and the logits equal timm's."""
    extra = {"zero_init_residual": True} if name in TORCHVISION_NAMES else {}
    torch.manual_seed(0)
    theirs = timm.create_model(name).eval()
    torch.manual_seed(0)
    ours = rk.create_model(name, **extra).eval()
    a, b = theirs.state_dict(), ours.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    randomize_norm_stats(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert max_abs_diff(theirs.forward_features(x), ours.forward_features(x)) == 0
        assert max_abs_diff(theirs(x), ours(x)) == 0
        if name.startswith("resnetv2"):  # the final norm: on the last map with norm=True, as timm's
            want = theirs.forward_intermediates(x, norm=True, intermediates_only=True)
            got = ours.forward_intermediates(x, norm=True, intermediates_only=True)
            assert all(max_abs_diff(p, q) == 0 for p, q in zip(want, got))


@pytest.mark.parametrize("name", sweep(PATHS, ["resnetv2_50x1_bit", "resnetaa34d"]))
def test_a_dilated_backbone_equals_timms(name):
    theirs = timm.create_model(name, output_stride=8).eval()
    randomize_norm_stats(theirs)
    ours = rk.create_model(name, output_stride=8).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert max_abs_diff(theirs(x), ours(x)) == 0


def test_the_table_and_the_models_command():
    families = rk.models.families()
    assert sum(len(v) for v in families.values()) == len(ARCHITECTURES) == 106
    assert families["torchvision"] == list(TORCHVISION_NAMES) and len(families["BiT"]) == 6
    listed = cli("models", "*aa*", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["name"] for r in rows] == [n for n in ARCHITECTURES if "aa" in n]
    assert all(r["family"] == "Anti-aliased" for r in rows)
    shown = cli("models")
    assert "BiT (6)" in shown.stdout and "106 architectures" in shown.stdout
    assert rk.list_models("resnetv2_*x*_bit") == [n for n in families["BiT"]]
    assert "no architecture matches" in cli("models", "nothing*").stderr


def test_every_timm_pretrained_tag_is_in_the_catalog_with_timms_preprocessing():
    from timm.data import resolve_data_config

    tags = [t for t in timm.list_pretrained() if t.split(".")[0] in TIMM_NAMES]
    assert len(tags) == 174
    for tag in tags:
        entry = rk.get_weights(tag)
        cfg = timm.models.get_pretrained_cfg(tag).to_dict()
        data = resolve_data_config({}, pretrained_cfg=cfg)
        pre = entry.preprocessing()
        assert (pre.crop_size, pre.interpolation, pre.mean, pre.std) == (
            data["input_size"][-1], data["interpolation"], tuple(data["mean"]), tuple(data["std"]),
        ), tag  # fmt: skip
        assert abs(pre.crop_size / data["crop_pct"] - pre.resize_size) < 1, tag
        assert pre.crop_mode == (data.get("crop_mode") or "center")
        assert entry.num_classes == cfg["num_classes"] and entry.hub_id == cfg["hf_hub_id"], tag
    a1 = rk.get_weights("resnet50.a1_in1k")
    assert a1.acc1 == 81.24 and a1.license == "apache-2.0" and a1.test_input_size == 288
    assert rk.get_weights("resnetv2_50x1_bit.goog_in21k").num_classes == 21843
    assert rk.get_weights("resnet18.tv_in1k").url == rk.get_weights("resnet18.IMAGENET1K_V1").url  # one file


def test_a_catalog_tag_offline_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (40, 40)).save(image)
    result = cli("predict", image, "--weights", "resnetaa50d.sw_in12k_ft_in1k")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and "not in the Hugging Face cache" in lines[0], result.stderr
