"""What every subcommand of ``lfpsurrogate`` shares: the help formatter and ``--json``."""
from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (or "required")."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or "%(default)" in text or action.nargs == 0:
            return text
        if action.required:
            return f"{text} (required)"
        if action.default is None and "none" in text.lower():
            return text
        if action.default is not argparse.SUPPRESS and "default" not in text:
            return f"{text} (default: %(default)s)"
        return text


PROTOCOL_HELP = "input protocol: constant, modulated, piecewise, clustered or mixed"


def add_rate_options(p: argparse.ArgumentParser) -> None:
    """``--rate-exc`` and ``--rate-inh``: the mean Poisson rates of the input slots."""
    p.add_argument("--rate-exc", type=float, default=5.0, help="mean excitatory rate per slot (Hz)")
    p.add_argument("--rate-inh", type=float, default=2.0, help="mean inhibitory rate per slot (Hz)")


def add_json_option(p: argparse.ArgumentParser) -> None:
    """``--json``: the command prints one JSON object of figures instead of ``key: value`` lines."""
    p.add_argument("--json", action="store_true", help="print one JSON object (no progress bars)")


def check_outputs(args) -> None:
    """Refuse ``--out`` that is not a netCDF file and ``--plot`` that is not a figure, before
    any work is done."""
    from ..io import FIGURE_SUFFIXES, NETCDF_SUFFIXES, check_suffix

    check_suffix(args.out, NETCDF_SUFFIXES, "a netCDF file", "--out")
    if args.plot:
        check_suffix(args.plot, FIGURE_SUFFIXES, "a figure", "--plot")


__all__ = ["PROTOCOL_HELP", "HelpFormatter", "add_json_option", "add_rate_options", "check_outputs"]
