"""Every public name (``resnetkit.__all__``) is documented: a docstring; for a function its
parameters (Args), what it returns, what it raises and an example; for a class its constructor's
parameters. The examples run (doctest), so the reference never shows code that does not work."""

import doctest
import enum
import inspect
import re

import pytest

import resnetkit as rk
from resnetkit.models import TORCHVISION_NAMES

from .sweep import sweep

PUBLIC = [name for name in rk.__all__ if not name.startswith("__")]


def section(doc, title):
    """The text of a Google-style section (``Args:``) of a docstring, '' if absent."""
    m = re.search(rf"^\s*{title}:\s*$(.*?)(?=^\s*(?:Args|Returns|Raises|Example|Examples):\s*$|\Z)", doc, re.M | re.S)
    return m.group(1) if m else ""


def parameters(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    sig = inspect.signature(target)
    return [p for p in sig.parameters.values() if p.name not in ("self", "cls")]


def documented(args_text, param):
    stars = "**" if param.kind is param.VAR_KEYWORD else "*" if param.kind is param.VAR_POSITIONAL else ""
    return re.search(rf"^\s*{re.escape(stars + param.name)}:", args_text, re.M) is not None


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_documented(name):
    obj = getattr(rk, name)
    doc = inspect.getdoc(obj) or ""
    assert len(doc) > 20, f"{name} has no docstring"
    if inspect.isclass(obj) and issubclass(obj, enum.Enum):
        return  # the weights enums: members, not a constructor
    if inspect.isclass(obj) and issubclass(obj, rk.ResnetkitError):
        doc = inspect.getdoc(rk.ResnetkitError)  # the one constructor every error shares
    if inspect.isclass(obj):
        own = obj.__dict__.get("__init__")
        if own is None and not issubclass(obj, rk.ResnetkitError):
            return  # the constructor of a base class (nn.Module, list) documented there
        args = section(doc, "Args")
        missing = [p.name for p in parameters(obj) if not documented(args, p)]
        assert not missing, f"{name}: constructor parameters missing from Args: {missing}"
        return
    args = section(doc, "Args")
    missing = [p.name for p in parameters(obj) if not documented(args, p)]
    assert not missing, f"{name}: parameters missing from Args: {missing}"
    for title in ("Returns", "Raises", "Examples"):
        assert section(doc, title).strip(), f"{name}: no {title} section"


# The torchvision builders share one docstring template: resnet18's and resnet50's examples run here,
# every builder's in make test-scale.
BUILDERS = [name for name in PUBLIC if name in TORCHVISION_NAMES]
EXAMPLES = sweep(PUBLIC, [name for name in PUBLIC if name not in BUILDERS or name in ("resnet18", "resnet50")])


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    obj = getattr(rk, name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(recurse=False).find(obj, name, globs={}):
        runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} example(s) failed (see the output above)"


def test_a_public_function_named_like_its_module_stays_the_function_once_the_module_is_imported():
    """deploy.export and deploy.optimize are functions in modules of the same name: importing the
    module (which the CLI and other layers do) must not replace the package's function by it."""
    import importlib.util
    import types

    for package in ("resnetkit.deploy", "resnetkit.models", "resnetkit.batch", "resnetkit.serve"):
        face = importlib.import_module(package)
        for name in face.__all__:
            if importlib.util.find_spec(f"{package}.{name}") is None:
                continue
            importlib.import_module(f"{package}.{name}")
            value = getattr(importlib.import_module(package), name)
            assert not isinstance(value, types.ModuleType), f"{package}.{name} is the module, not the function"
            assert getattr(importlib.import_module(f"{package}.{name}"), name) is value
