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


def _cmd_demo(args) -> dict:
    """Until a trained surrogate ships: a short ground-truth run of the default cell, and
    its LFP (16-contact laminar probe, cell 50 µm lateral), EEG and MEG."""
    from .forward import forward_model
    from .io import save_figure, write_netcdf
    from .plotting import plot_laminar

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args.cell, args.d_lambda, args.protocol = "l5_ttpc1", 0.3, "constant"
    args.rate_exc, args.rate_inh = 8.0, 3.0
    args.out, args.plot = out / "demo_truth.nc", out / "demo_truth.png"
    cell, truth, summary = _run_truth(args)
    fwd = forward_model(cell.geometry,
                        {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"},
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
        note="no trained surrogate is shipped yet: the demo runs NEURON ground truth for the "
             "default cell and its forward models",
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
    p.add_argument("--d-lambda", type=float, default=0.3)
    p.add_argument("--out", required=True, help="result file (.nc)")
    p.add_argument("--plot", help="figure file (.png)")
    common(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("demo", help="a short run of the default cell, result and figure")
    p.add_argument("--duration-ms", type=float, default=500.0)
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
