"""`lfpsurrogate simulate`: a ground-truth NEURON run of a cell under Poisson input."""
from __future__ import annotations

import time

from .common import PROTOCOL_HELP, add_json_option, add_rate_options, check_outputs

CELL_HELP = ("l5_ttpc1 (default cell), pyramid_hh (small, fast), another BBP cell MEArec ships "
             "(e.g. L5_MC_bAC217_1), a BBP cell folder, or a cell file (.yaml) describing your "
             "own cell: morphology, .mod folder, hoc template and its arguments, hoc files, "
             "discretization, synaptic weights (see docs/cells.md)")


def run(args) -> dict:
    return run_truth(args)[2]


def run_truth(args):
    """Simulate as the arguments say, write the result (and figure); (cell, ds, summary)."""
    from ..cells import load_cell
    from ..inputs import poisson_inputs
    from ..io import save_figure, write_netcdf
    from ..simulate import simulate

    check_outputs(args)
    cell = load_cell(args.cell, d_lambda=args.d_lambda)
    inputs = poisson_inputs(cell, args.duration_ms, args.seed, protocol=args.protocol,
                            rate_exc_hz=args.rate_exc, rate_inh_hz=args.rate_inh)
    t0 = time.perf_counter()
    ds = simulate(cell, inputs, progress=not args.json)
    wall = time.perf_counter() - t0
    write_netcdf(ds, args.out)
    summary = {
        "cell": cell.name, "segments": cell.n_segments, "channels": cell.n_channels,
        "duration_ms": args.duration_ms, "seed": args.seed, "somatic_spikes": int(ds.spike_times.size),
        "wall_s": round(wall, 3), "neuron_s_per_simulated_s": round(wall / (args.duration_ms / 1000), 3),
        "out": str(args.out), "cell_fingerprint": cell.geometry.fingerprint,
    }
    if args.plot:
        from ..figures.truth import plot_simulation

        save_figure(plot_simulation(ds), args.plot)
        summary["plot"] = str(args.plot)
    return cell, ds, summary


def add_parser(subparsers):
    p = subparsers.add_parser("simulate", help="ground-truth NEURON run of a cell under Poisson input")
    p.add_argument("--cell", default="l5_ttpc1", help=CELL_HELP)
    p.add_argument("--duration-ms", type=float, default=1000.0, help="simulated time (ms)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson input")
    p.add_argument("--protocol", default="mixed", help=PROTOCOL_HELP)
    add_rate_options(p)
    p.add_argument("--d-lambda", type=float, default=None,
                   help="d_lambda rule fraction; default: a cell file's own discretization, else 0.3")
    p.add_argument("--out", required=True, help="result file (netCDF, .nc)")
    p.add_argument("--plot", default=None, help="figure of the run (.png, .pdf or .svg); none if not given")
    add_json_option(p)
    p.set_defaults(func=run)
    return p


__all__ = ["CELL_HELP", "add_parser", "run", "run_truth"]
