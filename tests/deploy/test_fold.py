"""BatchNorm folding: exact for every builder, the original model untouched."""

import pytest
import torch

import resnetkit as rk
from resnetkit.deploy import fold_batchnorm

from ..models.helpers import randomize_norm_stats
from ..sweep import sweep


def rel_err(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


# One of each structure (the deeper names repeat the same blocks): plain, bottleneck, grouped,
# wide, deep stem + average-pool shortcut, SE, CIFAR option-A.
FOLD_ARCHS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "resnet18d",
    "resnet50c",
    "resnet50d",
    "seresnet50",
    "seresnext50_32x4d",
    "resnet20",
    "resnet56",
]


@pytest.mark.parametrize(
    "arch", sweep(FOLD_ARCHS, ["resnet18", "resnext50_32x4d", "resnet50d", "seresnet50", "resnet20"])
)
def test_fold_exact_for_every_builder(arch):
    torch.manual_seed(0)
    model = rk.get_model(arch).eval()
    randomize_norm_stats(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert rel_err(model(x), folded(x)) < 1e-5
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # original untouched
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_fold_with_dilation_and_groups():
    model = rk.resnext50_32x4d(replace_stride_with_dilation=[False, True, True]).eval()
    randomize_norm_stats(model)
    folded = fold_batchnorm(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(model(x), folded(x)) < 1e-5
    basic = rk.resnet18(replace_stride_with_dilation=[True, True, True]).eval()
    randomize_norm_stats(basic)
    with torch.no_grad():
        assert rel_err(basic(x), fold_batchnorm(basic)(x)) < 1e-5
