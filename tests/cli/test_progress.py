"""Progress bars appear on a terminal (a pseudo-terminal here) and not in a pipe, where only the
one-line summary is written."""

import os
import subprocess
import sys

if sys.platform != "win32":
    import fcntl
    import pty
    import struct
    import termios

import pytest

from ..clirun import cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def run_on_terminal(*args):
    """Run `python -m resnetkit ARGS` with stdout and stderr on a pseudo-terminal; all it printed."""
    master, slave = pty.openpty()
    # A fresh pseudo-terminal is 0x0, which tqdm reads as no room for a bar: give it a terminal's size.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "RESNETKIT_BACKEND": "pytorch"}
    proc = subprocess.Popen([sys.executable, "-m", "resnetkit", *args], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end closed, the child is done
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_eval_shows_a_bar_on_a_terminal_and_only_its_summary_in_a_pipe(digits_run, tmp_path):
    shown = run_on_terminal("eval", "--weights", str(digits_run), "--batch-size", "16", "--out", str(tmp_path / "a"))
    assert "eval:" in shown and "img/s" in shown and "\r" in shown  # tqdm redraws in place
    assert "acc@1" in shown  # and the summary follows it
    piped = cli("eval", "--weights", digits_run, "--batch-size", "16", "--out", tmp_path / "b")  # stderr: a pipe
    assert piped.returncode == 0, piped.stderr
    assert "img/s" not in piped.stderr and "\r" not in piped.stderr and "eval:" not in piped.stderr
    assert "acc@1" in piped.stdout.splitlines()[0]


def test_predict_and_bench_print_no_bar_when_not_on_a_terminal(digits_run, tmp_path):
    result = cli("predict", digits_run / "samples", "--weights", digits_run, "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "img/s" not in result.stderr
    result = cli(
        "bench",
        "resnet18",
        "--batch-size",
        "1",
        "--input-size",
        "32",
        "--modes",
        "eager",
        "--runs",
        "1",
        "--warmup",
        "0",
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "step/s" not in result.stderr
