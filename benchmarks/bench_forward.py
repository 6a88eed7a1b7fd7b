"""Timing of the forward models: 100 placed cells x 1000 time bins, all four signals
(LFP on laminar-16, dipole, EEG 10-20, MEG radial array) from voltages.

Uses a synthetic ~570-segment tree (the size of l5_ttpc1 at d_lambda 0.3) so that no
NEURON run is needed. Prints the first call (matrix building with lfpykit, composition
with M, the products) and the cached call (products only; min and median of --repeats calls, since a shared
machine's load makes single timings noisy). Not a test.

    python benchmarks/bench_forward.py [--cells 100] [--bins 1000] [--segments 570]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import scipy.sparse as sp

import lfpsurrogate as lfps
from lfpsurrogate.forward import clear_cache
from lfpsurrogate.geometry import CellGeometry

NEURON_S_PER_SIM_S = 6.5  # l5_ttpc1, 567 segments, dt 1/16 ms, one core (CONTEXT.md)


def synthetic_tree(n: int, seed: int = 0) -> CellGeometry:
    """Random binary-ish tree of n segments grown upwards from a soma at the origin."""
    rng = np.random.default_rng(seed)
    start, end, parents = [np.array([0.0, 0.0, -10.0])], [np.array([0.0, 0.0, 10.0])], [-1]
    for i in range(1, n):
        p = int(rng.integers(max(0, i - 20), i))
        direction = rng.normal(0, 0.5, 3) + [0, 0, 1 if rng.random() < 0.7 else -1]
        start.append(end[p])
        end.append(end[p] + 20.0 * direction / np.linalg.norm(direction))
        parents.append(p)
    rows = np.arange(1, n)
    a = sp.coo_matrix((np.full(n - 1, 0.05), (rows, np.array(parents[1:]))), shape=(n, n))
    a = (a + a.T).tocsr()
    m = a - sp.diags(np.asarray(a.sum(axis=1)).ravel())
    s, e = np.array(start), np.array(end)
    region = ["soma"] + ["apical" if z > 0 else "basal" for z in e[1:, 2]]
    return CellGeometry("synthetic", np.c_[s[:, 0], e[:, 0]], np.c_[s[:, 1], e[:, 1]],
                        np.c_[s[:, 2], e[:, 2]], np.full(n, 1.5), [f"sec{i}" for i in range(n)],
                        region, m, np.arange(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--bins", type=int, default=1000)
    ap.add_argument("--segments", type=int, default=570)
    ap.add_argument("--repeats", type=int, default=5, help="cached calls timed")
    args = ap.parse_args()
    geom = synthetic_tree(args.segments)
    rng = np.random.default_rng(1)
    n = args.cells
    position = np.c_[rng.uniform(-250, 250, (n, 2)) + [60, 0], rng.uniform(-100, 100, n)]
    rotation = np.c_[rng.normal(0, 0.1, (n, 2)), rng.uniform(0, 2 * np.pi, n)]
    v = rng.normal(-65.0, 2.0, (n, geom.n_segments, args.bins))
    probes = {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"}
    clear_cache()
    cached = []
    for _ in range(1 + args.repeats):
        t0 = time.perf_counter()
        fwd = lfps.forward_model(geom, probes, position=position, rotation=rotation)
        ds = fwd.from_voltages(v)
        cached.append(time.perf_counter() - t0)
    times = {"first_call_s": cached[0], "cached_call_min_s": min(cached[1:]),
             "cached_call_median_s": float(np.median(cached[1:]))}
    result = {
        "cells": n, "segments": geom.n_segments, "time_bins": args.bins,
        "signals": list(fwd.signals), "lfp_electrodes": ds.sizes["electrode"],
        "eeg_electrodes": ds.sizes["eeg_electrode"], "meg_sensors": ds.sizes["sensor"],
        **{k: round(t, 3) for k, t in times.items()},
        "neuron_one_cell_1s_reference_s": NEURON_S_PER_SIM_S,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
