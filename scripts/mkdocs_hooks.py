"""MkDocs hooks (repository-only): the reference pages are generated from the code at build time, so
they cannot drift from it - the API page lists every name in ``resnetkit.__all__`` (rendered by
mkdocstrings from the docstrings), the CLI page is each subcommand's ``--help`` as argparse prints it."""

from __future__ import annotations

GROUPS = [
    (
        "Building models",
        lambda n: n in ("create_model", "get_model", "list_models") or n.startswith(("resnet", "resnext", "wide_")),
    ),
    (
        "Weights",
        lambda n: (
            n.endswith("_Weights")
            or n in ("get_weights", "list_weights", "load_weights", "load_safetensors", "save_safetensors")
        ),
    ),
    (
        "Architecture",
        lambda n: n in ("ResNet", "ResNetBase", "BasicBlock", "Bottleneck", "FeatureInfo", "conv1x1", "conv3x3"),
    ),
    ("Explaining a model", lambda n: n == "explain"),
    ("Errors", lambda n: n.endswith(("Error", "Option", "File", "Dependency"))),
]


def api_page() -> str:
    import resnetkit
    from resnetkit.models import TORCHVISION_NAMES as TORCHVISION_BUILDERS  # noqa: N811

    names = [n for n in resnetkit.__all__ if not n.startswith("__")]
    lines = ["# Python API reference", "",
             "Every public name of `resnetkit` (its `__all__`), from the docstrings of the installed code. "
             "The examples are run by `tests/test_public_api.py`.", ""]  # fmt: skip
    placed = set()
    for title, member in GROUPS:
        chosen = [n for n in names if member(n) and n not in placed]
        if not chosen:
            continue
        lines += [f"## {title}", ""]
        for name in chosen:
            lines += [f"::: resnetkit.{name}", "    options:", "      heading_level: 3"]
            if name in TORCHVISION_BUILDERS:  # their docstrings come from one template, filled at import
                lines += ["      force_inspection: true"]
            lines += [""]
            placed.add(name)
    missing = [n for n in names if n not in placed]
    if missing:  # a new public name must be given a group, or it would silently be left out
        raise RuntimeError(f"mkdocs_hooks.GROUPS places no group for {missing}")
    return "\n".join(lines)


def cli_page() -> str:
    from resnetkit.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    lines = ["# Command-line reference", "", "Each command's `--help`, generated from its parser when the site is built.", "",
             "```text", parser.format_help().rstrip(), "```", ""]  # fmt: skip
    for name, command in sub.choices.items():
        lines += [f"## resnetkit {name}", "", "```text", command.format_help().rstrip(), "```", ""]
        nested = [a for a in command._actions if a.__class__.__name__ == "_SubParsersAction"]
        for action in nested:
            for child, child_parser in action.choices.items():
                lines += [
                    f"### resnetkit {name} {child}",
                    "",
                    "```text",
                    child_parser.format_help().rstrip(),
                    "```",
                    "",
                ]
    return "\n".join(lines)


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/api.md", content=api_page()))
    files.append(File.generated(config, "reference/cli.md", content=cli_page()))
    return files
