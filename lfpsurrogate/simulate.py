"""Ground truth: run a detailed cell in NEURON under binned synaptic input.

Returns voltages and transmembrane currents of every segment averaged over each time bin
(trapezoidal average of the samples at every time step; bin 0 the plain mean of its
samples after t = 0, so ``imem = M v`` holds exactly for
the averages as it does for the samples), somatic spike times, and the inputs.

The cell, its segments and the voltage->current matrix come from LFPy; the run itself is a
plain NEURON ``fadvance`` loop rather than ``LFPy.Cell.simulate`` because LFPy keeps every
time step of every segment in memory (72 MB per simulated second per signal for the
default cell) and offers no progress report: here memory grows only with the number of
bins.
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from .cells import Cell
from .errors import InputError
from .inputs import validate_counts
from .provenance import package_versions


def simulate(
    cell: Cell,
    inputs,
    dt: float = 1 / 16,
    *,
    bin_ms: float | None = None,
    spike_threshold_mv: float = -20.0,
    progress: bool | None = None,
) -> xr.Dataset:
    """Simulate ``cell`` driven by ``inputs`` (spike counts, channel x time).

    Spikes of bin k are delivered at its start, t = k * bin_ms, so the counts fully
    determine the run. dt (ms) must divide bin_ms. ``progress``: show a progress bar
    (default: for runs of 2 s of simulated time or more).

    Returns an xarray.Dataset with ``v`` (segment, time; mV), ``imem`` (segment, time; nA),
    ``spikes`` (time; somatic spikes per bin), ``spike_times`` (spike; ms), ``inputs``
    (channel, time), segment coordinates and provenance attributes. ``time`` is the start
    of each bin, ms.
    """
    geom = cell.geometry
    if bin_ms is None:
        bin_ms = float(getattr(inputs, "attrs", {}).get("bin_ms", 1.0))
    counts = validate_counts(inputs, geom.n_channels)
    if not (np.isfinite(dt) and dt > 0):
        raise InputError(f"dt={dt!r} must be a positive number of ms.")
    steps_per_bin = int(round(bin_ms / dt))
    if steps_per_bin < 1 or abs(steps_per_bin * dt - bin_ms) > 1e-9:
        raise InputError(f"dt={dt} ms must divide the bin width {bin_ms} ms.")
    n_bins = counts.shape[1]
    duration_ms = n_bins * bin_ms

    from neuron import h

    exc, inh = cell.synapses()
    segments = cell.neuron_segments()
    n_seg = len(segments)
    p = cell.synapse_params
    netcons = [h.NetCon(None, s) for s in exc] + [h.NetCon(None, s) for s in inh]
    for k, nc in enumerate(netcons):
        nc.weight[0] = p["exc_weight_uS"] if k < len(exc) else p["inh_weight_uS"]
        nc.delay = 0
    soma_seg = segments[geom.soma_index]
    spike_vec = h.Vector()
    detector = h.NetCon(soma_seg._ref_v, None, sec=soma_seg.sec)
    detector.threshold = spike_threshold_mv
    detector.record(spike_vec)

    ptr_v, ptr_i = h.PtrVector(n_seg), h.PtrVector(n_seg)
    h.cvode.use_fast_imem(1)
    h.cvode_active(0)
    for j, seg in enumerate(segments):
        ptr_v.pset(j, seg._ref_v)
        ptr_i.pset(j, seg._ref_i_membrane_)
    buf_v, buf_i = h.Vector(n_seg), h.Vector(n_seg)
    np_v, np_i = buf_v.as_numpy(), buf_i.as_numpy()

    h.celsius = cell.spec.celsius
    h.dt = dt
    settle_to_rest(h, cell.spec.v_init, dt)

    v_out = np.empty((n_bins, n_seg))
    i_out = np.empty((n_bins, n_seg))
    # i_membrane_ is only defined after a step, so bin 0 averages its samples at
    # dt, 2 dt, ..., bin_ms with equal weights; every later bin is a trapezoid over its
    # samples. Both are the same linear map for v and imem, so imem = M v still holds.
    edge_v, edge_i = np.zeros(n_seg), np.zeros(n_seg)
    chunk = 500  # bins whose events are queued at a time: bounded event queue
    show = progress if progress is not None else duration_ms >= 2000
    fadvance = h.fadvance
    with tqdm(total=n_bins, unit="ms" if bin_ms == 1 else "bin", disable=not show,
              desc=f"NEURON {cell.name}", leave=False) as bar:
        for k in range(n_bins):
            if k % chunk == 0:
                _queue_events(netcons, counts[:, k:k + chunk], k * bin_ms, bin_ms)
            acc_v = 0.5 * edge_v
            acc_i = 0.5 * edge_i
            for _ in range(steps_per_bin - 1):
                fadvance()
                ptr_v.gather(buf_v)
                ptr_i.gather(buf_i)
                acc_v += np_v
                acc_i += np_i
            fadvance()
            ptr_v.gather(buf_v)
            ptr_i.gather(buf_i)
            edge_v, edge_i = np_v.copy(), np_i.copy()
            end_weight = 1.0 if k == 0 else 0.5
            v_out[k] = (acc_v + end_weight * edge_v) / steps_per_bin
            i_out[k] = (acc_i + end_weight * edge_i) / steps_per_bin
            if k % 100 == 99:
                bar.update(100)
        bar.update(n_bins - bar.n)

    spike_times = np.array(spike_vec.to_python(), dtype=float)
    spike_times = spike_times[spike_times >= 0]
    del netcons, detector
    return _to_dataset(cell, counts, v_out.T, i_out.T, spike_times, dt, bin_ms, inputs,
                       spike_threshold_mv)


def settle_to_rest(h, v_init: float, dt: float, settle_ms: float = 2000.0) -> None:
    """Initialise at v_init, then let the cell relax to its resting state.

    Large implicit-Euler steps (10 ms) over ``settle_ms`` at negative time bring every
    channel to steady state without input; the clock is then reset to t = 0 and dt
    restored. Without this the default cell drifts by several mV in the first 100 ms.
    """
    h.finitialize(v_init)
    h.t = -settle_ms
    h.dt = 10.0
    while h.t < -1e-9:
        h.fadvance()
    h.dt = dt
    h.t = 0.0
    h.fcurrent()


def _queue_events(netcons, counts: np.ndarray, t0: float, bin_ms: float) -> None:
    """Queue one event per counted spike at the start of its bin."""
    ch, k = np.nonzero(counts)
    for c, b in zip(ch.tolist(), k.tolist()):
        t = t0 + b * bin_ms
        nc = netcons[c]
        for _ in range(int(counts[c, b])):
            nc.event(t)


def _to_dataset(cell, counts, v, imem, spike_times, dt, bin_ms, inputs,
                spike_threshold_mv) -> xr.Dataset:
    geom = cell.geometry
    n_bins = counts.shape[1]
    time = np.arange(n_bins) * bin_ms
    spikes = np.zeros(n_bins, dtype=np.int16)
    if spike_times.size:
        np.add.at(spikes, np.minimum((spike_times // bin_ms).astype(int), n_bins - 1), 1)
    mid = geom.midpoints
    seg_coords = {
        "segment": np.arange(geom.n_segments),
        "section": ("segment", geom.section),
        "region": ("segment", geom.region),
        "seg_x": ("segment", mid[:, 0], {"units": "um"}),
        "seg_y": ("segment", mid[:, 1], {"units": "um"}),
        "seg_z": ("segment", mid[:, 2], {"units": "um"}),
    }
    in_attrs = getattr(inputs, "attrs", {}) or {}
    ds = xr.Dataset(
        {
            "v": (("segment", "time"), v, {"units": "mV", "long_name": "membrane potential, bin average"}),
            "imem": (("segment", "time"), imem, {"units": "nA", "long_name": "transmembrane current, bin average"}),
            "spikes": ("time", spikes, {"units": "spikes per bin", "long_name": "somatic spikes"}),
            "spike_times": ("spike", spike_times, {"units": "ms"}),
            "inputs": (("channel", "time"), counts.astype(np.uint8 if counts.max(initial=0) < 256 else np.int64),
                       {"units": "spikes per bin"}),
            "seg_start": (("segment", "axis"), np.stack([geom.x[:, 0], geom.y[:, 0], geom.z[:, 0]], 1), {"units": "um"}),
            "seg_end": (("segment", "axis"), np.stack([geom.x[:, 1], geom.y[:, 1], geom.z[:, 1]], 1), {"units": "um"}),
            "seg_diam": ("segment", geom.d, {"units": "um"}),
        },
        coords={**seg_coords, "time": ("time", time, {"units": "ms", "long_name": "bin start"}),
                "channel": np.arange(counts.shape[0]), "axis": ["x", "y", "z"]},
        attrs={
            "cell": cell.name,
            "cell_fingerprint": geom.fingerprint,
            "dt_ms": dt,
            "bin_ms": bin_ms,
            "averaging": "trapezoidal average of the dt samples over each bin (bin 0: mean of its samples after t=0)",
            "spike_threshold_mv": float(spike_threshold_mv),
            "v_init_mv": cell.spec.v_init,
            "celsius": cell.spec.celsius,
            "seed": int(in_attrs.get("seed", -1)),
            "protocol": str(in_attrs.get("protocol", "{}")),
            "versions": json.dumps(package_versions()),
        },
    )
    if cell.spec.licence:
        ds.attrs["cell_licence"] = cell.spec.licence
    return ds
