"""`lfpsurrogate predict`: LFP/EEG/MEG of a population through a surrogate, to a netCDF file."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import LfpsurrogateError
from .common import PROTOCOL_HELP, add_json_option, add_rate_options, check_outputs


def run(args) -> dict:
    """Signals of a population from Poisson input through a surrogate, to a netCDF file."""
    from ..figures.signals import signal_figures
    from ..io import save_figure, write_netcdf
    from ..predict import predict_lfp

    check_outputs(args)
    signals = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    t0 = time.perf_counter()
    ds = predict_lfp(
        rates={"duration_ms": args.duration_ms, "n_cells": args.n_cells, "rate_exc_hz": args.rate_exc,
               "rate_inh_hz": args.rate_inh, "protocol": args.protocol},
        probe=args.probe, model=args.model, signals=signals, device=args.device, seed=args.seed,
        progress=None if not args.json else False)
    wall = time.perf_counter() - t0
    write_netcdf(ds, args.out)
    summary = {"model": ds.attrs["model"], "cell": ds.attrs["cell"], "n_cells": args.n_cells,
               "duration_ms": args.duration_ms, "signals": list(signals), "wall_s": round(wall, 3),
               "cell_seconds_per_wall_second": round(args.n_cells * args.duration_ms / 1000 / wall, 2),
               "out": str(args.out)}
    if args.plot:
        figures = signal_figures(ds, f"{args.n_cells} {ds.attrs['cell']} cell(s), surrogate")
        if not figures:
            raise LfpsurrogateError(
                f"--plot draws lfp, eeg and meg; --signals {args.signals} has none of them.")
        paths = _figure_paths(Path(args.plot), list(figures))
        for key, fig in figures.items():
            save_figure(fig, paths[key])
        summary["plot"] = str(paths[next(iter(figures))])
        summary["plots"] = [str(p) for p in paths.values()]
    return summary


def _figure_paths(path: Path, keys: list[str]) -> dict:
    """The first figure at ``path``, the others next to it as <stem>_<signal><suffix>."""
    return {k: path if i == 0 else path.with_name(f"{path.stem}_{k}{path.suffix}")
            for i, k in enumerate(keys)}


def add_parser(subparsers):
    p = subparsers.add_parser("predict", help="LFP/EEG/MEG of a population through a surrogate")
    p.add_argument("--model", default="l5_ttpc1", help="shipped model name or model folder")
    p.add_argument("--probe", default="laminar-16", help="LFP probe: a shipped probe name or a YAML file")
    p.add_argument("--duration-ms", type=float, default=1000.0, help="simulated time (ms)")
    add_rate_options(p)
    p.add_argument("--protocol", default="constant", help=PROTOCOL_HELP)
    p.add_argument("--n-cells", type=int, default=1, help="cells in the population")
    p.add_argument("--seed", type=int, default=0, help="input seed (cell i uses seed + i) and placement seed")
    p.add_argument("--signals", default="lfp,dipole,eeg,meg,spikes",
                   help="comma list of v, imem, lfp, dipole, eeg, meg, spikes")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--out", required=True, help="result file (netCDF, .nc)")
    p.add_argument("--plot", default=None,
                   help="figure file (.png ...): the first signal's figure; the others (EEG, MEG) "
                        "go next to it as <name>_eeg.png, <name>_meg.png; none if not given")
    add_json_option(p)
    p.set_defaults(func=run)
    return p


__all__ = ["add_parser", "run"]
