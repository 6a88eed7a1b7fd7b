"""The surrogate engine: every cell a streaming spiking surrogate, batched over the cells
of each model on one device, stepped in chunks no longer than the shortest delay.

Per chunk [b0, b1): the inputs of every cell are known (external events, plus the spikes of
earlier chunks delivered ``delay`` bins later: delay >= chunk length, so no spike of this
chunk lands in it); each model group advances (``StreamingSpiking.step``); the new spikes are
routed through the connectivity to pending events; the signals advance.
Cost per chunk grows with the number of cells (the TCN and FIR state) and with the events
(input counts and routed spikes), linearly in both.
"""
from __future__ import annotations

import time as _time

import numpy as np
import torch

from .signals import StreamingSignals
from .stream import StreamingSpiking


SMALL = 512  # networks of fewer cells run on one CPU thread (measured: many times faster
# on a loaded machine, where threads of tiny operations wait for each other)


def run_surrogate(net, n_bins: int, signals, probe, device: str = "cpu",
                  chunk_bins: int | None = None, progress: bool = False) -> dict:
    pops, conn = net.populations, net.connectivity
    n_cells = sum(p.n for p in pops)
    threads = torch.get_num_threads()
    if n_cells < SMALL and torch.device(device).type == "cpu":
        torch.set_num_threads(1)  # a chunk of a few cells is too little work to share
    try:
        return _run(net, pops, conn, n_cells, n_bins, signals, probe, device, chunk_bins,
                    progress)
    finally:
        torch.set_num_threads(threads)


def _run(net, pops, conn, n_cells, n_bins, signals, probe, device, chunk_bins, progress):
    from ..predict import load_model
    from .drives import ExternalDrives

    drives = ExternalDrives(net.spec, pops, n_bins, net.bin_ms)
    # group populations by model: one batched state per model
    groups: dict[str, list] = {}
    for p in pops:
        groups.setdefault(p.model, []).append(p)
    state = []
    group_of = np.zeros(n_cells, dtype=np.int64)
    local_of = np.zeros(n_cells, dtype=np.int64)
    want_rows = any(s in signals for s in ("lfp", "dipole", "eeg", "meg"))
    for gi, (model, plist) in enumerate(groups.items()):
        loaded = load_model(model, device)
        cells = np.concatenate([p.cells for p in plist])
        group_of[cells] = gi
        local_of[cells] = np.arange(len(cells))
        stream = StreamingSpiking(loaded.model, len(cells))
        sig = (StreamingSignals(loaded.model, loaded.geometry, probe if "lfp" in signals else None,
                                net.positions[cells], net.rotations[cells])
               if want_rows else None)
        state.append({"cells": cells, "stream": stream, "signals": sig, "loaded": loaded})
    max_chunk = int(conn.delay.min()) if conn.n else 64
    chunk = max_chunk if chunk_bins is None else max(1, min(int(chunk_bins), max_chunk))
    spikes = np.zeros((n_cells, n_bins), dtype=np.int8)
    pending = [np.zeros(0, np.int64)] * 4
    sig_out = []
    t0 = _time.perf_counter()
    from tqdm.auto import tqdm

    with tqdm(total=n_bins, unit="bin", disable=not progress, desc="network (surrogate)") as bar:
        for b0 in range(0, n_bins, chunk):
            b1 = min(n_bins, b0 + chunk)
            ext = drives.events(b0, b1)
            due = pending[2] < b1
            ev = [np.concatenate([ext[i], pending[i][due]]) for i in range(4)]
            pending = [c[~due] for c in pending]
            chunk_sig = 0
            new_cells, new_bins = [], []
            for gi, st in enumerate(state):
                sel = group_of[ev[0]] == gi
                c = torch.from_numpy(local_of[ev[0][sel]])
                ch = torch.from_numpy(ev[1][sel])
                tt = torch.from_numpy(ev[2][sel] - b0)
                cnt = torch.from_numpy(ev[3][sel]).float()
                out = st["stream"].step(c, ch, tt, cnt, b1 - b0)
                s = out["spikes"].cpu().numpy() > 0
                ci, ti = np.nonzero(s)
                new_cells.append(st["cells"][ci])
                new_bins.append(ti + b0)
                if st["signals"] is not None:
                    chunk_sig = chunk_sig + st["signals"].step(
                        out["dz"], out["spikes"], out["events"]).cpu().double().numpy()
            cells_s, bins_s = np.concatenate(new_cells), np.concatenate(new_bins)
            spikes[cells_s, bins_s] = 1
            if conn.n and cells_s.size:
                idx = conn.outgoing(cells_s)
                counts = conn.indptr[cells_s + 1] - conn.indptr[cells_s]
                arrive = np.repeat(bins_s, counts) + conn.delay[idx]
                keep = arrive < n_bins
                new = (conn.target[idx][keep], conn.channel[idx][keep], arrive[keep],
                       conn.weight[idx][keep])
                pending = [np.concatenate([pending[i], new[i]]) for i in range(4)]
            if want_rows:
                sig_out.append(chunk_sig)
            bar.update(b1 - b0)
    wall = _time.perf_counter() - t0
    rows = np.concatenate(sig_out, axis=1) if want_rows else None
    return {"spikes": spikes, "rows": rows, "wall_s": wall, "chunk_bins": chunk,
            "loaded": [st["loaded"] for st in state]}
