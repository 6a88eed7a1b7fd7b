"""Network figures of docs/network.md, as JSON.

    nice -n 10 python benchmarks/bench_network.py compare [--duration-ms 1000]
    nice -n 10 python benchmarks/bench_network.py scale --cells 100 1000 10000

``compare``: the shipped example spec (12 recurrent L5 TTPC1 cells) run in both engines on
the same seed: population rate, LFP r and EEG r between the engines (per electrode, median;
after ``--burn-in-ms``, when the surrogate's zero-padded history has passed), ISI CV and
pairwise synchrony side by side. ``scale``: the surrogate engine on N cells x 1 s (each N in
its own process, so that its peak memory is its own), a recurrent network with a fixed
expected in-degree (cost linear in cells and connections), wall time and peak RSS.
Results go to benchmarks/results/network_*.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def _r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def compare(duration_ms: float, burn_in_ms: float, uncoupled: bool = False,
            reuse_neuron: str | None = None, tag: str = "", seed: int | None = None) -> dict:
    import lfpsurrogate as lfps
    from lfpsurrogate.network import EXAMPLE_SPEC
    from lfpsurrogate.network.stats import spike_stats

    net = lfps.Network(EXAMPLE_SPEC)
    if seed is not None:  # another draw of the same network: cells, connections, drives
        net = lfps.Network(dict(net.spec, seed=seed))
    if uncoupled:  # the same cells and drives without connections: the single-cell floor
        net = lfps.Network(dict(net.spec, connections=[]))
    out = {"spec": net.spec, "duration_ms": duration_ms, "burn_in_ms": burn_in_ms,
           "n_cells": net.n_cells, "n_connections": int(net.connectivity.n)}
    runs = {}
    stem = f"network_compare{'_uncoupled' if uncoupled else ''}"
    if reuse_neuron is not None:  # refuse before any run, not after the surrogate's
        saved, prev_json = OUT / f"{stem}{reuse_neuron}_neuron.nc", OUT / f"{stem}{reuse_neuron}.json"
        if not (saved.exists() and prev_json.exists()):
            raise SystemExit(f"--reuse-neuron {reuse_neuron!r}: {saved.name} or {prev_json.name} "
                             f"is missing in {OUT}; give the --tag of an earlier compare run.")
        prev = json.loads(prev_json.read_text())
        if prev.get("duration_ms") != duration_ms or prev.get("spec") != json.loads(
                json.dumps(net.spec, default=str)):
            raise SystemExit(f"--reuse-neuron {reuse_neuron!r}: that run had another spec or "
                             "duration; run NEURON again (drop --reuse-neuron).")
    for engine in ("surrogate", "neuron"):
        if engine == "neuron" and reuse_neuron is not None:
            import xarray as xr  # the NEURON run does not depend on the surrogate model

            runs[engine] = xr.load_dataset(saved, engine="h5netcdf")
            out.update(neuron_wall_s=prev["neuron_wall_s"], neuron_loop_wall_s=prev["neuron_loop_wall_s"],
                       neuron_from=saved.name)
            continue
        t0 = time.perf_counter()
        runs[engine] = net.run(duration_ms, engine=engine, signals=("lfp", "dipole", "eeg"))
        out[f"{engine}_wall_s"] = round(time.perf_counter() - t0, 2)
        out[f"{engine}_loop_wall_s"] = round(float(runs[engine].attrs["wall_s"]), 2)
    k = int(burn_in_ms)
    for label, sl in (("after_burn_in", slice(k, None)), ("whole_run", slice(None))):
        fig = {}
        for engine, ds in runs.items():
            fig[engine] = spike_stats(ds["spikes"].values[:, sl])
        rs, rn = fig["surrogate"]["rate_hz"], fig["neuron"]["rate_hz"]
        fig["rate_rel_diff"] = (rs - rn) / rn if rn > 0 else None
        s, n = runs["surrogate"], runs["neuron"]
        lfp_r = _r(s["lfp"].values[:, sl], n["lfp"].values[:, sl])
        eeg_r = _r(s["eeg"].values[:, sl], n["eeg"].values[:, sl])
        dip_r = _r(s["dipole"].values[:, sl], n["dipole"].values[:, sl])
        fig.update(lfp_r_median=float(np.median(lfp_r)), lfp_r_per_electrode=lfp_r.round(3).tolist(),
                   eeg_r_median=float(np.median(eeg_r)), dipole_r_xyz=dip_r.round(3).tolist(),
                   lfp_rms_ratio=float(s["lfp"].values[:, sl].std() / n["lfp"].values[:, sl].std()),
                   eeg_rms_ratio=float(s["eeg"].values[:, sl].std() / n["eeg"].values[:, sl].std()))
        out[label] = fig
    out["spikes_per_cell"] = {e: ds["spikes"].values.sum(1).tolist() for e, ds in runs.items()}
    from lfpsurrogate.modelfolder import resolve_model_path

    sidecar = json.loads((resolve_model_path("l5_ttpc1") / "model.json").read_text())
    out["model"] = {"LFPSURROGATE_MODELS": os.environ.get("LFPSURROGATE_MODELS"),
                    "spike_calibration_threshold": sidecar.get("spike_calibration", {}).get("threshold"),
                    "spike_calibration_rate_ratio": sidecar.get("spike_calibration", {}).get("rate_ratio")}
    for e, ds in runs.items():
        if not (e == "neuron" and "neuron_from" in out):
            ds.to_netcdf(OUT / f"{stem}{tag}_{e}.nc", engine="h5netcdf")
    return out


def scale_one(n_cells: int, duration_ms: float, in_degree: float, signals,
              device: str = "cpu") -> dict:
    import torch

    import lfpsurrogate as lfps

    torch.set_num_threads(1)  # measured here: on a loaded 2-core machine, 1 thread is faster
    on_gpu = device.startswith("cuda")
    p = min(1.0, in_degree / n_cells)
    spec = {"seed": 1,
            "populations": {"L5": {"model": "l5_ttpc1", "n": n_cells,
                                   "placement": {"radius_um": 150 * max(1.0, (n_cells / 100) ** 0.5),
                                                 "z_um": [-50, 50]}}},
            "external": [{"target": "L5", "rate_exc_hz": 6, "rate_inh_hz": 2}],
            "connections": [{"source": "L5", "target": "L5", "kind": "exc", "probability": p,
                             "weight": 2, "delay_ms": [2, 5]}]}
    t0 = time.perf_counter()
    net = lfps.Network(spec)
    n_conn = int(net.connectivity.n)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = net.run(duration_ms, signals=signals, device=device)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    gpu = ({"gpu": torch.cuda.get_device_name(torch.device(device)),
            "gpu_peak_mib": round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**20, 1)}
           if on_gpu else {})
    return {"n_cells": n_cells, "duration_ms": duration_ms, "n_connections": n_conn, "device": device,
            **gpu,
            "probability": p, "signals": list(signals), "build_s": round(build_s, 2),
            "run_wall_s": round(wall, 2), "loop_wall_s": round(float(ds.attrs["wall_s"]), 2),
            "peak_rss_mib": round(rss, 1), "torch_threads": torch.get_num_threads(),
            "rate_hz": json.loads(ds.attrs["stats"])["L5"]["rate_hz"],
            "chunk_bins": int(ds.attrs["chunk_bins"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=("compare", "scale", "scale-one"))
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--burn-in-ms", type=float, default=100.0)
    ap.add_argument("--cells", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--in-degree", type=float, default=50.0)
    ap.add_argument("--signals", default="lfp,eeg,meg")
    ap.add_argument("--uncoupled", action="store_true",
                    help="compare: the example's cells and drives without its connections")
    ap.add_argument("--reuse-neuron", nargs="?", const="", default=None, metavar="TAG",
                    help="compare: read the NEURON run saved by an earlier compare with this "
                         "--tag (it does not depend on the surrogate), e.g. to measure another "
                         "model")
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    ap.add_argument("--seed", type=int, default=None,
                    help="compare: the example spec with this seed instead of its own")
    ap.add_argument("--device", default="cpu", help="scale: torch device of the surrogate engine "
                    "(cpu, cuda)")
    ap.add_argument("--out-dir", type=Path, default=OUT, help="where the JSON results go (compare keeps its .nc files in benchmarks/results)")
    args = ap.parse_args()
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    signals = tuple(s for s in args.signals.split(",") if s)
    if args.part == "compare":
        res = compare(args.duration_ms, args.burn_in_ms, args.uncoupled, args.reuse_neuron,
                      args.tag, args.seed)
        name = f"network_compare{'_uncoupled' if args.uncoupled else ''}{args.tag}.json"
        (out_dir / name).write_text(json.dumps(res, indent=1, default=str))
        print(json.dumps({k: v for k, v in res.items() if k != "spec"}, indent=1, default=str))
    elif args.part == "scale-one":
        print(json.dumps(scale_one(args.cells[0], args.duration_ms, args.in_degree, signals,
                                   args.device)))
    else:
        suffix = "" if args.device == "cpu" else "_" + args.device.split(":")[0]
        path = out_dir / f"network_scale{suffix}{args.tag}.json"
        rows = json.loads(path.read_text()) if path.exists() else []
        for n in args.cells:
            proc = subprocess.run([sys.executable, __file__, "scale-one", "--cells", str(n),
                                   "--duration-ms", str(args.duration_ms), "--in-degree",
                                   str(args.in_degree), "--signals", args.signals,
                                   "--device", args.device],
                                  capture_output=True, text=True, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows = [r for r in rows if r["n_cells"] != n] + [row]
            path.write_text(json.dumps(sorted(rows, key=lambda r: r["n_cells"]), indent=1))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
