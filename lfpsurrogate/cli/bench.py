"""`lfpsurrogate bench [--quick] [--json]`: NEURON + LFPy vs the surrogate, speed and accuracy."""
from __future__ import annotations

from .common import add_json_option


def run(args) -> dict:
    from ..bench import run_bench, write_performance_doc

    sizes = {}
    if args.sweep_cells is not None:
        sizes["sweep_cells"] = tuple(args.sweep_cells)
    if args.neuron_cells is not None:
        sizes["neuron_cells"] = args.neuron_cells
    if args.repeats is not None:
        sizes["repeats"] = args.repeats
    res = run_bench(args.model, quick=args.quick, device=args.device, threads=args.threads,
                    seed=args.seed, out_dir=args.out_dir, progress=not args.json,
                    chunk_cells=args.chunk_cells, **sizes)
    if args.write_doc:
        res["doc"] = str(write_performance_doc(res["results_file"], args.write_doc,
                                               args.doc_figure))
    if args.json:
        return res
    keys = ("mode", "model_name", "model_trained", "device", "torch_threads",
            "speedup_single", "speedup_population", "surrogate_cell_seconds_per_second",
            "neuron_cell_seconds_per_second", "targets", "results_file", "plot", "doc",
            "warning", "total_wall_s")
    summary = {k: res[k] for k in keys if k in res}
    acc = res.get("accuracy") or {}
    summary["accuracy"] = {k: acc.get(k) for k in ("soma_rmse_mv", "lfp_r_median",
                                                   "eeg_r_median", "meg_r_median",
                                                   "n_true_spikes", "n_predicted_spikes")}
    summary["neuron_population"] = (f"{res['population']['neuron_cells_simulated']} of "
                                    f"{res['population']['cells']} cells simulated, scaled linearly")
    return summary


def add_parser(subparsers):
    p = subparsers.add_parser(
        "bench",
        help="NEURON + LFPy ground truth vs the surrogate on the same inputs: wall time, "
             "speed-up, throughput, memory, accuracy; scaling sweep")
    p.add_argument("--model", default="l5_ttpc1",
                   help="model folder, shipped model name or checkpoint (default: l5_ttpc1)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (1 cell x 1 s, 10 cells x 0.5 s, sweep 1 and 10 cells)")
    p.add_argument("--device", default="auto", help="torch device for the surrogate (auto, cpu, cuda)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's own)")
    p.add_argument("--seed", type=int, default=0, help="input seed (cell i uses seed + i)")
    p.add_argument("--neuron-cells", type=int, default=None,
                   help="population cells simulated by NEURON (default 10; quick 2)")
    p.add_argument("--sweep-cells", type=int, nargs="*", default=None,
                   help="cell counts of the scaling sweep (default 1 10 100 1000; quick 1 10)")
    p.add_argument("--repeats", type=int, default=None, help="timed surrogate calls (best kept)")
    p.add_argument("--chunk-cells", type=int, default=256,
                   help="cells per predict_lfp call in large populations (memory bound)")
    p.add_argument("--out-dir", default=".",
                   help="where bench-<date>.json and its plot go (default: the current directory)")
    p.add_argument("--write-doc", default=None, metavar="MD",
                   help="also render the results into this markdown file (e.g. docs/performance.md)")
    p.add_argument("--doc-figure", default="docs/figures/scaling.png",
                   help="scaling plot written with --write-doc")
    add_json_option(p)
    p.set_defaults(func=run)
    return p


__all__ = ["add_parser", "run"]
