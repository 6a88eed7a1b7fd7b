"""One place for each kind of code: the command line is the package ``lfpsurrogate.cli`` (a
module per subcommand), every figure comes from ``lfpsurrogate.figures``, and
docs/architecture.md names what is there."""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import io
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import lfpsurrogate
from lfpsurrogate import cli, figures

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(lfpsurrogate.__file__).parent
# The commands /work/shared/ARCHITECTURE.md promises (`network` comes with the networks).
DOCUMENTED = {"demo", "simulate", "predict", "dataset", "train", "export", "evaluate", "bench"}


def _commands(parser, path=()):
    """(path, parser) of every subcommand, nested ones (``dataset generate``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(cli.build_parser()))
IDS = [" ".join(path) for path, _ in COMMANDS]


def test_every_documented_command_is_registered_by_its_own_module():
    top = {path[0] for path, _ in COMMANDS}
    assert DOCUMENTED <= top, DOCUMENTED - top
    for name in cli.COMMANDS:  # each listed module adds exactly one command, with a run function
        module = importlib.import_module(name, cli.__name__)
        sub = argparse.ArgumentParser().add_subparsers()
        parser = module.add_parser(sub)
        assert list(sub.choices) == [parser.prog.split()[-1]], name
        leaves = [p for _, p in _commands(parser)] or [parser]
        assert all(callable(p.get_default("func")) for p in leaves), name
    assert len(cli.COMMANDS) == len(top)


@pytest.mark.parametrize("path,parser", COMMANDS, ids=IDS)
def test_help_through_main(path, parser):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        cli.main([*path, "--help"])
    assert exc.value.code == 0
    text = out.getvalue()
    assert text.startswith(f"usage: lfpsurrogate {' '.join(path)}")
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text, (path, option)


def test_help_through_python_m():
    """``python -m lfpsurrogate.cli`` for the top level and every subcommand (one process
    runs them all through runpy, as ``-m`` does, to keep the test fast)."""
    code = ("import runpy, sys\n"
            "for args in sys.argv[1:]:\n"
            "    sys.argv = ['lfpsurrogate', *args.split(), '--help']\n"
            "    try:\n"
            "        runpy.run_module('lfpsurrogate.cli', run_name='__main__', alter_sys=True)\n"
            "    except SystemExit as exc:\n"
            "        assert exc.code == 0, (args, exc.code)\n"
            "        print('@@ok', args or '(top)')\n")
    res = subprocess.run([sys.executable, "-c", code, "", *IDS], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    ok = [line.split(" ", 1)[1] for line in res.stdout.splitlines() if line.startswith("@@ok ")]
    assert ok == ["(top)", *IDS]
    for path in IDS:
        assert f"usage: lfpsurrogate {path}" in res.stdout
    # and as a plain process, the way the console script and the tests' CLI runs use it
    res = subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", "simulate", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "usage: lfpsurrogate simulate" in res.stdout, res.stderr


def test_console_script_is_cli_main():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "lfpsurrogate"]
    assert script.value == "lfpsurrogate.cli:main"
    assert script.load() is cli.main


def _defined_functions(module) -> set[str]:
    return {name for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module.__name__
            and not name.startswith("_")}


def test_every_figure_function_imports_from_lfpsurrogate_figures():
    modules = sorted(p.stem for p in (PACKAGE / "figures").glob("*.py") if p.stem != "__init__")
    assert {"signals", "morphology", "truth", "evaluation", "bench"} <= set(modules)
    for stem in modules:
        module = importlib.import_module(f"lfpsurrogate.figures.{stem}")
        public = _defined_functions(module)
        assert public <= set(module.__all__), (stem, public - set(module.__all__))
        for name in module.__all__:
            assert getattr(figures, name) is getattr(module, name), (stem, name)
            assert name in figures.__all__, (stem, name)
    for name in figures.__all__:
        assert callable(getattr(figures, name)), name
    for name in ("plot_laminar", "plot_eeg_topography", "plot_meg_field_map", "plot_morphology",
                 "plot_simulation", "plot_rmse_by_region", "plot_example_traces", "plot_scaling",
                 "csd_from_lfp", "readable_units"):
        assert name in figures.__all__, name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_figures_and_the_command_line_live_in_one_place_each():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        found = _imports(path)
        if rel.parts[0] != "figures":
            assert "matplotlib" not in found, f"{rel} draws a figure: move it to figures/"
        if rel.parts[0] != "cli":
            assert "argparse" not in found, f"{rel} parses options: move it to cli/"


def test_architecture_doc_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| (`[^|]+`) \| (.*) \|$", line)
        if m:
            for name in re.findall(r"`([^`]+)`", m.group(1)):
                rows[name] = m.group(2)
    present = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    present |= {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert present == set(rows), (present - set(rows), set(rows) - present)
    for name in {path[0] for path, _ in COMMANDS}:  # every subcommand named in the cli row
        assert f"`{name}`" in rows["cli/"], name
    for path in (PACKAGE / "figures").glob("*.py"):
        if path.stem != "__init__":
            assert f"`{path.name}`" in rows["figures/"], path.name
