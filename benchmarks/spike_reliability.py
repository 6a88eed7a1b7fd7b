"""How much do the detailed cell's own spikes and signals move when its input changes a little?

For scale, not a bound: re-simulates held-out samples of a store in NEURON with the input
perturbed slightly (one event removed; a fraction of events removed; a fraction of events
moved one bin later) and scores each re-run ("twin") against the stored truth with
`evaluate`'s Evaluator and spike matching, so the keys (spike F1 within +-2 ms, soma RMSE, v
EV, LFP/EEG/MEG/dipole r) are those of `evaluate`, over the same bins (burn-in: the
surrogate's, max(receptive field, 50 ms)). The unperturbed re-run is the control: it must
reproduce the store exactly (F1 1, RMSE 0), which also checks that the store still matches
the cell. A surrogate sees the exact input, so it may do better than a twin; but one whose
errors are as large as a twin's should not be expected to time spikes better than it. The
surrogate's own free-running figures on the same samples are printed alongside (`--model`).

    python benchmarks/spike_reliability.py --data data/l5_a.zarr --n-samples 12
"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

KEYS = ("spike_f1", "soma_rmse_mv", "v_explained_variance_median", "lfp_r_median",
        "eeg_r_median", "meg_r_median", "dipole_r")
# name -> (kind, amount): "drop" removes events, "shift" moves events one bin later;
# amount < 1 is a fraction of the sample's events, >= 1 a number of events
PERTURBATIONS = {
    "none (re-run)": ("drop", 0),
    "1 event removed": ("drop", 1),
    "0.1% of events removed": ("drop", 0.001),
    "0.3% of events removed": ("drop", 0.003),
    "1% of events removed": ("drop", 0.01),
    "1% of events 1 bin later": ("shift", 0.01),
    "10% of events removed": ("drop", 0.1),
}


def perturb(counts: np.ndarray, kind: str, amount: float, rng: np.random.Generator) -> np.ndarray:
    """counts (channel, time) -> a copy with `amount` of its events removed or moved one bin
    later (events chosen uniformly; amount < 1 a fraction, else a number of events)."""
    out = counts.astype(np.int64).copy()
    total = int(out.sum())
    n = int(round(amount * total)) if amount < 1 else int(amount)
    if n == 0:
        return out.astype(counts.dtype)
    # pick n distinct events: event k lies in the flat bin where the cumulative count passes k
    picks = rng.choice(total, size=n, replace=False)
    flat = np.searchsorted(np.cumsum(out.ravel()), picks, side="right")
    ch, t = np.unravel_index(flat, out.shape)
    np.subtract.at(out, (ch, t), 1)
    if kind == "shift":
        keep = t + 1 < out.shape[1]
        np.add.at(out, (ch[keep], t[keep] + 1), 1)
    assert out.min() >= 0
    return out.astype(counts.dtype)


def _simulate(job: tuple) -> tuple:
    """Worker: (key, cell name, d_lambda, bin_ms, counts) -> (key, v (segment, time), spikes
    per bin)."""
    from lfpsurrogate.data.generate import worker_cell
    from lfpsurrogate.simulate import simulate

    key, name, d_lambda, bin_ms, counts = job
    ds = simulate(worker_cell(name, d_lambda, quiet=True), counts, bin_ms=bin_ms, progress=False)
    return key, ds.v.values.astype(np.float32), np.asarray(ds.spikes.values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="zarr store (its cell is re-simulated)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n-samples", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="l5_ttpc1", help="surrogate scored on the same samples "
                    "('' to skip)")
    ap.add_argument("--out", default="benchmarks/results/spike_reliability.json")
    args = ap.parse_args()

    import zarr

    from lfpsurrogate.data import split_samples, store_geometry, store_params
    from lfpsurrogate.evaluate import (SPIKE_TOLERANCE_MS, Evaluator, _tolerance_bins,
                                       _true_spike_bins, evaluate, match_counts,
                                       signal_matrices, spike_f1)

    params = store_params(args.data)
    geometry = store_geometry(args.data)
    g = zarr.open_group(args.data, mode="r")
    idx = [int(i) for i in split_samples(args.data, args.split)[:args.n_samples]]
    surrogate, burn_ms = None, 50.0  # evaluate's minimum burn-in
    if args.model:  # first: its burn-in (max(receptive field, 50 ms)) is used for every row
        res = evaluate(args.model, args.data, args.split, n_samples=args.n_samples)
        surrogate = {"model": args.model, **{k: round(float(res[k]), 4) for k in KEYS}}
        burn_ms = float(res["burn_in_ms"])
    burn = int(round(burn_ms / params.bin_ms))
    tol = _tolerance_bins(SPIKE_TOLERANCE_MS, params.bin_ms)
    rng = np.random.default_rng(args.seed)
    jobs, n_events = [], []
    for i in idx:
        counts = np.asarray(g["inputs"][i])
        n_events.append(int(counts.sum()))
        for name, (kind, amount) in PERTURBATIONS.items():
            jobs.append(((name, i), params.cell, params.d_lambda, params.bin_ms,
                         perturb(counts, kind, amount, rng)))
    evals = {name: Evaluator(geometry, burn, params.bin_ms, signal_matrices(geometry),
                             keep_example=False) for name in PERTURBATIONS}
    matches = {name: np.zeros(3, np.int64) for name in PERTURBATIONS}  # TP, FP, FN
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        for (name, i), v, per_bin in pool.map(_simulate, jobs):
            twin, true = _true_spike_bins(per_bin), _true_spike_bins(g["spikes"][i])
            evals[name].add(v, np.asarray(g["v"][i]))
            matches[name] += match_counts(twin, true, burn, tol)
            print(f"sample {i}, {name}: {len(twin)} spikes (true {len(true)})", flush=True)
    wall = time.perf_counter() - t0
    rows = {}
    for name, ev in evals.items():
        r = ev.result()
        tp, fp, fn = (int(x) for x in matches[name])
        rows[name] = {"spike_f1": round(spike_f1(tp, fp, fn), 4),
                      **{k: round(float(r[k]), 4) for k in KEYS if k != "spike_f1"},
                      "spikes_twin_true": [tp + fp, tp + fn]}
    report = {"store": str(args.data), "split": args.split,
              "cell_fingerprint": geometry.fingerprint, "samples": idx,
              "duration_s_each": params.duration_ms / 1000, "bin_ms": params.bin_ms,
              "burn_in_bins": burn, "events_per_sample_mean": float(np.mean(n_events)),
              "perturbation_seed": args.seed, "neuron_wall_s": round(wall, 1),
              "cell_vs_perturbed_self": rows}
    if surrogate:
        report["surrogate"] = surrogate
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(args.out) + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(args.out)
    width = max(map(len, rows)) + 2
    print(f"\n{'':{width}}" + "".join(f"{k[:12]:>13}" for k in KEYS))
    for name, row in list(rows.items()) + ([("surrogate " + args.model, surrogate)]
                                           if surrogate else []):
        print(f"{name:{width}}" + "".join(f"{row[k]:13.3f}" for k in KEYS))


if __name__ == "__main__":
    main()
