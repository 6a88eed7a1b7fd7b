"""Training-data stores: what a store holds, how its samples are planned, and how it is opened.

A store is one zarr group written through xarray (layout in docs/datasets.md):

- ``inputs`` (sample, channel, time) uint8 spike counts per bin,
- ``v`` (sample, segment, time) float32 or float16, mV, bin averages,
- ``spikes`` (sample, time) int16 somatic spikes per bin, ``spike_times`` (sample, spike) ms,
  NaN-padded,
- ``seed`` (sample) int64, ``split`` (sample) str, ``protocol`` (sample) JSON str,
- ``done`` (sample) uint8, 1 once every variable of the sample is written (written last),
- subgroup ``geometry``: the cell's :class:`CellGeometry` as plain arrays,
- attrs: ``generation`` (JSON of :class:`GenerationParams`), ``cell``, ``cell_fingerprint``,
  ``versions`` (JSON).

Samples are laid out split by split (train, val, test, shift). Sample seeds come from
``SeedSequence(seed, spawn_key=(split code, index in split))``: disjoint between splits and
independent of worker count or completion order.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import xarray as xr

from ..errors import LfpsurrogateError
from ..geometry import CellGeometry
from ..inputs import PROTOCOLS

STORE_FORMAT = "lfpsurrogate-dataset"
FORMAT_VERSION = 2  # 2: inputs scale with membrane area (inputs.slot_weights)
SPLITS = ("train", "val", "test", "shift")
SPLIT_CODES = {name: k for k, name in enumerate(SPLITS)}
DTYPES = ("float32", "float16")
DEFAULT_PROTOCOLS = ("constant", "modulated", "piecewise")
DEFAULT_SHIFT_PROTOCOL = "clustered"
# packages whose version changes the numbers a sample holds: a resume must use the same
GENERATION_PACKAGES = ("lfpsurrogate", "neuron", "LFPy", "numpy")


class DatasetError(LfpsurrogateError, ValueError):
    """A dataset store that cannot be created, resumed or used as asked."""


@dataclass(frozen=True)
class GenerationParams:
    """Everything that determines the content of a store. Same parameters, same bytes.

    cell: what :func:`lfpsurrogate.load_cell` takes: "l5_ttpc1", "pyramid_hh", another BBP
    cell MEArec ships, a BBP cell folder, or a cell file (.yaml) describing a user's cell
    (morphology, .mod folder, hoc template and its arguments, hoc files, discretization,
    synaptic weights; see ``lfpsurrogate.cells.sources.spec_from_yaml``). Every dask worker
    loads the cell from this string, so give a path all workers can read.
    d_lambda: the d_lambda rule's fraction; None keeps the cell file's discretization.
    protocols: input protocols of train/val/test samples; with several, each sample picks
    one from its own seed. shift_protocol: protocol of the ``shift`` samples.
    splits: ((name, fraction), ...) over train/val/test, fractions summing to 1.
    chunk_ms: length of a zarr chunk along time (ms).
    """

    cell: str
    n_samples: int
    duration_ms: float
    seed: int
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    n_shift: int = 0
    shift_protocol: str = DEFAULT_SHIFT_PROTOCOL
    splits: tuple[tuple[str, float], ...] = (("train", 0.8), ("val", 0.1), ("test", 0.1))
    dtype: str = "float32"
    rate_exc_hz: float = 5.0
    rate_inh_hz: float = 2.0
    d_lambda: float | None = 0.3
    bin_ms: float = 1.0
    chunk_ms: float = 1000.0
    format_version: int = field(default=FORMAT_VERSION)

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocols", tuple(self.protocols))
        object.__setattr__(self, "splits", tuple((str(k), float(f)) for k, f in self.splits))
        if int(self.n_samples) != self.n_samples or self.n_samples < 1:
            raise DatasetError(f"n_samples={self.n_samples!r}: must be a positive whole number.")
        if int(self.n_shift) != self.n_shift or self.n_shift < 0:
            raise DatasetError(f"n_shift={self.n_shift!r}: must be a whole number >= 0.")
        n_bins = self.duration_ms / self.bin_ms
        if not (np.isfinite(n_bins) and n_bins >= 1 and abs(n_bins - round(n_bins)) < 1e-9):
            raise DatasetError(
                f"duration_ms={self.duration_ms!r} must be a positive whole number of "
                f"{self.bin_ms} ms bins."
            )
        if self.dtype not in DTYPES:
            raise DatasetError(f"dtype={self.dtype!r}: choose one of {DTYPES}.")
        if not self.protocols:
            raise DatasetError("at least one input protocol is needed.")
        for name in (*self.protocols, self.shift_protocol):
            if name not in PROTOCOLS:
                raise DatasetError(f"unknown protocol {name!r}; choose from {PROTOCOLS}.")
        if self.n_shift and self.shift_protocol in _expand(self.protocols):
            raise DatasetError(
                f"the shift protocol {self.shift_protocol!r} is also a training protocol "
                f"({','.join(self.protocols)}), so the 'shift' samples would not measure a "
                "distribution shift. Choose training protocols without it, e.g. "
                "--protocol constant,modulated,piecewise, or another --shift-protocol."
            )
        split_counts(self.n_samples, self.splits)  # validates names and fractions
        if not self.chunk_ms > 0:
            raise DatasetError(f"chunk_ms={self.chunk_ms!r}: must be positive.")

    @property
    def n_time(self) -> int:
        return int(round(self.duration_ms / self.bin_ms))

    @property
    def n_total(self) -> int:
        """Samples in the store: n_samples (train/val/test) + n_shift."""
        return int(self.n_samples + self.n_shift)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GenerationParams":
        d = json.loads(text)
        d["protocols"] = tuple(d["protocols"])
        d["splits"] = tuple(tuple(s) for s in d["splits"])
        return cls(**d)

    def differences(self, other: "GenerationParams") -> dict[str, tuple]:
        """{name: (self value, other value)} of every parameter that differs."""
        a, b = asdict(self), asdict(other)
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def _expand(protocols) -> set[str]:
    out = set(protocols)
    if "mixed" in out:  # poisson_inputs' "mixed" draws among these four
        out |= {"constant", "modulated", "piecewise", "clustered"}
    return out


def parse_splits(text: str) -> tuple[tuple[str, float], ...]:
    """``"train=0.8,val=0.1,test=0.1"`` -> (("train", 0.8), ("val", 0.1), ("test", 0.1))."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            out.append((name.strip(), float(value)))
        except ValueError:
            sep = ""
        if not sep:
            raise DatasetError(f"cannot read split {part!r}; write e.g. train=0.8,val=0.1,test=0.1.")
    return tuple(out)


def split_counts(n_samples: int, splits) -> dict[str, int]:
    """Samples per split: largest-remainder rounding of n_samples * fraction; a split with a
    positive fraction gets at least one sample when there are enough."""
    names = [k for k, _ in splits]
    fracs = np.array([f for _, f in splits], dtype=float)
    bad = [k for k in names if k not in SPLITS[:3]]
    if bad or len(set(names)) != len(names) or not names:
        raise DatasetError(f"splits {names}: use each of 'train', 'val', 'test' at most once.")
    if np.any(~np.isfinite(fracs)) or np.any(fracs < 0) or abs(fracs.sum() - 1) > 1e-6:
        raise DatasetError(f"split fractions {fracs.tolist()} must be >= 0 and sum to 1.")
    raw = fracs * n_samples
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n_samples - counts.sum()]] += 1
    for k in np.flatnonzero((counts == 0) & (fracs > 0)):  # every asked-for split gets one
        big = int(np.argmax(counts))
        if counts[big] > 1:
            counts[big] -= 1
            counts[k] += 1
    return {k: int(c) for k, c in zip(names, counts)}


def sample_seed(seed: int, split: str, index: int) -> int:
    """Input seed of sample ``index`` of ``split``: a 63-bit integer from SeedSequence."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(SPLIT_CODES[split], int(index)))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def sample_plan(params: GenerationParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(split name, seed, protocol name) of every sample of the store, in store order."""
    counts = split_counts(params.n_samples, params.splits)
    counts = {k: counts.get(k, 0) for k in SPLITS[:3]}
    counts["shift"] = params.n_shift
    names, seeds, protocols = [], [], []
    for split in SPLITS:
        for j in range(counts[split]):
            s = sample_seed(params.seed, split, j)
            names.append(split)
            seeds.append(s)
            if split == "shift":
                protocols.append(params.shift_protocol)
            elif len(params.protocols) == 1:
                protocols.append(params.protocols[0])
            else:  # own stream, so the choice does not correlate with the draws
                k = np.random.default_rng([s, 7]).integers(len(params.protocols))
                protocols.append(params.protocols[int(k)])
    seeds_arr = np.array(seeds, dtype=np.int64)
    if len(np.unique(seeds_arr)) != len(seeds_arr):  # ~n^2 / 2^64: never in practice
        raise DatasetError("two samples drew the same seed; choose another --seed.")
    return np.array(names, dtype=object), seeds_arr, np.array(protocols, dtype=object)


# ---- geometry inside the store ---------------------------------------------------------
def geometry_dataset(geom: CellGeometry) -> xr.Dataset:
    """The CellGeometry as plain arrays (subgroup ``geometry`` of a store)."""
    m = geom.vmem_to_imem.tocsr()
    m.sort_indices()
    return xr.Dataset(
        {
            "x": (("segment", "end"), geom.x, {"units": "um"}),
            "y": (("segment", "end"), geom.y, {"units": "um"}),
            "z": (("segment", "end"), geom.z, {"units": "um"}),
            "d": ("segment", geom.d, {"units": "um"}),
            "section": ("segment", geom.section.astype(object)),
            "region": ("segment", geom.region.astype(object)),
            "input_segments": ("input", geom.input_segments),
            "m_data": ("nnz", m.data, {"units": "nA/mV"}),
            "m_indices": ("nnz", m.indices.astype(np.int64)),
            "m_indptr": ("indptr", m.indptr.astype(np.int64)),
        },
        attrs={"name": geom.name, "meta": json.dumps(geom.meta, sort_keys=True, default=str),
               "fingerprint": geom.fingerprint, "n_segments": geom.n_segments},
    )


def store_geometry(store: str | Path) -> CellGeometry:
    """The CellGeometry saved in a store; checks it against the store's fingerprint."""
    path = Path(store)
    with xr.open_zarr(path, group="geometry", consolidated=False) as g:
        g = g.load()
    n = int(g.attrs["n_segments"])
    m = sp.csr_matrix((g.m_data.values, g.m_indices.values, g.m_indptr.values), shape=(n, n))
    geom = CellGeometry(
        name=g.attrs["name"], x=g.x.values, y=g.y.values, z=g.z.values, d=g.d.values,
        section=g.section.values.tolist(), region=g.region.values.tolist(),
        vmem_to_imem=m, input_segments=g.input_segments.values,
        meta=json.loads(g.attrs["meta"]),
    )
    if geom.fingerprint != g.attrs["fingerprint"]:
        raise DatasetError(
            f"store {path}: its cell geometry does not match its fingerprint "
            f"{g.attrs['fingerprint']} (got {geom.fingerprint}); the store was altered."
        )
    return geom


# ---- opening and checking --------------------------------------------------------------
def read_attrs(store: str | Path) -> dict:
    """Root attributes of a store; DatasetError if ``store`` is not a dataset store."""
    import zarr

    path = Path(store)
    if not path.exists():
        raise DatasetError(f"dataset store {path} does not exist; create it with "
                           f"`lfpsurrogate dataset generate --out {path} ...`.")
    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception as exc:  # noqa: BLE001  (zarr raises several types here)
        raise DatasetError(f"{path} is not a readable zarr store ({type(exc).__name__}: {exc}).") from exc
    if attrs.get("format") != STORE_FORMAT:
        raise DatasetError(f"{path} is not an lfpsurrogate dataset store (no "
                           f"format={STORE_FORMAT!r} attribute).")
    if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
        raise DatasetError(f"{path} has store format version {attrs.get('format_version')}; "
                           f"this lfpsurrogate reads version {FORMAT_VERSION}.")
    return attrs


def data_fingerprint(store: str | Path) -> str:
    """Identity of a store's content: sha256 over its generation parameters and cell
    fingerprint (first 16 hex digits). Two stores with equal fingerprints hold the same data."""
    import hashlib

    attrs = read_attrs(store)
    text = str(attrs.get("generation", "")) + str(attrs.get("cell_fingerprint", ""))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def store_params(store: str | Path) -> GenerationParams:
    """The generation parameters a store was made with."""
    return GenerationParams.from_json(read_attrs(store)["generation"])


def check_fingerprint(store: str | Path, expected: str | CellGeometry | None,
                      expected_from: str = "the model") -> dict:
    """Refuse a store made with another cell, or another version of the cell.

    expected: a fingerprint or CellGeometry (None: no check). expected_from names where
    the expectation comes from in the error message. Returns the store's attrs.
    """
    attrs = read_attrs(store)
    if expected is None:
        return attrs
    fp = expected.fingerprint if isinstance(expected, CellGeometry) else str(expected)
    name = f" cell {expected.name!r}" if isinstance(expected, CellGeometry) else ""
    if attrs["cell_fingerprint"] != fp:
        raise DatasetError(
            f"store {store} was made with cell {attrs['cell']!r} fingerprint "
            f"{attrs['cell_fingerprint']}, but {expected_from} expects{name} fingerprint {fp}: "
            "another cell or another version of it (geometry, discretization or biophysics "
            "changed). Use a store generated for that cell, or regenerate this one."
        )
    return attrs


def open_store(store: str | Path, expected_fingerprint: str | CellGeometry | None = None) -> xr.Dataset:
    """Open a store lazily (dask-backed xarray.Dataset), after the fingerprint check."""
    check_fingerprint(store, expected_fingerprint)
    return xr.open_zarr(Path(store), consolidated=False)


def done_mask(store: str | Path) -> np.ndarray:
    """(sample,) bool: which samples are completely written."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(store) / "done"), mode="r")[:]).astype(bool)


def split_samples(store: str | Path, split: str, done_only: bool = True) -> np.ndarray:
    """Indices of the samples of ``split`` (train, val, test, shift), done ones only by default."""
    import zarr

    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {SPLITS}.")
    labels = read_strings(store, "split")
    mask = labels == split
    if done_only:
        mask &= done_mask(store)
    return np.flatnonzero(mask)


def read_strings(store: str | Path, name: str) -> np.ndarray:
    """A string variable of a store as a numpy array of str."""
    import zarr

    values = zarr.open_array(str(Path(store) / name), mode="r")[:]
    return np.array(np.asarray(values).tolist(), dtype=str)


def store_info(store: str | Path) -> dict:
    """Summary of a store: parameters, cell, samples done per split, size on disk."""
    attrs = read_attrs(store)
    params = GenerationParams.from_json(attrs["generation"])
    import zarr

    labels = read_strings(store, "split")
    done = done_mask(store)
    per_split = {s: {"samples": int((labels == s).sum()), "done": int(((labels == s) & done).sum())}
                 for s in SPLITS if (labels == s).any()}
    nbytes = directory_bytes(store)
    simulated_s = done.sum() * params.duration_ms / 1000
    return {
        "store": str(store), "cell": attrs["cell"], "cell_fingerprint": attrs["cell_fingerprint"],
        "samples": int(done.size), "done": int(done.sum()), "splits": per_split,
        "duration_ms": params.duration_ms, "dtype": params.dtype,
        "protocols": list(params.protocols), "shift_protocol": params.shift_protocol,
        "seed": params.seed, "bytes": nbytes,
        "bytes_per_simulated_s": round(nbytes / simulated_s) if simulated_s else None,
        "versions": json.loads(attrs["versions"]),
    }


def directory_bytes(path: str | Path) -> int:
    """Total size of the files under ``path`` (bytes)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
