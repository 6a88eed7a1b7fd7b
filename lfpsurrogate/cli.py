"""The ``lfpsurrogate`` command."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import LfpsurrogateError


def _cmd_simulate(args) -> dict:
    return _run_truth(args)[2]


def _run_truth(args):
    """Simulate as the arguments say, write the result (and figure); (cell, ds, summary)."""
    from .cells import load_cell
    from .inputs import poisson_inputs
    from .io import save_figure, write_netcdf
    from .simulate import simulate

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
        from .plot_truth import plot_simulation

        save_figure(plot_simulation(ds), args.plot)
        summary["plot"] = str(args.plot)
    return cell, ds, summary


def _cmd_predict(args) -> dict:
    """Signals of a population from Poisson input through a surrogate, to a netCDF file."""
    from .io import save_figure, write_netcdf
    from .predict import predict_lfp

    signals = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    t0 = time.perf_counter()
    ds = predict_lfp(
        rates={"duration_ms": args.duration_ms, "n_cells": args.n_cells, "rate_exc_hz": args.rate_exc,
               "rate_inh_hz": args.rate_inh, "protocol": args.protocol},
        probe=args.probe, model=args.model, signals=signals, device=args.device, seed=args.seed)
    wall = time.perf_counter() - t0
    write_netcdf(ds, args.out)
    summary = {"model": ds.attrs["model"], "cell": ds.attrs["cell"], "n_cells": args.n_cells,
               "duration_ms": args.duration_ms, "signals": list(signals), "wall_s": round(wall, 3),
               "cell_seconds_per_wall_second": round(args.n_cells * args.duration_ms / 1000 / wall, 2),
               "out": str(args.out)}
    if args.plot:
        save_figure(_signal_figure(ds), args.plot)
        summary["plot"] = str(args.plot)
    return summary


def _signal_figure(ds):
    """Laminar LFP + CSD when there is an LFP, else the EEG map, else the MEG map."""
    from . import plotting

    if "lfp" in ds:
        return plotting.plot_laminar(ds)
    if "eeg" in ds:
        return plotting.plot_eeg_topography(ds)
    return plotting.plot_meg_field_map(ds)


def _cmd_demo(args) -> dict:
    """100 cells of the default model near a laminar probe, with EEG and MEG, through the
    shipped surrogate; without a shipped model, a NEURON ground-truth run instead."""
    from .modelfolder import models_root

    if not (models_root() / "l5_ttpc1" / "model.json").is_file():
        return _demo_ground_truth(args)
    from . import plotting
    from .io import save_figure, write_netcdf
    from .predict import predict_lfp

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = predict_lfp(rates={"duration_ms": args.duration_ms, "n_cells": args.n_cells},
                     probe="laminar-16", signals=("lfp", "dipole", "eeg", "meg", "spikes"),
                     seed=args.seed)
    wall = time.perf_counter() - t0
    write_netcdf(ds, out / "demo_population.nc")
    save_figure(plotting.plot_laminar(ds, title=f"{args.n_cells} l5_ttpc1 cells (surrogate): "
                                                "laminar LFP and CSD"), out / "demo_lfp.png")
    save_figure(plotting.plot_eeg_topography(ds), out / "demo_eeg.png")
    save_figure(plotting.plot_meg_field_map(ds), out / "demo_meg.png")
    return {
        "model": ds.attrs["model"], "n_cells": args.n_cells, "duration_ms": args.duration_ms,
        "wall_s": round(wall, 3),
        "cell_seconds_per_wall_second": round(args.n_cells * args.duration_ms / 1000 / wall, 1),
        "somatic_spikes": int(ds["spikes"].sum()),
        "lfp_peak_to_peak_uV": round(float(ds["lfp"].max() - ds["lfp"].min()) * 1000, 2),
        "eeg_peak_to_peak_nV": round(float(ds["eeg"].max() - ds["eeg"].min()) * 1e6, 3),
        "meg_peak_fT": round(float(abs(ds["meg"]).max()), 4),
        "out": str(out / "demo_population.nc"),
        "plots": [str(out / f"demo_{k}.png") for k in ("lfp", "eeg", "meg")],
        "cell_licence": ds.attrs.get("cell_licence", ""),
    }


def _demo_ground_truth(args) -> dict:
    """A short ground-truth run of the default cell and its LFP, EEG and MEG."""
    from .forward import forward_model
    from .io import save_figure, write_netcdf
    from .plotting import plot_laminar

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args.cell, args.d_lambda, args.protocol = "l5_ttpc1", 0.3, "constant"
    args.rate_exc, args.rate_inh = 8.0, 3.0
    args.out, args.plot = out / "demo_truth.nc", out / "demo_truth.png"
    cell, truth, summary = _run_truth(args)
    fwd = forward_model(cell.geometry, {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"},
                        position=(50.0, 0.0, 0.0))
    signals = fwd.from_currents(truth["imem"])
    write_netcdf(signals, out / "demo_signals.nc")
    save_figure(plot_laminar(signals, title="l5_ttpc1 ground truth: laminar LFP and CSD"),
                out / "demo_lfp.png")
    summary.update(
        signals=str(out / "demo_signals.nc"), lfp_plot=str(out / "demo_lfp.png"),
        lfp_peak_to_peak_uV=round(float(signals["lfp"].max() - signals["lfp"].min()) * 1000, 2),
        eeg_peak_to_peak_nV=round(float(signals["eeg"].max() - signals["eeg"].min()) * 1e6, 3),
        meg_peak_fT=round(float(abs(signals["meg"]).max()), 4),
        note="no trained surrogate is installed: the demo ran NEURON ground truth instead",
    )
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lfpsurrogate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("simulate", help="ground-truth NEURON run of a cell under Poisson input")
    p.add_argument("--cell", default="l5_ttpc1", help="l5_ttpc1, pyramid_hh, a BBP folder or a morphology")
    p.add_argument("--duration-ms", type=float, default=1000.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", default="mixed", help="constant, modulated, piecewise, clustered, mixed")
    p.add_argument("--rate-exc", type=float, default=5.0, help="mean excitatory rate per slot (Hz)")
    p.add_argument("--rate-inh", type=float, default=2.0, help="mean inhibitory rate per slot (Hz)")
    p.add_argument("--d-lambda", type=float, default=None,
                   help="d_lambda rule fraction; default: a cell file's own discretization, else 0.3")
    p.add_argument("--out", required=True, help="result file (.nc)")
    p.add_argument("--plot", help="figure file (.png)")
    common(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("predict", help="LFP/EEG/MEG of a population through a surrogate")
    p.add_argument("--model", default="l5_ttpc1", help="shipped model name or model folder")
    p.add_argument("--probe", default="laminar-16", help="probe name or YAML file")
    p.add_argument("--duration-ms", type=float, default=1000.0)
    p.add_argument("--rate-exc", type=float, default=5.0, help="mean excitatory rate per slot (Hz)")
    p.add_argument("--rate-inh", type=float, default=2.0, help="mean inhibitory rate per slot (Hz)")
    p.add_argument("--protocol", default="constant")
    p.add_argument("--n-cells", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--signals", default="lfp,dipole,eeg,meg,spikes")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="result file (.nc)")
    p.add_argument("--plot", help="figure file (.png)")
    common(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", help="a population near a laminar probe + EEG + MEG, files and figures")
    p.add_argument("--duration-ms", type=float, default=1000.0)
    p.add_argument("--n-cells", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="lfpsurrogate-demo")
    common(p)
    p.set_defaults(func=_cmd_demo)

    try:  # `lfpsurrogate dataset ...`, owned by lfpsurrogate.data
        from .data.cli import register as register_dataset
    except ImportError:
        register_dataset = None
    if register_dataset is not None:
        register_dataset(sub, common)
    from .train_cli import register as register_train

    register_train(sub, common)
    try:  # `lfpsurrogate evaluate`, owned by lfpsurrogate.evaluate_cli
        from .evaluate_cli import register as register_evaluate
    except ImportError:
        register_evaluate = None
    if register_evaluate is not None:
        register_evaluate(sub, common)
    try:  # `lfpsurrogate bench`, owned by lfpsurrogate.bench_cli
        from .bench_cli import register as register_bench
    except ImportError:
        register_bench = None
    if register_bench is not None:
        register_bench(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
