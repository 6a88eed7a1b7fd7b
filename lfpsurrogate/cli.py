"""lfpsurrogate: fast LFP, EEG and MEG of detailed neuron models through trained neural-network
surrogates, with NEURON ground truth.

Typical order: `demo` to see it work; `simulate` one cell in NEURON; `predict` a
population through a surrogate; for your own cell, `dataset generate` -> `train` ->
`export` -> `evaluate`; `bench` compares the surrogate with NEURON. Every command has
--help; --json prints one JSON object of figures."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import LfpsurrogateError
from .io import FIGURE_SUFFIXES, NETCDF_SUFFIXES, check_suffix

CELL_HELP = ("l5_ttpc1 (default cell), pyramid_hh (small, fast), another BBP cell MEArec ships "
             "(e.g. L5_MC_bAC217_1), a BBP cell folder, or a cell file (.yaml) describing your "
             "own cell: morphology, .mod folder, hoc template and its arguments, hoc files, "
             "discretization, synaptic weights (see docs/cells.md)")


def _cmd_simulate(args) -> dict:
    return _run_truth(args)[2]


def _run_truth(args):
    """Simulate as the arguments say, write the result (and figure); (cell, ds, summary)."""
    from .cells import load_cell
    from .inputs import poisson_inputs
    from .io import save_figure, write_netcdf
    from .simulate import simulate

    check_suffix(args.out, NETCDF_SUFFIXES, "a netCDF file", "--out")
    if args.plot:
        check_suffix(args.plot, FIGURE_SUFFIXES, "a figure", "--plot")
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

    check_suffix(args.out, NETCDF_SUFFIXES, "a netCDF file", "--out")
    if args.plot:
        check_suffix(args.plot, FIGURE_SUFFIXES, "a figure", "--plot")
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
        figures = _signal_figures(ds, f"{args.n_cells} {ds.attrs['cell']} cell(s), surrogate")
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


def _signal_figures(ds, what: str) -> dict:
    """One figure per signal present: laminar LFP + CSD, EEG map, MEG map; each says what
    it shows (``what``) and how the amplitude of a population scales."""
    from . import plotting

    note = _scaling_note(int(ds.attrs.get("n_cells", 1)))
    figures = {}
    if "lfp" in ds:
        figures["lfp"] = plotting.plot_laminar(ds, title=f"{what}: laminar LFP and CSD\n{note}")
    if "eeg" in ds:
        figures["eeg"] = plotting.plot_eeg_topography(ds)
        figures["eeg"].suptitle(f"{what}: EEG (four-sphere head)\n{note}", fontsize=9)
    if "meg" in ds:
        figures["meg"] = plotting.plot_meg_field_map(ds)
        figures["meg"].suptitle(f"{what}: MEG\n{note}", fontsize=9)
    return figures


def _scaling_note(n_cells: int) -> str:
    return (f"{n_cells} cell(s), independent inputs; the signals of cells add: amplitude grows\n"
            "about as sqrt(cells) for independent inputs, as cells for synchronous inputs")


def _cmd_demo(args) -> dict:
    """100 cells of the default model near a laminar probe, with EEG and MEG, through the
    shipped surrogate; without a shipped model, a NEURON ground-truth run instead."""
    from .modelfolder import models_root

    if not (models_root() / "l5_ttpc1" / "model.json").is_file():
        return _demo_ground_truth(args)
    from . import plotting
    from .io import save_figure, write_netcdf
    from .predict import predict_lfp

    from .modelfolder import held_out_accuracy

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = predict_lfp(rates={"duration_ms": args.duration_ms, "n_cells": args.n_cells},
                     probe="laminar-16", signals=("lfp", "dipole", "eeg", "meg", "spikes"),
                     seed=args.seed, progress=None if not args.json else False)
    wall = time.perf_counter() - t0
    write_netcdf(ds, out / "demo_population.nc")
    figures = _signal_figures(ds, f"{args.n_cells} l5_ttpc1 cells (surrogate)")
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


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _subparsers(sub)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lfpsurrogate", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"lfpsurrogate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p):
        p.add_argument("--json", action="store_true", help="print one JSON object (no progress bars)")

    p = sub.add_parser("simulate", help="ground-truth NEURON run of a cell under Poisson input")
    p.add_argument("--cell", default="l5_ttpc1", help=CELL_HELP)
    p.add_argument("--duration-ms", type=float, default=1000.0, help="simulated time (ms)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson input")
    p.add_argument("--protocol", default="mixed",
                   help="input protocol: constant, modulated, piecewise, clustered or mixed")
    p.add_argument("--rate-exc", type=float, default=5.0, help="mean excitatory rate per slot (Hz)")
    p.add_argument("--rate-inh", type=float, default=2.0, help="mean inhibitory rate per slot (Hz)")
    p.add_argument("--d-lambda", type=float, default=None,
                   help="d_lambda rule fraction; default: a cell file's own discretization, else 0.3")
    p.add_argument("--out", required=True, help="result file (netCDF, .nc)")
    p.add_argument("--plot", default=None, help="figure of the run (.png, .pdf or .svg); none if not given")
    common(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("predict", help="LFP/EEG/MEG of a population through a surrogate")
    p.add_argument("--model", default="l5_ttpc1", help="shipped model name or model folder")
    p.add_argument("--probe", default="laminar-16", help="LFP probe: a shipped probe name or a YAML file")
    p.add_argument("--duration-ms", type=float, default=1000.0, help="simulated time (ms)")
    p.add_argument("--rate-exc", type=float, default=5.0, help="mean excitatory rate per slot (Hz)")
    p.add_argument("--rate-inh", type=float, default=2.0, help="mean inhibitory rate per slot (Hz)")
    p.add_argument("--protocol", default="constant",
                   help="input protocol: constant, modulated, piecewise, clustered or mixed")
    p.add_argument("--n-cells", type=int, default=1, help="cells in the population")
    p.add_argument("--seed", type=int, default=0, help="input seed (cell i uses seed + i) and placement seed")
    p.add_argument("--signals", default="lfp,dipole,eeg,meg,spikes",
                   help="comma list of v, imem, lfp, dipole, eeg, meg, spikes")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--out", required=True, help="result file (netCDF, .nc)")
    p.add_argument("--plot", default=None,
                   help="figure file (.png ...): the first signal's figure; the others (EEG, MEG) "
                        "go next to it as <name>_eeg.png, <name>_meg.png; none if not given")
    common(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", help="a population near a laminar probe + EEG + MEG, files and figures")
    p.add_argument("--duration-ms", type=float, default=1000.0, help="simulated time (ms)")
    p.add_argument("--n-cells", type=int, default=100, help="cells in the population")
    p.add_argument("--seed", type=int, default=0, help="input and placement seed")
    p.add_argument("--out-dir", default="lfpsurrogate-demo", help="folder for the result file and figures")
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
    from .export import register as register_export

    register_export(sub, common)
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
    from .network.cli import add_parser as add_network  # `lfpsurrogate network run`

    add_network(sub, common)
    for p in _subparsers(parser):
        p.formatter_class = HelpFormatter
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
