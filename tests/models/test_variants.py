"""Backbones (features_only, output stride), ResNet-C/D and SE variants (timm parity), stochastic
depth, CIFAR ResNets, the small-input stem, torch.hub and `weights convert`."""

from pathlib import Path

import pytest
import torch

import resnetkit as rk
from resnetkit.cli import main

from ..sweep import sweep
from .helpers import randomize_norm_stats

TIMM_VARIANTS = ["resnet18d", "resnet34d", "resnet50c", "resnet50d", "resnet101d", "seresnet50", "seresnext50_32x4d"]
IMAGENET_ARCHS = [
    n
    for n in rk.list_models()
    if not n.startswith("resnet")
    or not n[6:].isdigit()
    or n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
]
CIFAR = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7}
EXPECTED_REDUCTIONS = {32: [2, 4, 8, 16, 32], 16: [2, 4, 8, 16, 16], 8: [2, 4, 8, 8, 8]}


# One of each stem and pooling in make test (the sweep: every name at every output stride).
FEATURE_PATHS = [
    "resnet18",
    "resnet50d",
    "resnetaa34d",
    "resnetblur50",
    "resnetrs50",
    "resnetv2_50x1_bit",
    "resnetv2_18d",
]


@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize("arch", sweep([n for n in rk.list_models() if n not in CIFAR], FEATURE_PATHS))
def test_features_shapes_and_reductions(arch, output_stride):
    with torch.device("meta"):
        model = rk.get_model(arch, features_only=True, out_indices=(0, 1, 2, 3, 4), output_stride=output_stride)
        feats = model(torch.zeros(1, 3, 224, 224))
    assert [f["reduction"] for f in model.feature_info] == EXPECTED_REDUCTIONS[output_stride]
    for f, info in zip(feats, model.feature_info):
        assert f.shape[1] == info["num_chs"]
        assert f.shape[-1] == 224 // info["reduction"]


def test_features_load_classification_weights_and_match_intermediates(tmp_path):
    clf = rk.resnet34().eval()
    randomize_norm_stats(clf)
    rk.save_safetensors(clf.state_dict(), tmp_path / "w.safetensors", {"arch": "resnet34"})
    backbone = rk.get_model("resnet34", features_only=True, out_indices=(1, 3), weights=str(tmp_path / "w.safetensors"))
    backbone.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = backbone(x)
        last, inter = clf.forward_intermediates(x, indices=[1, 3])
        assert [f.shape[1] for f in feats] == [64, 256]
        assert all(torch.equal(a, b) for a, b in zip(feats, inter))
        assert torch.equal(clf.forward_head(last), clf(x))
    assert "fc.weight" not in backbone.state_dict()


def test_features_bad_arguments():
    with pytest.raises(ValueError, match="feature index 5 is out of range"):
        rk.get_model("resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="output_stride"):
        rk.get_model("resnet18", output_stride=4)
    with pytest.raises(ValueError, match="not both"):
        rk.get_model("resnet18", output_stride=16, replace_stride_with_dilation=[False, False, True])


def test_drop_path_train_and_eval():
    model = rk.resnet50(drop_path_rate=0.2)
    rates = [
        b.drop_path.p if b.drop_path is not None else 0.0
        for s in (model.layer1, model.layer2, model.layer3, model.layer4)
        for b in s
    ]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert all(a < b for a, b in zip(rates, rates[1:]))
    plain = rk.resnet50().eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), plain(x))  # identity at eval
        model.train()
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("arch,millions", CIFAR.items())
def test_cifar_resnets(arch, millions):
    model = rk.get_model(arch)
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 2 if millions < 1 else 1) == millions
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 64, 8, 8)
    feats = rk.get_model(arch, features_only=True)(torch.randn(1, 3, 32, 32))
    assert [f.shape[-1] for f in feats] == [32, 32, 16, 8]  # stem, then the three stages


def test_small_stem_keeps_resolution():
    model = rk.resnet18(stem_type="small", num_classes=10)
    assert model.feature_info.reduction() == [1, 1, 2, 4, 8]
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 4, 4)
    with pytest.raises(ValueError, match="stem_type"):
        rk.resnet18(stem_type="huge")


def test_variants_keep_torchvision_core_untouched():
    torch.manual_seed(0)
    a = rk.resnet50().state_dict()
    torch.manual_seed(0)
    b = rk.resnet50(drop_path_rate=0.0, se=False, avg_down=False, stem_type="").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and list(a) == list(b)


def test_torch_hub_local_load():
    repo = Path(__file__).resolve().parents[2]
    model = torch.hub.load(str(repo), "resnet18d", source="local", num_classes=5, trust_repo=True)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_torch_hub_lists_every_architecture():
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location("hubconf", Path(__file__).resolve().parents[2] / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    entries = [n for n, f in vars(hub).items() if inspect.isfunction(f) and not n.startswith("_")]
    assert entries == rk.list_models()


def test_weights_convert_cli(tmp_path, capsys):
    timm = pytest.importorskip("timm")
    torch.save(timm.create_model("seresnet50").state_dict(), tmp_path / "timm.pth")
    assert main(["weights", "convert", str(tmp_path / "timm.pth"), str(tmp_path / "out.safetensors")]) == 0
    assert "seresnet50" in capsys.readouterr().out
    state, meta = rk.load_safetensors(tmp_path / "out.safetensors")
    assert meta["arch"] == "seresnet50" and meta["num_classes"] == 1000
    rk.get_model("seresnet50", weights=str(tmp_path / "out.safetensors"))
