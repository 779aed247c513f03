"""Safe loading, safetensors, and the mismatch diagnosis."""

import os
import pickle

import pytest
import torch
import torchvision.models as tvm

import resnetkit as rk
from resnetkit.errors import ResnetkitError
from resnetkit.weights.io import load_torch, read_weights_file
from resnetkit.weights.loading import identify_architecture


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": Exploit(marker)}, f, protocol=2)
    # torch.save format too
    torch.save({"state": Exploit(marker)}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(ResnetkitError, match="refused to load"):
            load_torch(p)
        with pytest.raises(ResnetkitError, match="refused to load"):
            rk.load_weights(rk.resnet18(), str(p))
    assert not marker.exists()


def test_safetensors_round_trip_with_metadata(tmp_path):
    m = rk.resnet18(num_classes=4)
    meta = {"arch": "resnet18", "num_classes": 4, "classes": ["a", "b", "c", "d"]}
    rk.save_safetensors(m.state_dict(), tmp_path / "m.safetensors", meta)
    state, read_meta = rk.load_safetensors(tmp_path / "m.safetensors")
    assert read_meta == meta
    fresh = rk.resnet18(num_classes=4)
    rk.load_weights(fresh, str(tmp_path / "m.safetensors"))
    for k, v in m.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    built = rk.resnet18(weights=str(tmp_path / "m.safetensors"))
    assert built.fc.out_features == 4


def test_prefixes_stripped(tmp_path):
    tv = tvm.resnet18()
    wrapped = {"module." + k: v for k, v in tv.state_dict().items()}
    torch.save({"model": {"model." + k: v for k, v in wrapped.items()}}, tmp_path / "ddp.pt")
    state, _ = read_weights_file(tmp_path / "ddp.pt")
    rk.load_weights(rk.resnet18(), state)


def test_diagnosis_names_the_architecture(tmp_path):
    torch.save(tvm.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ResnetkitError) as err:
        rk.load_weights(rk.resnet18(), str(tmp_path / "r34.pth"))
    msg = str(err.value)
    assert "these weights are resnet34's, not resnet18's" in msg and "unexpected keys" in msg
    assert len(msg) < 1200  # a diagnosis, not a wall of keys
    assert identify_architecture(tvm.wide_resnet50_2().state_dict()) == "wide_resnet50_2"


def test_head_mismatch_needs_reset():
    state = tvm.resnet50().state_dict()
    model = rk.resnet50(num_classes=10)
    with pytest.raises(ResnetkitError, match="only the classifier differs.*head='reset'"):
        rk.load_weights(model, state)
    before = model.fc.weight.clone()
    rk.load_weights(model, state, head="reset")
    assert torch.equal(model.fc.weight, before)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_builder_num_classes_replaces_head(tmp_path):
    torch.save(tvm.resnet18().state_dict(), tmp_path / "r18.pth")
    m = rk.resnet18(weights=str(tmp_path / "r18.pth"), num_classes=7)
    assert m.fc.out_features == 7
    m = rk.resnet18(weights=str(tmp_path / "r18.pth"))
    assert m.fc.out_features == 1000


@pytest.mark.parametrize("in_chans", [1, 4])
def test_stem_adapts_to_in_chans(in_chans):
    tv = tvm.resnet18().eval()
    model = rk.resnet18(in_chans=in_chans).eval()
    rk.load_weights(model, tv.state_dict())
    if in_chans == 1:
        x = torch.randn(1, 1, 32, 32)
        with torch.no_grad():
            assert torch.allclose(model(x), tv(x.repeat(1, 3, 1, 1)), atol=1e-4)
    else:
        assert model.conv1.weight.shape[1] == 4


def test_enum_and_string_access():
    e = rk.ResNet50_Weights.IMAGENET1K_V2
    assert e.url.endswith("resnet50-11ad3fa6.pth") and e.meta["metrics"]["ImageNet-1K"]["acc@1"] == 80.858
    assert rk.ResNet50_Weights.DEFAULT is e
    assert rk.get_weights("resnet50.IMAGENET1K_V2") == e.value
    assert len(e.meta["categories"]) == 1000 and e.meta["categories"][0] == "tench"
    with pytest.raises(ValueError, match="did you mean"):
        rk.get_weights("resnet50.IMAGENET1K_V9")
    with pytest.raises(ValueError, match="for resnet50, not resnet18"):
        rk.resnet18(weights=e)


def test_catalog_matches_torchvision_facts():
    for arch in rk.list_models()[:10]:
        for w in tvm.get_model_weights(arch):
            ours = rk.get_weights(f"{arch}.{w.name}")
            assert ours.url == w.url
            assert ours.num_params == w.meta["num_params"]
            assert ours.acc1 == w.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            assert ours.gflops == w.meta["_ops"]
            assert ours.meta["categories"] == w.meta["categories"]
        assert rk.get_weights(f"{arch}.DEFAULT").tag == tvm.get_model_weights(arch).DEFAULT.name


def test_catalog_preprocessing_equals_torchvision_on_real_images():
    from PIL import Image
    from sklearn.datasets import load_sample_images

    for arr in load_sample_images().images:  # two real photographs shipped with scikit-learn
        img = Image.fromarray(arr)
        for arch in ("resnet50", "wide_resnet101_2"):
            for w in tvm.get_model_weights(arch):
                ours = rk.get_weights(f"{arch}.{w.name}").transforms()(img)
                theirs = w.transforms()(img)
                assert ours.shape == theirs.shape
                assert (ours - theirs).abs().max() < 1e-5


def test_runtime_never_imports_torchvision_models():
    """(``import torchvision`` loads torchvision.models itself, so the check is on our source.)"""
    import ast
    from pathlib import Path

    src = Path(rk.__file__).parent
    offenders = []
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module + "." + a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n.startswith("torchvision.models") or n == "torchvision.models" for n in names):
                offenders.append(str(path))
    assert not offenders


def test_timm_rsb_entry_and_its_preprocessing():
    timm = pytest.importorskip("timm")
    from PIL import Image
    from sklearn.datasets import load_sample_images

    entry = rk.get_weights("resnet50.a1_in1k")  # timm's tag: the same file as the older TIMM_A1_IN1K entry
    older = rk.get_weights("resnet50.TIMM_A1_IN1K")
    assert entry.source == older.source == "timm" and entry.url == older.url and entry.sha256_prefix == "14fe96d1"
    assert (
        entry.acc1 == 81.24 and entry.eval_size == 288 and older.acc1 == 80.4
    )  # timm's results at 288 px; the paper's at 224
    assert rk.ResNet50_Weights.TIMM_A1_IN1K.value is older
    assert rk.get_weights("resnet50.DEFAULT").tag == "IMAGENET1K_V2"  # still the best published one
    cfg = timm.data.resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg("resnet50.a1_in1k").to_dict())
    theirs = timm.data.create_transform(**cfg)
    img = Image.fromarray(load_sample_images().images[0])
    assert (entry.transforms()(img) - theirs(img)).abs().max() < 1e-5
