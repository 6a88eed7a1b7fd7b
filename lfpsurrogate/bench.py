"""Speed and accuracy of a surrogate against NEURON + LFPy on the same inputs, in one run.

``lfpsurrogate bench`` (see ``docs/performance.md``):

- **(a) single cell**: one cell driven for ``single_ms`` (10 s; quick: 1 s).
- **(b) population**: ``pop_cells`` cells (100; quick: 10) for ``pop_ms`` (1 s; quick: 0.5 s).
- **scaling sweep**: the surrogate over cell counts (1 … 1000) at 1 s and over durations
  for one cell; NEURON's cost there is extrapolated linearly from what (a) and (b) measured.

Both pipelines produce the laminar-probe LFP, EEG and MEG of the same seeded inputs
(``poisson_inputs(cell, duration_ms, seed=seed + i)`` for cell i, default protocol) at the
same placement (``predict.default_placement``).

What is timed (wall clock, ``time.perf_counter``):

- NEURON pipeline = ``simulate`` (NEURON, one core) + the forward model applied to its
  transmembrane currents (``ForwardModel.from_currents``, matrices already built).
- Surrogate pipeline = one ``predict_lfp(inputs, signals=("lfp", "eeg", "meg"))`` call with
  the model and forward matrices already cached in the process (the best of ``repeats``
  calls); the first call (``*_first_call_s``: torch warm-up, forward-matrix build for a
  new placement, conversion to the device) is reported separately. Probes are loaded once
  (``load_probe``) and passed as objects, so no call re-reads their YAML files.
- The one-time build of the forward matrices (lfpykit) is shared by both pipelines and
  excluded from both warm walls; for (a) it is measured on its own as
  ``forward_matrices_build_s`` (so (a)'s first call does not include it; (b)'s and the
  sweep's first calls do, for their placements).

Speed-up = NEURON pipeline wall / surrogate wall for the same work. Throughput = simulated
cell-seconds per wall second. Cores are counted alike: for (b) NEURON runs its
``neuron_cells`` cells in parallel, one single-threaded process per usable core (a dask
LocalCluster, the cell loaded in every process before timing), and the surrogate uses the
same cores (``torch_threads``); the wall of those cells is scaled linearly to all cells, and
the forward model is timed on all cells (the subset's currents tiled: the cost of a matrix
product does not depend on the values). A single cell's NEURON run is serial (one process).
The output says so (``cores``, ``neuron_processes``, ``neuron_scaling``).

Both input paths are timed: counts (``predict_lfp(inputs)``, a dense channel x time array)
and events (``predict_lfp(events=...)``, (cell, channel, time_ms) rows, as a network
simulator hands them over; converting counts to events is not timed):
``speedup`` / ``speedup_events``, and ``events_vs_counts_max_rel_diff`` checks that both
give the same signals. Spikes are called at the model's calibrated threshold.

Peak memory: a thread samples the process's resident set size (psutil) every 5 ms during
each timed phase; ``rss_peak_mb`` is the highest sample and ``rss_increase_mb`` the peak
minus the RSS at the start of the phase. Memory the allocators kept from earlier phases is
not counted again, and spikes shorter than the sampling interval can be missed: these
are lower bounds of what the phase needs. On CUDA, ``cuda_peak_mb`` is
``torch.cuda.max_memory_allocated`` over the phase.

Accuracy on the same runs: for (a) the surrogate's voltages and spike logit (one
extra, untimed model call) go through :class:`lfpsurrogate.evaluate.Evaluator` against the
NEURON voltages and spikes, giving the ``lfpsurrogate evaluate`` keys (``soma_rmse_mv``,
``lfp_r_median``, ``eeg_r_median``, ``meg_r_median``, spike counts, …); ``signals_direct``
compares the timed ``predict_lfp`` output itself with the NEURON pipeline's signals. For (b)
the summed LFP/EEG/MEG of the NEURON subset is compared with the surrogate's on the same
subset. Burn-in as in ``evaluate``: the first max(receptive field, 50 ms) bins are excluded.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .allocator import allocator_settings
from .errors import LfpsurrogateError

SIGNALS = ("lfp", "eeg", "meg")
PROBES = {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"}
TARGET_SINGLE = 1000.0
TARGET_POPULATION = 1000.0
TARGET_GPU = {"cells": 10000, "duration_ms": 1000.0, "wall_s": 1.0}

QUICK = {"single_ms": 1000.0, "pop_cells": 10, "pop_ms": 500.0, "neuron_cells": 2,
         "sweep_cells": (1, 10), "sweep_durations_ms": (1000.0,), "sweep_long_population": None,
         "repeats": 2}
FULL = {"single_ms": 10000.0, "pop_cells": 100, "pop_ms": 1000.0, "neuron_cells": 10,
        "sweep_cells": (1, 10, 100, 1000), "sweep_durations_ms": (1000.0, 10000.0),
        "sweep_long_population": 100, "repeats": 3}
DOC_BEGIN, DOC_END = "<!-- bench:begin -->", "<!-- bench:end -->"

__all__ = ["BenchError", "run_bench", "bench_single", "bench_population", "bench_sweep",
           "machine_info", "write_performance_doc", "QUICK", "FULL"]


class BenchError(LfpsurrogateError, ValueError):
    """A benchmark that cannot run as asked (wrong cell for the model, bad sizes)."""


# ---- measurement helpers -----------------------------------------------------------------
class PeakMemory:
    """Context manager: peak resident set size of this process (sampled) and CUDA peak."""

    def __init__(self, device: str = "cpu", interval_s: float = 0.005):
        self.device, self.interval = str(device), interval_s
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cuda_peak: int | None = None

    @staticmethod
    def _rss() -> int:
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # noqa: BLE001 - psutil missing or not permitted: no sampling
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.start = self.peak = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.cuda_peak = int(torch.cuda.max_memory_allocated())

    def result(self) -> dict:
        mb = 1024.0 ** 2
        out = {"rss_peak_mb": round(self.peak / mb, 1),
               "rss_increase_mb": round(max(self.peak - self.start, 0) / mb, 1)}
        if self.cuda_peak is not None:
            out["cuda_peak_mb"] = round(self.cuda_peak / mb, 1)
        return out


def _timed(fn, device: str = "cpu"):
    """(result, wall seconds, memory dict) of one call of ``fn``."""
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        out = fn()
        if str(device).startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    return out, wall, mem.result()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict:
    """CPU model (/proc/cpuinfo), cores, memory, load, torch threads, device, versions."""
    import torch

    from .provenance import package_versions

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "neuron_threads": 1,
        "device": str(device),
        "versions": package_versions(),
    }
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 1024 ** 3, 1)
    except Exception:  # noqa: BLE001
        pass
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    # malloc settings of this process (the lfpsurrogate command keeps freed memory: None
    # means glibc's defaults, as in a Python session that did not call retain_freed_memory)
    info["allocator"] = allocator_settings()
    # ... and what the environment set before the process started (glibc's variables, a
    # preloaded jemalloc or tcmalloc)
    info["malloc_environment"] = {k: v for k, v in os.environ.items()
                                  if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


# ---- context: model, cell, inputs ----------------------------------------------------------
@dataclass
class BenchContext:
    """What every measurement shares: the loaded surrogate, the NEURON cell, the device."""

    loaded: Any
    cell: Any
    device: str
    seed: int = 0
    repeats: int = 3
    progress: bool = False
    probes: dict | None = None  # Probe objects, loaded once (parsing YAML is not timed)

    @property
    def geometry(self):
        return self.loaded.geometry

    def log(self, msg: str) -> None:
        if self.progress:
            print(f"[bench] {msg}", flush=True)


def _cell_kwargs(geometry) -> dict:
    """load_cell keyword arguments that rebuild the geometry's discretization."""
    disc = dict(geometry.meta.get("discretization") or {})
    if not disc:
        return {}
    return {"d_lambda": disc.get("d_lambda", 0.3), "lambda_f": disc.get("lambda_f", 100.0),
            "nsegs_method": disc.get("method", "lambda_f"),
            "max_nsegs_length": disc.get("max_nsegs_length")}


def _load_cell_for(geometry):
    from .cells import load_cell

    return load_cell(geometry.name, **_cell_kwargs(geometry))


def make_context(model: str | Path = "l5_ttpc1", *, device: str = "auto", cell=None,
                 seed: int = 0, repeats: int = 3, progress: bool = False) -> BenchContext:
    """Load the surrogate (cached) and its NEURON cell; refuse a cell of another fingerprint."""
    from .predict import _device, load_model

    dev = str(_device(device))
    loaded = load_model(model, dev)
    geom = loaded.geometry
    if cell is None:
        try:
            cell = _load_cell_for(geom)
        except LfpsurrogateError as exc:
            raise BenchError(f"cannot load the NEURON cell {geom.name!r} of model "
                             f"{loaded.name!r} for the ground truth: {exc}") from exc
    if cell.geometry.fingerprint != geom.fingerprint:
        raise BenchError(
            f"model {loaded.name!r} was trained for cell {geom.name!r} (fingerprint "
            f"{geom.fingerprint}), but the NEURON cell loaded is {cell.geometry.name!r} "
            f"(fingerprint {cell.geometry.fingerprint}): the ground truth would be another "
            "cell. Use the model's own cell (same discretization and synapses).")
    from .probes import load_probe

    probes = {k: load_probe(v) for k, v in PROBES.items()}
    return BenchContext(loaded=loaded, cell=cell, device=dev, seed=int(seed),
                        repeats=max(1, int(repeats)), progress=progress, probes=probes)


def draw_inputs(geometry, n_cells: int, duration_ms: float, seed: int = 0,
                distinct: int | None = None) -> np.ndarray:
    """Seeded Poisson counts (cell, channel, time) uint8; cell i uses seed + i.

    ``distinct``: draw only that many cells and tile them over the rest (for timing large
    populations: the surrogate's cost does not depend on the values)."""
    from .inputs import poisson_inputs

    k = n_cells if distinct is None else max(1, min(int(distinct), n_cells))
    first = [np.asarray(poisson_inputs(geometry, duration_ms, seed + i).values) for i in range(k)]
    out = np.empty((n_cells,) + first[0].shape, dtype=np.uint8)
    for i in range(n_cells):
        out[i] = first[i % k]
    return out


def _chunks(n_cells: int, chunk_cells: int, n_bins: int = 1000) -> list[slice]:
    # chunk_cells is per second of input (longer inputs: fewer cells per chunk); forward
    # matrices are cached per placement (LRU of 16): keep the number of chunks below that
    per_chunk = max(1, int(chunk_cells) * 1000 // max(int(n_bins), 1))
    size = max(per_chunk, math.ceil(n_cells / 12))
    return [slice(b, min(b + size, n_cells)) for b in range(0, n_cells, size)]


def surrogate_signals(ctx: BenchContext, inputs: np.ndarray, positions, rotations, *,
                      chunk_cells: int = 256) -> dict[str, np.ndarray]:
    """LFP/EEG/MEG of a population through ``predict_lfp``, in chunks of cells (summed).

    One chunk is one ``predict_lfp`` call (which converts its inputs to float32 up front);
    chunking bounds that memory (``chunk_cells`` cells per second of input). The batch size
    is 64 cells for inputs up to 1 s and shrinks for longer ones (64 000 bins per batch). With several chunks, each chunk's EEG/MEG dipole sits at
    that chunk's mean position (``eeg_dipoles="summed"``): fine for timing."""
    from .predict import predict_lfp

    total: dict[str, np.ndarray] = {}
    pos, rot = np.asarray(positions, float), np.asarray(rotations, float)
    n_bins = inputs.shape[-1]
    batch = max(1, min(64, 64000 // n_bins))  # bounds the network's activations per batch
    for sl in _chunks(inputs.shape[0], chunk_cells, n_bins):
        x = inputs[sl]
        one = x.shape[0] == 1
        ds = predict_lfp(x[0] if one else x, model=ctx.loaded.path, signals=SIGNALS,
                         probe=ctx.probes["lfp"], eeg=ctx.probes["eeg"], meg=ctx.probes["meg"],
                         positions=pos[sl][0] if one else pos[sl],
                         rotations=rot[sl][0] if one else rot[sl], device=ctx.device,
                         seed=ctx.seed, batch_size=batch)
        for key in SIGNALS:
            val = ds[key].values
            total[key] = val if key not in total else total[key] + val
    return total


def _time_surrogate(ctx: BenchContext, inputs, positions, rotations, repeats: int | None = None,
                    chunk_cells: int = 256) -> dict:
    """First call (warm-up) and the best of ``repeats`` warm calls."""
    run = lambda: surrogate_signals(ctx, inputs, positions, rotations,  # noqa: E731
                                    chunk_cells=chunk_cells)
    _, first, _ = _timed(run, ctx.device)
    walls, mem, out = [], {}, None
    for _ in range(ctx.repeats if repeats is None else max(1, repeats)):
        out, wall, m = _timed(run, ctx.device)
        walls.append(wall)
        if not mem or m.get("rss_peak_mb", 0) > mem.get("rss_peak_mb", 0):
            mem = m
    return {"first_call_s": first, "wall_s": min(walls), "walls_s": walls, "memory": mem,
            "signals": out}


def events_of(counts: np.ndarray) -> np.ndarray:
    """(cell, channel, time) counts -> (n, 3) events (cell, channel, time_ms), one row per
    input spike at its bin's start: what a network simulator hands over (untimed)."""
    cell, channel, t = np.nonzero(counts)
    k = counts[cell, channel, t].astype(np.int64)
    return np.repeat(np.stack([cell, channel, t], 1), k, axis=0).astype(np.float64)


def _time_surrogate_events(ctx: BenchContext, inputs, positions, rotations,
                           repeats: int | None = None) -> dict:
    """The same work as :func:`_time_surrogate` through ``predict_lfp(events=...)``: one
    call over all cells (the events never become a dense channel x time matrix)."""
    from .predict import predict_lfp

    events = events_of(inputs)
    n, n_bins = inputs.shape[0], inputs.shape[-1]
    pos, rot = np.asarray(positions, float), np.asarray(rotations, float)
    batch = max(1, min(64, 64000 // n_bins))

    def run():
        ds = predict_lfp(events=events, duration_ms=float(n_bins), n_cells=n,
                         model=ctx.loaded.path, signals=SIGNALS, probe=ctx.probes["lfp"],
                         eeg=ctx.probes["eeg"], meg=ctx.probes["meg"],
                         positions=pos[0] if n == 1 else pos, rotations=rot[0] if n == 1 else rot,
                         device=ctx.device, seed=ctx.seed, batch_size=batch)
        return {k: ds[k].values for k in SIGNALS}

    _, first, _ = _timed(run, ctx.device)
    walls, out = [], None
    for _ in range(ctx.repeats if repeats is None else max(1, repeats)):
        out, wall, _ = _timed(run, ctx.device)
        walls.append(wall)
    return {"first_call_s": first, "wall_s": min(walls), "walls_s": walls, "signals": out,
            "n_events": int(len(events))}


def _events_speed(ev: dict, neuron_total: float, cell_s: float, counts_signals: dict) -> dict:
    """Speed of the events path, and its largest deviation from the counts path's signals."""
    dev = max(float(np.abs(ev["signals"][k] - counts_signals[k]).max()
                    / max(np.abs(counts_signals[k]).max(), 1e-30)) for k in SIGNALS)
    return {"surrogate_events_wall_s": ev["wall_s"], "surrogate_events_walls_s": ev["walls_s"],
            "surrogate_events_first_call_s": ev["first_call_s"], "n_events": ev["n_events"],
            "speedup_events": neuron_total / ev["wall_s"],
            "surrogate_events_cell_seconds_per_second": cell_s / ev["wall_s"],
            "events_vs_counts_max_rel_diff": dev}


# ---- NEURON on all cores (population) ----------------------------------------------------
_NEURON_CELL: dict = {}


def _neuron_run(spec: tuple, counts: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Worker side: simulate one cell (loaded once per process) -> (imem, simulate wall s)."""
    import xarray as xr

    from .cells import load_cell
    from .simulate import simulate

    name, kwargs = spec
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _NEURON_CELL:
        _NEURON_CELL.clear()
        _NEURON_CELL[key] = load_cell(name, **kwargs)
    da = xr.DataArray(counts, dims=("channel", "time"), attrs={"bin_ms": 1.0, "seed": seed})
    t0 = time.perf_counter()
    out = simulate(_NEURON_CELL[key], da, progress=False)
    return out["imem"].values, time.perf_counter() - t0


def neuron_parallel(geometry, inputs: np.ndarray, seed: int, workers: int) -> dict:
    """NEURON on ``workers`` single-threaded processes (dask LocalCluster), each with the
    cell loaded before timing: the wall of simulating all of ``inputs``' cells."""
    from .data.generate import _client

    spec = (geometry.name, _cell_kwargs(geometry))
    warm = np.zeros((inputs.shape[1], 20), dtype=inputs.dtype)
    with _client(workers, None) as (client, _):
        addrs = list(client.scheduler_info()["workers"])
        client.gather([client.submit(_neuron_run, spec, warm, 0, pure=False, workers=[a],
                                     allow_other_workers=False) for a in addrs])
        t0 = time.perf_counter()
        futs = [client.submit(_neuron_run, spec, inputs[i], seed + i, pure=False)
                for i in range(inputs.shape[0])]
        results = client.gather(futs)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "imem": np.stack([r[0] for r in results]),
            "simulate_walls_s": [r[1] for r in results], "processes": len(addrs)}


def _truth_signals(ds) -> dict[str, np.ndarray]:
    return {k: ds[k].values for k in SIGNALS}


def _r_median(pred: np.ndarray, true: np.ndarray, burn_in: int) -> tuple[float, int]:
    """Median Pearson r over channels with signal (as evaluate: var > 1e-12 × the largest)."""
    from .evaluate import ZERO_VARIANCE_REL, pearson_r

    t = true.reshape(-1, true.shape[-1])[:, burn_in:]
    p = pred.reshape(-1, pred.shape[-1])[:, burn_in:]
    var = t.var(axis=1)
    keep = var > ZERO_VARIANCE_REL * var.max() if var.max() > 0 else np.zeros(len(var), bool)
    if not keep.any():
        return math.nan, 0
    return float(np.median(pearson_r(t[keep], p[keep]))), int(keep.sum())


def _speed(sur: dict, neuron_total: float, cell_s: float) -> dict:
    """Surrogate timings, speed-ups and throughputs (simulated cell-seconds per wall second)."""
    return {
        "surrogate_wall_s": sur["wall_s"], "surrogate_walls_s": sur["walls_s"],
        "surrogate_first_call_s": sur["first_call_s"], "surrogate_memory": sur["memory"],
        "speedup": neuron_total / sur["wall_s"],
        "speedup_first_call": neuron_total / sur["first_call_s"],
        "neuron_cell_seconds_per_second": cell_s / neuron_total,
        "surrogate_cell_seconds_per_second": cell_s / sur["wall_s"],
    }


def _compare(pred: dict, true: dict, burn_in: int) -> dict:
    from .evaluate import relative_rmse

    out = {}
    for key in SIGNALS:
        r, used = _r_median(pred[key], true[key], burn_in)
        t = true[key][..., burn_in:]
        out[f"{key}_r_median"] = r
        out[f"{key}_channels_used"] = used
        out[f"{key}_rel_rmse"] = relative_rmse(pred[key][..., burn_in:], t)
    return out


def _burn_in(ctx: BenchContext, bin_ms: float = 1.0) -> int:
    from .evaluate import _burn_in_bins

    return _burn_in_bins(ctx.loaded.model, bin_ms, None)


def _check_duration(ctx: BenchContext, duration_ms: float, what: str) -> None:
    b = _burn_in(ctx)
    if duration_ms < b + 2:
        raise BenchError(f"{what} of {duration_ms} ms is too short: the accuracy excludes a "
                         f"burn-in of {b} ms; give at least {b + 2} ms.")


# ---- (a) single cell ------------------------------------------------------------------------
def bench_single(ctx: BenchContext, duration_ms: float = 10000.0) -> dict:
    """One cell for ``duration_ms``: NEURON + forward vs the surrogate, and accuracy."""
    import torch

    from .evaluate import Evaluator, _true_spike_bins, signal_matrices
    from .forward import forward_model
    from .inputs import poisson_inputs
    from .predict import default_placement
    from .simulate import simulate

    _check_duration(ctx, duration_ms, "the single-cell run")
    geom, seed = ctx.geometry, ctx.seed
    inputs = poisson_inputs(ctx.cell, duration_ms, seed=seed)
    pos, rot = default_placement(1, seed)
    cell_s = duration_ms / 1000.0

    ctx.log(f"single: surrogate, 1 cell x {duration_ms:g} ms")
    sur = _time_surrogate(ctx, np.asarray(inputs.values)[None], pos, rot)
    ctx.log(f"single: surrogate from events, 1 cell x {duration_ms:g} ms")
    sur_ev = _time_surrogate_events(ctx, np.asarray(inputs.values)[None], pos, rot)
    ctx.log(f"single: NEURON, 1 cell x {duration_ms:g} ms")
    truth, sim_s, sim_mem = _timed(lambda: simulate(ctx.cell, inputs, progress=ctx.progress))
    fwd = forward_model(geom, dict(ctx.probes), signals=SIGNALS, position=pos[0], rotation=rot[0])
    fwd.matrices()  # built (and cached) already by the surrogate's first call
    true_sig, fwd_s, fwd_mem = _timed(lambda: _truth_signals(fwd.from_currents(truth["imem"])))
    neuron_total = sim_s + fwd_s

    # accuracy: the surrogate's voltages and spike logit on the same input (untimed)
    ctx.log("single: accuracy")
    b = _burn_in(ctx)
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(inputs.values, dtype=np.float32)[None]).to(ctx.device)
        out = ctx.loaded.model(x)
        v_hat = out["v"][0].double().cpu().numpy()
        logit = out["spike_logit"][0].double().cpu().numpy()
    ev = Evaluator(geom, b, 1.0, signal_matrices(geom, dict(ctx.probes), position=tuple(pos[0])),
                   keep_example=False,
                   spike_threshold=float(ctx.loaded.sidecar.get("spike_logit_threshold", 0.0)))
    ev.add(v_hat, truth["v"].values, logit, _true_spike_bins(truth["spikes"].values))
    accuracy = ev.result()
    accuracy.pop("v_explained_variance_by_region", None)
    accuracy.pop("v_rmse_mv_by_region", None)
    accuracy["n_true_spikes_whole_run"] = int(truth["spike_times"].size)

    return {
        "cells": 1, "duration_ms": duration_ms, "seed": seed,
        "position_um": pos[0].tolist(),
        "neuron_simulate_s": sim_s, "neuron_forward_s": fwd_s, "neuron_wall_s": neuron_total,
        "neuron_memory": sim_mem, "neuron_forward_memory": fwd_mem,
        **_speed(sur, neuron_total, cell_s),
        **_events_speed(sur_ev, neuron_total, cell_s, sur["signals"]),
        "neuron_processes": 1, "surrogate_threads": _threads(),
        "cores_note": "one cell's NEURON run is serial (1 process); the surrogate uses "
                      "surrogate_threads torch threads",
        "neuron_simulate_s_per_cell_second": sim_s / cell_s,
        "neuron_forward_s_per_cell_second": fwd_s / cell_s,
        "burn_in_ms": float(b),
        "accuracy": accuracy,
        "signals_direct": _compare(sur["signals"], true_sig, b),
    }


# ---- (b) population ---------------------------------------------------------------------------
def bench_population(ctx: BenchContext, n_cells: int = 100, duration_ms: float = 1000.0,
                     neuron_cells: int = 10) -> dict:
    """``n_cells`` cells: the surrogate on all of them, NEURON on ``neuron_cells`` of the same
    inputs, its simulate time scaled linearly; accuracy of the summed signals on the subset."""
    from .forward import forward_model
    from .predict import default_placement

    if n_cells < 1 or not 1 <= neuron_cells <= n_cells:
        raise BenchError(f"population of {n_cells} cells with {neuron_cells} simulated by "
                         "NEURON: need 1 <= neuron_cells <= n_cells.")
    _check_duration(ctx, duration_ms, "the population run")
    geom, seed = ctx.geometry, ctx.seed
    k = int(neuron_cells)
    ctx.log(f"population: drawing inputs for {n_cells} cells")
    inputs = draw_inputs(geom, n_cells, duration_ms, seed)
    pos, rot = default_placement(n_cells, seed)
    cell_s = n_cells * duration_ms / 1000.0

    ctx.log(f"population: surrogate, {n_cells} cells x {duration_ms:g} ms")
    sur = _time_surrogate(ctx, inputs, pos, rot)

    ctx.log(f"population: surrogate from events, {n_cells} cells x {duration_ms:g} ms")
    sur_ev = _time_surrogate_events(ctx, inputs, pos, rot)

    cores = _usable_cores()
    ctx.log(f"population: NEURON, {k} of {n_cells} cells on {cores} processes")
    par = neuron_parallel(geom, inputs[:k], seed, cores)
    imem, sim_walls = par["imem"], par["simulate_walls_s"]
    sim_mem = {"note": "not sampled: NEURON ran in worker processes"}
    # forward model of the whole population, timed on the subset's currents tiled to n cells
    fwd_all = forward_model(geom, dict(ctx.probes), signals=SIGNALS, position=pos, rotation=rot)
    fwd_all.matrices()
    tiled = imem[np.arange(n_cells) % k]
    _, fwd_s, fwd_mem = _timed(lambda: fwd_all.from_currents(tiled))
    del tiled
    sim_scaled = par["wall_s"] * n_cells / k  # the parallel wall of k cells, scaled
    neuron_total = sim_scaled + fwd_s

    # accuracy on the subset: summed signals of the k NEURON cells vs the surrogate on them
    ctx.log("population: accuracy on the NEURON subset")
    sub_pos, sub_rot = pos[:k], rot[:k]
    fwd_sub = forward_model(geom, dict(ctx.probes), signals=SIGNALS,
                            position=sub_pos if k > 1 else sub_pos[0],
                            rotation=sub_rot if k > 1 else sub_rot[0])
    true_sub = _truth_signals(fwd_sub.from_currents(imem if k > 1 else imem[0]))
    pred_sub = surrogate_signals(ctx, inputs[:k], sub_pos, sub_rot, chunk_cells=max(k, 1))
    b = _burn_in(ctx)

    return {
        "cells": n_cells, "duration_ms": duration_ms, "seed": seed,
        "placement": "predict.default_placement: somata in a 20-200 um annulus around the "
                     "probe, random rotation about the apical axis",
        "neuron_cells_simulated": k, "neuron_time_scaled_from": k,
        "neuron_scaling": (f"wall of NEURON simulating {k} cell(s) on {par['processes']} "
                           f"parallel processes (cell loaded before timing) x {n_cells}/{k}; "
                           f"forward model timed on all {n_cells} cells (the subset's currents "
                           "tiled)"),
        "neuron_processes": par["processes"], "surrogate_threads": _threads(),
        "neuron_parallel_wall_s": par["wall_s"],
        "neuron_simulate_walls_s": sim_walls,
        "neuron_simulate_s": sim_scaled, "neuron_forward_s": fwd_s, "neuron_wall_s": neuron_total,
        "neuron_memory_per_cell": sim_mem, "neuron_forward_memory": fwd_mem,
        **_speed(sur, neuron_total, cell_s),
        **_events_speed(sur_ev, neuron_total, cell_s, sur["signals"]),
        "neuron_forward_s_per_cell_second": fwd_s / cell_s,
        "burn_in_ms": float(b),
        "accuracy_subset": dict(_compare(pred_sub, true_sub, b), cells=k,
                                what="summed signals of the NEURON subset vs the surrogate "
                                     "on the same cells, inputs and placement"),
    }


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _usable_cores() -> int:
    from .data.generate import available_cores

    return available_cores()


# ---- scaling sweep ------------------------------------------------------------------------------
def bench_sweep(ctx: BenchContext, cells: Sequence[int] = (1, 10, 100, 1000),
                durations_ms: Sequence[float] = (1000.0, 10000.0), *,
                long_population: int | None = None, neuron_per_cell_second: float,
                chunk_cells: int = 256, distinct_inputs: int = 16,
                extra: Sequence[tuple[int, float]] = ()) -> list[dict]:
    """Surrogate wall time over cell counts (at 1 s) and durations (1 cell), plus
    ``long_population`` cells at the longest duration and any ``extra`` (cells, ms) points.
    NEURON's wall there is an estimate: cell-seconds × ``neuron_per_cell_second``."""
    from .predict import default_placement

    points = [(int(n), 1000.0) for n in cells]
    points += [(1, float(d)) for d in durations_ms if (1, float(d)) not in points]
    if long_population and durations_ms:
        points.append((int(long_population), float(max(durations_ms))))
    points += [(int(n), float(d)) for n, d in extra]
    rows = []
    for n, dur in dict.fromkeys(points):
        ctx.log(f"sweep: surrogate, {n} cells x {dur:g} ms")
        inputs = draw_inputs(ctx.geometry, n, dur, ctx.seed, distinct=distinct_inputs)
        pos, rot = default_placement(n, ctx.seed)
        sur = _time_surrogate(ctx, inputs, pos, rot, repeats=ctx.repeats if n * dur <= 1e5 else 1,
                              chunk_cells=chunk_cells)
        del inputs
        cell_s = n * dur / 1000.0
        neuron = cell_s * neuron_per_cell_second
        rows.append({
            "cells": n, "duration_ms": dur, "cell_seconds": cell_s,
            "surrogate_wall_s": sur["wall_s"], "surrogate_first_call_s": sur["first_call_s"],
            "surrogate_cell_seconds_per_second": cell_s / sur["wall_s"],
            "surrogate_memory": sur["memory"],
            "neuron_wall_s_estimated": neuron, "speedup_estimated": neuron / sur["wall_s"],
        })
    return rows


# ---- the whole benchmark ------------------------------------------------------------------------
def run_bench(model: str | Path = "l5_ttpc1", *, quick: bool = False, device: str = "auto",
              threads: int | None = None, seed: int = 0, cell=None,
              out_dir: str | Path | None = ".", progress: bool = False,
              chunk_cells: int = 256, **sizes) -> dict:
    """Run (a) single cell, (b) population and the scaling sweep; write the JSON and plot.

    sizes (override the ``QUICK``/``FULL`` presets): single_ms, pop_cells, pop_ms,
    neuron_cells, sweep_cells, sweep_durations_ms, sweep_long_population, repeats; set
    ``sweep_cells=()`` and ``sweep_durations_ms=()`` to skip the sweep.
    out_dir: where ``bench-<date>[-quick].json`` and its ``.png`` go (None: write nothing).
    Returns the result dict (JSON-ready)."""
    import torch

    from .evaluate import _clean
    from .forward import forward_model
    from .predict import default_placement

    preset = dict(QUICK if quick else FULL)
    unknown = set(sizes) - set(preset)
    if unknown:
        raise BenchError(f"unknown bench sizes {sorted(unknown)}; allowed: {sorted(preset)}.")
    preset.update(sizes)
    if threads:
        torch.set_num_threads(int(threads))
    t_start = time.perf_counter()
    ctx = make_context(model, device=device, cell=cell, seed=seed, repeats=preset["repeats"],
                       progress=progress)
    started = _dt.datetime.now()
    machine = machine_info(ctx.device)

    # one-time forward-matrix build (shared by both pipelines, excluded from both walls)
    pos1, rot1 = default_placement(1, seed)
    _, build_s, _ = _timed(lambda: forward_model(ctx.geometry, dict(ctx.probes), signals=SIGNALS,
                                                 position=pos1[0], rotation=rot1[0]).matrices("voltages"))

    single = bench_single(ctx, preset["single_ms"])
    population = bench_population(ctx, preset["pop_cells"], preset["pop_ms"], preset["neuron_cells"])
    per_cell_s = (single["neuron_simulate_s_per_cell_second"]
                  + population["neuron_forward_s_per_cell_second"])
    extra = []
    if ctx.device.startswith("cuda") and not quick:
        extra.append((TARGET_GPU["cells"], TARGET_GPU["duration_ms"]))
    sweep = []
    if preset["sweep_cells"] or preset["sweep_durations_ms"]:
        sweep = bench_sweep(ctx, preset["sweep_cells"], preset["sweep_durations_ms"],
                            long_population=preset["sweep_long_population"],
                            neuron_per_cell_second=per_cell_s, chunk_cells=chunk_cells,
                            extra=extra)
    gpu_row = next((r for r in sweep if r["cells"] == TARGET_GPU["cells"]
                    and r["duration_ms"] == TARGET_GPU["duration_ms"]), None)
    ld = ctx.loaded
    result = {
        "benchmark": "bench",
        "mode": "quick" if quick else "full",
        "date": started.isoformat(timespec="seconds"),
        "model": str(ld.path), "model_name": ld.name, "model_fingerprint": ld.fingerprint,
        "architecture": ld.sidecar.get("architecture"),
        "n_parameters": ld.sidecar.get("n_parameters"),
        "model_trained": bool(ld.sidecar.get("data_fingerprint")),
        "cell": ctx.geometry.name, "cell_fingerprint": ctx.geometry.fingerprint,
        "n_segments": ctx.geometry.n_segments, "n_channels": ctx.geometry.n_channels,
        "signals": list(SIGNALS), "probes": dict(PROBES),
        "device": ctx.device, "torch_threads": torch.get_num_threads(), "neuron_threads": 1,
        "cores": {"usable": _usable_cores(), "surrogate_threads": torch.get_num_threads(),
                  "neuron_processes_single": 1,
                  "neuron_processes_population": population.get("neuron_processes", 1)},
        "speedup_single_events": single.get("speedup_events"),
        "speedup_population_events": population.get("speedup_events"),
        "neuron_dt_ms": 1 / 16,
        "speedup_single": single["speedup"],
        "speedup_population": population["speedup"],
        "surrogate_cell_seconds_per_second": population["surrogate_cell_seconds_per_second"],
        "neuron_cell_seconds_per_second": single["neuron_cell_seconds_per_second"],
        "surrogate_cell_seconds_per_second_single": single["surrogate_cell_seconds_per_second"],
        "neuron_cell_seconds_per_second_population": population["neuron_cell_seconds_per_second"],
        "forward_matrices_build_s": build_s,
        "neuron_s_per_cell_second_used_for_estimates": per_cell_s,
        "targets": {
            "single_speedup_min": TARGET_SINGLE,
            "single_met": single["speedup"] >= TARGET_SINGLE,
            "population_speedup_min": TARGET_POPULATION,
            "population_met": population["speedup"] >= TARGET_POPULATION,
            "gpu_10000_cells_1s_wall_s": gpu_row["surrogate_wall_s"] if gpu_row else None,
            "gpu_met": (gpu_row["surrogate_wall_s"] < TARGET_GPU["wall_s"]) if gpu_row else None,
        },
        "accuracy": single["accuracy"],
        "single": single,
        "population": population,
        "sweep": sweep,
        "sweep_note": ("surrogate measured (best of repeats after a warm-up call; inputs: up to "
                       "16 distinct seeded draws tiled over the cells); NEURON estimated as "
                       "cell-seconds x neuron_s_per_cell_second_used_for_estimates (simulate "
                       "cost from the single-cell run + forward cost from the population run)"),
        "machine": machine,
        "timing": "wall clock (time.perf_counter); best of the warm repeats for the surrogate",
        "memory_note": ("rss sampled every 5 ms during each phase (psutil); rss_increase_mb = "
                        "peak - rss at the phase start, a lower bound (allocator reuse, short "
                        "spikes)"),
        "total_wall_s": time.perf_counter() - t_start,
    }
    if not result["model_trained"]:
        result["warning"] = ("model sidecar has no data fingerprint: probably an untrained "
                             "stand-in; accuracy figures are meaningless")
    result = _clean(result)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"bench-{started.strftime('%Y-%m-%d-%H%M%S')}{'-quick' if quick else ''}"
        path = out / f"{stem}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, path)
        result["results_file"] = str(path)
        if sweep:
            from .figures.bench import plot_scaling
            from .io import save_figure

            result["plot"] = str(save_figure(plot_scaling(result), out / f"{stem}.png"))
    return result


# ---- doc -------------------------------------------------------------------------------------
def _fmt(x, digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def render_results(result: dict, figure: str | None = "figures/scaling.png",
                   source: str | None = None) -> str:
    """Markdown of a bench result: run description, main table, accuracy, sweep."""
    m = result.get("machine", {})
    s, p = result["single"], result["population"]
    acc, pacc = result.get("accuracy") or {}, p.get("accuracy_subset") or {}
    lines = [
        f"Run: `{source or result.get('results_file', '?')}` ({result.get('mode')} mode, "
        f"{result.get('date')}).",
        f"Model `{result.get('model_name')}` ({result.get('architecture')}, "
        f"{_fmt(result.get('n_parameters'))} parameters, weights {result.get('model_fingerprint')})"
        f"{'' if result.get('model_trained') else ' — **UNTRAINED stand-in: accuracy meaningless**'}; "
        f"cell `{result.get('cell')}` ({result.get('n_segments')} segments).",
        f"Machine: {m.get('cpu_model')}, {m.get('logical_cores')} logical cores "
        f"({m.get('usable_cores', '?')} usable), {m.get('memory_gb', '?')} GB; load average at "
        f"start {m.get('load_average_at_start')}; device `{result.get('device')}`"
        f"{' (' + m['gpu'] + ')' if m.get('gpu') else ''}; torch threads "
        f"{result.get('torch_threads')}, NEURON 1 thread per process (dt "
        f"{_fmt(result.get('neuron_dt_ms'))} ms; (a) 1 process, (b) "
        f"{_fmt((result.get('cores') or {}).get('neuron_processes_population', 1))} parallel "
        "processes, as many as the surrogate's cores); "
        f"{_allocator_phrase(m)}; "
        f"versions {', '.join(f'{k} {v}' for k, v in (m.get('versions') or {}).items())}.",
        "",
        "| run | NEURON simulate (s) | forward on NEURON currents (s) | surrogate warm (s) | "
        "surrogate first call (s) | speed-up | from events: warm (s) | speed-up | "
        "NEURON cell-s/s | surrogate cell-s/s | surrogate peak RSS increase (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run, note in (("(a) 1 cell", s, ""),
                            (f"(b) {p['cells']} cells", p,
                             f" (scaled from {p.get('neuron_time_scaled_from')})")):
        dur = _fmt(run["duration_ms"] / 1000.0)
        lines.append(
            f"| {name} × {dur} s | {_fmt(run['neuron_simulate_s'])}{note} | "
            f"{_fmt(run['neuron_forward_s'])} | {_fmt(run['surrogate_wall_s'])} | "
            f"{_fmt(run['surrogate_first_call_s'])} | **{_fmt(run['speedup'])}** | "
            f"{_fmt(run.get('surrogate_events_wall_s'))} | **{_fmt(run.get('speedup_events'))}** | "
            f"{_fmt(run['neuron_cell_seconds_per_second'])} | "
            f"{_fmt(run['surrogate_cell_seconds_per_second'])} | "
            f"{_fmt((run.get('surrogate_memory') or {}).get('rss_increase_mb'))} |")
    t = result.get("targets", {})
    lines += [
        "",
        f"Targets: single-cell speed-up ≥ {_fmt(t.get('single_speedup_min'))}: "
        f"{_fmt(t.get('single_met'))}; population ≥ {_fmt(t.get('population_speedup_min'))}: "
        f"{_fmt(t.get('population_met'))}; GPU 10 000 cells × 1 s under 1 s: "
        f"{_fmt(t.get('gpu_met')) if t.get('gpu_met') is not None else 'not measured (no GPU in this run)'}"
        f"{' (' + _fmt(t.get('gpu_10000_cells_1s_wall_s')) + ' s)' if t.get('gpu_10000_cells_1s_wall_s') else ''}.",
        f"One-time forward-matrix build (shared, excluded): {_fmt(result.get('forward_matrices_build_s'))} s. "
        f"NEURON peak RSS increase (a): {_fmt((s.get('neuron_memory') or {}).get('rss_increase_mb'))} MB.",
        "",
        "Accuracy on the same runs (burn-in "
        f"{_fmt(s.get('burn_in_ms'))} ms excluded):",
        "",
        "| run | soma RMSE (mV) | spike F1 | true / predicted spikes | LFP r | EEG r | MEG r | "
        "LFP rel. RMSE | EEG rel. RMSE |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| (a) 1 cell | {_fmt(acc.get('soma_rmse_mv'))} | {_fmt(acc.get('spike_f1'))} | "
        f"{_fmt(acc.get('n_true_spikes'))} / {_fmt(acc.get('n_predicted_spikes'))} | "
        f"{_fmt(acc.get('lfp_r_median'))} | {_fmt(acc.get('eeg_r_median'))} | "
        f"{_fmt(acc.get('meg_r_median'))} | {_fmt(acc.get('lfp_rel_rmse'))} | "
        f"{_fmt(acc.get('eeg_rel_rmse'))} |",
        f"| (b) summed, {pacc.get('cells')} NEURON cells | – | – | – | "
        f"{_fmt(pacc.get('lfp_r_median'))} | {_fmt(pacc.get('eeg_r_median'))} | "
        f"{_fmt(pacc.get('meg_r_median'))} | {_fmt(pacc.get('lfp_rel_rmse'))} | "
        f"{_fmt(pacc.get('eeg_rel_rmse'))} |",
    ]
    if result.get("sweep"):
        lines += [
            "",
            "Scaling sweep (surrogate measured; NEURON = cell-seconds × "
            f"{_fmt(result.get('neuron_s_per_cell_second_used_for_estimates'))} s, estimated):",
            "",
            "| cells | duration (s) | surrogate warm (s) | first call (s) | surrogate cell-s/s | "
            "NEURON est. (s) | speed-up est. | peak RSS increase (MB) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in result["sweep"]:
            lines.append(
                f"| {_fmt(r['cells'])} | {_fmt(r['duration_ms'] / 1000.0)} | "
                f"{_fmt(r['surrogate_wall_s'])} | {_fmt(r['surrogate_first_call_s'])} | "
                f"{_fmt(r['surrogate_cell_seconds_per_second'])} | "
                f"{_fmt(r['neuron_wall_s_estimated'])} | {_fmt(r['speedup_estimated'])} | "
                f"{_fmt((r.get('surrogate_memory') or {}).get('rss_increase_mb'))} |")
    if figure:
        lines += ["", f"![scaling]({figure})"]
    return "\n".join(lines) + "\n"


def _allocator_phrase(machine: dict) -> str:
    """How this run's process allocated memory (``retain_freed_memory``), in words."""
    a, env = machine.get("allocator"), machine.get("malloc_environment") or {}
    phrase = ("malloc: glibc's defaults" if not a else
              f"malloc: freed memory kept (up to {a['trim_threshold_bytes'] / 2**20:g} MB; "
              f"heap for allocations under {a['mmap_threshold_bytes'] / 2**20:g} MB)")
    if env:
        phrase += " (environment: " + ", ".join(f"{k}={v}" for k, v in sorted(env.items())) + ")"
    return phrase


def write_performance_doc(result_json_path: str | Path, doc_path: str | Path = "docs/performance.md",
                          figure_path: str | Path | None = "docs/figures/scaling.png") -> Path:
    """Render the results of a bench JSON into ``doc_path`` between the
    ``<!-- bench:begin -->`` / ``<!-- bench:end -->`` markers (the rest of the doc is kept),
    and redraw the scaling plot to ``figure_path`` (relative links from the doc)."""
    from .figures.bench import plot_scaling
    from .io import save_figure

    result_json_path, doc_path = Path(result_json_path), Path(doc_path)
    result = json.loads(result_json_path.read_text())
    rel_fig = None
    if figure_path is not None and result.get("sweep"):
        figure_path = save_figure(plot_scaling(result), figure_path)
        rel_fig = os.path.relpath(Path(figure_path).resolve(), doc_path.resolve().parent)
    block = render_results(result, figure=rel_fig, source=str(result_json_path))
    text = doc_path.read_text() if doc_path.exists() else f"# Performance\n\n{DOC_BEGIN}\n{DOC_END}\n"
    if DOC_BEGIN not in text or DOC_END not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{DOC_BEGIN}\n{DOC_END}\n"
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    new = f"{head}{DOC_BEGIN}\n{block}{DOC_END}{tail}"
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc_path.with_name(f".{doc_path.name}.{os.getpid()}.tmp")
    tmp.write_text(new)
    os.replace(tmp, doc_path)
    return doc_path
