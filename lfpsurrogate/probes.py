"""Recording devices: extracellular probes (MEAutility), EEG montages and MEG sensor arrays.

:func:`load_probe` turns a name or a YAML file into a :class:`Probe`:

* any MEAutility built-in name (``"Neuropixels-128"``, ``"tetrode"``, ...);
* a YAML file in MEAutility's own probe format (``electrode_name``, ``pos`` or
  ``dim``/``pitch``, ...), positions in µm;
* a YAML file in our EEG/MEG sensor schema (``kind: eeg`` or ``kind: meg``; see
  ``probes/README.md``), validated field by field;
* the stem of a file shipped in the repository's ``probes/`` folder (``"laminar-16"``).

All positions are in µm, in the probe frame (MEA) or the head frame (EEG/MEG: the centre of
the four-sphere head at the origin, +z through the vertex, +y towards the nose, +x right).
"""
from __future__ import annotations

import copy
import textwrap
import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import LfpsurrogateError

__all__ = [
    "HeadModel", "Probe", "ProbeError", "load_probe", "as_probe", "eeg_10_20",
    "radial_meg_array", "save_sensor_yaml", "shipped_probes", "mea_names",
]

PROBES_DIR = Path(__file__).resolve().parents[1] / "probes"
UNIT_SCALE = {"um": 1.0, "µm": 1.0, "micrometer": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}
DEFAULT_RADII = (79000.0, 80000.0, 85000.0, 90000.0)  # brain, CSF, skull, scalp (µm)
DEFAULT_CONDUCTIVITIES = (0.3, 1.5, 0.015, 0.3)  # S/m
SCALP_TOLERANCE = 1e-3  # relative: an EEG electrode must lie within 0.1 % of the scalp radius
MAX_GRID_SITES = 100_000  # a 'dim' grid larger than this is refused (MEAutility would hang)


class ProbeError(LfpsurrogateError, ValueError):
    """A probe or sensor description that is missing, malformed or physically invalid."""


@dataclass(frozen=True)
class HeadModel:
    """Four concentric spheres: brain, CSF, skull, scalp.

    radii: outer radius of each shell, µm, strictly increasing.
    conductivities: of each shell, S/m, positive.
    """

    radii: tuple[float, float, float, float] = DEFAULT_RADII
    conductivities: tuple[float, float, float, float] = DEFAULT_CONDUCTIVITIES

    @property
    def scalp_radius(self) -> float:
        return float(self.radii[3])

    @property
    def brain_radius(self) -> float:
        return float(self.radii[0])


@dataclass(frozen=True, eq=False)
class Probe:
    """A set of recording sites.

    kind: "mea" (extracellular contacts, LFP), "eeg" (scalp electrodes) or "meg"
        (magnetometers).
    name: probe name; source: the file or ``MEAutility:<name>`` it came from.
    positions: (n, 3) site positions, µm.
    labels: (n,) site names (contact indices for MEA probes).
    orientations: (n, 3) unit normals of MEG magnetometers (None otherwise).
    head: four-sphere head model (EEG, MEG; None for MEA probes).
    conductor: MEG volume conductor, "spherical" (Sarvas, any spherically symmetric
        head) or "infinite" (homogeneous); None otherwise.
    mea: the MEAutility MEA object (kind "mea"), for its contact shapes and drawing.
    """

    kind: str
    name: str
    positions: np.ndarray
    labels: tuple[str, ...]
    source: str = ""
    orientations: np.ndarray | None = None
    head: HeadModel | None = None
    conductor: str | None = None
    mea: Any = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Number of sites."""
        return len(self.positions)

    @property
    def fingerprint(self) -> str:
        """Hash over everything that changes a forward matrix (kind, positions, head, ...)."""
        h = hashlib.sha256(f"{self.kind}|{self.conductor}|{self.head}".encode())
        h.update(np.round(np.asarray(self.positions, float), 9).astype("<f8").tobytes())
        if self.orientations is not None:
            h.update(np.round(self.orientations, 12).astype("<f8").tobytes())
        return h.hexdigest()[:16]

    def translated(self, offset) -> "Probe":
        """A copy moved by ``offset`` (3,) µm (the MEA object is moved too)."""
        offset = np.asarray(offset, dtype=float).reshape(3)
        mea = None
        if self.mea is not None:
            mea = copy.deepcopy(self.mea)
            mea.move(offset)
        return replace(self, positions=self.positions + offset, mea=mea)

    def __repr__(self) -> str:
        return f"Probe({self.kind!r}, {self.name!r}, {self.n} sites, source={self.source!r})"


# ---- public loaders -------------------------------------------------------------------
def mea_names() -> list[str]:
    """Names of MEAutility's built-in probes."""
    import MEAutility as mu

    return list(mu.return_mea_list())


def shipped_probes() -> dict[str, Path]:
    """Files in the repository's ``probes/`` folder, by stem (empty when not in a checkout)."""
    if not PROBES_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(PROBES_DIR.glob("*.y*ml"))}


def load_probe(name_or_path: str | Path) -> Probe:
    """Load a probe or sensor array by MEAutility name, shipped-file stem or YAML path.

    Raises :class:`ProbeError` naming the file and field when the file is missing,
    malformed or physically invalid.
    """
    if isinstance(name_or_path, Probe):
        return name_or_path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        return _load_file(path)
    if text in shipped_probes():
        return _load_file(shipped_probes()[text])
    names = mea_names()
    if text in names:
        import MEAutility as mu

        mea = mu.return_mea(text)
        return _from_mea(mea, name=text, source=f"MEAutility:{text}")
    raise ProbeError(
        f"unknown probe {text!r}: not a YAML file, not a file in {PROBES_DIR} "
        f"({sorted(shipped_probes())}) and not a MEAutility probe ({names})."
    )


def as_probe(obj: Any) -> Probe:
    """Coerce a Probe, a MEAutility MEA object, a name or a path to a :class:`Probe`."""
    if isinstance(obj, Probe):
        return obj
    if isinstance(obj, (str, Path)):
        return load_probe(obj)
    if type(obj).__name__ in ("MEA", "RectMEA") and hasattr(obj, "positions"):
        name = str(getattr(obj, "info", {}).get("electrode_name", "custom"))
        return _from_mea(obj, name=name, source="MEAutility object")
    raise ProbeError(
        f"cannot use {type(obj).__name__} as a probe; pass a Probe, a MEAutility MEA, "
        "a probe name or a YAML path."
    )


# ---- built-in montages ----------------------------------------------------------------
def _direction(theta_deg: float, phi_deg: float) -> np.ndarray:
    """Unit vector at polar angle theta from the vertex (+z) and azimuth phi from the
    nose (+y), positive towards the right ear (+x)."""
    t, p = math.radians(theta_deg), math.radians(phi_deg)
    return np.array([math.sin(t) * math.sin(p), math.sin(t) * math.cos(p), math.cos(t)])


def _midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Midpoint on the great circle between unit vectors a and b."""
    m = a + b
    return m / np.linalg.norm(m)


EEG_10_20_NAMES = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
                   "P7", "P3", "Pz", "P4", "P8", "O1", "O2")


def eeg_10_20(head: HeadModel | None = None) -> Probe:
    """The 19 electrodes of the 10-20 system on the scalp sphere of ``head``.

    Idealised spherical construction: nasion and inion on the equator (theta 90°), so the
    10 %/20 % steps along the nasion-Cz-inion arc are 18°/36°. Midline: Fz (theta 36°,
    front), Cz (vertex), Pz (36°, back). The ring at theta 72° (through Fpz, T7, Oz, T8)
    holds Fp1/Fp2 (azimuth ∓18°), F7/F8 (∓54°), T7/T8 (∓90°), P7/P8 (∓126°), O1/O2
    (∓162°); C3/C4 at theta 36°, azimuth ∓90°. F3 is the great-circle midpoint of F7 and
    Fz (likewise F4, P3, P4). Old names: T3=T7, T4=T8, T5=P7, T6=P8.
    """
    head = head or HeadModel()
    d = {"Fz": _direction(36, 0), "Cz": _direction(0, 0), "Pz": _direction(36, 180)}
    for side, sign in (("left", -1), ("right", 1)):
        ring = {"Fp": 18, "F": 54, "T": 90, "P": 126, "O": 162}
        names = ({"Fp": "Fp1", "F": "F7", "T": "T7", "P": "P7", "O": "O1"} if sign < 0 else
                 {"Fp": "Fp2", "F": "F8", "T": "T8", "P": "P8", "O": "O2"})
        for key, az in ring.items():
            d[names[key]] = _direction(72, sign * az)
        c = "C3" if sign < 0 else "C4"
        d[c] = _direction(36, sign * 90)
    d["F3"], d["F4"] = _midpoint(d["F7"], d["Fz"]), _midpoint(d["F8"], d["Fz"])
    d["P3"], d["P4"] = _midpoint(d["P7"], d["Pz"]), _midpoint(d["P8"], d["Pz"])
    pos = np.array([d[n] for n in EEG_10_20_NAMES]) * head.scalp_radius
    return Probe("eeg", "eeg-10-20", _onto_scalp(pos, head), EEG_10_20_NAMES,
                 source="lfpsurrogate.probes.eeg_10_20", head=head)


def radial_meg_array(radius: float = 110000.0, ring_step_deg: float = 15.0,
                     max_theta_deg: float = 90.0, head: HeadModel | None = None,
                     conductor: str = "spherical") -> Probe:
    """Radial magnetometers on a spherical cap of ``radius`` µm around the head.

    Rings at polar angles 0, ring_step, ..., max_theta (degrees from the vertex); ring k
    holds round(2 pi sin(theta) / step) sensors evenly spaced in azimuth (about one sensor
    per ring_step of arc). Orientation: the outward radial unit vector.
    """
    head = head or HeadModel()
    dirs = []
    for theta in np.arange(0.0, max_theta_deg + 1e-9, ring_step_deg):
        n = max(1, int(round(2 * math.pi * math.sin(math.radians(theta)) /
                             math.radians(ring_step_deg))))
        dirs += [_direction(theta, 360.0 * k / n) for k in range(n)]
    dirs = np.array(dirs)
    labels = tuple(f"MEG{i + 1:03d}" for i in range(len(dirs)))
    probe = Probe("meg", "meg-radial", dirs * radius, labels,
                  source="lfpsurrogate.probes.radial_meg_array", orientations=dirs,
                  head=head, conductor=conductor)
    _check_meg(probe, probe.source)
    return probe


def save_sensor_yaml(probe: Probe, path: str | Path, comment: str = "") -> Path:
    """Write an EEG or MEG probe to ``path`` in our sensor schema (units µm)."""
    if probe.kind not in ("eeg", "meg"):
        raise ProbeError(f"save_sensor_yaml writes EEG/MEG probes, not kind {probe.kind!r}.")
    head = probe.head or HeadModel()
    lines = [f"# {c}" if c else "#" for c in comment.splitlines()]
    lines += [f"kind: {probe.kind}", f"name: {probe.name}", "units: um", "head:",
              f"  radii: [{', '.join(f'{r:.1f}' for r in head.radii)}]",
              f"  conductivities: [{', '.join(repr(float(s)) for s in head.conductivities)}]"]
    group = "electrodes" if probe.kind == "eeg" else "sensors"
    if probe.kind == "meg":
        lines.append(f"conductor: {probe.conductor or 'spherical'}")
    names = textwrap.wrap(", ".join(probe.labels), 86, break_on_hyphens=False)
    lines += [f"{group}:", "  names: [" + "\n    ".join(names) + "]", "  positions:"]
    lines += [f"    - [{p[0]:.4f}, {p[1]:.4f}, {p[2]:.4f}]" for p in probe.positions]
    if probe.kind == "meg":
        lines.append("  orientations:")
        lines += [f"    - [{o[0]:.9f}, {o[1]:.9f}, {o[2]:.9f}]" for o in probe.orientations]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- file parsing and validation --------------------------------------------------------
def _fail(source: str, fieldname: str, problem: str) -> ProbeError:
    return ProbeError(f"{source}: field '{fieldname}': {problem}")


_PARSED: dict[tuple, Probe] = {}  # (path, sha256 of the bytes) -> parsed probe: YAML
# parsing of a 100-sensor file takes ~40 ms, and predict_lfp resolves its probes every call


def _load_file(path: Path) -> Probe:
    src = str(path)
    if not path.is_file():
        raise ProbeError(f"{src}: probe file does not exist.")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProbeError(f"{src}: cannot be read ({exc}).") from exc
    key = (str(path.resolve()), hashlib.sha256(raw).hexdigest())
    if key not in _PARSED:
        if len(_PARSED) > 64:
            _PARSED.clear()
        _PARSED[key] = _parse_file(path, raw)
    return copy.deepcopy(_PARSED[key])  # callers may change what they get


def _parse_file(path: Path, raw: bytes) -> Probe:
    src = str(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProbeError(f"{src}: not a UTF-8 text file; a probe file is YAML ({exc}).") from exc
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ProbeError(f"{src}: not valid YAML ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(data, dict):
        raise ProbeError(f"{src}: expected a YAML mapping of fields, got {type(data).__name__}.")
    if "kind" in data:
        kind = data["kind"]
        if kind == "eeg":
            return _parse_eeg(data, src, path.stem)
        if kind == "meg":
            return _parse_meg(data, src, path.stem)
        raise _fail(src, "kind", f"must be 'eeg' or 'meg' (MEA probes use MEAutility's "
                                 f"format without 'kind'), got {kind!r}")
    return _parse_mea(data, src, path.stem)


def _floats(value: Any, src: str, name: str) -> np.ndarray:
    """``value`` as a float array, or ProbeError naming the field (strings, ragged lists,
    mappings and integers beyond the float range are refused)."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _fail(src, name, f"must hold numbers ({exc})") from exc


def _array(data: dict, key: str, src: str, shape_tail: tuple = (3,), where: str = "",
           scale: float = 1.0) -> np.ndarray:
    name = f"{where}{key}"
    if key not in data or data[key] is None:
        raise _fail(src, name, "missing")
    with np.errstate(over="ignore"):
        arr = _floats(data[key], src, name) * scale
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        if arr.size == 0:
            raise _fail(src, name, "is empty: the file defines no sites")
        raise _fail(src, name, f"must be a list of {list(shape_tail)} entries, got shape "
                               f"{list(arr.shape)}")
    if arr.shape[0] == 0:
        raise _fail(src, name, "is empty: the file defines no sites")
    bad = np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))
    if bad.size:
        raise _fail(src, f"{name}[{bad[0]}]", "holds a non-finite number (nan or inf, or a "
                                              "value that overflows once 'units' are applied)")
    return arr


def _units(data: dict, src: str) -> float:
    if "units" not in data:
        raise _fail(src, "units", f"missing; one of {sorted(UNIT_SCALE)}")
    u = str(data["units"]).strip()
    if u not in UNIT_SCALE:
        raise _fail(src, "units", f"unknown length unit {u!r}; one of {sorted(UNIT_SCALE)}")
    return UNIT_SCALE[u]


def _head(data: dict, src: str, scale: float) -> HeadModel:
    if "head" not in data:
        return HeadModel()
    h = data["head"]
    if not isinstance(h, dict):
        raise _fail(src, "head", "must be a mapping with 'radii' and 'conductivities'")
    _no_extra(h, {"radii", "conductivities"}, src, "head.")
    radii = _array(h, "radii", src, shape_tail=(), where="head.", scale=scale)
    sig = _array(h, "conductivities", src, shape_tail=(), where="head.")
    for name, arr in (("head.radii", radii), ("head.conductivities", sig)):
        if arr.shape != (4,):
            raise _fail(src, name, f"needs 4 values (brain, CSF, skull, scalp), got {arr.size}")
        if np.any(arr <= 0):
            raise _fail(src, name, "values must be positive")
    if np.any(np.diff(radii) <= 0):
        raise _fail(src, "head.radii", f"must increase strictly (brain < CSF < skull < scalp), "
                                       f"got {radii.tolist()} µm")
    return HeadModel(tuple(float(r) for r in radii), tuple(float(s) for s in sig))


def _no_extra(data: dict, allowed: set, src: str, prefix: str = "") -> None:
    extra = sorted(set(data) - allowed, key=str)  # keys may be numbers or null in YAML
    if extra:
        raise _fail(src, prefix + str(extra[0]), f"unknown field; allowed: {sorted(allowed)}")


def _names(group: dict, n: int, src: str, where: str) -> tuple[str, ...]:
    if "names" not in group:
        raise _fail(src, f"{where}names", "missing")
    names = group["names"]
    if not isinstance(names, list) or len(names) != n:
        raise _fail(src, f"{where}names", f"needs one name per position ({n})")
    names = tuple(str(x) for x in names)
    if len(set(names)) != n:
        raise _fail(src, f"{where}names", "names must be unique")
    return names


def _group(data: dict, key: str, src: str) -> dict:
    if key not in data:
        raise _fail(src, key, "missing")
    g = data[key]
    if not isinstance(g, dict):
        raise _fail(src, key, "must be a mapping with 'names' and 'positions'")
    return g


def _onto_scalp(pos: np.ndarray, head: HeadModel) -> np.ndarray:
    """Project positions radially onto the scalp, a hair inside so lfpykit accepts them."""
    r = np.linalg.norm(pos, axis=1, keepdims=True)
    out = pos / r * head.scalp_radius * (1.0 - 1e-12)
    return out


def _parse_eeg(data: dict, src: str, stem: str) -> Probe:
    _no_extra(data, {"kind", "name", "units", "head", "electrodes", "description"}, src)
    scale = _units(data, src)
    head = _head(data, src, scale)
    g = _group(data, "electrodes", src)
    _no_extra(g, {"names", "positions"}, src, "electrodes.")
    pos = _array(g, "positions", src, where="electrodes.", scale=scale)
    names = _names(g, len(pos), src, "electrodes.")
    r = np.linalg.norm(pos, axis=1)
    tol = SCALP_TOLERANCE * head.scalp_radius
    bad = np.flatnonzero(np.abs(r - head.scalp_radius) > tol)
    if bad.size:
        i = bad[0]
        raise _fail(src, f"electrodes.positions[{i}]",
                    f"electrode {names[i]!r} at radius {r[i]:.6g} µm is not on the scalp "
                    f"(radius {head.scalp_radius:.6g} µm ± {tol:.3g} µm); check 'units' "
                    f"({data['units']!r}) and 'head.radii'")
    return Probe("eeg", str(data.get("name", stem)), _onto_scalp(pos, head), names,
                 source=src, head=head)


def _check_meg(probe: Probe, src: str) -> None:
    r = np.linalg.norm(probe.positions, axis=1)
    bad = np.flatnonzero(r <= probe.head.scalp_radius)
    if bad.size:
        i = bad[0]
        raise _fail(src, f"sensors.positions[{i}]",
                    f"sensor {probe.labels[i]!r} at radius {r[i]:.6g} µm is inside the head "
                    f"(scalp radius {probe.head.scalp_radius:.6g} µm); check 'units'")


def _parse_meg(data: dict, src: str, stem: str) -> Probe:
    _no_extra(data, {"kind", "name", "units", "head", "sensors", "conductor", "description"},
              src)
    scale = _units(data, src)
    head = _head(data, src, scale)
    conductor = str(data.get("conductor", "spherical"))
    if conductor not in ("spherical", "infinite"):
        raise _fail(src, "conductor", f"must be 'spherical' or 'infinite', got {conductor!r}")
    g = _group(data, "sensors", src)
    _no_extra(g, {"names", "positions", "orientations"}, src, "sensors.")
    pos = _array(g, "positions", src, where="sensors.", scale=scale)
    names = _names(g, len(pos), src, "sensors.")
    ori = _array(g, "orientations", src, where="sensors.")
    if ori.shape != pos.shape:
        raise _fail(src, "sensors.orientations", f"needs one vector per sensor ({len(pos)})")
    with np.errstate(over="ignore"):
        norm = np.linalg.norm(ori, axis=1)
    if not np.all(np.isfinite(norm)):
        i = int(np.flatnonzero(~np.isfinite(norm))[0])
        raise _fail(src, f"sensors.orientations[{i}]", "too large to normalise; give a unit vector")
    if np.any(norm < 1e-9):
        i = int(np.argmin(norm))
        raise _fail(src, f"sensors.orientations[{i}]", "zero vector; give the sensor normal")
    probe = Probe("meg", str(data.get("name", stem)), pos, names, source=src,
                  orientations=ori / norm[:, None], head=head, conductor=conductor)
    _check_meg(probe, src)
    return probe


MEA_FIELDS = {"electrode_name", "description", "sortlist", "pitch", "dim", "stagger", "size",
              "plane", "shape", "type", "pos", "offset", "center", "model", "units"}


def _parse_mea(data: dict, src: str, stem: str) -> Probe:
    import MEAutility as mu

    extra = sorted(set(data) - MEA_FIELDS, key=str)
    if extra:
        raise _fail(src, str(extra[0]), "unknown field in a MEAutility probe file (EEG/MEG "
                                        "files need 'kind: eeg' or 'kind: meg')")
    if "units" in data and str(data["units"]).strip() not in ("um", "µm"):
        raise _fail(src, "units", f"MEAutility probe files are in µm, got {data['units']!r}")
    if "pos" in data:
        arr = _floats(data["pos"], src, "pos")
        if arr.size == 0:
            raise _fail(src, "pos", "is empty: the probe has no electrodes")
        arr = arr[None] if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise _fail(src, "pos", f"must be a list of 2D or 3D points, got shape {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if bad.size:
            raise _fail(src, f"pos[{bad[0]}]", "holds a non-finite number (nan or inf)")
    elif "dim" in data:
        dim = np.atleast_1d(_floats(data["dim"], src, "dim"))
        if (dim.size == 0 or not np.all(np.isfinite(dim)) or np.any(dim < 1)
                or np.any(dim != np.round(dim))):
            raise _fail(src, "dim", f"must be positive integers, got {data['dim']!r}")
        if float(np.prod(dim)) > MAX_GRID_SITES:
            raise _fail(src, "dim", f"asks for {float(np.prod(dim)):.3g} electrodes; at most "
                                    f"{MAX_GRID_SITES} are supported")
        if not (dim.size == 1 and dim[0] == 1):
            if "pitch" not in data:
                raise _fail(src, "pitch", "missing (needed with 'dim')")
            pitch = np.atleast_1d(_floats(data["pitch"], src, "pitch"))
            if not np.all(np.isfinite(pitch)) or np.any(pitch < 0):
                raise _fail(src, "pitch", f"must be finite and >= 0 µm, got {data['pitch']!r}")
    else:
        raise _fail(src, "pos", "missing: give 'pos' (list of 2D/3D points, µm) or "
                                "'dim' and 'pitch' (MEAutility format)")
    for key in ("size", "stagger", "offset"):
        if key in data and data[key] is not None:
            v = _floats(data[key], src, key)
            if not np.all(np.isfinite(v)):
                raise _fail(src, key, "holds a non-finite number")
    if "plane" in data and data["plane"] not in ("xy", "yz", "xz"):
        raise _fail(src, "plane", f"must be 'xy', 'yz' or 'xz', got {data['plane']!r}")
    info = {k: v for k, v in data.items() if k != "units"}
    info.setdefault("electrode_name", stem)
    try:
        mea = mu.return_mea(info=info)
    except Exception as exc:  # MEAutility raises AttributeError/ValueError on bad layouts
        raise ProbeError(f"{src}: MEAutility cannot build the probe ({exc}).") from exc
    if mea is None or len(mea.positions) == 0:
        raise _fail(src, "pos", "the probe has no electrodes")
    return _from_mea(mea, name=str(info["electrode_name"]), source=src)


def _from_mea(mea: Any, name: str, source: str) -> Probe:
    pos = np.asarray(mea.positions, dtype=float).reshape(-1, 3)
    if len(pos) == 0:
        raise ProbeError(f"{source}: the probe has no electrodes.")
    if not np.all(np.isfinite(pos)):
        raise ProbeError(f"{source}: field 'pos': electrode positions are not finite.")
    return Probe("mea", name, pos, tuple(str(i) for i in range(len(pos))), source=source,
                 mea=mea)
