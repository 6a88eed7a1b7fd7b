"""NEURON-free description of a discretized cell: segments, regions, voltage->current matrix.

A :class:`CellGeometry` is everything downstream code (forward models, surrogates,
predict_lfp) needs to know about a cell, without NEURON: segment start/end points and
diameters (µm), section names, the region of each segment, the sparse matrix M with
``imem = M @ v`` (nA per mV; built by LFPy's ``Cell.get_transformation_matrix_vmem_to_imem``),
the input-channel layout and a fingerprint. ``save``/``load`` use one ``.npz`` file read with
``allow_pickle=False``: loading never runs code.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import GeometryError

REGIONS = ("soma", "axon", "basal", "apical")
FORMAT_VERSION = 1


@dataclass(eq=False)
class CellGeometry:
    """Segments of one discretized cell in its canonical frame (soma at the origin,
    apical axis along +z).

    Attributes
    ----------
    name: cell name.
    x, y, z: (n_segments, 2) start and end coordinates of each segment, µm.
    d: (n_segments,) diameters, µm.
    section: (n_segments,) name of the section each segment belongs to.
    region: (n_segments,) one of "soma", "axon", "basal", "apical".
    vmem_to_imem: (n_segments, n_segments) scipy.sparse CSR; imem [nA] = M @ v [mV].
    input_segments: indices of the segments that carry one excitatory and one inhibitory
        input slot; input channel c < n is the excitatory slot of segment
        input_segments[c], channel n + c its inhibitory slot.
    meta: discretization, biophysics hash, synapse parameters (JSON-serialisable).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    d: np.ndarray
    section: np.ndarray
    region: np.ndarray
    vmem_to_imem: sp.csr_matrix
    input_segments: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.d)
        self.x, self.y, self.z = (np.asarray(a, dtype=float) for a in (self.x, self.y, self.z))
        self.d = np.asarray(self.d, dtype=float)
        self.section = np.asarray(self.section, dtype=str)
        self.region = np.asarray(self.region, dtype=str)
        self.input_segments = np.asarray(self.input_segments, dtype=np.int64)
        self.vmem_to_imem = sp.csr_matrix(self.vmem_to_imem)
        for key in ("x", "y", "z"):
            if getattr(self, key).shape != (n, 2):
                raise GeometryError(f"CellGeometry.{key} must have shape ({n}, 2).")
        if self.vmem_to_imem.shape != (n, n):
            raise GeometryError(f"CellGeometry.vmem_to_imem must have shape ({n}, {n}).")
        if len(self.section) != n or len(self.region) != n:
            raise GeometryError("CellGeometry.section and .region need one entry per segment.")
        bad = sorted(set(self.region) - set(REGIONS))
        if bad:
            raise GeometryError(f"unknown regions {bad}; allowed: {REGIONS}.")
        if self.input_segments.size and (
            self.input_segments.min() < 0 or self.input_segments.max() >= n
        ):
            raise GeometryError("CellGeometry.input_segments holds indices outside the cell.")
        for key in ("x", "y", "z", "d"):
            if not np.all(np.isfinite(getattr(self, key))):
                raise GeometryError(f"CellGeometry.{key} holds non-finite values.")

    # ---- derived quantities -------------------------------------------------------
    @property
    def n_segments(self) -> int:
        return len(self.d)

    @property
    def n_channels(self) -> int:
        """Number of input channels (excitatory + inhibitory slots)."""
        return 2 * len(self.input_segments)

    @property
    def midpoints(self) -> np.ndarray:
        """(n_segments, 3) segment midpoints, µm."""
        return np.stack([self.x.mean(1), self.y.mean(1), self.z.mean(1)], axis=1)

    @property
    def length(self) -> np.ndarray:
        """(n_segments,) segment lengths, µm."""
        return np.sqrt(np.diff(self.x) ** 2 + np.diff(self.y) ** 2 + np.diff(self.z) ** 2)[:, 0]

    @property
    def soma_index(self) -> int:
        """Index of the somatic segment closest to the origin."""
        idx = np.flatnonzero(self.region == "soma")
        if idx.size == 0:
            return int(np.argmin(np.linalg.norm(self.midpoints, axis=1)))
        return int(idx[np.argmin(np.linalg.norm(self.midpoints[idx], axis=1))])

    @property
    def fingerprint(self) -> str:
        """sha256 over geometry, discretization, biophysics and the voltage->current matrix."""
        h = hashlib.sha256()
        for arr in (self.x, self.y, self.z, self.d):
            h.update(np.round(arr, 6).astype("<f8").tobytes())
        h.update("\n".join(self.section.tolist()).encode())
        h.update("\n".join(self.region.tolist()).encode())
        h.update(self.input_segments.astype("<i8").tobytes())
        m = self.vmem_to_imem.tocsr()
        m.sort_indices()
        h.update(m.indptr.astype("<i8").tobytes() + m.indices.astype("<i8").tobytes())
        # round relative to the matrix scale so that 1-ulp noise does not change the hash
        scale = float(np.abs(m.data).max()) if m.nnz else 1.0
        h.update(np.round(m.data / scale, 9).astype("<f8").tobytes())
        h.update(json.dumps(self.meta, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    # ---- persistence --------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle to ``path`` (.npz), atomically. Returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        m = self.vmem_to_imem.tocsr()
        header = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "meta": self.meta,
            "fingerprint": self.fingerprint,
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                header=np.array(json.dumps(header, default=str)),
                x=self.x, y=self.y, z=self.z, d=self.d,
                section=self.section.astype("U"), region=self.region.astype("U"),
                input_segments=self.input_segments,
                m_data=m.data, m_indices=m.indices, m_indptr=m.indptr,
                m_shape=np.array(m.shape),
            )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CellGeometry":
        """Read a bundle written by :meth:`save`; checks that the fingerprint matches."""
        path = Path(path)
        if not path.is_file():
            raise GeometryError(f"cell geometry file {path} does not exist.")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                m = sp.csr_matrix(
                    (z["m_data"], z["m_indices"], z["m_indptr"]), shape=tuple(z["m_shape"])
                )
                geom = cls(
                    name=header["name"], x=z["x"], y=z["y"], z=z["z"], d=z["d"],
                    section=z["section"], region=z["region"], vmem_to_imem=m,
                    input_segments=z["input_segments"], meta=header.get("meta", {}),
                )
        except GeometryError:
            raise
        except Exception as exc:  # zipfile, KeyError, ValueError, json errors
            raise GeometryError(
                f"{path} is not a readable CellGeometry bundle ({type(exc).__name__}: {exc}); "
                "re-create it with CellGeometry.save()."
            ) from exc
        if header.get("fingerprint") and header["fingerprint"] != geom.fingerprint:
            raise GeometryError(
                f"{path}: stored fingerprint {header['fingerprint']} does not match its "
                f"content ({geom.fingerprint}); the file was altered or corrupted."
            )
        return geom

    def __repr__(self) -> str:
        counts = {r: int((self.region == r).sum()) for r in REGIONS}
        return (
            f"CellGeometry({self.name!r}, {self.n_segments} segments {counts}, "
            f"{self.n_channels} input channels, fingerprint={self.fingerprint})"
        )
