"""Forward models: segment currents or voltages -> LFP, current dipole, EEG and MEG.

Every signal is linear in the transmembrane currents, so a :class:`ForwardModel` holds
matrices built once with lfpykit and applies them with a few matrix products:

* ``lfp``    = K_lfp imem       (lfpykit ``RecExtElectrode``, line or point sources), mV
* ``dipole`` = K_p imem         (lfpykit ``CurrentDipoleMoment``, about each soma), nA·µm
* ``eeg``    = K_eeg p          (lfpykit ``FourSphereVolumeConductor``), mV
* ``meg``    = K_meg p          (lfpykit ``SphericallySymmetricVolCondMEG`` or
  ``InfiniteHomogeneousVolCondMEG``; H in nA/µm converted to B = µ0 H in fT)

``from_voltages`` uses the segment matrices composed once with the geometry's
voltage->current matrix M (K @ M); composed matrices are cached per (geometry fingerprint,
placement, probes, options). See ``docs/forward.md`` for frames, units and conventions.
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from .errors import InputError
from .geometry import CellGeometry
from .probes import Probe, ProbeError, as_probe, eeg_10_20, radial_meg_array

__all__ = [
    "SIGNALS", "ForwardModel", "forward_model", "rotation_matrix", "radial_rotation",
    "place", "clear_cache", "cache_info", "MU0", "H_TO_FT",
]

SIGNALS = ("lfp", "dipole", "eeg", "meg")
PROBE_KIND = {"lfp": "mea", "eeg": "eeg", "meg": "meg"}
MU0 = 4e-7 * math.pi  # vacuum permeability, T·m/A
H_TO_FT = MU0 * 1e-3 * 1e15  # H [nA/µm] = 1e-3 A/m; B [T] = µ0 H; 1 T = 1e15 fT
DEFAULT_HEAD_POSITION = (0.0, 0.0, 78000.0)  # µm: cortex at 78 mm, under the vertex
UNITS = {"lfp": "mV", "dipole": "nA*um", "eeg": "mV", "meg": "fT"}
LFP_METHODS = ("linesource", "pointsource")


# ---- placement ----------------------------------------------------------------------------
def rotation_matrix(rotation: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rotation matrices for angles (rx, ry, rz) in radians, shape (3,) or (n, 3).

    Same semantics as LFPy's ``Cell.set_rotation(x, y, z)``: rotate about the x axis, then
    the y axis, then the z axis of the fixed frame, each counter-clockwise (right-hand
    rule), i.e. R = Rz(rz) @ Ry(ry) @ Rx(rx) acting on column vectors. Returns (3, 3) or
    (n, 3, 3).
    """
    a = np.asarray(rotation, dtype=float)
    single = a.ndim == 1
    a = np.atleast_2d(a)
    cx, cy, cz = np.cos(a).T
    sx, sy, sz = np.sin(a).T
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    r = rz @ ry @ rx
    return r[0] if single else r


def radial_rotation(position: Sequence[float]) -> np.ndarray:
    """Angles (rx, ry, 0) that turn the canonical apical axis +z into the radial
    direction of ``position`` (head frame, µm); e.g. for a cell elsewhere in cortex."""
    u = np.asarray(position, dtype=float)
    n = np.linalg.norm(u)
    if not np.isfinite(n) or n == 0:
        raise InputError(f"radial_rotation needs a finite non-zero position, got {position!r}.")
    u = u / n
    return np.array([-math.asin(float(np.clip(u[1], -1, 1))), math.atan2(u[0], u[2]), 0.0])


@dataclass(frozen=True, eq=False)
class Placement:
    """Soma positions (n_cells, 3) µm and rotations (n_cells, 3) rad in the probe frame."""

    position: np.ndarray
    rotation: np.ndarray

    @classmethod
    def of(cls, position, rotation) -> "Placement":
        out = []
        for name, val in (("position", position), ("rotation", rotation)):
            try:
                arr = np.asarray(val, dtype=float)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{name} must be numbers, shape (3,) or (n_cells, 3).") from exc
            if arr.shape == (3,):
                arr = arr[None]
            if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0:
                raise InputError(f"{name} must have shape (3,) or (n_cells, 3), got {arr.shape}.")
            if not np.all(np.isfinite(arr)):
                raise InputError(f"{name} holds non-finite values.")
            out.append(arr)
        pos, rot = out
        if len(pos) != len(rot) and 1 not in (len(pos), len(rot)):
            raise InputError(
                f"position has {len(pos)} cells and rotation {len(rot)}; give one per cell "
                "or a single (3,) value for all."
            )
        n = max(len(pos), len(rot))
        pos, rot = np.broadcast_to(pos, (n, 3)).copy(), np.broadcast_to(rot, (n, 3)).copy()
        pos.flags.writeable = rot.flags.writeable = False
        return cls(pos, rot)

    @property
    def n_cells(self) -> int:
        return len(self.position)

    @property
    def key(self) -> str:
        h = hashlib.sha256(np.round(self.position, 9).astype("<f8").tobytes())
        h.update(np.round(self.rotation, 12).astype("<f8").tobytes())
        return h.hexdigest()[:16]


def _rotated_ends(geometry: CellGeometry, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Segment start and end points, rotated about the soma (origin), (n_cells, n_seg, 3)."""
    start = np.stack([geometry.x[:, 0], geometry.y[:, 0], geometry.z[:, 0]], axis=1)
    end = np.stack([geometry.x[:, 1], geometry.y[:, 1], geometry.z[:, 1]], axis=1)
    r = rotation_matrix(placement.rotation)
    return np.einsum("cij,sj->csi", r, start), np.einsum("cij,sj->csi", r, end)


def place(geometry: CellGeometry, position=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0)):
    """Placed segment coordinates ``(x, y, z)``, each (n_cells, n_seg, 2) µm: the canonical
    geometry rotated about the soma (origin) by ``rotation``, then moved to ``position``."""
    pl = Placement.of(position, rotation)
    s, e = _rotated_ends(geometry, pl)
    s, e = s + pl.position[:, None], e + pl.position[:, None]
    return tuple(np.stack([s[..., k], e[..., k]], axis=-1) for k in range(3))


def _lfpykit_cell(start: np.ndarray, end: np.ndarray, d: np.ndarray):
    """One lfpykit.CellGeometry of all cells' segments (start/end: (n_cells, n_seg, 3))."""
    import lfpykit

    c, s, _ = start.shape
    xyz = [np.stack([start[..., k].ravel(), end[..., k].ravel()], axis=1) for k in range(3)]
    return lfpykit.CellGeometry(x=xyz[0], y=xyz[1], z=xyz[2], d=np.tile(d, c))


# ---- cache --------------------------------------------------------------------------------
class _LRU:
    def __init__(self, maxsize: int = 16):
        self.maxsize, self.data = maxsize, OrderedDict()
        self.hits = self.misses = 0

    def get(self, key):
        if key in self.data:
            self.hits += 1
            self.data.move_to_end(key)
            return self.data[key]
        self.misses += 1
        return None

    def put(self, key, value):
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.maxsize:
            self.data.popitem(last=False)


_CACHE = _LRU()


def clear_cache() -> None:
    """Drop every cached forward matrix."""
    _CACHE.data.clear()
    _CACHE.hits = _CACHE.misses = 0


def cache_info() -> dict:
    """Cache statistics: hits, misses, entries."""
    return {"hits": _CACHE.hits, "misses": _CACHE.misses, "entries": len(_CACHE.data)}


def _readonly(d: dict) -> dict:
    for a in d.values():
        a.flags.writeable = False
    return d


# ---- the model ------------------------------------------------------------------------------
def _resolve_probes(probe: Any) -> dict[str, Probe]:
    if probe is None:
        return {}
    if isinstance(probe, Mapping):
        out = {}
        for key, p in probe.items():
            if key not in PROBE_KIND:
                raise ProbeError(f"probes dict key {key!r}: use 'lfp', 'eeg' or 'meg'.")
            p = as_probe(p)
            if p.kind != PROBE_KIND[key]:
                raise ProbeError(f"probes[{key!r}] is a {p.kind!r} probe ({p.name}); "
                                 f"{key} needs kind {PROBE_KIND[key]!r}.")
            out[key] = p
        return out
    items = probe if isinstance(probe, (list, tuple)) else [probe]
    out = {}
    for p in map(as_probe, items):
        key = {v: k for k, v in PROBE_KIND.items()}[p.kind]
        if key in out:
            raise ProbeError(f"two {p.kind!r} probes given ({out[key].name}, {p.name}); "
                             "give at most one of each kind.")
        out[key] = p
    return out


def forward_model(
    geometry: CellGeometry,
    probe: Any = None,
    signals: Sequence[str] | None = None,
    position=(0.0, 0.0, 0.0),
    rotation=(0.0, 0.0, 0.0),
    *,
    sigma: float = 0.3,
    method: str = "linesource",
    head_position=DEFAULT_HEAD_POSITION,
    eeg_dipoles: str = "summed",
) -> "ForwardModel":
    """Forward model of one placed cell or a population of identical placed cells.

    geometry: the cell in its canonical frame (soma at the origin, apical axis +z); a
        loaded Cell (anything with a ``.geometry``) works too.
    probe: what records: a :class:`~lfpsurrogate.probes.Probe`, a MEAutility MEA, a probe
        name or YAML path, a list of these (at most one per kind) or a dict
        ``{"lfp": ..., "eeg": ..., "meg": ...}``. MEA probes give ``lfp``, EEG montages
        ``eeg``, MEG arrays ``meg``.
    signals: subset of ("lfp", "dipole", "eeg", "meg"); default: ``dipole`` plus the signal
        of every probe given. ``eeg``/``meg`` without a montage/array use the built-in
        10-20 montage / radial MEG array; ``lfp`` needs an MEA probe.
    position: soma position(s) in the probe frame, (3,) or (n_cells, 3), µm.
    rotation: angles about x, y, z (LFPy ``set_rotation`` semantics) applied about the
        soma to the canonical geometry, (3,) or (n_cells, 3), rad.
    sigma: extracellular conductivity for the LFP, S/m. method: "linesource" or
        "pointsource" (lfpykit RecExtElectrode).
    head_position: where the probe frame's origin sits in the head frame (axes parallel),
        µm; default (0, 0, 78000): cortex under the vertex, so +z (apical) is radial.
        Each cell's dipole sits at ``head_position + position``.
    eeg_dipoles: "summed" (EEG/MEG of the population's summed dipole placed at the mean
        soma position) or "per_cell" (each cell's dipole at its own soma).
    """
    probes = _resolve_probes(probe)
    if signals is None:
        signals = [s for s in SIGNALS if s == "dipole" or s in probes]
    signals = tuple(signals) if not isinstance(signals, str) else (signals,)
    unknown = sorted(set(signals) - set(SIGNALS))
    if unknown or not signals:
        raise ProbeError(f"signals {list(signals)}: choose from {SIGNALS}.")
    if "lfp" in signals and "lfp" not in probes:
        raise ProbeError("signal 'lfp' needs an extracellular probe: pass probe=<MEA name, "
                         "YAML path or Probe of kind 'mea'>.")
    if "eeg" in signals and "eeg" not in probes:
        probes["eeg"] = eeg_10_20()
    if "meg" in signals and "meg" not in probes:
        probes["meg"] = radial_meg_array()
    probes = {k: v for k, v in probes.items() if k in signals}
    if method not in LFP_METHODS:
        raise ProbeError(f"method={method!r}; use one of {LFP_METHODS}.")
    if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma > 0):
        raise ProbeError(f"sigma={sigma!r} must be a positive conductivity in S/m.")
    if eeg_dipoles not in ("summed", "per_cell"):
        raise ProbeError(f"eeg_dipoles={eeg_dipoles!r}; use 'summed' or 'per_cell'.")
    head = np.asarray(head_position, dtype=float)
    if head.shape != (3,) or not np.all(np.isfinite(head)):
        raise InputError(f"head_position must be 3 finite numbers (µm), got {head_position!r}.")
    if not isinstance(geometry, CellGeometry) and isinstance(
            getattr(geometry, "geometry", None), CellGeometry):
        geometry = geometry.geometry  # a loaded Cell
    if not isinstance(geometry, CellGeometry):
        raise InputError(f"geometry must be a CellGeometry, got {type(geometry).__name__}.")
    return ForwardModel(geometry, probes, tuple(s for s in SIGNALS if s in signals),
                        Placement.of(position, rotation), float(sigma), method, head,
                        eeg_dipoles)


class ForwardModel:
    """Matrices mapping segment currents (or voltages) of placed cells to signals.

    Build it with :func:`forward_model`. ``from_currents(imem)`` and ``from_voltages(v)``
    take arrays or DataArrays with dims (segment, time) or (cell, segment, time) and return
    an ``xarray.Dataset``; ``matrices()`` exposes the matrices themselves.
    """

    def __init__(self, geometry, probes, signals, placement, sigma, method, head_position,
                 eeg_dipoles):
        self.geometry = geometry
        self.probes: dict[str, Probe] = probes
        self.signals: tuple[str, ...] = signals
        self.placement: Placement = placement
        self.sigma, self.method = sigma, method
        self.head_position = head_position
        self.eeg_dipoles = eeg_dipoles
        self.fingerprint = geometry.fingerprint
        self._key = (self.fingerprint, placement.key,
                     tuple((k, p.fingerprint) for k, p in sorted(probes.items())), signals,
                     sigma, method, tuple(np.round(head_position, 9)), eeg_dipoles)

    @property
    def n_cells(self) -> int:
        return self.placement.n_cells

    @property
    def dipole_locations(self) -> np.ndarray:
        """Head-frame dipole location(s), µm: (1, 3) summed, (n_cells, 3) per cell."""
        pos = self.placement.position
        if self.eeg_dipoles == "summed":
            pos = pos.mean(axis=0, keepdims=True)
        return pos + self.head_position

    # -- matrices -------------------------------------------------------------------------
    def _entry(self) -> dict:
        entry = _CACHE.get(self._key)
        if entry is None:
            entry = {"currents": _readonly(self._build_segment_matrices()),
                     "sensors": _readonly(self._build_sensor_matrices())}
            _CACHE.put(self._key, entry)
        return entry

    def _build_segment_matrices(self) -> dict:
        from lfpykit import CurrentDipoleMoment, RecExtElectrode

        g, pl = self.geometry, self.placement
        c, s = pl.n_cells, g.n_segments
        start, end = _rotated_ends(g, pl)
        out = {}
        # dipole about each soma: rotated, not translated
        k_p = CurrentDipoleMoment(_lfpykit_cell(start, end, g.d)).get_transformation_matrix()
        out["dipole"] = np.ascontiguousarray(k_p.reshape(3, c, s).transpose(1, 0, 2))
        if "lfp" in self.probes:
            shift = pl.position[:, None, :]
            cell = _lfpykit_cell(start + shift, end + shift, g.d)
            pos = self.probes["lfp"].positions
            el = RecExtElectrode(cell, sigma=self.sigma, x=pos[:, 0], y=pos[:, 1],
                                 z=pos[:, 2], method=self.method)
            out["lfp"] = np.ascontiguousarray(el.get_transformation_matrix())  # (E, C*S)
        return out

    def _build_sensor_matrices(self) -> dict:
        from lfpykit.eegmegcalc import (FourSphereVolumeConductor,
                                        InfiniteHomogeneousVolCondMEG,
                                        SphericallySymmetricVolCondMEG)

        locs = self.dipole_locations
        out = {}
        for key in ("eeg", "meg"):
            if key not in self.probes:
                continue
            p = self.probes[key]
            r = np.linalg.norm(locs, axis=1)
            bad = np.flatnonzero(r >= p.head.brain_radius)
            if bad.size:
                raise InputError(
                    f"dipole of cell {bad[0]} at {locs[bad[0]].round(1).tolist()} µm (head frame) "
                    f"lies outside the brain sphere (radius {p.head.brain_radius:g} µm of "
                    f"{p.source or p.name}); move it with position/head_position."
                )
            if key == "eeg":
                model = FourSphereVolumeConductor(p.positions, radii=list(p.head.radii),
                                                  sigmas=list(p.head.conductivities))
                out["eeg"] = np.stack([model.get_transformation_matrix(x) for x in locs])
            elif p.conductor == "infinite":
                model = InfiniteHomogeneousVolCondMEG(p.positions)
                out["meg"] = np.stack([model.get_transformation_matrix(x) for x in locs]) * H_TO_FT
            else:
                model = SphericallySymmetricVolCondMEG(p.positions)
                out["meg"] = np.stack([model.get_transformation_matrix(x) for x in locs]) * H_TO_FT
        return out

    def _composed(self, entry: dict) -> dict:
        if "voltages" not in entry:
            m = self.geometry.vmem_to_imem.tocsr()
            s = self.geometry.n_segments
            comp = {}
            for key, a in entry["currents"].items():
                flat = a.reshape(-1, s)  # rows x segments
                comp[key] = np.ascontiguousarray((m.T @ flat.T).T).reshape(a.shape)
            entry["voltages"] = _readonly(comp)
        return entry["voltages"]

    def matrices(self, of: str = "currents") -> dict[str, np.ndarray]:
        """The forward matrices (read-only views).

        of="currents" (per nA) or "voltages" (composed with M, per mV). Keys:
        ``lfp`` (n_cells, n_electrodes, n_segments) mV; ``dipole`` (n_cells, 3,
        n_segments) nA·µm; and acting on dipoles (per nA·µm, one per dipole location):
        ``eeg`` (n_locations, n_eeg, 3) mV, ``meg`` (n_locations, n_sensors, 3, 3) fT.
        """
        if of not in ("currents", "voltages"):
            raise ValueError("of must be 'currents' or 'voltages'.")
        entry = self._entry()
        seg = entry["currents"] if of == "currents" else self._composed(entry)
        out = {"dipole": seg["dipole"]}
        if "lfp" in seg:
            c, s = self.n_cells, self.geometry.n_segments
            out["lfp"] = seg["lfp"].reshape(-1, c, s).transpose(1, 0, 2)
        out.update(entry["sensors"])
        return out

    # -- application ----------------------------------------------------------------------
    def from_currents(self, imem, *, dt: float = 1.0) -> xr.Dataset:
        """Signals from transmembrane currents (nA), dims (segment, time) or (cell,
        segment, time). ``dt``: bin width (ms) for the time coordinate when the input
        carries none. A Dataset with ``imem`` is accepted too."""
        entry = self._entry()
        return self._apply(imem, "imem", entry["currents"], entry["sensors"], dt)

    def from_voltages(self, v, *, dt: float = 1.0) -> xr.Dataset:
        """Signals from membrane potentials (mV) through the composed matrices K @ M;
        same dims and output as :meth:`from_currents`."""
        entry = self._entry()
        return self._apply(v, "v", self._composed(entry), entry["sensors"], dt)

    def _as_array(self, x, name: str):
        if isinstance(x, xr.Dataset):
            if name not in x:
                raise InputError(f"the Dataset has no variable {name!r}.")
            x = x[name]
        time, has_cell = None, False
        if isinstance(x, xr.DataArray):
            dims = set(x.dims)
            if not {"segment", "time"} <= dims or dims - {"cell", "segment", "time"}:
                raise InputError(f"{name} has dims {x.dims}; expected (segment, time) or "
                                 "(cell, segment, time).")
            has_cell = "cell" in dims
            if "time" in x.coords:
                time = np.asarray(x["time"].values)
            x = x.transpose(*(("cell",) if has_cell else ()), "segment", "time").values
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 3:
            has_cell = True
        elif arr.ndim != 2:
            raise InputError(f"{name} must have dims (segment, time) or (cell, segment, time), "
                             f"got shape {arr.shape}.")
        arr = arr if arr.ndim == 3 else arr[None]
        c, s, _ = arr.shape
        if s != self.geometry.n_segments:
            raise InputError(f"{name} has {s} segments but geometry {self.geometry.name!r} has "
                             f"{self.geometry.n_segments}: shape {arr.shape} does not match.")
        if c != self.n_cells:
            raise InputError(f"{name} holds {c} cell(s) but the forward model places "
                             f"{self.n_cells}; give dims (cell, segment, time) with one entry "
                             "per placed cell.")
        return np.ascontiguousarray(arr), time, has_cell

    def _apply(self, x, name: str, seg: dict, sens: dict, dt: float) -> xr.Dataset:
        arr, time, has_cell = self._as_array(x, name)
        c, s, t = arr.shape
        if time is None:
            time = np.arange(t) * float(dt)
        flat = arr.reshape(c * s, t)
        data = {}
        p_cell = np.matmul(seg["dipole"], arr)  # (C, 3, T)
        p = p_cell.sum(axis=0)
        if "lfp" in self.signals:
            data["lfp"] = seg["lfp"] @ flat
        if "dipole" in self.signals:
            data["dipole"] = p
        src = p[None] if self.eeg_dipoles == "summed" else p_cell
        if "eeg" in self.signals:
            data["eeg"] = np.einsum("cea,cat->et", sens["eeg"], src)
        if "meg" in self.signals:
            data["meg"] = np.einsum("cnij,cjt->nit", sens["meg"], src)
        return self._dataset(data, p_cell if has_cell else None, time, name)

    def _dataset(self, data: dict, p_cell, time, name: str) -> xr.Dataset:
        coords = {"time": ("time", time, {"units": "ms"}), "axis": ["x", "y", "z"]}
        dims = {"lfp": ("electrode", "time"), "dipole": ("axis", "time"),
                "eeg": ("eeg_electrode", "time"), "meg": ("sensor", "axis", "time")}
        names = {"lfp": "extracellular potential", "dipole": "current dipole moment",
                 "eeg": "scalp potential (four-sphere head)",
                 "meg": "magnetic flux density B"}
        variables = {k: (dims[k], v, {"units": UNITS[k], "long_name": names[k]})
                     for k, v in data.items()}
        if "lfp" in self.probes:
            pr = self.probes["lfp"]
            coords["electrode"] = np.arange(pr.n)
            coords["electrode_position"] = (("electrode", "axis"), pr.positions, {"units": "um"})
            # each contact's coordinates as 1-D coordinates too, e.g. to index by depth:
            # lfp.swap_dims(electrode="electrode_z").sel(electrode_z=500)
            for k, a in enumerate("xyz"):
                coords[f"electrode_{a}"] = ("electrode", np.asarray(pr.positions)[:, k],
                                            {"units": "um", "long_name": f"contact {a} (cell "
                                             "frame: soma at 0, apical axis +z)"})
        if "eeg" in self.probes:
            pr = self.probes["eeg"]
            coords["eeg_electrode"] = list(pr.labels)
            coords["eeg_position"] = (("eeg_electrode", "axis"), pr.positions, {"units": "um"})
        if "meg" in self.probes:
            pr = self.probes["meg"]
            coords["sensor"] = list(pr.labels)
            coords["sensor_position"] = (("sensor", "axis"), pr.positions, {"units": "um"})
            coords["sensor_orientation"] = (("sensor", "axis"), pr.orientations)
        if p_cell is not None:
            coords["cell"] = np.arange(self.n_cells)
            coords["cell_position"] = (("cell", "axis"), self.placement.position, {"units": "um"})
            coords["cell_rotation"] = (("cell", "axis"), self.placement.rotation,
                                       {"units": "rad"})
            variables["cell_dipole"] = (("cell", "axis", "time"), p_cell,
                                        {"units": UNITS["dipole"],
                                         "long_name": "current dipole moment of each cell"})
        attrs = {
            "cell": self.geometry.name,
            "cell_fingerprint": self.fingerprint,
            "n_cells": self.n_cells,
            "source": f"from_{'currents' if name == 'imem' else 'voltages'}",
            "sigma_S_per_m": self.sigma,
            "lfp_method": self.method,
            "head_position_um": self.head_position.tolist(),
            "eeg_dipoles": self.eeg_dipoles,
            "dipole_locations_um": self.dipole_locations.round(6).tolist().__repr__(),
        }
        for k, pr in self.probes.items():
            attrs[f"{k}_probe"] = f"{pr.name} ({pr.source})"
            if pr.head is not None:
                attrs[f"{k}_head_radii_um"] = list(pr.head.radii)
                attrs[f"{k}_head_conductivities_S_per_m"] = list(pr.head.conductivities)
            if pr.conductor:
                attrs[f"{k}_conductor"] = pr.conductor
        return xr.Dataset(variables, coords=coords, attrs=attrs)

    def __repr__(self) -> str:
        probes = ", ".join(f"{k}={p.name}" for k, p in self.probes.items())
        return (f"ForwardModel({self.geometry.name!r}, {self.n_cells} cell(s), "
                f"signals={self.signals}, probes: {probes or 'none'})")
