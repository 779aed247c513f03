"""Behaviour of the ResNet module beyond torchvision parity: interface, dilation, tooling, bad input."""

import warnings
from functools import partial

import pytest
import torch
from torch import nn

import resnetkit as rk
from resnetkit.models import TORCHVISION_NAMES as ARCHITECTURES
from resnetkit.models.blocks import last_norm

from ..sweep import sweep


def small_input(batch=2, chans=3, h=64, w=64):
    return torch.randn(batch, chans, h, w, generator=torch.Generator().manual_seed(0))


def test_public_names_at_top_level():
    for name in ["ResNet", "BasicBlock", "Bottleneck", "conv3x3", "conv1x1", "list_models", "get_model"]:
        assert hasattr(rk, name)
    for name in ARCHITECTURES:
        assert callable(getattr(rk, name))


def test_conv_helpers():
    c = rk.conv3x3(8, 16, stride=2, groups=4, dilation=2)
    assert (c.kernel_size, c.stride, c.padding, c.dilation, c.groups, c.bias) == (
        (3, 3),
        (2, 2),
        (2, 2),
        (2, 2),
        4,
        None,
    )
    c = rk.conv1x1(8, 16, stride=2)
    assert (c.kernel_size, c.stride, c.bias) == ((1, 1), (2, 2), None)


def test_forward_is_features_then_head():
    m = rk.resnet18().eval()
    x = small_input()
    with torch.no_grad():
        feats = m.forward_features(x)
        assert feats.shape == (2, 512, 2, 2)
        pooled = m.forward_head(feats, pre_logits=True)
        assert pooled.shape == (2, 512)
        assert torch.equal(m.forward_head(feats), m(x))
        assert torch.equal(m.fc(pooled), m(x))


def test_reset_classifier():
    m = rk.resnet50().eval()
    m.reset_classifier(7)
    assert m(small_input()).shape == (2, 7) and m.num_classes == 7
    m.reset_classifier(0)
    assert isinstance(m.fc, nn.Identity)
    assert m(small_input()).shape == (2, 2048)
    with pytest.raises(ValueError, match="num_classes"):
        m.reset_classifier(-1)


def test_num_classes_zero_gives_pooled_features():
    m = rk.resnet18(num_classes=0).eval()
    assert m(small_input()).shape == (2, 512)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_feature_info(name):
    with torch.device("meta"):
        m = rk.get_model(name)
    expansion = 1 if name in ("resnet18", "resnet34") else 4
    # The stem (after its ReLU) first, as timm's feature_info; then the four stages.
    assert m.feature_info.channels() == [64] + [w * expansion for w in (64, 128, 256, 512)]
    assert m.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert m.feature_info.module_name() == ["relu", "layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize(
    "dilate, reductions, last",
    [
        ([False, False, False], [4, 8, 16, 32], 7),
        ([False, False, True], [4, 8, 16, 16], 14),
        ([False, True, True], [4, 8, 8, 8], 28),
        ([True, True, True], [4, 4, 4, 4], 56),
    ],
)
@pytest.mark.parametrize("name", sweep(["resnet18", "resnet34"], ["resnet18"]))
def test_basicblock_dilation(name, dilate, reductions, last):
    m = rk.get_model(name, replace_stride_with_dilation=dilate).eval()
    assert m.feature_info.reduction()[1:] == reductions
    with torch.no_grad():
        out = m.forward_features(torch.randn(1, 3, 224, 224))
    assert out.shape[-2:] == (last, last)
    dilations = [blk.conv2.dilation[0] for blk in m.layer4]
    expected = 1
    for d in dilate:
        expected *= 2 if d else 1
    assert dilations[-1] == expected


@pytest.mark.parametrize("in_chans", [1, 4])
def test_in_chans(in_chans):
    m = rk.resnet18(in_chans=in_chans, num_classes=5).eval()
    assert m.conv1.weight.shape[1] == in_chans
    assert m(small_input(chans=in_chans)).shape == (2, 5)


def test_every_parameter_gets_a_gradient():
    m = rk.resnext50_32x4d(num_classes=3)
    m(small_input(h=32, w=32)).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing


def test_zero_init_residual_zeroes_last_norm_of_every_block():
    for name in ("resnet18", "resnet50"):
        m = rk.get_model(name, zero_init_residual=True)
        blocks = [b for b in m.modules() if last_norm(b) is not None]
        assert len(blocks) == (8 if name == "resnet18" else 16)
        assert all(torch.count_nonzero(last_norm(b).weight) == 0 for b in blocks)
        # Other norms keep weight 1.
        assert torch.all(m.bn1.weight == 1)


def test_zero_init_with_groupnorm():
    m = rk.resnet50(zero_init_residual=True, norm_layer=partial(nn.GroupNorm, 32))
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in m.modules() if isinstance(b, rk.Bottleneck))


def test_torchscript_matches_eager():
    m = rk.resnet18().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(m)
    x = small_input()
    with torch.no_grad():
        assert torch.allclose(scripted(x), m(x), atol=1e-6)
        assert torch.allclose(scripted.forward_features(x), m.forward_features(x), atol=1e-6)


def test_fx_symbolic_trace_matches_eager():
    m = rk.resnet50().eval()
    gm = torch.fx.symbolic_trace(m)
    x = small_input()
    with torch.no_grad():
        assert torch.equal(gm(x), m(x))
    with pytest.raises(ValueError, match="input channels"):
        gm(small_input(chans=1))


@pytest.mark.sweep  # a compilation takes seconds: make test-scale
def test_torch_compile_matches_eager():
    m = rk.resnet18(num_classes=10).eval()
    compiled = torch.compile(m)
    x = small_input(h=32, w=32)
    with torch.no_grad():
        assert torch.allclose(compiled(x), m(x), atol=1e-4, rtol=1e-4)


def test_channels_last_same_output():
    m = rk.resnet50().eval()
    x = small_input()
    with torch.no_grad():
        ref = m(x)
        m_cl = m.to(memory_format=torch.channels_last)
        out = m_cl(x.to(memory_format=torch.channels_last))
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_bf16_autocast():
    m = rk.resnet18().eval()
    x = small_input()
    with torch.no_grad():
        ref = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    # bf16 has ~3 significant digits; the logits must still agree closely.
    assert torch.nn.functional.cosine_similarity(out.float(), ref, dim=1).min() > 0.99


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=32), "BasicBlock has no inner bottleneck width"),
        (dict(width_per_group=128), "BasicBlock has no inner bottleneck width"),
        (dict(replace_stride_with_dilation=[True, False]), "3 booleans"),
        (dict(replace_stride_with_dilation=[1, 0, 0]), "3 booleans"),
        (dict(replace_stride_with_dilation="abc"), "3 booleans"),
        (dict(in_chans=0), "in_chans"),
        (dict(num_classes=-1), "num_classes"),
        (dict(num_classes=2.5), "num_classes"),
        (dict(norm_layer="batchnorm"), "norm_layer"),
    ],
)
def test_bad_options_raise_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rk.ResNet(rk.BasicBlock, [2, 2, 2, 2], **kwargs)


@pytest.mark.parametrize("layers", [[2, 2, 2], [2, 2, 2, 0], [2, 2, 2, -1], [2, 2, 2, 1.5], "2222", [2, 2, 2, True]])
def test_bad_layers(layers):
    with pytest.raises(ValueError, match="4 positive integers"):
        rk.ResNet(rk.Bottleneck, layers)


def test_builder_fixed_options_cannot_be_overridden():
    with pytest.raises(ValueError, match="groups=32"):
        rk.resnext50_32x4d(groups=8)


def test_unknown_model_lists_close_names():
    with pytest.raises(ValueError, match="resnet50"):
        rk.get_model("resnet05")
    with pytest.raises(ValueError, match="list_models"):
        rk.get_model("vgg16")


def test_wrong_channel_count_names_expected_shape():
    m = rk.resnet18()
    with pytest.raises(ValueError, match=r"expects 3 input channels \(N, 3, H, W\).*in_chans=1"):
        m(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 3, 32), (32,)])
def test_too_few_dimensions_names_expected_shape(shape):
    m = rk.resnet18()
    with pytest.raises(ValueError, match=r"4-D input \(N, 3, H, W\)"):
        m(torch.randn(*shape))


def test_list_models_filters_as_torchvisions():
    import torchvision

    assert rk.list_models(include="resnext*")[:3] == ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"]
    assert rk.list_models(include=["wide*", "resnet1*"], exclude=["*d", "*t", "*s", "*c"]) == [
        "resnet18", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2", "resnet110",
    ]  # fmt: skip
    theirs = set(torchvision.models.list_models(module=torchvision.models, include="*resne*t*"))
    assert theirs <= set(rk.list_models(include="*resne*t*"))
