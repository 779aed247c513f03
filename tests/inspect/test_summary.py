"""`resnetkit summary`: values computed from the real model, checked against the paper and torchvision."""

import json
from functools import partial

import pytest
import torch

import resnetkit as rk
from resnetkit.inspect.diagram import draw
from resnetkit.inspect.render import to_json, to_markdown, to_table
from resnetkit.inspect.summary import summarize, summarize_arch
from resnetkit.models import frozen_batch_norm

from ..clirun import cli
from ..sweep import sweep

# torchvision's published `_ops` (GFLOPS as it reports them, i.e. conv + linear MACs).
PUBLISHED_GMACS = {
    "resnet18": 1.814,
    "resnet34": 3.664,
    "resnet50": 4.089,
    "resnet101": 7.801,
    "resnet152": 11.514,
    "resnext50_32x4d": 4.23,
    "resnext101_32x8d": 16.41,
    "resnext101_64x4d": 15.46,
    "wide_resnet50_2": 11.398,
    "wide_resnet101_2": 22.753,
}


@pytest.mark.parametrize("arch", list(PUBLISHED_GMACS))
def test_totals_match_model_and_published_macs(arch):
    s = summarize_arch(arch)
    with torch.device("meta"):
        n = sum(p.numel() for p in rk.get_model(arch).parameters())
    assert s.total_params == n
    assert sum(r.params for r in s.stages) == n
    assert abs(s.gmacs - PUBLISHED_GMACS[arch]) / PUBLISHED_GMACS[arch] < 0.005
    assert sum(r.macs for r in s.stages) == s.total_macs


def test_resnet50_table_rows():
    s = summarize_arch("resnet50")
    assert [r.name for r in s.stages] == ["conv1", "pool", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]
    assert [r.output_size for r in s.stages[:6]] == [[112, 112], [56, 56], [56, 56], [28, 28], [14, 14], [7, 7]]
    assert s.stages[2].spec == "[1x1, 64 | 3x3, 64 | 1x1, 256] x 3"
    assert s.stages[5].spec == "[1x1, 512 | 3x3, 512 | 1x1, 2048] x 3"
    assert s.stages[0].spec == "7x7, 64, stride 2"
    assert s.total_params == 25_557_032


def test_resnet18_rows_and_blocks():
    s = summarize_arch("resnet18")
    assert s.stages[2].spec == "[3x3, 64 | 3x3, 64] x 2"
    assert [r.output_size for r in s.stages[1:6]] == [[56, 56], [56, 56], [28, 28], [14, 14], [7, 7]]
    proj = {b.name: b.projection_reason for b in s.blocks if b.projection}
    # Only the first block of stages 2-4 needs a projection; resnet18's stage 1 keeps 64 channels.
    assert proj == {
        "layer2.0": "stride and channels",
        "layer3.0": "stride and channels",
        "layer4.0": "stride and channels",
    }
    assert s.blocks[2].in_shape == [64, 56, 56] and s.blocks[2].out_shape == [128, 28, 28] and s.blocks[2].stride == 2


def test_resnext_notation():
    s = summarize_arch("resnext50_32x4d")
    assert s.stages[2].spec == "[1x1, 128 | 3x3, 128, C=32 | 1x1, 256] x 3"


def test_resnet50_first_projection_is_for_channels():
    s = summarize_arch("resnet50")
    assert s.blocks[0].projection_reason == "channels"


def test_odd_input_size():
    s = summarize_arch("resnet50", (97, 131))
    assert [r.output_size for r in s.stages[:6]] == [[49, 66], [25, 33], [25, 33], [13, 17], [7, 9], [4, 5]]


def test_dilation_keeps_output_size():
    s = summarize_arch("resnet18", replace_stride_with_dilation=[False, True, True])
    assert [r.output_size for r in s.stages[2:6]] == [[56, 56], [28, 28], [28, 28], [28, 28]]
    assert "d=2" in s.stages[4].spec and "d=4" in s.stages[5].spec
    assert s.blocks[-1].dilation == 4


def test_custom_norm_layer_counts():
    model = rk.resnet50(norm_layer=partial(torch.nn.GroupNorm, 32))
    s = summarize(model, (64, 64), arch="resnet50-gn")
    assert s.total_params == sum(p.numel() for p in model.parameters())
    frozen = rk.resnet18(norm_layer=frozen_batch_norm)
    s = summarize(frozen, (64, 64))
    assert s.total_params == sum(p.numel() for p in frozen.parameters())


def test_renderings_and_json_schema():
    s = summarize_arch("resnet34")
    table = to_table(s, blocks=True)
    assert "conv3_x" in table and "layer4.0" in table and "counted:" in table
    md = to_markdown(s)
    assert md.count("\n|") >= 8 and "\\|" in md
    d = json.loads(to_json(s))
    assert set(d) == {
        "arch",
        "input_size",
        "in_chans",
        "num_classes",
        "stages",
        "blocks",
        "total_params",
        "total_macs",
        "total_gmacs",
        "counted",
        "schema_version",
        "config",
    }
    assert d["schema_version"] == 1 and len(d["blocks"]) == 16
    assert set(d["stages"][0]) == {"name", "module", "output_size", "spec", "blocks", "params", "macs"}
    assert set(d["blocks"][0]) == {
        "name",
        "block",
        "in_shape",
        "out_shape",
        "stride",
        "dilation",
        "projection",
        "projection_reason",
        "params",
        "macs",
    }


@pytest.mark.parametrize("ext", ["svg", "png"])
@pytest.mark.parametrize("arch", sweep(["resnet18", "resnet152"], ["resnet18"]))
def test_diagram_files(tmp_path, arch, ext):
    path = draw(summarize_arch(arch), tmp_path / f"{arch}.{ext}")
    assert path.stat().st_size > 10_000
    head = path.read_bytes()[:200]
    assert (b"<svg" in head or b"<?xml" in head) if ext == "svg" else head.startswith(b"\x89PNG")


def test_cli(tmp_path):
    def run(*args):
        return cli("summary", *args)

    proc = run("resnet50", "--input-size", "97x131", "--format", "json", "--diagram", str(tmp_path / "d.svg"))
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["input_size"] == [97, 131] and (tmp_path / "d.svg").is_file()
    proc = run("resnet18", "--dilation", "0,1,1", "--blocks")
    assert proc.returncode == 0 and "d=4" in proc.stdout
    proc = run("resnet50", "--groups", "32", "--width-per-group", "4")
    assert proc.returncode == 0 and "C=32" in proc.stdout
    proc = run("resnet18", "--groups", "32")
    assert proc.returncode == 1 and "BasicBlock" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run("resnet5")
    assert proc.returncode == 1 and "did you mean" in proc.stderr
    proc = run("resnet18", "--dilation", "1,1")
    assert proc.returncode == 2 and "3 comma-separated" in proc.stderr
