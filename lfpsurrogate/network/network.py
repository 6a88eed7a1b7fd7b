"""``Network``: surrogate cells driving each other, with their LFP, EEG and MEG.

Built from a spec (YAML file, YAML text or dict; see ``network.spec``) or step by step in
the manner of hnn-core, and written back to YAML::

    net = Network(seed=3)
    net.add_population("L5", model="l5_ttpc1", n=12, radius_um=150, z_um=(-50, 50))
    net.add_poisson_drive("L5", rate_exc_hz=6, rate_inh_hz=2)
    net.add_evoked_drive("L5", time_ms=200, jitter_ms=2, n_events=40, regions=["basal"])
    net.add_connection("L5", "L5", kind="exc", probability=0.3, weight=2,
                       delay_ms=(1.5, 3.0), regions=["basal", "apical"])
    res = net.run(1000, engine="surrogate", signals=("lfp", "eeg", "meg"))

``run`` returns an ``xarray.Dataset``: ``spikes`` (cell, time), ``rate`` (population,
time) in Hz, the requested signals (``lfp`` (electrode, time) mV, ``dipole`` (axis, time)
nA·µm, ``eeg`` (eeg_electrode, time) mV, ``meg`` (sensor, axis, time) fT), and per
population spike statistics in ``attrs`` (``network.stats``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ..errors import InputError
from . import build
from .spec import load_spec, to_yaml, validate

ENGINES = ("surrogate", "neuron")
SIGNALS = ("lfp", "dipole", "eeg", "meg")


class Network:
    """A network of surrogate cells (module docstring). ``spec``: a YAML path, YAML text or
    a dict, validated at once (every refusal before any run); None starts an empty network
    with ``seed``."""

    def __init__(self, spec: Any = None, *, seed: int = 0) -> None:
        if spec is None:
            self.spec = {"seed": seed, "populations": {}, "external": [], "connections": []}
        else:
            self.spec = load_spec(spec)
        self.bin_ms = 1.0
        self._built = None

    # ---- building, hnn-core style -------------------------------------------------------
    def _changed(self, spec: dict) -> "Network":
        checked = validate(json.loads(json.dumps(spec)))  # a copy; refuse before storing
        self.spec, self._built = checked, None
        return self

    def add_population(self, name: str, model: str = "l5_ttpc1", n: int = 1, *,
                       radius_um: float = 150.0, z_um=(0.0, 0.0), rotate: bool = True):
        """Add ``n`` cells of surrogate ``model`` in a cylinder of ``radius_um`` around the
        probe axis, soma depths uniform in ``z_um``, each turned about its apical axis."""
        if name in self.spec["populations"]:
            raise InputError(f"population {name!r} exists already; choose another name.")
        spec = json.loads(json.dumps(self.spec))
        spec["populations"][name] = {"model": model, "n": n, "placement": {
            "radius_um": radius_um, "z_um": list(np.atleast_1d(z_um).tolist()) if not
            np.isscalar(z_um) else z_um, "rotate": rotate}}
        return self._changed(spec)

    def add_poisson_drive(self, target: str, rate_exc_hz: float = 0.0, rate_inh_hz: float = 0.0,
                          *, regions: Sequence[str] | None = None, start_ms: float = 0.0,
                          stop_ms: float | None = None):
        """Poisson input on every slot of every ``target`` cell (rates per slot, Hz, scaled
        by membrane area as the training inputs)."""
        entry = {"type": "poisson", "target": target, "rate_exc_hz": rate_exc_hz,
                 "rate_inh_hz": rate_inh_hz, "start_ms": start_ms, "stop_ms": stop_ms}
        if regions is not None:
            entry["regions"] = list(regions)
        return self._append("external", entry)

    def add_evoked_drive(self, target: str, time_ms: float, n_events: int, *,
                         jitter_ms: float = 0.0, kind: str = "exc", weight: int = 1,
                         regions: Sequence[str] | None = None):
        """A volley: ``n_events`` events of ``weight`` counts per ``target`` cell at
        ``time_ms`` + Gaussian jitter (sd ``jitter_ms``), on slots in ``regions``."""
        entry = {"type": "evoked", "target": target, "time_ms": time_ms,
                 "jitter_ms": jitter_ms, "n_events": n_events, "kind": kind, "weight": weight}
        if regions is not None:
            entry["regions"] = list(regions)
        return self._append("external", entry)

    def add_connection(self, source: str, target: str, *, probability: float,
                       delay_ms, kind: str = "exc", weight: int = 1,
                       regions: Sequence[str] | None = None, autapses: bool = False):
        """Connect every (source, target) cell pair with ``probability``; each spike adds
        ``weight`` counts to one ``kind`` slot of the target in ``regions`` after
        ``delay_ms`` (a number or [min, max])."""
        entry = {"source": source, "target": target, "kind": kind, "probability": probability,
                 "weight": weight, "delay_ms": list(delay_ms) if isinstance(
                     delay_ms, (list, tuple)) else delay_ms, "autapses": autapses}
        if regions is not None:
            entry["regions"] = list(regions)
        return self._append("connections", entry)

    def _append(self, key: str, entry: dict) -> "Network":
        spec = json.loads(json.dumps(self.spec))
        spec[key].append(entry)
        return self._changed(spec)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The spec as YAML (and written to ``path`` if given)."""
        text = to_yaml(self.spec)
        if path is not None:
            Path(path).write_text(text)
        return text

    def __repr__(self) -> str:
        pops = ", ".join(f"{k}: {v['n']} x {v['model']}" for k, v in self.spec["populations"].items())
        return (f"Network(seed={self.spec['seed']}, {pops or 'no populations'}, "
                f"{len(self.spec['external'])} drive(s), {len(self.spec['connections'])} "
                "connection rule(s))")

    # ---- what the spec builds ------------------------------------------------------------
    def _build(self):
        if not self.spec["populations"]:
            raise InputError("the network has no population; add one first "
                             "(add_population or 'populations' in the spec).")
        if self._built is None:
            pops = build.populations(self.spec)
            pos, rot = build.placement(self.spec, pops)
            conn = build.connectivity(self.spec, pops, self.bin_ms)
            self._built = (pops, pos, rot, conn)
        return self._built

    @property
    def populations(self) -> list:
        return self._build()[0]

    @property
    def positions(self) -> np.ndarray:
        """Soma positions (cell, 3), µm."""
        return self._build()[1]

    @property
    def rotations(self) -> np.ndarray:
        """Rotations (cell, 3), rad (about z only)."""
        return self._build()[2]

    @property
    def connectivity(self) -> "build.Connectivity":
        return self._build()[3]

    @property
    def n_cells(self) -> int:
        return sum(p.n for p in self.populations)

    # ---- running -------------------------------------------------------------------------
    def run(self, duration_ms: float, engine: str = "surrogate",
            signals: Sequence[str] = ("lfp", "eeg", "meg"), probe: Any = "laminar-16", *,
            eeg: Any = None, meg: Any = None, device: str = "cpu",
            chunk_bins: int | None = None, dt: float = 1 / 16,
            threads: int | None = None, progress: bool = False) -> xr.Dataset:
        """Run for ``duration_ms`` in ``engine`` ("surrogate" or "neuron"); ``signals``: any
        of "lfp", "dipole", "eeg", "meg" (or none); ``probe``: the LFP probe; ``eeg``/``meg``:
        sensor sets (default 10-20 montage, radial MEG array). ``chunk_bins``: surrogate
        chunk length (default and maximum: the shortest delay). ``dt``: NEURON time step.
        ``threads``: NEURON threads (default: the cores this process may use, at most one
        per cell); the run is the same for any number."""
        if engine not in ENGINES:
            raise InputError(f"engine={engine!r}: choose one of {list(ENGINES)}.")
        if isinstance(signals, str):
            signals = tuple(s.strip() for s in signals.split(",") if s.strip())
        signals = tuple(signals or ())
        bad = [s for s in signals if s not in SIGNALS]
        if bad:
            raise InputError(f"signals {bad}: choose from {list(SIGNALS)}.")
        if (isinstance(duration_ms, (bool, np.bool_)) or not isinstance(duration_ms, (int, float))
                or not np.isfinite(duration_ms) or duration_ms < self.bin_ms):
            raise InputError(f"duration_ms={duration_ms!r}: give a number of ms >= one bin "
                             f"({self.bin_ms:g} ms).")
        if chunk_bins is not None and (not isinstance(chunk_bins, (int, np.integer))
                                       or chunk_bins < 1):
            raise InputError(f"chunk_bins={chunk_bins!r}: a positive whole number of bins.")
        if threads is not None and (isinstance(threads, (bool, np.bool_))
                                    or not isinstance(threads, (int, np.integer)) or threads < 1):
            raise InputError(f"threads={threads!r}: a positive whole number of NEURON threads.")
        n_bins = int(round(duration_ms / self.bin_ms))
        pops = self.populations
        if "lfp" in signals:
            from ..probes import as_probe

            probe = as_probe(probe)
        sensors = fwd = None
        if "eeg" in signals or "meg" in signals or "lfp" in signals:
            from .signals import sensor_matrices

            sensors, fwd = sensor_matrices(pops[0].geometry, signals, self.positions, eeg, meg)
        if engine == "surrogate":
            from .engine_surrogate import run_surrogate

            out = run_surrogate(self, n_bins, signals, probe, device, chunk_bins, progress)
            rows = out["rows"]
        else:
            from .engine_neuron import run_neuron
            from .signals import cell_rows

            if threads is None:
                from ..data.generate import available_cores

                threads = available_cores()
            out = run_neuron(self, n_bins, dt=dt, progress=progress, threads=threads)
            rows = None
            if signals:
                r = cell_rows(pops[0].geometry, probe if "lfp" in signals else None,
                              self.positions, self.rotations).astype(np.float64)
                v = out["v"].astype(np.float64)
                rows = np.einsum("nes,nst->et", r, v - v.mean(axis=(1, 2), keepdims=True))
        return self._dataset(out, rows, signals, probe, sensors, fwd, engine, n_bins)

    def _dataset(self, out, rows, signals, probe, sensors, fwd, engine, n_bins) -> xr.Dataset:
        from .stats import spike_stats

        time = np.arange(n_bins) * self.bin_ms
        pops = self.populations
        data = {}
        if rows is not None:
            n_e = rows.shape[0] - 3
            p = rows[n_e:]
            if "lfp" in signals:
                data["lfp"] = rows[:n_e]
            if "dipole" in signals:
                data["dipole"] = p
            if "eeg" in signals:
                data["eeg"] = sensors["eeg"] @ p
            if "meg" in signals:
                data["meg"] = np.einsum("nij,jt->nit", sensors["meg"], p)
        if fwd is not None:
            if "lfp" in signals:
                fwd.probes["lfp"] = probe
            ds = fwd._dataset(data, None, time, "v")
            ds.attrs = {}
        else:
            ds = xr.Dataset(coords={"time": ("time", time, {"units": "ms"})})
        spikes = out["spikes"]
        pop_of = np.concatenate([[p.name] * p.n for p in pops])
        ds = ds.assign_coords(cell=np.arange(spikes.shape[0]), population=[p.name for p in pops])
        ds = ds.assign_coords(cell_population=("cell", pop_of),
                              cell_position=(("cell", "axis"), self.positions, {"units": "um"}),
                              cell_rotation=(("cell", "axis"), self.rotations, {"units": "rad"}))
        ds["spikes"] = (("cell", "time"), spikes, {"units": "spikes per bin",
                                                   "long_name": "somatic spikes"})
        rate = np.stack([spikes[p.start:p.start + p.n].mean(0) * (1000.0 / self.bin_ms)
                         for p in pops])
        ds["rate"] = (("population", "time"), rate, {"units": "Hz",
                                                     "long_name": "population rate per bin"})
        stats = {p.name: spike_stats(spikes[p.start:p.start + p.n], self.bin_ms) for p in pops}
        ds.attrs.update(engine=engine, bin_ms=self.bin_ms, n_cells=int(spikes.shape[0]),
                        n_connections=int(self.connectivity.n), wall_s=float(out["wall_s"]),
                        spec=to_yaml(self.spec), stats=json.dumps(stats),
                        eeg_meg_dipole="network's summed dipole at the mean soma position")
        if "chunk_bins" in out:
            ds.attrs["chunk_bins"] = int(out["chunk_bins"])
        if "threads" in out:
            ds.attrs["neuron_threads"] = int(out["threads"])
        licences = {str(p.geometry.meta.get("licence", "")) for p in pops} - {""}
        if licences:
            ds.attrs["cell_licence"] = "; ".join(sorted(licences))
        return ds
