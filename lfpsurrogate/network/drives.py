"""External drives as input events (cell, channel, bin, count), the same for both engines.

* Poisson: every input slot of every target cell fires at ``rate_exc_hz`` /
  ``rate_inh_hz`` scaled by its membrane-area weight (``inputs.slot_weights``, mean 1 over
  the cell's slots, as the training inputs), zero outside ``regions``, between
  ``start_ms`` and ``stop_ms``. Drawn block by block (``BLOCK_BINS``), each block from its
  own seeded stream, so the events do not depend on how a run is chunked and a long run of
  many cells never holds all of them: per block, the count of each (cell, slot) is Poisson
  and the counts are spread uniformly over the block's bins.
* Evoked: each target cell receives ``n_events`` events of ``weight`` counts at
  ``time_ms`` + Gaussian jitter (sd ``jitter_ms``), each on a slot drawn from ``regions``
  by area; events outside the run are dropped.
"""
from __future__ import annotations

import numpy as np

from .build import STREAM_EVOKED, STREAM_POISSON, Population, slot_choice_weights

BLOCK_BINS = 100


class ExternalDrives:
    """``events(b0, b1)`` -> (cell, channel, bin, count) int64 arrays of bins in [b0, b1)."""

    def __init__(self, spec: dict, pops: list[Population], n_bins: int, bin_ms: float = 1.0):
        from ..inputs import slot_weights

        self.seed, self.n_bins, self.bin_ms = spec["seed"], int(n_bins), float(bin_ms)
        by_name = {p.name: p for p in pops}
        self.poisson, evoked = [], []
        for k, drive in enumerate(spec["external"]):
            pop = by_name[drive["target"]]
            geom = pop.geometry
            if drive["type"] == "poisson":
                w = slot_weights(geom)
                region = np.asarray(geom.region)[geom.input_segments]
                w = np.where(np.isin(region, drive["regions"]), w, 0.0)
                rate = np.concatenate([drive["rate_exc_hz"] * w, drive["rate_inh_hz"] * w])
                start = int(np.ceil(drive["start_ms"] / bin_ms - 1e-9))
                stop = n_bins if drive["stop_ms"] is None else min(
                    n_bins, int(np.ceil(drive["stop_ms"] / bin_ms - 1e-9)))
                self.poisson.append((k, pop, rate * (bin_ms / 1000.0), start, stop))
            else:
                evoked.append(self._evoked(k, drive, pop))
        cols = [np.concatenate([e[j] for e in evoked]) if evoked else np.zeros(0, np.int64)
                for j in range(4)]
        order = np.argsort(cols[2], kind="stable")
        self.evoked = tuple(c[order].astype(np.int64) for c in cols)
        self._blocks: dict[int, tuple] = {}

    def _evoked(self, k: int, drive: dict, pop: Population):
        rng = np.random.default_rng([self.seed, STREAM_EVOKED, k])
        p = slot_choice_weights(pop.geometry, drive["regions"])
        n_in = len(p)
        m = drive["n_events"]
        cells = np.repeat(pop.cells, m)
        slot = rng.choice(n_in, size=cells.size, p=p)
        t = drive["time_ms"] + drive["jitter_ms"] * rng.standard_normal(cells.size)
        b = np.floor(t / self.bin_ms + 1e-9).astype(np.int64)
        keep = (b >= 0) & (b < self.n_bins)
        channel = slot + (n_in if drive["kind"] == "inh" else 0)
        count = np.full(cells.size, drive["weight"])
        return cells[keep], channel[keep], b[keep], count[keep]

    def _block(self, j: int):
        """Poisson events of block j (bins j*BLOCK .. (j+1)*BLOCK - 1), drawn once."""
        if j in self._blocks:
            return self._blocks[j]
        lo, hi = j * BLOCK_BINS, min(self.n_bins, (j + 1) * BLOCK_BINS)
        parts = []
        for k, pop, lam, start, stop in self.poisson:
            a, b = max(lo, start), min(hi, stop)
            if b <= a:
                continue
            rng = np.random.default_rng([self.seed, STREAM_POISSON, k, j])
            counts = rng.poisson(lam[None, :] * (b - a), size=(pop.n, lam.size))
            cell, channel = np.nonzero(counts)
            reps = counts[cell, channel]
            cell, channel = np.repeat(cell, reps), np.repeat(channel, reps)
            bins = rng.integers(a, b, size=cell.size)
            parts.append((cell + pop.start, channel, bins, np.ones(cell.size, np.int64)))
        cols = tuple(np.concatenate([p[i] for p in parts]).astype(np.int64) if parts
                     else np.zeros(0, np.int64) for i in range(4))
        order = np.argsort(cols[2], kind="stable")  # by bin: a chunk is a slice
        cols = tuple(c[order] for c in cols)
        self._blocks[j] = cols
        return cols

    def events(self, b0: int, b1: int) -> tuple[np.ndarray, ...]:
        for j in [j for j in self._blocks if (j + 1) * BLOCK_BINS <= b0]:
            del self._blocks[j]  # blocks wholly before this chunk are not needed again
        parts = []
        for j in range(b0 // BLOCK_BINS, (b1 - 1) // BLOCK_BINS + 1):
            blk = self._block(j)
            i0, i1 = np.searchsorted(blk[2], [b0, b1])
            parts.append(tuple(c[i0:i1] for c in blk))
        i0, i1 = np.searchsorted(self.evoked[2], [b0, b1])
        parts.append(tuple(c[i0:i1] for c in self.evoked))
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))

    def all_events(self) -> tuple[np.ndarray, ...]:
        """Every event of the run (for the NEURON engine; small networks)."""
        return self.events(0, self.n_bins)
