"""timm's model contract, checked for every registered name the way timm's own tests/test_models.py
checks it (forward_features, forward_intermediates, features_only, default cfgs), plus the uniform
interface (reset_classifier, grad checkpointing, group_matcher, pretrained_cfg, create_model)."""

import copy
import functools
import math

import pytest
import torch
from torch import nn

import resnetkit as rk
from resnetkit.models import ResNetBase

from ..sweep import sweep
from .helpers import max_abs_diff, randomize_norm_stats

ALL = rk.list_models()
# One per code path in make test (ResNet, deep stems, mixed blocks, anti-aliasing, ResNet-RS's stem
# pool, a pruned network, ResNetV2 and BiT, the CIFAR ResNets); every name in make test-scale.
REPRESENTATIVES = ["resnet18", "resnet50d", "test_resnet", "resnetblur50", "resnetaa34d", "resnetrs50",
                   "ecaresnet50d_pruned", "resnetv2_18d", "resnetv2_50x1_bit", "resnet56"]  # fmt: skip
EVERY = sweep(ALL, REPRESENTATIVES)


@functools.cache
def _built(name, features_only, out_indices, output_stride):
    with torch.device("meta"):
        return rk.get_model(
            name, features_only=features_only, out_indices=out_indices, output_stride=output_stride
        ).eval()


def meta_model(name, features_only=False, out_indices=None, output_stride=None):
    """A fresh copy of the architecture on the meta device (built once per configuration)."""
    return copy.deepcopy(_built(name, features_only, out_indices, output_stride))


def input_for(model, batch=2):
    size = model.pretrained_cfg["input_size"]
    return torch.zeros(batch, *size, device="meta")


@pytest.mark.parametrize("name", EVERY)
def test_forward_features_and_head(name):
    """timm's test_model_forward_features and test_model_default_cfgs (pool size, heads)."""
    model = meta_model(name)
    assert isinstance(model, ResNetBase)
    cfg = model.pretrained_cfg
    x = input_for(model)
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features
    assert tuple(feats.shape[-2:]) == cfg["pool_size"]
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    assert cfg["architecture"] == name and cfg["num_classes"] == model.num_classes
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)
    model.reset_classifier(0, "")
    assert model(x).dim() == 4
    model.reset_classifier(7, "avg")
    assert model(x).shape == (2, 7)
    model.reset_classifier(3, "catavgmax")
    fc = model.get_classifier()
    width = fc.in_features if isinstance(fc, nn.Linear) else fc.in_channels
    assert model(x).shape == (2, 3) and width == 2 * model.num_features


@pytest.mark.parametrize("name", EVERY)
def test_forward_intermediates(name):
    """timm's test_model_forward_intermediates: one map per feature_info entry, with its channels and reduction."""
    model = meta_model(name)
    info = model.feature_info
    assert len(info) >= 4 and info.module_name()[0] in ("relu", "stem.conv", "stem.conv3")
    x = input_for(model)
    final, maps = model.forward_intermediates(x)
    assert len(maps) == len(info)
    size = x.shape[-1]
    for chans, reduction, out in zip(info.channels(), info.reduction(), maps):
        assert out.shape[1] == chans
        assert out.shape[-1] <= math.ceil(size / reduction) + 1 and out.shape[0] == 2
    assert final.shape == model.forward_features(x).shape
    # An int is the last n, negatives count from the end, intermediates_only and stop_early agree.
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [m.shape for m in last_two] == [m.shape for m in maps[-2:]]
    neg = model.forward_intermediates(x, indices=[-1, 0], stop_early=True)[1]
    assert [m.shape for m in neg] == [maps[0].shape, maps[-1].shape]
    early, _ = model.forward_intermediates(x, indices=[1], stop_early=True)
    assert early.shape == maps[1].shape
    for bad in ([len(info)], [-len(info) - 1], 0, len(info) + 1, []):
        with pytest.raises(ValueError, match="index|indices"):
            model.forward_intermediates(x, indices=bad)
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")


@pytest.mark.parametrize("name", EVERY)
def test_features_only_matches_feature_info(name):
    """timm's features_only: the default returns the stem and every stage; feature_info equals the outputs."""
    backbone = meta_model(name, features_only=True)
    x = torch.zeros(1, 3, 64, 64, device="meta")
    maps = backbone(x)
    assert len(maps) == len(meta_model(name).feature_info)
    assert [m.shape[1] for m in maps] == backbone.feature_info.channels()
    assert [64 // r for r in backbone.feature_info.reduction()] == [m.shape[-1] for m in maps]
    last_two = meta_model(name, features_only=True, out_indices=2)
    assert [m.shape for m in last_two(x)] == [m.shape for m in maps[-2:]]
    negative = meta_model(name, features_only=True, out_indices=(-1,))
    assert negative(x)[0].shape == maps[-1].shape and negative.feature_info.channels() == [maps[-1].shape[1]]


def test_features_only_values_equal_the_classifiers_maps():
    clf = rk.resnet34().eval()
    randomize_norm_stats(clf)
    backbone = rk.get_model("resnet34", features_only=True, out_indices=(0, 2, 4)).eval()
    backbone.load_state_dict(clf.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = clf.forward_intermediates(x, indices=[0, 2, 4], intermediates_only=True)
        assert all(torch.equal(a, b) for a, b in zip(backbone(x), want))


def test_prune_intermediate_layers():
    model = rk.resnet18().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model.forward_intermediates(x, indices=[1, 2], intermediates_only=True)
        kept = model.prune_intermediate_layers(indices=[1, 2])
        assert kept == [1, 2] and isinstance(model.layer4, nn.Identity) and isinstance(model.layer3, nn.Identity)
        got = model.forward_intermediates(x, indices=[1, 2], intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    assert model.num_classes == 0


@pytest.mark.parametrize("name", ["resnet18d", "resnet50d", "resnet101d", "resnet50c", "resnet34d"])
def test_reset_classifier_on_deep_stems(name):
    model = meta_model(name)
    model.reset_classifier(11)
    assert model.fc.out_features == 11 and model.num_classes == 11


def test_reset_classifier_refusal_leaves_the_model_unchanged():
    model = rk.resnet18(num_classes=5)
    fc, pool = model.fc, model.avgpool
    for args in [(-1,), (2.5,), (3, "median"), (4, "")]:
        with pytest.raises(ValueError):
            model.reset_classifier(*args)
        assert model.num_classes == 5 and model.fc is fc and model.avgpool is pool


def test_grad_checkpointing_same_step_and_less_memory():
    """Checkpointing changes memory, not results: same loss, gradients and BatchNorm statistics."""
    torch.manual_seed(0)
    plain = rk.resnet18(num_classes=4, drop_path_rate=0.1)
    ckpt = rk.resnet18(num_classes=4, drop_path_rate=0.1)
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing(True)
    x = torch.randn(4, 3, 32, 32)
    saved = {}
    for key, model in (("plain", plain), ("ckpt", ckpt)):
        total = [0]

        def pack(t, total=total):
            total[0] += t.numel() * t.element_size()
            return t

        torch.manual_seed(1)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.train()(x).square().mean()
        loss.backward()
        saved[key] = total[0]
    for (n, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), n
    for (n, a), (_, b) in zip(plain.named_buffers(), ckpt.named_buffers()):
        assert torch.equal(a, b), n  # running stats updated once, not twice
    assert saved["ckpt"] < 0.5 * saved["plain"]


def test_group_matcher_covers_every_backbone_parameter():
    import re

    timm = pytest.importorskip("timm")

    for name in ("resnet50", "resnet50d", "resnet56", "resnetrs50"):
        model = meta_model(name)
        groups = model.group_matcher()
        for pname, _ in model.named_parameters():
            if pname.startswith("fc."):
                continue
            assert re.match(groups["stem"], pname) or re.match(groups["blocks"], pname), pname
        fine = re.match(groups["blocks"], "layer3.4.conv1.weight")
        assert fine.groups() == ("3", "4")
    v2 = meta_model("resnetv2_50x1_bit").group_matcher()
    assert v2 == timm.create_model("resnetv2_50x1_bit", pretrained=False).group_matcher()


def test_create_model_and_pretrained_cfg(tmp_path, monkeypatch):
    model = rk.create_model("resnet50d", num_classes=3)
    assert model.num_classes == 3 and model.pretrained_cfg["first_conv"] == "conv1.0"
    monkeypatch.setenv("RESNETKIT_HOME", str(tmp_path))
    monkeypatch.setenv("RESNETKIT_OFFLINE", "1")
    with pytest.raises(rk.ResnetkitError, match="place the file by hand"):
        rk.create_model("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="no published weights"):
        rk.create_model("resnet18d", pretrained=True)
    entry = rk.get_weights("resnet18.IMAGENET1K_V1")
    torch.manual_seed(0)
    torch.save(rk.resnet18().state_dict(), tmp_path / entry.file_name)
    model = rk.create_model("resnet18.IMAGENET1K_V1", pretrained=True)
    cfg = model.pretrained_cfg
    assert cfg["tag"] == "resnet18.IMAGENET1K_V1" and len(cfg["classes"]) == 1000
    assert cfg["input_size"] == (3, 224, 224) and cfg["preprocess"]["resize_size"] == 256
    backbone = rk.create_model("resnet18", pretrained=True, features_only=True, out_indices=(3, 4))
    assert backbone.feature_info.channels() == [256, 512]


def test_dilated_basicblock_follows_timm():
    """In the first block of a dilated stage conv1 keeps the previous dilation, conv2 takes the new one."""
    model = rk.resnet18(replace_stride_with_dilation=[False, True, True])
    first3, second3 = model.layer3
    assert (first3.conv1.dilation[0], first3.conv2.dilation[0]) == (1, 2)
    assert (second3.conv1.dilation[0], second3.conv2.dilation[0]) == (2, 2)
    first4 = model.layer4[0]
    assert (first4.conv1.dilation[0], first4.conv2.dilation[0]) == (2, 4)


@pytest.mark.parametrize("output_stride", sweep([32, 16, 8], [16]))
@pytest.mark.parametrize(
    "arch",
    sweep(
        [
            "resnet18",
            "resnet50",
            "resnext50_32x4d",
            "resnet18d",
            "resnet50c",
            "resnet50d",
            "resnet101d",
            "seresnet50",
            "seresnext50_32x4d",
        ],
        ["resnet18", "resnet50d", "seresnext50_32x4d"],
    ),  # fmt: skip
)
def test_timm_parity_at_every_output_stride(arch, output_stride):
    """Same weights (norms randomised: timm zeroes the last norm of each block, which would hide a
    wiring difference), same outputs, at output stride 32/16/8."""
    timm = pytest.importorskip("timm")
    theirs = timm.create_model(arch, output_stride=output_stride).eval()
    randomize_norm_stats(theirs)
    ours = rk.get_model(arch, output_stride=output_stride).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert max_abs_diff(theirs(x), ours(x)) <= 1e-4
        if output_stride == 32:  # train mode (batch statistics) too
            assert max_abs_diff(theirs.train()(x.repeat(2, 1, 1, 1)), ours.train()(x.repeat(2, 1, 1, 1))) <= 1e-4


SHARED_WITH_TIMM = [n for n in ALL if n not in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")]


@pytest.mark.parametrize("name", sweep(SHARED_WITH_TIMM, REPRESENTATIVES))
def test_what_timms_own_test_models_asks(name):
    """The parts of timm's tests/test_models.py that resnetkit failed (test_model_default_cfgs,
    test_model_forward_intermediates_features), asked the same way, for every name both share."""
    assert len(SHARED_WITH_TIMM) == 101
    with torch.device("meta"):
        model = rk.create_model(name).eval()
        assert model.head_hidden_size > 0 and model.num_features > 0
        x = input_for(model)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pre.shape[1] == model.head_hidden_size
        model.reset_classifier(0)
        assert model(x).shape == pre.shape
        pool = model.pretrained_cfg["pool_size"]
        headless = rk.create_model(name, num_classes=0, global_pool="").eval()  # deleted through __init__
        out = headless(x)
        assert out.dim() == 4 and tuple(out.shape[-2:]) == pool
        getter = rk.create_model(name, features_only=True, feature_cls="getter").eval()
        size = (3, 96, 96)
        maps = getter(torch.zeros(2, *size))
    assert len(maps) == len(getter.feature_info.channels())
    for channels, reduction, o in zip(getter.feature_info.channels(), getter.feature_info.reduction(), maps):
        assert o.shape[1] == channels and o.shape[0] == 2
        assert o.shape[-1] <= math.ceil(size[-1] / reduction) + 1


@pytest.mark.parametrize("name", ["resnet18", "resnet50d"])
def test_feature_getter_and_headless_models_equal_timms(name):
    timm = pytest.importorskip("timm")
    theirs = timm.create_model(name, features_only=True, feature_cls="getter").eval()
    randomize_norm_stats(theirs)
    ours = rk.create_model(name, features_only=True, feature_cls="getter").eval()
    rk.load_weights(ours, theirs.state_dict())  # timm's getter nests the network under "model."
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert all(max_abs_diff(a, b) == 0 for a, b in zip(theirs(x), ours(x)))
    theirs = timm.create_model(name, num_classes=0, global_pool="").eval()
    randomize_norm_stats(theirs)
    ours = rk.create_model(name, num_classes=0, global_pool="").eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        assert max_abs_diff(theirs(x), ours(x)) == 0
    assert ours.head_hidden_size == theirs.head_hidden_size
    with pytest.raises(rk.InvalidOption, match="feature_cls 'nope'"):
        rk.create_model(name, features_only=True, feature_cls="nope")
