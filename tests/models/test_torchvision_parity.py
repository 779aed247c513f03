"""The drop-in contract: resnetkit's builders against torchvision.models (test dependency only)."""

import itertools

import pytest
import torch
import torchvision.models as tvm

import resnetkit as rk
from resnetkit.models import TORCHVISION_NAMES as ARCHITECTURES

from ..sweep import sweep
from .helpers import max_abs_diff, randomize_norm_stats

ARCHS = list(ARCHITECTURES)  # the ten torchvision builders
# Heavy models run the 224x224 comparison at batch 1; the rest at batch 2.
HEAVY = {"resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2", "resnet101", "wide_resnet50_2"}

PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
}


# One of each code path in make test (basic, bottleneck, grouped, wide); every builder in make test-scale.
@pytest.fixture(scope="module", params=sweep(ARCHS, ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"]))
def pair(request):
    """(name, torchvision model, resnetkit model) built under the same seed."""
    name = request.param
    torch.manual_seed(0)
    tv = getattr(tvm, name)()
    torch.manual_seed(0)
    ours = rk.get_model(name)
    return name, tv, ours


def test_registry_lists_the_ten_builders_first():
    assert rk.list_models()[:10] == ARCHS == list(PUBLISHED_PARAMS)


def test_state_dict_keys_shapes_and_seeded_init(pair):
    name, tv, ours = pair
    a, b = tv.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), f"{name}: {key} differs after seeded construction"


def test_parameter_count(pair):
    name, tv, ours = pair
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in tv.parameters()) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("size", sweep([(224, 224), (97, 131)], [(97, 131)]))
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_outputs_equal(pair, size, mode):
    name, tv, ours = pair
    randomize_norm_stats(tv, seed=1)
    ours.load_state_dict(tv.state_dict(), strict=True)
    batch = 1 if (name in HEAVY and mode == "eval") else 2
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(7))
    tv.train(mode == "train")
    ours.train(mode == "train")
    with torch.no_grad():
        diff = max_abs_diff(tv(x), ours(x))
    assert diff <= 1e-6, f"{name} {mode} {size}: max abs diff {diff}"
    if mode == "train":
        for (k, va), vb in zip(tv.state_dict().items(), ours.state_dict().values()):
            assert torch.equal(va, vb), f"running statistic {k} diverged"


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d"])
@pytest.mark.parametrize("dilate", sweep(list(itertools.product([False, True], repeat=3)), [(False, True, True)]))
def test_dilation_combinations_match(name, dilate):
    torch.manual_seed(0)
    tv = getattr(tvm, name)(replace_stride_with_dilation=list(dilate))
    ours = rk.get_model(name, replace_stride_with_dilation=list(dilate))
    randomize_norm_stats(tv)
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(1, 3, 65, 71, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for mode in (False, True):
            tv.train(mode)
            ours.train(mode)
            assert max_abs_diff(tv(x), ours(x)) <= 1e-6
    tv_feat = torch.nn.Sequential(*list(tv.children())[:-2])(x)
    assert ours.forward_features(x).shape == tv_feat.shape


def test_torchvision_checkpoint_file_loads_strict(tmp_path):
    tv = tvm.resnet34()
    path = tmp_path / "resnet34.pth"
    torch.save(tv.state_dict(), path)
    ours = rk.resnet34()
    ours.load_state_dict(torch.load(path, weights_only=True), strict=True)


@pytest.mark.parametrize(
    "norm",
    [
        pytest.param(lambda c: torch.nn.GroupNorm(32, c), id="groupnorm"),
        pytest.param(__import__("torchvision.ops", fromlist=["FrozenBatchNorm2d"]).FrozenBatchNorm2d, id="frozenbn"),
    ],
)
def test_custom_norm_layer_matches(norm):
    torch.manual_seed(0)
    tv = tvm.resnet50(norm_layer=norm)
    torch.manual_seed(0)
    ours = rk.resnet50(norm_layer=norm)
    assert list(tv.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_abs_diff(tv(x), ours(x)) <= 1e-6


def test_zero_init_residual_matches_torchvision():
    torch.manual_seed(0)
    tv = tvm.resnet50(zero_init_residual=True)
    torch.manual_seed(0)
    ours = rk.resnet50(zero_init_residual=True)
    for (k, a), b in zip(tv.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), k
