"""NEURON cost of the built-in cells: wall seconds per simulated second, side by side.

Also measures the overhead of our recording loop (gathering v and i_membrane_ of every
segment each step and bin-averaging) against NEURON integrating the same run with no
recording. Prints one JSON object and writes benchmarks/results/simulate.json.

    python benchmarks/bench_simulate.py [--duration-ms 2000] [--seeds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import lfpsurrogate as lfps
from lfpsurrogate.simulate import settle_to_rest


def neuron_only(cell, inputs, dt=1 / 16) -> float:
    """Same run with events queued but nothing recorded: the cost of NEURON itself."""
    from neuron import h

    from lfpsurrogate.simulate import _queue_events

    exc, inh = cell.synapses()
    ncs = [h.NetCon(None, s) for s in exc] + [h.NetCon(None, s) for s in inh]
    for k, nc in enumerate(ncs):
        nc.weight[0] = cell.synapse_params["exc_weight_uS" if k < len(exc) else "inh_weight_uS"]
    h.cvode.use_fast_imem(1)
    h.celsius = cell.spec.celsius
    settle_to_rest(h, cell.spec.v_init, dt)
    counts = inputs.values.astype(np.int64)
    t0 = time.perf_counter()
    _queue_events(ncs, counts, 0.0, 1.0)
    h.continuerun(counts.shape[1] * 1.0)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration-ms", type=float, default=2000.0)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    rows = {}
    for name in ("pyramid_hh", "l5_ttpc1"):
        t0 = time.perf_counter()
        cell = lfps.load_cell(name)
        load_s = time.perf_counter() - t0
        walls, bare, spikes = [], [], 0
        for seed in range(args.seeds):
            inputs = lfps.poisson_inputs(cell, args.duration_ms, seed=seed)
            t0 = time.perf_counter()
            ds = lfps.simulate(cell, inputs, progress=False)
            walls.append(time.perf_counter() - t0)
            spikes += int(ds.spike_times.size)
            bare.append(neuron_only(cell, inputs))
        sim_s = args.duration_ms / 1000 * args.seeds
        rows[name] = {
            "segments": cell.n_segments,
            "input_channels": cell.n_channels,
            "load_s": round(load_s, 2),
            "wall_s_per_simulated_s": round(sum(walls) / sim_s, 3),
            "neuron_only_s_per_simulated_s": round(sum(bare) / sim_s, 3),
            "recording_overhead": round(sum(walls) / sum(bare) - 1, 3),
            "somatic_rate_hz": round(spikes / sim_s, 2),
        }
    result = {
        "benchmark": "simulate",
        "duration_ms_per_run": args.duration_ms,
        "runs_per_cell": args.seeds,
        "protocol": "mixed (seeds 0..n-1)",
        "dt_ms": 1 / 16,
        "cells": rows,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "note": "one core per run; other processes may share the machine",
    }
    out = Path(__file__).parent / "results" / "simulate.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
