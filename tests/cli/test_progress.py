"""Progress bars appear on a terminal and not in a pipe, where only the one-line summary is written.
In-process: the terminal is a text stream that says it is one (isatty), which is what tqdm asks."""

import contextlib
import io

from resnetkit.cli import main

from ..clirun import cli


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_on_terminal(*args):
    """Run `resnetkit ARGS` in-process with stdout and stderr on one terminal; all it printed."""
    shown = Terminal()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown):
        assert main([str(a) for a in args]) == 0, shown.getvalue()
    return shown.getvalue()


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
