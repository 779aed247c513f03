"""Hugging Face Hub ids (`hf-hub:ORG/NAME`, `ORG/NAME`, `@REVISION`) and `weights push`, through the
real huggingface_hub client against a stand-in Hub on 127.0.0.1 (HF_ENDPOINT). timm and transformers
write the repositories and, after a push, timm reads ours back."""

import json

import pytest
import torch
from PIL import Image

import resnetkit as rk
from resnetkit.cli import main

from ..models.helpers import max_abs_diff, randomize_norm_stats
from .hub_server import COMMIT, StandInHub

huggingface_hub = pytest.importorskip("huggingface_hub")
timm = pytest.importorskip("timm")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    with StandInHub() as server:
        # Our code reads these at call time; timm's loader (used as the oracle) reads the client's constants.
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no login of the machine's user
        for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "RESNETKIT_OFFLINE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield server


def from_source(source):
    from resnetkit.weights.factory import model_from_weights
    from resnetkit.weights.resolve import resolve

    return model_from_weights(resolve(source)).eval()


def folder_files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def timm_repo(tmp_path, num_classes=5, labels=None):
    """A repository as timm's push_to_hf_hub writes it (save_for_hf: model.safetensors + config.json)."""
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=num_classes).eval()
    randomize_norm_stats(model)
    save_for_hf(model, str(tmp_path / "timm-repo"), safe_serialization=True,
                model_config={"label_names": labels} if labels else None)  # fmt: skip
    return model, folder_files(tmp_path / "timm-repo")


def transformers_repo(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ResNetConfig(
        num_labels=3, depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], layer_type="basic"
    )
    cfg.id2label = {0: "ant", 1: "bee", 2: "wasp"}
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    torch.manual_seed(1)
    model = transformers.ResNetForImageClassification(cfg).eval()
    randomize_norm_stats(model)
    model.save_pretrained(tmp_path / "hf-repo")
    return model, folder_files(tmp_path / "hf-repo")


def test_a_timm_repository_loads_by_hf_hub_id_with_its_preprocessing(tmp_path, hub):
    theirs, files = timm_repo(tmp_path, labels=["a", "b", "c", "d", "e"])
    hub.repos["timm/resnet18.test"] = {"files": files, "gated": False}
    ours = rk.create_model("resnet18", weights="hf-hub:timm/resnet18.test").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_abs_diff(theirs(x), ours(x)) == 0
    card = ours.card
    assert card.classes == ("a", "b", "c", "d", "e") and card.source == "hf-hub:timm/resnet18.test"
    data_cfg = timm.data.resolve_data_config({}, model=theirs)
    assert card.preprocess.crop_size == data_cfg["input_size"][-1]
    assert card.preprocess.interpolation == data_cfg["interpolation"]
    # A second load is served from huggingface_hub's cache: the files are not fetched again.
    gets = sum(1 for method, _ in hub.requests if method == "GET")
    rk.create_model("resnet18", weights="hf-hub:timm/resnet18.test")
    assert sum(1 for method, _ in hub.requests if method == "GET") == gets


def test_a_transformers_repository_loads_by_bare_id_and_revision(tmp_path, hub, capsys):
    theirs, files = transformers_repo(tmp_path)
    hub.repos["microsoft/resnet-test"] = {"files": files, "gated": False}
    x = torch.randn(2, 3, 64, 64)
    for source in ("microsoft/resnet-test", f"microsoft/resnet-test@{COMMIT}"):
        ours = rk.get_model("resnet18", weights=source).eval()
        with torch.no_grad():
            assert max_abs_diff(theirs(x).logits, ours(x)) <= 1e-4
        assert ours.card.classes == ("ant", "bee", "wasp")
    # From the command line, every --weights accepts it.
    image = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), (200, 30, 90)).save(image)
    assert main(["predict", "--weights", "microsoft/resnet-test", str(image), "--json", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["top"][0]["class"] in ("ant", "bee", "wasp")


@pytest.mark.parametrize(
    "source,setup,expected",
    [
        ("hf-hub:nobody/missing", None, "no Hugging Face Hub repository of that name"),
        ("nobody/missing", None, "no such file or directory nobody/missing, and no Hugging Face Hub repository"),
        ("org/empty", {"README.md": b"hi"}, "has no config.json on the Hub"),
        ("org/noweights", {"config.json": b'{"architecture": "resnet18"}'}, "holds no weights resnetkit reads"),
        ("org/good@v9", "timm", "has no revision 'v9'"),
        ("org/gated", "gated", "gated repository"),
    ],
)
def test_hub_failures_are_one_line(tmp_path, hub, capsys, source, setup, expected):
    repo = source.split(":")[-1].split("@")[0]
    if setup == "timm" or setup == "gated":
        hub.repos[repo] = {"files": timm_repo(tmp_path)[1], "gated": setup == "gated"}
    elif setup is not None:
        hub.repos[repo] = {"files": setup, "gated": False}
    assert main(["weights", "convert", source, str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_gated_repository_loads_with_the_users_token(tmp_path, hub, monkeypatch):
    theirs, files = timm_repo(tmp_path)
    hub.repos["org/gated"] = {"files": files, "gated": True}
    monkeypatch.setenv("HF_TOKEN", hub.token)
    ours = rk.create_model("resnet18", weights="hf-hub:org/gated").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert max_abs_diff(theirs(x), ours(x)) == 0


def test_offline_mode_uses_the_cache_and_names_what_is_missing(tmp_path, hub, monkeypatch, capsys):
    theirs, files = timm_repo(tmp_path)
    hub.repos["org/cached"] = {"files": files, "gated": False}
    rk.create_model("resnet18", weights="hf-hub:org/cached")  # online: now in the cache
    hub.repos.clear()  # nothing answers any more
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(hub.requests)
    ours = rk.create_model("resnet18", weights="hf-hub:org/cached").eval()
    assert len(hub.requests) == requests  # offline: not one request
    with torch.no_grad():
        assert max_abs_diff(theirs(torch.ones(1, 3, 32, 32)), ours(torch.ones(1, 3, 32, 32))) == 0
    assert main(["weights", "convert", "hf-hub:org/never-seen", str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot download" in err and "not in the Hugging Face cache" in err and len(err.splitlines()) == 1


def test_push_publishes_a_run_that_timm_and_resnetkit_load(digits_run, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", hub.token)
    assert main(["weights", "push", str(digits_run), "me/digits"]) == 0, hub.requests
    assert "published" in capsys.readouterr().out
    files = hub.repos["me/digits"]["files"]
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    readme = files["README.md"].decode()
    assert "library_name: timm" in readme and "| metric | value |" in readme
    ours = from_source(str(digits_run))
    pushed = from_source("hf-hub:me/digits")
    theirs = timm.create_model("hf-hub:me/digits", pretrained=True).eval()
    x = torch.randn(2, ours.card.in_chans, ours.card.input_size, ours.card.input_size)
    with torch.no_grad():
        assert max_abs_diff(ours(x), pushed(x)) == 0
        assert max_abs_diff(ours(x), theirs(x)) == 0
    assert pushed.card.classes == ours.card.classes and pushed.card.preprocess == ours.card.preprocess
    assert tuple(timm.data.resolve_data_config({}, model=theirs)["input_size"]) == (
        ours.card.in_chans,
        ours.card.input_size,
        ours.card.input_size,
    )


def test_push_without_a_login_says_how_to_log_in(digits_run, hub, capsys):
    hub.require_token = True
    assert main(["weights", "push", str(digits_run), "me/digits"]) == 1
    err = capsys.readouterr().err.strip()
    assert "huggingface-cli login" in err and len(err.splitlines()) == 1


def test_a_mistyped_path_is_not_sent_to_the_hub(tmp_path, hub, monkeypatch, capsys):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["weights", "convert", "runs/digit", str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert "runs/digit: no such file or directory" in err and "hf-hub:runs/digit" in err
    assert hub.requests == []  # decided locally, at once


def test_an_unresolvable_hub_answers_from_the_cache_at_once(tmp_path, hub, monkeypatch, capsys):
    theirs, files = timm_repo(tmp_path)
    hub.repos["org/cached"] = {"files": files, "gated": False}
    from_source("hf-hub:org/cached")
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")  # a name no resolver knows: no network
    ours = from_source("hf-hub:org/cached")  # the cached copy, without 25 s of retries
    with torch.no_grad():
        assert max_abs_diff(theirs(torch.ones(1, 3, 32, 32)), ours(torch.ones(1, 3, 32, 32))) == 0
