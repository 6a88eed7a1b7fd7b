"""Building a network from its spec: cells and their placement, and the connectivity.

Every draw comes from its own seeded stream, ``numpy.random.default_rng([seed, stream,
...])``, so the connectivity does not change when a drive is added and both engines see
the same network. Cells are numbered population by population in spec order.

Placement: somata uniform in a cylinder around the probe axis (the z axis), radius
``radius_um``, z uniform in ``z_um``; each cell turned by a uniform angle about its apical
axis (+z in the canonical frame).

Connections: every ordered (source, target) pair of cells is connected with probability
``probability`` (no autapses unless asked); a connection lands on one input slot of the
target (excitatory or inhibitory channel by ``kind``), on a segment drawn from ``regions``
with probability proportional to its slot rate weight (membrane area, ``inputs.slot_weights``),
with a delay uniform in ``delay_ms`` rounded to whole bins.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InputError
from ..geometry import CellGeometry

STREAM_PLACEMENT, STREAM_CONNECTIONS, STREAM_POISSON, STREAM_EVOKED = 1, 2, 3, 4


@lru_cache(maxsize=8)
def _geometry_at(path: str) -> CellGeometry:
    from ..modelfolder import GEOMETRY

    return CellGeometry.load(f"{path}/{GEOMETRY}")


def model_geometry(model: str) -> CellGeometry:
    """The cell geometry a model folder ships (no torch, no NEURON)."""
    from ..modelfolder import resolve_model_path

    path = resolve_model_path(model).resolve()
    if not path.is_dir():
        raise InputError(f"model {model!r} is a training checkpoint; networks need a model "
                         "folder (lfpsurrogate export).")
    return _geometry_at(str(path))


def slot_choice_weights(geom: CellGeometry, regions) -> np.ndarray:
    """(n_input_segments,) probability of each input slot for a synapse onto ``regions``:
    the slot rate weight (membrane area) within those regions, normalised."""
    from ..inputs import slot_weights

    w = slot_weights(geom).astype(float)
    region = np.asarray(geom.region)[geom.input_segments]
    w = np.where(np.isin(region, list(regions)), w, 0.0)
    if w.sum() <= 0:  # e.g. only thin segments in the region: uniform over its slots
        w = np.isin(region, list(regions)).astype(float)
    if w.sum() <= 0:
        raise InputError(f"no input slot of cell {geom.name!r} lies in regions {list(regions)}.")
    return w / w.sum()


@dataclass
class Population:
    name: str
    model: str
    start: int  # index of its first cell
    n: int
    geometry: CellGeometry

    @property
    def cells(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.n)


@dataclass
class Connectivity:
    """Connections as arrays sorted by source: ``source``, ``target`` (cell indices),
    ``channel`` (input channel of the target), ``delay`` (bins), ``weight`` (counts);
    ``indptr`` (n_cells + 1): the connections of source i are indptr[i]:indptr[i+1]."""

    source: np.ndarray
    target: np.ndarray
    channel: np.ndarray
    delay: np.ndarray
    weight: np.ndarray
    indptr: np.ndarray

    @property
    def n(self) -> int:
        return len(self.source)

    def outgoing(self, sources: np.ndarray) -> np.ndarray:
        """Indices of every connection leaving the given source cells (with repeats)."""
        starts, stops = self.indptr[sources], self.indptr[sources + 1]
        counts = stops - starts
        if counts.sum() == 0:
            return np.zeros(0, dtype=np.int64)
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
        return offsets + np.arange(counts.sum())


def populations(spec: dict) -> list[Population]:
    out, start = [], 0
    for name, pop in spec["populations"].items():
        out.append(Population(name, pop["model"], start, pop["n"], model_geometry(pop["model"])))
        start += pop["n"]
    return out


def placement(spec: dict, pops: list[Population]) -> tuple[np.ndarray, np.ndarray]:
    """Soma positions (n_cells, 3) µm and rotations (n_cells, 3) rad (about z only)."""
    pos, rot = [], []
    for k, pop in enumerate(pops):
        cfg = spec["populations"][pop.name]["placement"]
        rng = np.random.default_rng([spec["seed"], STREAM_PLACEMENT, k])
        r = cfg["radius_um"] * np.sqrt(rng.uniform(0.0, 1.0, pop.n))
        phi = rng.uniform(0.0, 2 * np.pi, pop.n)
        z = rng.uniform(cfg["z_um"][0], cfg["z_um"][1], pop.n)
        angle = rng.uniform(0.0, 2 * np.pi, pop.n)
        pos.append(np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1))
        rot.append(np.stack([np.zeros(pop.n), np.zeros(pop.n),
                             angle if cfg["rotate"] else np.zeros(pop.n)], axis=1))
    return np.concatenate(pos), np.concatenate(rot)


def connectivity(spec: dict, pops: list[Population], bin_ms: float = 1.0) -> Connectivity:
    """Draw every connection rule (seeded, rule by rule, source cell by source cell)."""
    by_name = {p.name: p for p in pops}
    n_cells = sum(p.n for p in pops)
    parts = []
    for k, rule in enumerate(spec["connections"]):
        src, tgt = by_name[rule["source"]], by_name[rule["target"]]
        rng = np.random.default_rng([spec["seed"], STREAM_CONNECTIONS, k])
        w_slot = slot_choice_weights(tgt.geometry, rule["regions"])
        n_in = len(w_slot)
        lo, hi = rule["delay_ms"]
        for i in src.cells:
            hit = np.flatnonzero(rng.random(tgt.n) < rule["probability"]) + tgt.start
            if not rule["autapses"]:
                hit = hit[hit != i]
            m = len(hit)
            slot = rng.choice(n_in, size=m, p=w_slot)
            delay = np.maximum(1, np.rint(rng.uniform(lo, hi, m) / bin_ms)).astype(np.int32)
            channel = slot + (n_in if rule["kind"] == "inh" else 0)
            parts.append((np.full(m, i), hit, channel, delay, np.full(m, rule["weight"])))
    if parts:
        cols = [np.concatenate([p[j] for p in parts]) for j in range(5)]
    else:
        cols = [np.zeros(0, dtype=np.int64)] * 5
    order = np.argsort(cols[0], kind="stable")
    source, target, channel, delay, weight = (c[order] for c in cols)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.add.at(indptr, source.astype(np.int64) + 1, 1)
    return Connectivity(source.astype(np.int64), target.astype(np.int64),
                        channel.astype(np.int64), delay.astype(np.int64),
                        weight.astype(np.int64), np.cumsum(indptr))
