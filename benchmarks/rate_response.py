"""Firing rate against input rate (the cell's rate response), NEURON against surrogates.

Each cell is driven by `lfpsurrogate.Network`'s own Poisson drive (``add_poisson_drive``):
every input slot fires at ``rate_exc`` (excitatory) and ``rate_exc * inh_ratio``
(inhibitory) Hz, scaled by its membrane-area weight; the shipped example network uses 6
and 2 Hz. For each rate and seed the detailed cell runs in
NEURON and each surrogate runs free on the same counts; the somatic rates after the
burn-in are compared per rate. A network's rate follows from this curve (plus its own
recurrent input), so a surrogate whose curve is off at the network's operating point will
be off in the network, however well it scores on mixed test inputs.

NEURON results are kept in the output JSON as they arrive; re-running the same command
resumes them, and ``--model`` rows are recomputed each time (seconds).

    python benchmarks/rate_response.py --rates 2 4 6 8 12 --seeds 0 1 2 3 --model l5_ttpc1
"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np


def network_drive_counts(model: str, rate_exc: float, inh_ratio: float, n_bins: int,
                         seed: int) -> np.ndarray:
    """(channel, n_bins) uint8 counts of one cell under `Network`'s own Poisson drive
    (``add_poisson_drive``) at ``rate_exc`` / ``rate_exc * inh_ratio`` Hz, network seed
    ``seed``: the input the network engines give a cell, without its recurrent input."""
    from lfpsurrogate.network import Network
    from lfpsurrogate.network.drives import ExternalDrives

    net = Network(seed=seed).add_population("cell", model, n=1)
    net.add_poisson_drive("cell", rate_exc_hz=rate_exc, rate_inh_hz=rate_exc * inh_ratio)
    _, channel, bins, count = ExternalDrives(net.spec, net.populations, n_bins).all_events()
    counts = np.zeros((net.populations[0].geometry.n_channels, n_bins), np.int64)
    np.add.at(counts, (channel, bins), count)
    return np.minimum(counts, 255).astype(np.uint8)


def _simulate(job: tuple) -> tuple:
    """Worker: (key, cell name, counts, bin_ms) -> (key, spike times in ms)."""
    from lfpsurrogate.data.generate import worker_cell
    from lfpsurrogate.simulate import simulate

    key, name, counts, bin_ms = job
    ds = simulate(worker_cell(name, None, quiet=True), counts, bin_ms=bin_ms, progress=False)
    return key, [float(t) for t in ds.spike_times.values]


def _save(path: Path, report: dict) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="l5_ttpc1", help="cell simulated in NEURON")
    ap.add_argument("--drive-model", default="l5_ttpc1",
                    help="model whose cell geometry lays out the drive (same cell)")
    ap.add_argument("--rates", type=float, nargs="+", default=[2, 3, 4, 5, 6, 7, 8, 10, 12],
                    help="excitatory rates per slot (Hz)")
    ap.add_argument("--inh-ratio", type=float, default=1 / 3,
                    help="inhibitory rate / excitatory rate (the example network: 2/6)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3],
                    help="input seeds per rate (each a run of --duration-ms)")
    ap.add_argument("--duration-ms", type=float, default=2000.0)
    ap.add_argument("--burn-in-ms", type=float, default=150.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", nargs="*", default=["l5_ttpc1"],
                    help="surrogates run on the same counts (names or model folders)")
    ap.add_argument("--out", default="benchmarks/results/rate_response.json")
    args = ap.parse_args()

    from lfpsurrogate import predict_lfp
    from lfpsurrogate.data.generate import worker_geometry
    from lfpsurrogate.modelfolder import load_surrogate

    bin_ms = 1.0
    n_bins = int(round(args.duration_ms / bin_ms))
    burn = int(round(args.burn_in_ms / bin_ms))
    pool = ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"))
    geom = pool.submit(worker_geometry, args.cell, None, True).result()[0]
    if load_surrogate(args.drive_model).geometry.fingerprint != geom.fingerprint:
        raise SystemExit(f"--drive-model {args.drive_model} was trained for another cell than "
                         f"--cell {args.cell}; give a model of that cell.")
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    setup = {"cell": args.cell, "cell_fingerprint": geom.fingerprint,
             "inh_ratio": args.inh_ratio, "drive": "Network.add_poisson_drive",
             "duration_ms": args.duration_ms, "burn_in_ms": args.burn_in_ms, "bin_ms": bin_ms}
    if report.get("setup") != setup:  # another experiment: start afresh
        report = {"setup": setup, "neuron_spike_times": {}}
    done = report["neuron_spike_times"]
    keys = [(r, s) for r in args.rates for s in args.seeds]
    jobs = [(f"{r:g}/{s}", args.cell,
             network_drive_counts(args.drive_model, r, args.inh_ratio, n_bins, s), bin_ms)
            for r, s in keys if f"{r:g}/{s}" not in done]
    t0 = time.perf_counter()
    with pool:
        for key, times in pool.map(_simulate, jobs):
            done[key] = times
            _save(out, report)
            print(f"NEURON {key}: {len(times)} spikes", flush=True)
    t_neuron = time.perf_counter() - t0

    def rate(times) -> float:
        n = sum(1 for t in times if t >= args.burn_in_ms)
        return n / ((args.duration_ms - args.burn_in_ms) / 1000)

    # per rate: the rate of each seed's run (Hz), NEURON's and each surrogate's
    rows = {f"{r:g}": {"neuron": [rate(done[f"{r:g}/{s}"]) for s in args.seeds]}
            for r in args.rates}
    for name in args.model:
        counts = np.stack([network_drive_counts(args.drive_model, r, args.inh_ratio, n_bins, s)
                           for r, s in keys])
        ds = predict_lfp(counts, model=name, signals=("spikes",), cell=geom)
        per_bin = np.asarray(ds["spikes"].values)[:, burn:]  # (cell, time)
        hz = per_bin.sum(1) / ((n_bins - burn) * bin_ms / 1000)
        for j, (r, s) in enumerate(keys):
            rows[f"{r:g}"].setdefault(name, []).append(float(hz[j]))
    report["rates_hz"] = rows
    report["seeds"] = args.seeds
    # NEURON's wall time over every run that added NEURON runs to this file (resumes add up)
    report["neuron_wall_s"] = round(report.get("neuron_wall_s", 0.0) + t_neuron, 1)
    _save(out, report)
    names = ["NEURON"] + [n if len(n) < 20 else "..." + n[-17:] for n in args.model]
    print("mean (sd over seeds) rate in Hz; surrogates: relative to NEURON\n"
          + f"{'exc Hz':>7}" + "".join(f"{n:>30}" for n in names))
    for r, row in rows.items():
        ref = np.mean(row["neuron"])
        line = f"{r:>7}"
        for name in ["neuron"] + list(args.model):
            m, sd = np.mean(row[name]), np.std(row[name])
            rel = f" {(m / ref - 1) * 100:+4.0f} %" if name != "neuron" and ref > 0 else " " * 7
            line += f"{m:>16.2f} ({sd:5.2f}){rel}"
        print(line)


if __name__ == "__main__":
    main()
