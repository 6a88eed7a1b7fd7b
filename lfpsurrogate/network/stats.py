"""Spike statistics of a network run, each defined once here and shipped with the result.

* ``rate_hz``: spikes per cell per second, over the run.
* ``isi_cv``: coefficient of variation (sd / mean) of the inter-spike intervals of each
  cell with at least 3 spikes; the mean over those cells (1 for a Poisson train, 0 for a
  clock).
* ``synchrony``: mean Pearson correlation of the spike counts of every pair of active cells
  in ``sync_bin_ms`` bins (0: independent; 1: the same spike train).
* ``fano``: variance over mean of the population spike count in ``sync_bin_ms`` bins.
"""
from __future__ import annotations

import numpy as np


def isi_cv(spikes: np.ndarray, bin_ms: float = 1.0) -> float:
    cvs = []
    for row in spikes:
        t = np.flatnonzero(row) * bin_ms
        if t.size >= 3:
            isi = np.diff(t)
            if isi.mean() > 0:
                cvs.append(isi.std() / isi.mean())
    return float(np.mean(cvs)) if cvs else float("nan")


def synchrony(spikes: np.ndarray, bin_ms: float = 1.0, sync_bin_ms: float = 5.0) -> float:
    k = max(1, int(round(sync_bin_ms / bin_ms)))
    n_t = spikes.shape[1] // k * k
    counts = spikes[:, :n_t].reshape(spikes.shape[0], -1, k).sum(-1).astype(float)
    active = counts.std(1) > 0
    if active.sum() < 2:
        return float("nan")
    c = np.corrcoef(counts[active])
    iu = np.triu_indices(c.shape[0], 1)
    return float(np.nanmean(c[iu]))


def fano(spikes: np.ndarray, bin_ms: float = 1.0, sync_bin_ms: float = 5.0) -> float:
    k = max(1, int(round(sync_bin_ms / bin_ms)))
    n_t = spikes.shape[1] // k * k
    pop = spikes[:, :n_t].sum(0).reshape(-1, k).sum(-1).astype(float)
    return float(pop.var() / pop.mean()) if pop.mean() > 0 else float("nan")


def spike_stats(spikes: np.ndarray, bin_ms: float = 1.0, sync_bin_ms: float = 5.0) -> dict:
    """The statistics of a (cell, time) 0/1 spike array (module docstring)."""
    dur_s = spikes.shape[1] * bin_ms / 1000.0
    return {"rate_hz": float(spikes.sum() / max(spikes.shape[0], 1) / dur_s),
            "isi_cv": isi_cv(spikes, bin_ms), "synchrony": synchrony(spikes, bin_ms, sync_bin_ms),
            "fano": fano(spikes, bin_ms, sync_bin_ms), "sync_bin_ms": sync_bin_ms}
