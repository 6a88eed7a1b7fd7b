"""The NEURON engine: the same network with detailed cells, the ground truth for small
networks.

One process, one compiled mechanism set: every cell is an instance of the model's detailed
cell (``Cell.extra_instance``), with our synapses on every input segment
(``cells.cell.make_synapses``, the cell's synapse parameters). External drives are the very
events the surrogate engine gets (``ExternalDrives``), each queued on its slot's NetCon at the
start of its bin, as ``simulate`` delivers training inputs. Each connection is a NetCon from
the source's soma (threshold -20 mV, as ``simulate``'s spike detector) to the target slot's
synapse, with the connection's delay (whole bins, as the surrogate engine) and weight
= count x the slot's per-event weight. The loop, its settling to rest and the bin averages
of v are ``simulate``'s. With ``threads`` > 1 NEURON advances the cells in that many threads
(``ParallelContext.nthread``; the same run to the last bit, as the events and the step are
the same): the external NetCons then carry a delay of one bin, which NEURON's threads need
(a minimum delay of at least dt) and which ``NetCon.event(t)``, delivering at t, ignores.
"""
from __future__ import annotations

import time as _time

import numpy as np

from ..errors import InputError


_CELLS: dict = {}  # detailed cells loaded by this engine, by name (a Cell rebuilds itself on demand)


def run_neuron(net, n_bins: int, dt: float = 1 / 16, spike_threshold_mv: float = -20.0,
               progress: bool = False, threads: int = 1) -> dict:
    from neuron import h
    from tqdm.auto import tqdm

    from ..cells import load_cell
    from ..cells.cell import make_synapses
    from ..simulate import settle_to_rest
    from .drives import ExternalDrives

    pops, conn = net.populations, net.connectivity
    bin_ms = net.bin_ms
    models = {p.model for p in pops}
    if len(models) != 1:
        raise InputError(f"the neuron engine runs one cell model per network (one mechanism "
                         f"set per process); this network has {sorted(models)}.")
    geom = pops[0].geometry
    cell = _CELLS.get(geom.name)
    if cell is None:  # loading a detailed cell takes ~10-30 s: once per process
        cell = _CELLS[geom.name] = load_cell(geom.name)
    if cell.geometry.fingerprint != geom.fingerprint:
        raise InputError(f"model {pops[0].model!r} was trained for cell {geom.name!r} "
                         f"(fingerprint {geom.fingerprint}); load_cell({geom.name!r}) gives "
                         f"fingerprint {cell.geometry.fingerprint}.")
    n_cells = sum(p.n for p in pops)
    instances = [(cell.lfpy_cell, cell.neuron_segments())]
    for _ in range(n_cells - 1):
        instances.append(cell.extra_instance())
    syn = [cell.synapses()] + [make_synapses(segs, geom.input_segments, cell.synapse_params)
                               for _, segs in instances[1:]]
    p = cell.synapse_params
    base = np.r_[np.full(len(geom.input_segments), p["exc_weight_uS"]),
                 np.full(len(geom.input_segments), p["inh_weight_uS"])]
    slots = [list(e) + list(i) for e, i in syn]
    netcons = []
    for k in range(n_cells):
        ncs = [h.NetCon(None, s) for s in slots[k]]
        for c, nc in enumerate(ncs):
            nc.weight[0] = base[c]
            nc.delay = bin_ms  # events are queued with event(t): delivered at t
        netcons.append(ncs)
    soma = [segs[geom.soma_index] for _, segs in instances]
    spike_vecs, detectors = [], []
    for s in soma:
        vec = h.Vector()
        det = h.NetCon(s._ref_v, None, sec=s.sec)
        det.threshold = spike_threshold_mv
        det.record(vec)
        spike_vecs.append(vec)
        detectors.append(det)
    synapse_ncs = []
    for i in range(conn.n):
        src = soma[conn.source[i]]
        nc = h.NetCon(src._ref_v, slots[conn.target[i]][conn.channel[i]], sec=src.sec)
        nc.threshold = spike_threshold_mv
        nc.delay = float(conn.delay[i] * bin_ms)
        nc.weight[0] = float(conn.weight[i] * base[conn.channel[i]])
        synapse_ncs.append(nc)

    n_seg = geom.n_segments
    total = n_cells * n_seg
    ptr_v = h.PtrVector(total)
    h.cvode.use_fast_imem(1)
    h.cvode_active(0)
    for k, (_, segs) in enumerate(instances):
        for j, seg in enumerate(segs):
            ptr_v.pset(k * n_seg + j, seg._ref_v)
    buf = h.Vector(total)
    np_v = buf.as_numpy()
    pc = h.ParallelContext()
    old_threads = int(pc.nthread())
    pc.nthread(max(1, min(int(threads), n_cells)))
    used_threads = int(pc.nthread())
    try:
        h.celsius = cell.spec.celsius
        h.dt = dt
        steps = int(round(bin_ms / dt))
        settle_to_rest(h, cell.spec.v_init, dt)
        ev = ExternalDrives(net.spec, pops, n_bins, bin_ms).all_events()
        for c, ch, b, cnt in zip(*(a.tolist() for a in ev)):
            for _ in range(int(cnt)):
                netcons[c][ch].event(b * bin_ms)
        v_out = np.empty((n_bins, total), dtype=np.float32)
        edge = np.zeros(total)
        t0 = _time.perf_counter()
        fadvance = h.fadvance
        for k in tqdm(range(n_bins), disable=not progress, desc="network (NEURON)", unit="bin"):
            acc = 0.5 * edge
            for _ in range(steps - 1):
                fadvance()
                ptr_v.gather(buf)
                acc += np_v
            fadvance()
            ptr_v.gather(buf)
            edge = np_v.copy()
            v_out[k] = (acc + (1.0 if k == 0 else 0.5) * edge) / steps
    finally:
        pc.nthread(old_threads)
    wall = _time.perf_counter() - t0
    spikes = np.zeros((n_cells, n_bins), dtype=np.int8)
    for k, vec in enumerate(spike_vecs):
        t = np.array(vec.to_python())
        t = t[(t >= 0) & (t < n_bins * bin_ms)]
        spikes[k, (t // bin_ms).astype(int)] = 1
    v = v_out.reshape(n_bins, n_cells, n_seg).transpose(1, 2, 0)
    del synapse_ncs, detectors, netcons, syn, slots
    del instances[1:]
    return {"spikes": spikes, "v": v, "wall_s": wall, "cell": cell, "threads": used_threads}
