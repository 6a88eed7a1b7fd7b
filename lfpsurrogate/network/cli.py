"""`lfpsurrogate network run SPEC.yaml --engine surrogate|neuron --out FILE.nc`: run a
network spec and write its Dataset (spikes, population rates, signals)."""
from __future__ import annotations

import json


def run_command(args) -> dict:
    """Run the spec as the arguments say; write the result; return a summary."""
    from ..io import NETCDF_SUFFIXES, check_suffix, write_netcdf
    from .network import Network

    check_suffix(args.out, NETCDF_SUFFIXES, "a netCDF file", "--out")
    net = Network(args.spec)  # every refusal comes here, before any run
    signals = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    res = net.run(args.duration_ms, engine=args.engine, signals=signals, probe=args.probe,
                  device=args.device, threads=args.threads, progress=not args.json)
    write_netcdf(res, args.out)
    return {"engine": args.engine, "n_cells": int(res.attrs["n_cells"]),
            "n_connections": int(res.attrs["n_connections"]),
            "duration_ms": args.duration_ms, "wall_s": round(float(res.attrs["wall_s"]), 3),
            "stats": json.loads(res.attrs["stats"]), "signals": list(signals),
            "out": str(args.out)}


def add_parser(subparsers):
    """Add the ``network`` command (``network run``) to the main parser; returns its parser."""
    from ..cli.common import add_json_option

    p = subparsers.add_parser("network", help="networks of surrogate cells driving each other")
    sub = p.add_subparsers(dest="network_command", required=True, metavar="ACTION")
    r = sub.add_parser("run", help="run a network spec (YAML) in the surrogate or NEURON engine")
    r.add_argument("spec", help="network spec (YAML): populations, external drives, connections "
                                "(see docs/network.md and lfpsurrogate/network/examples/)")
    r.add_argument("--engine", default="surrogate", choices=("surrogate", "neuron"),
                   help="surrogate (fast, batched) or neuron (detailed cells, ground truth)")
    r.add_argument("--duration-ms", type=float, default=1000.0, help="simulated time (ms)")
    r.add_argument("--signals", default="lfp,eeg,meg",
                   help="comma list of lfp, dipole, eeg, meg (empty: spikes only)")
    r.add_argument("--probe", default="laminar-16", help="LFP probe: a shipped name or a YAML file")
    r.add_argument("--device", default="cpu", help="torch device of the surrogate engine")
    r.add_argument("--threads", type=int, default=None,
                   help="NEURON engine: threads (default: the cores available, at most one per cell)")
    r.add_argument("--out", required=True, help="result file (netCDF, .nc)")
    add_json_option(r)
    r.set_defaults(func=run_command)
    return p
