"""One writer per run directory, eval never writing over the user's files, and a full disk while
saving: the second process is refused naming the first, nothing the user had is replaced, the last
good checkpoint stays good."""

import errno
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import resnetkit.fileio as fileio
from resnetkit.engine.config import make_config
from resnetkit.engine.trainer import train

from ..clirun import cli
from ..imagegen import write_small_weights

TINY = ["--image-size", "16", "--workers", "0", "--quiet", "--amp", "none", "-b", "32"]


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return lines[0]


HOLDER = textwrap.dedent(
    """
    import sys
    from resnetkit.engine.config import make_config
    from resnetkit.engine.trainer import train

    def pause(trainer):  # a run in progress: it holds its directory while waiting for the test
        if trainer.global_step == 1:
            print("training", flush=True)
            sys.stdin.readline()

    cfg = make_config("digits", image_size=16, epochs=1, max_steps=2, amp="none", quiet=True, workers=0,
                      batch_size=32, out=sys.argv[1])
    train(cfg, log=lambda s: None, on_step=pause)
    print("done", flush=True)
    """
)


def test_a_held_run_directory_refuses_train_resume_and_exist_ok(tmp_path):
    """The run directory's lock held (an open lock file: another process, as far as the lock can tell),
    every way into it is refused in one line naming the holder; once released, the run continues."""
    out = tmp_path / "run"
    assert cli("train", "--out", out, *TINY, "--max-steps", "2").returncode == 0
    with fileio.OneWriter(out, "run directory"):
        for args in (
            ["train", "--out", out, *TINY],
            ["train", "--resume", out],
            ["train", "--out", out, "--exist-ok", *TINY],
        ):
            line = one_line_error(cli(*args))
            assert f"run directory {out} is being written by another process (pid " in line, line
    assert cli("train", "--resume", out, "--max-steps", "3").returncode == 0


@pytest.mark.sweep  # a second real process: make test-scale (the same refusals in-process: above)
def test_a_second_trainer_on_the_same_run_directory_is_refused(tmp_path):
    """A real second process: while one `train` runs in --out, another is refused in one line naming
    the first one's pid, and the first finishes with its files intact."""
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline() == "training\n"
        for args in (
            ["train", "--out", out, *TINY],
            ["train", "--resume", out],
            ["train", "--out", out, "--exist-ok", *TINY],
        ):
            line = one_line_error(cli(*args))
            assert f"run directory {out} is being written by another process (pid {first.pid}" in line, line
        first.stdin.write("\n")
        first.stdin.flush()
        assert first.stdout.readline() == "done\n" and first.wait(120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert (out / "last.pt").is_file()
    resumed = cli("train", "--resume", out, "--max-steps", "3")  # the lock went with its process
    assert resumed.returncode == 0, resumed.stderr


def test_eval_writes_beside_a_run_or_where_told_never_over_the_users_files(tmp_path, monkeypatch):
    weights = write_small_weights(tmp_path / "w.safetensors", crop=16)
    work = tmp_path / "work"
    work.mkdir()
    (work / "eval.json").write_text("my own notes")
    (work / "confusion.png").write_text("my own picture")
    monkeypatch.chdir(work)
    data = _tiny_folder(tmp_path)
    plain = cli("eval", "--weights", weights, "--data", data, "-j", "0")
    assert plain.returncode == 0, plain.stderr
    assert "nothing saved (pass --out DIR" in plain.stdout
    assert (work / "eval.json").read_text() == "my own notes"
    assert (work / "confusion.png").read_text() == "my own picture"
    saved = cli("eval", "--weights", weights, "--data", data, "-j", "0", "--out", tmp_path / "reports")
    assert saved.returncode == 0 and json.loads((tmp_path / "reports" / "eval.json").read_text())["images"] == 6
    again = one_line_error(cli("eval", "--weights", weights, "--data", data, "-j", "0", "--out", tmp_path / "reports"))
    assert "eval.json already exists; pass --exist-ok" in again
    replaced = cli("eval", "--weights", weights, "--data", data, "-j", "0", "--out", tmp_path / "reports", "--exist-ok")
    assert replaced.returncode == 0
    png = one_line_error(
        cli("eval", "--weights", weights, "--data", data, "-j", "0", "--confusion", work / "confusion.png")
    )
    assert "confusion.png already exists" in png and (work / "confusion.png").read_text() == "my own picture"


def _tiny_folder(tmp_path: Path) -> Path:
    from ..imagegen import make_image_folder

    return make_image_folder(tmp_path / "data", classes=3, train_per_class=1, val_per_class=2)


class FillsUp:
    """A file whose writes fail with ENOSPC once ``budget`` bytes are written: a full disk, injected."""

    def __init__(self, file, budget):
        self.file, self.budget = file, budget

    def write(self, data):
        self.budget -= len(data)
        if self.budget < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_a_full_disk_while_checkpointing_is_named_and_the_last_checkpoint_kept(tmp_path, monkeypatch):
    out = tmp_path / "run"
    saves = []
    real_open = open

    def full_after_two_saves(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if "w" in mode and ".last.pt." in str(path):
            saves.append(path)
            if len(saves) == 3:  # the third checkpoint finds the disk full halfway through
                return FillsUp(f, budget=10_000)
        return f

    monkeypatch.setattr(fileio, "open", full_after_two_saves, raising=False)
    result = cli("train", "--out", out, *TINY, "--save-every-steps", "1", "--max-steps", "5")
    line = one_line_error(result)
    assert f"no space left on the device writing the checkpoint {out / 'last.pt'}" in line, line
    assert "the previous checkpoint" in line and "is kept unchanged" in line
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".last.pt")) == []  # no partial file left
    monkeypatch.undo()
    from resnetkit.engine.checkpoint import load_checkpoint

    assert load_checkpoint(out / "last.pt")["global_step"] == 2  # the last good one
    resumed = cli("train", "--resume", out, "--max-steps", "3")
    assert resumed.returncode == 0, resumed.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A real 150 MB tmpfs (room for one resnet18 checkpoint, not for a second beside it); skipped
    where this process may not mount file systems."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=150m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not permitted'}); the injected fault covers it"
        )
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_really_full_disk(small_disk):
    out = small_disk / "run"
    cfg = make_config(
        "digits",
        image_size=16,
        epochs=1,
        amp="none",
        quiet=True,
        workers=0,
        batch_size=32,
        save_every_steps=1,
        max_steps=4,
        out=str(out),
    )
    with pytest.raises(fileio.DiskFull, match="no space left on the device writing the checkpoint"):
        train(cfg, log=lambda s: None)
    from resnetkit.engine.checkpoint import load_checkpoint

    assert load_checkpoint(out / "last.pt")["global_step"] >= 1
