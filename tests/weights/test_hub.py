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


def test_a_failing_hub_is_named_as_that_and_credentials_never_printed(tmp_path, hub, monkeypatch, capsys):
    """A mirror configured with credentials (https://USER:TOKEN@host) that answers 500: one line,
    saying the server fails (not "offline"), and the token nowhere in the output."""
    import huggingface_hub.utils._http as client_http

    monkeypatch.setattr(client_http.time, "sleep", lambda s: None)  # the client's back-off, without the wait
    hub.fail_with = 500
    monkeypatch.setenv("HF_ENDPOINT", hub.url.replace("http://", "http://alice:s3cr3t-token@"))
    image = tmp_path / "photo.png"
    Image.new("RGB", (40, 40)).save(image)
    assert main(["predict", str(image), "--weights", "hf-hub:org/model"]) == 1
    assert main(["weights", "push", str(tmp_path), "org/model"]) == 1  # no run there: refused before the Hub
    err = capsys.readouterr().err
    assert "s3cr3t-token" not in err and "alice" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2 and "answered 500 Internal Server Error" in lines[0] and "offline" not in lines[0]


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"crop_pct": 0}, "crop_pct 0"),
        ({"crop_pct": 1.3}, "crop_pct 1.3"),
        ({"num_classes": "ten"}, "num_classes 'ten'"),
        ({"input_size": [3, 20000, 20000]}, "must be an integer in [1, "),
        ({"mean": [0.5, 0.5], "std": [0.2, 0.2]}, "2 values for a 3-channel model"),
        ({"crop_mode": "stretch"}, "crop_mode 'stretch'"),
        ({"interpolation": "lanczos"}, "interpolation 'lanczos'"),
    ],
)
def test_a_repository_config_that_cannot_be_right_is_refused_by_name(tmp_path, hub, capsys, change, expected):
    _, files = timm_repo(tmp_path)
    config = json.loads(files["config.json"])
    target = config if "num_classes" in change else config["pretrained_cfg"]
    target.update(change)
    hub.repos["org/odd"] = {"files": dict(files, **{"config.json": json.dumps(config).encode()}), "gated": False}
    assert main(["weights", "convert", "hf-hub:org/odd", str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and "config.json" in err and len(err.splitlines()) == 1 and "unexpected" not in err


def test_timm_crop_modes_are_applied_as_timm_applies_them(tmp_path, hub):
    """squash and border, as timm's resolve_data_config + create_transform (what its inference.py runs)."""
    from resnetkit.batch.decode import Decoder
    from resnetkit.deploy.fused import normalise

    photo = Image.fromarray((torch.rand(70, 130, 3) * 255).byte().numpy())
    theirs, files = timm_repo(tmp_path)
    for mode, pct in (("squash", 0.9), ("border", 1.0), ("border", 0.9), ("center", 0.95)):
        config = json.loads(files["config.json"])
        config["pretrained_cfg"].update(crop_mode=mode, crop_pct=pct, input_size=[3, 48, 48])
        hub.repos[f"org/{mode}{pct}"] = {"files": dict(files, **{"config.json": json.dumps(config).encode()})}
        hub.repos[f"org/{mode}{pct}"]["gated"] = False
        card = rk.create_model("resnet18", weights=f"hf-hub:org/{mode}{pct}").card
        data_cfg = timm.data.resolve_data_config({}, pretrained_cfg=config["pretrained_cfg"])
        pixels = timm.data.create_transform(**data_cfg, use_prefetcher=True)(photo)  # uint8 (C, H, W)
        want = timm.data.create_transform(**data_cfg)(photo)
        crop = torch.from_numpy(Decoder(card.preprocess).crop(photo))
        assert torch.equal(crop.permute(2, 0, 1), pixels), mode  # the same pixels
        # the same floats, up to x/255 against x * (1/255)
        assert (card.preprocess.transform()(photo) - want).abs().max() < 1e-5, mode
        assert (normalise(crop[None], card.preprocess, 3)[0] - want).abs().max() < 1e-5, mode


def test_push_to_an_invalid_repository_id_is_refused_first(digits_run, hub, capsys):
    assert main(["weights", "push", str(digits_run), "me/bad name!"]) == 1
    err = capsys.readouterr().err.strip()
    assert "repository id 'me/bad name!' is not valid" in err and len(err.splitlines()) == 1
    assert hub.requests == []


def test_a_repository_with_only_pytorch_model_bin_loads_offline_from_the_cache(tmp_path, hub, monkeypatch):
    import io

    from safetensors.torch import load

    theirs, files = timm_repo(tmp_path)
    buffer = io.BytesIO()
    torch.save(load(files.pop("model.safetensors")), buffer)
    hub.repos["org/bin"] = {"files": dict(files, **{"pytorch_model.bin": buffer.getvalue()}), "gated": False}
    rk.create_model("resnet18", weights="hf-hub:org/bin")  # online: cached whole
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ours = rk.create_model("resnet18", weights="hf-hub:org/bin").eval()
    with torch.no_grad():
        assert max_abs_diff(theirs(torch.ones(1, 3, 32, 32)), ours(torch.ones(1, 3, 32, 32))) == 0
