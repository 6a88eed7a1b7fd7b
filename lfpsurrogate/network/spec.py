"""A network specification: populations, external drives, connections; parsed from YAML or
a dict, checked completely before anything runs, and written back to YAML.

The shape (every length in µm, every time in ms, every rate in Hz)::

    seed: 3
    populations:
      L5: {model: l5_ttpc1, n: 12, placement: {radius_um: 150, z_um: [-50, 50]}}
    external:
      - {target: L5, rate_exc_hz: 6, rate_inh_hz: 2}                       # Poisson
      - {type: evoked, target: L5, time_ms: 200, jitter_ms: 2, n_events: 40,
         kind: exc, regions: [basal], weight: 1}                          # a volley
    connections:
      - {source: L5, target: L5, kind: exc, probability: 0.3, weight: 2,
         delay_ms: [1.5, 3.0], regions: [basal, apical]}

``weight`` is the count added to one input channel of the target per presynaptic spike
(or per evoked event): the same synaptic event as one count of the training inputs.
Every refusal is an :class:`~lfpsurrogate.errors.InputError` that names the entry, what was
given, what is allowed and how to fix it (one helper per kind of check, as MNE does).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

REGIONS = ("soma", "basal", "apical", "axon")
KINDS = ("exc", "inh")
MAX_WEIGHT = 255  # counts per channel per bin are uint8 in the training data
_POP_KEYS = {"model", "n", "placement"}
_PLACEMENT_KEYS = {"radius_um", "z_um", "rotate"}
_POISSON_KEYS = {"type", "target", "rate_exc_hz", "rate_inh_hz", "regions", "start_ms", "stop_ms"}
_EVOKED_KEYS = {"type", "target", "time_ms", "jitter_ms", "n_events", "kind", "regions", "weight"}
_CONN_KEYS = {"source", "target", "kind", "probability", "weight", "delay_ms", "regions",
              "autapses"}


# ---- one helper per kind of check -----------------------------------------------------------
def _where(path: str) -> str:
    return f"network spec: {path}"


def _number(value, path: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, unit: str = "") -> float:
    """A finite real number within [low, high] (low excluded when low_open)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise InputError(f"{_where(path)} = {value!r}: must be a number{unit and ' (' + unit + ')'}"
                         f", got {type(value).__name__}.")
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"{_where(path)} = {value!r}: must be finite.")
    if low is not None and (v < low or (low_open and v == low)):
        rng = f"> {low:g}" if low_open else f">= {low:g}"
        if high is not None:
            rng = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise InputError(f"{_where(path)} = {value!r}: must be {rng}{unit and ' ' + unit}.")
    if high is not None and v > high:
        raise InputError(f"{_where(path)} = {value!r}: must be in "
                         f"{'(' if low_open else '['}{low:g}, {high:g}]{unit and ' ' + unit}.")
    return v


def _integer(value, path: str, *, low: int = 0, high: int | None = None) -> int:
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float))
            or (isinstance(value, float) and not value.is_integer())):
        raise InputError(f"{_where(path)} = {value!r}: must be a whole number >= {low}.")
    v = int(value)
    if v < low or (high is not None and v > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InputError(f"{_where(path)} = {value!r}: must be a whole number {allowed}.")
    return v


def _option(value, path: str, allowed) -> str:
    if value not in allowed:
        raise InputError(f"{_where(path)} = {value!r}: choose one of {list(allowed)}.")
    return str(value)


def _keys(entry, path: str, allowed: set, required: tuple = ()) -> dict:
    if not isinstance(entry, dict):
        raise InputError(f"{_where(path)} must be a mapping (key: value), got "
                         f"{type(entry).__name__}.")
    unknown = sorted(set(map(str, entry)) - allowed)
    if unknown:
        raise InputError(f"{_where(path)}: unknown key(s) {unknown}; allowed: {sorted(allowed)}.")
    missing = [k for k in required if k not in entry]
    if missing:
        raise InputError(f"{_where(path)}: missing key(s) {missing}.")
    return entry


def _population(name, pops: dict, path: str) -> str:
    if name not in pops:
        raise InputError(f"{_where(path)} = {name!r}: unknown population; defined: "
                         f"{sorted(pops)}. Add it under 'populations' or fix the name.")
    return str(name)


def _regions(value, path: str) -> list[str]:
    if value is None:
        return ["soma", "basal", "apical"]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise InputError(f"{_where(path)} = {value!r}: give a list of regions from "
                         f"{list(REGIONS)}.")
    for r in items:
        _option(r, path, REGIONS)
    return list(dict.fromkeys(str(r) for r in items))


def _interval(value, path: str, *, low: float | None, unit: str) -> list[float]:
    """A number or a [low, high] pair, each >= ``low`` (None: any)."""
    items = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(items) != 2:
        raise InputError(f"{_where(path)} = {value!r}: give one number or [min, max] ({unit}).")
    lo = _number(items[0], path, low=low, unit=unit)
    hi = _number(items[1], path, low=low, unit=unit)
    if lo > hi:
        raise InputError(f"{_where(path)} = {value!r}: min {lo:g} is above max {hi:g}.")
    return [lo, hi]


# ---- the spec -------------------------------------------------------------------------------
def load_spec(spec: Any) -> dict:
    """A YAML path, YAML text or dict -> a validated, normalised spec dict (a copy)."""
    if isinstance(spec, (str, Path)):
        import yaml

        path = Path(spec)
        text = None
        if isinstance(spec, Path) or str(spec).endswith((".yaml", ".yml")) or "\n" not in str(spec):
            if not path.is_file():
                raise InputError(f"network spec file {str(spec)!r} does not exist; give a YAML "
                                 "file, YAML text or a dict.")
            text = path.read_text()
        else:
            text = str(spec)
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"network spec is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise InputError(f"network spec must be a mapping with 'populations' (and 'seed', "
                         f"'external', 'connections'); got {type(spec).__name__}.")
    return validate(copy.deepcopy(spec))


def validate(spec: dict, *, check_models: bool = True) -> dict:
    """Check every entry of ``spec`` and fill defaults; returns it. Refuses (InputError):
    unknown keys or populations, non-integer counts, rates/times out of range, probabilities
    outside [0, 1], delays below one bin of the model, regions the cell lacks, models that do
    not exist."""
    _keys(spec, "top level", {"seed", "populations", "external", "connections", "bin_ms"},
          ("populations",))
    spec["seed"] = _integer(spec.get("seed", 0), "seed")
    pops = spec["populations"]
    if not isinstance(pops, dict) or not pops:
        raise InputError(f"{_where('populations')}: give at least one population, e.g. "
                         "{L5: {model: l5_ttpc1, n: 12}}.")
    for name, pop in pops.items():
        p = f"populations.{name}"
        if not isinstance(name, str) or not name:
            raise InputError(f"{_where('populations')}: population names must be non-empty "
                             f"strings, got {name!r}.")
        _keys(pop, p, _POP_KEYS, ("model", "n"))
        pop["model"] = str(pop["model"])
        pop["n"] = _integer(pop["n"], f"{p}.n", low=1)
        place = pop.get("placement") or {}
        _keys(place, f"{p}.placement", _PLACEMENT_KEYS)
        place["radius_um"] = _number(place.get("radius_um", 150.0), f"{p}.placement.radius_um",
                                     low=0.0, unit="µm")
        place["z_um"] = _interval(place.get("z_um", 0.0), f"{p}.placement.z_um", low=None,
                                  unit="µm")
        place["rotate"] = bool(place.get("rotate", True))
        pop["placement"] = place
    bins = {}
    if check_models:
        bins = {name: _model_bin_ms(pop["model"], f"populations.{name}.model")
                for name, pop in pops.items()}
    spec["external"] = list(spec.get("external") or [])
    for i, drive in enumerate(spec["external"]):
        p = f"external[{i}]"
        kind = drive.get("type", "poisson") if isinstance(drive, dict) else None
        _option(kind, f"{p}.type", ("poisson", "evoked"))
        if kind == "poisson":
            _keys(drive, p, _POISSON_KEYS, ("target",))
            drive["rate_exc_hz"] = _number(drive.get("rate_exc_hz", 0.0), f"{p}.rate_exc_hz",
                                           low=0.0, high=1000.0, unit="Hz")
            drive["rate_inh_hz"] = _number(drive.get("rate_inh_hz", 0.0), f"{p}.rate_inh_hz",
                                           low=0.0, high=1000.0, unit="Hz")
            drive["start_ms"] = _number(drive.get("start_ms", 0.0), f"{p}.start_ms", low=0.0,
                                        unit="ms")
            stop = drive.get("stop_ms")
            drive["stop_ms"] = None if stop is None else _number(stop, f"{p}.stop_ms", low=0.0,
                                                                 unit="ms")
            if drive["stop_ms"] is not None and drive["stop_ms"] <= drive["start_ms"]:
                raise InputError(f"{_where(p)}: stop_ms {drive['stop_ms']:g} must be after "
                                 f"start_ms {drive['start_ms']:g}.")
        else:
            _keys(drive, p, _EVOKED_KEYS, ("target", "time_ms", "n_events"))
            drive["time_ms"] = _number(drive["time_ms"], f"{p}.time_ms", low=0.0, unit="ms")
            drive["jitter_ms"] = _number(drive.get("jitter_ms", 0.0), f"{p}.jitter_ms", low=0.0,
                                         unit="ms")
            drive["n_events"] = _integer(drive["n_events"], f"{p}.n_events", low=1)
            drive["kind"] = _option(drive.get("kind", "exc"), f"{p}.kind", KINDS)
            drive["weight"] = _integer(drive.get("weight", 1), f"{p}.weight", low=1,
                                       high=MAX_WEIGHT)
        drive["type"] = kind
        drive["target"] = _population(drive["target"], pops, f"{p}.target")
        drive["regions"] = _regions(drive.get("regions"), f"{p}.regions")
    spec["connections"] = list(spec.get("connections") or [])
    for i, conn in enumerate(spec["connections"]):
        p = f"connections[{i}]"
        _keys(conn, p, _CONN_KEYS, ("source", "target", "probability", "delay_ms"))
        conn["source"] = _population(conn["source"], pops, f"{p}.source")
        conn["target"] = _population(conn["target"], pops, f"{p}.target")
        conn["kind"] = _option(conn.get("kind", "exc"), f"{p}.kind", KINDS)
        conn["probability"] = _number(conn["probability"], f"{p}.probability", low=0.0,
                                      high=1.0)
        conn["weight"] = _integer(conn.get("weight", 1), f"{p}.weight", low=1, high=MAX_WEIGHT)
        conn["delay_ms"] = _interval(conn["delay_ms"], f"{p}.delay_ms", low=0.0, unit="ms")
        conn["regions"] = _regions(conn.get("regions"), f"{p}.regions")
        conn["autapses"] = bool(conn.get("autapses", False))
        if check_models:
            b = bins[conn["target"]]
            if conn["delay_ms"][0] < b - 1e-9:
                raise InputError(
                    f"{_where(p + '.delay_ms')} = {conn['delay_ms']}: the shortest delay "
                    f"{conn['delay_ms'][0]:g} ms is below one bin ({b:g} ms) of model "
                    f"{pops[conn['target']]['model']!r}; a spike must arrive at least one bin "
                    "later. Raise the delay to >= one bin.")
    if check_models:
        _check_regions(spec)
    return spec


def _model_bin_ms(model: str, path: str) -> float:
    """The bin width of a model, refusing a model that does not exist."""
    from ..errors import LfpsurrogateError
    from ..modelfolder import resolve_model_path

    try:
        folder = resolve_model_path(model)
    except LfpsurrogateError as exc:
        raise InputError(f"{_where(path)} = {model!r}: {exc} Give a shipped model name or a "
                         "model folder.") from exc
    import json

    try:
        arch = json.loads((folder / "model.json").read_text()).get("architecture")
    except (OSError, ValueError) as exc:
        raise InputError(f"{_where(path)} = {model!r}: {folder} is not a model folder with a "
                         f"readable model.json ({exc}); export one with lfpsurrogate export.") from exc
    if arch != "spiking":
        raise InputError(f"{_where(path)} = {model!r}: architecture {arch!r}; networks need a "
                         "'spiking' surrogate (its spikes drive the other cells). Use l5_ttpc1 "
                         "or a model trained with architecture: spiking.")
    return 1.0  # every model is trained on 1 ms bins (inputs.py, simulate.py)


def _check_regions(spec: dict) -> None:
    """Every region a drive or connection names must carry input slots on its target cell."""
    from .build import model_geometry

    for key in ("external", "connections"):
        for i, entry in enumerate(spec[key]):
            pop = spec["populations"][entry["target"]]
            geom = model_geometry(pop["model"])
            have = set(np.asarray(geom.region)[geom.input_segments].tolist())
            if not have & set(entry["regions"]):
                raise InputError(
                    f"{_where(f'{key}[{i}].regions')} = {entry['regions']}: cell "
                    f"{geom.name!r} of model {pop['model']!r} has input slots only in "
                    f"{sorted(have)}; name at least one of those.")


def to_yaml(spec: dict) -> str:
    """The spec as YAML text (loads back to the same spec)."""
    import yaml

    def plain(x):
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        return x

    return yaml.safe_dump(plain(spec), sort_keys=False, default_flow_style=None)
