"""`lfpsurrogate demo`: a population near a laminar probe with EEG and MEG, files and figures."""
from __future__ import annotations

import time
from pathlib import Path

from .common import add_json_option


def run(args) -> dict:
    """100 cells of the default model near a laminar probe, with EEG and MEG, through the
    shipped surrogate; without a shipped model, a NEURON ground-truth run instead."""
    from ..modelfolder import models_root

    if not (models_root() / "l5_ttpc1" / "model.json").is_file():
        return _demo_ground_truth(args)
    from ..figures.signals import signal_figures
    from ..io import save_figure, write_netcdf
    from ..modelfolder import held_out_accuracy
    from ..predict import predict_lfp

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = predict_lfp(rates={"duration_ms": args.duration_ms, "n_cells": args.n_cells},
                     probe="laminar-16", signals=("lfp", "dipole", "eeg", "meg", "spikes"),
                     seed=args.seed, progress=None if not args.json else False)
    wall = time.perf_counter() - t0
    write_netcdf(ds, out / "demo_population.nc")
    figures = signal_figures(ds, f"{args.n_cells} l5_ttpc1 cells (surrogate)")
    for key, fig in figures.items():
        save_figure(fig, out / f"demo_{key}.png")
    speed = args.n_cells * args.duration_ms / 1000 / wall
    accuracy = held_out_accuracy("l5_ttpc1")
    return {
        "model": ds.attrs["model"], "n_cells": args.n_cells, "duration_ms": args.duration_ms,
        "wall_s": round(wall, 3),
        "cell_seconds_per_wall_second": round(speed, 1),
        "speed_and_accuracy": f"{speed:.3g} cell-seconds per second here; "
                              f"{accuracy or 'no held-out metrics shipped with the model'}",
        "somatic_spikes": int(ds["spikes"].sum()),
        **_amplitudes(ds),
        "out": str(out / "demo_population.nc"),
        "plots": [str(out / f"demo_{k}.png") for k in ("lfp", "eeg", "meg")],
        "cell_licence": ds.attrs.get("cell_licence", ""),
    }


def _demo_ground_truth(args) -> dict:
    """A short ground-truth run of the default cell and its LFP, EEG and MEG."""
    from ..figures.signals import plot_laminar
    from ..forward import forward_model
    from ..io import save_figure, write_netcdf
    from .simulate import run_truth

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args.cell, args.d_lambda, args.protocol = "l5_ttpc1", 0.3, "constant"
    args.rate_exc, args.rate_inh = 8.0, 3.0
    args.out, args.plot = out / "demo_truth.nc", out / "demo_truth.png"
    cell, truth, summary = run_truth(args)
    fwd = forward_model(cell.geometry, {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"},
                        position=(50.0, 0.0, 0.0))
    signals = fwd.from_currents(truth["imem"])
    write_netcdf(signals, out / "demo_signals.nc")
    save_figure(plot_laminar(signals, title="l5_ttpc1 ground truth: laminar LFP and CSD"),
                out / "demo_lfp.png")
    summary.update(
        signals=str(out / "demo_signals.nc"), lfp_plot=str(out / "demo_lfp.png"),
        **_amplitudes(signals),
        note="no trained surrogate is installed: the demo ran NEURON ground truth instead",
    )
    return summary


def _amplitudes(ds) -> dict:
    """Largest peak-to-peak over time of any one LFP contact (µV) and EEG electrode (nV),
    so contacts' different DC offsets do not count; largest |B| of any MEG sensor (fT)."""
    import numpy as np

    def p2p(x):
        v = np.asarray(x.values)
        return float((v.max(axis=-1) - v.min(axis=-1)).max())

    return {"lfp_peak_to_peak_uV": round(p2p(ds["lfp"]) * 1000, 2),
            "eeg_peak_to_peak_nV": round(p2p(ds["eeg"]) * 1e6, 3),
            "meg_peak_fT": round(float(abs(ds["meg"]).max()), 4)}


def add_parser(subparsers):
    p = subparsers.add_parser("demo", help="a population near a laminar probe + EEG + MEG, files and figures")
    p.add_argument("--duration-ms", type=float, default=1000.0, help="simulated time (ms)")
    p.add_argument("--n-cells", type=int, default=100, help="cells in the population")
    p.add_argument("--seed", type=int, default=0, help="input and placement seed")
    p.add_argument("--out-dir", default="lfpsurrogate-demo", help="folder for the result file and figures")
    add_json_option(p)
    p.set_defaults(func=run)
    return p


__all__ = ["add_parser", "run"]
