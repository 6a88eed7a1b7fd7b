"""lfpsurrogate: fast LFP, EEG and MEG of detailed neuron models through trained neural-network
surrogates, with NEURON ground truth.

Typical order: `demo` to see it work; `simulate` one cell in NEURON; `predict` a
population through a surrogate; for your own cell, `dataset generate` -> `train` ->
`export` -> `evaluate`; `bench` compares the surrogate with NEURON. Every command has
--help; --json prints one JSON object of figures."""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from ..allocator import retain_freed_memory
from ..errors import LfpsurrogateError
from .common import HelpFormatter

# The subcommands, in the order --help lists them: modules (relative to this package) that
# each have ``add_parser(subparsers)``, which adds the command and sets ``func`` (its run
# function: args -> dict of figures) as the parser default. A new command is one line here,
# e.g. "..network.cli" for a command whose module lives in lfpsurrogate/network/cli.py.
COMMANDS = (
    ".simulate",
    ".predict",
    ".demo",
    ".dataset",
    ".train",
    ".export",
    ".evaluate",
    ".bench",
    "..network.cli",
)


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _subparsers(sub)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="lfpsurrogate", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"lfpsurrogate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name, __name__).add_parser(sub)
    for p in _subparsers(parser):
        p.formatter_class = HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the command runs the surrogate on large temporary tensors: keep freed memory in this
    # process rather than page-fault it in again (docs/performance.md, "The allocator")
    retain_freed_memory()
    try:
        summary = args.func(args)
    except LfpsurrogateError as exc:
        print(f"lfpsurrogate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


__all__ = ["COMMANDS", "HelpFormatter", "build_parser", "main"]
