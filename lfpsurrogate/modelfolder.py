"""Surrogate model folders: weights, sidecar, cell geometry, metrics, card, manifest.

A model folder (``models/<name>/``) holds::

    model.safetensors   weights (safetensors: loading runs no code)
    model.json          sidecar: architecture, sizes, config, cell and data fingerprints
    geometry.npz        the cell's CellGeometry (segments, vmem_to_imem), NEURON-free
    metrics.json        `lfpsurrogate evaluate` output on held-out data (optional)
    README.md           model card (optional)
    MANIFEST.json       sha256 of every file above; verified on every load

Loading refuses a folder with a missing, truncated or altered file, and a model whose
cell fingerprint differs from the cell (geometry) the caller uses.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GeometryError, LfpsurrogateError, ModelFolderError
from .geometry import CellGeometry

WEIGHTS, SIDECAR, GEOMETRY, METRICS, CARD, MANIFEST = (
    "model.safetensors", "model.json", "geometry.npz", "metrics.json", "README.md", "MANIFEST.json")
REQUIRED = (WEIGHTS, SIDECAR, GEOMETRY)


def models_root() -> Path:
    """Where shipped models live: ``$LFPSURROGATE_MODELS`` or the repository's ``models/``."""
    env = os.environ.get("LFPSURROGATE_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class LoadedSurrogate:
    """A surrogate ready to run: ``model`` (torch, eval mode), its ``sidecar`` (dict), the
    cell ``geometry``, the folder or checkpoint ``path`` and ``weights_path``."""

    model: Any
    sidecar: dict
    geometry: CellGeometry
    path: Path
    weights_path: Path
    metrics: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights file (first 16 hex digits)."""
        return _sha256(self.weights_path)[:16]


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A model folder from a path or a shipped name; a checkpoint stem or file as given."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    for suffix in ("", ".json", ".safetensors"):
        stem = str(path)[: -len(suffix)] if suffix and str(path).endswith(suffix) else str(path)
        if Path(stem + ".json").is_file():
            return Path(stem)
    shipped = models_root() / str(name_or_path)
    if shipped.is_dir():
        return shipped
    available = sorted(p.name for p in models_root().glob("*") if (p / SIDECAR).exists()) \
        if models_root().is_dir() else []
    raise ModelFolderError(
        f"no model {str(name_or_path)!r}: not a model folder, not a checkpoint and not a "
        f"shipped model (shipped: {available or 'none'})."
    )


def verify_folder(folder: Path) -> dict:
    """Check MANIFEST.json against the files; return the manifest. Raises ModelFolderError."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ModelFolderError(f"{folder} has no {MANIFEST}; it is not a complete model folder.")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{manifest_path} is not a valid manifest: {exc}") from exc
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise ModelFolderError(f"{manifest_path} is not a valid manifest: 'files' must map "
                               "file names to {'sha256': ..., 'bytes': ...}.")
    for name in REQUIRED:
        if name not in files:
            raise ModelFolderError(f"{manifest_path} does not list the required file {name}.")
    for name, entry in files.items():
        target = folder / name
        if Path(name).name != name:
            raise ModelFolderError(f"{manifest_path} lists {name!r}: only plain file names are allowed.")
        if not target.is_file():
            raise ModelFolderError(f"{folder}: file {name} listed in the manifest is missing.")
        if target.stat().st_size != entry.get("bytes") or _sha256(target) != entry.get("sha256"):
            raise ModelFolderError(
                f"{folder}: file {name} does not match its checksum in {MANIFEST}; it was "
                "altered or truncated. Restore the folder (e.g. `git checkout models/`)."
            )
    return manifest


def load_surrogate(name_or_path: str | Path, *, geometry: CellGeometry | None = None,
                   device: str = "cpu") -> LoadedSurrogate:
    """Load a model folder (verified against its manifest) or a training checkpoint.

    geometry: the cell the caller works with; refused if the model was trained for another
    cell. Required for a bare training checkpoint (which has no geometry of its own).
    """
    from .nn import CheckpointError, load_model

    path = resolve_model_path(name_or_path)
    if path.is_dir():
        verify_folder(path)
        try:
            own = CellGeometry.load(path / GEOMETRY)
        except GeometryError as exc:
            raise ModelFolderError(f"{path}: {exc}") from exc
        if geometry is not None and geometry.fingerprint != own.fingerprint:
            raise ModelFolderError(
                f"model {path.name} was trained for cell {own.name!r} (fingerprint "
                f"{own.fingerprint}), but the cell given is {geometry.name!r} (fingerprint "
                f"{geometry.fingerprint}). Use a model trained for this cell or train one."
            )
        stem, geom = path / "model", own
        try:
            metrics = json.loads((path / METRICS).read_text()) if (path / METRICS).is_file() else {}
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ModelFolderError(f"{path / METRICS} is not valid JSON: {exc}") from exc
    else:
        if geometry is None:
            raise ModelFolderError(
                f"{path} is a training checkpoint without a cell geometry: pass geometry= "
                "(e.g. lfpsurrogate.data.store_geometry(store))."
            )
        stem, geom, metrics = path, geometry, {}
    try:
        model, sidecar = load_model(stem, geometry=geom, device=device)
    except CheckpointError as exc:
        raise ModelFolderError(str(exc)) from exc
    if not isinstance(sidecar, dict) or sidecar.get("n_segments") != geom.n_segments or sidecar.get("n_channels") != geom.n_channels:
        raise ModelFolderError(
            f"{path}: the model has {sidecar.get('n_segments')} segments / "
            f"{sidecar.get('n_channels')} channels but the cell {geom.name!r} has "
            f"{geom.n_segments} / {geom.n_channels}."
        )
    return LoadedSurrogate(model=model, sidecar=sidecar, geometry=geom, path=path,
                           weights_path=stem.with_name(stem.name + ".safetensors"), metrics=metrics)


def export_model_folder(checkpoint: str | Path, geometry: CellGeometry, out_dir: str | Path, *,
                        metrics: dict | None = None, card: str | None = None,
                        sidecar_extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write a model folder from a training checkpoint (``out/best``), atomically.

    The folder is assembled in a temporary sibling and renamed into place; an existing
    folder is replaced only with ``overwrite=True``. ``sidecar_extra`` adds keys to
    model.json (e.g. ``input_rate_hz``: the [min, max] mean input rate per channel seen in
    training, used by predict_lfp to warn about inputs far outside it).
    """
    src = resolve_model_path(checkpoint)
    if src.is_dir():
        raise ModelFolderError(f"{src} is already a model folder; give a training checkpoint.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ModelFolderError(f"{out_dir} exists; pass overwrite=True to replace it.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        shutil.copyfile(str(src) + ".safetensors", tmp / WEIGHTS)
        sidecar = json.loads(Path(str(src) + ".json").read_text())
        if sidecar.get("cell_fingerprint") not in (None, geometry.fingerprint):
            raise ModelFolderError(
                f"{src} was trained for cell fingerprint {sidecar['cell_fingerprint']}, "
                f"not {geometry.fingerprint} ({geometry.name})."
            )
        sidecar.update(sidecar_extra or {})
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=1))
        geometry.save(tmp / GEOMETRY)
        if metrics is not None:
            (tmp / METRICS).write_text(json.dumps(metrics, indent=1))
        if card is not None:
            (tmp / CARD).write_text(card)
        write_manifest(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def write_manifest(folder: str | Path) -> dict:
    """(Re)write MANIFEST.json over every other file of the folder."""
    folder = Path(folder)
    files = {
        p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    manifest = {"format": "lfpsurrogate.model-folder", "version": 1, "files": files}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(folder / MANIFEST)
    return manifest


def held_out_accuracy(name_or_path: str | Path = "l5_ttpc1", split: str = "test") -> str | None:
    """One line of a model's held-out accuracy, read from its ``metrics.json`` (written by
    ``lfpsurrogate evaluate``), e.g. "held-out test (42 samples, 80 s, free-running):
    LFP r 0.56, EEG r 0.71, MEG r 0.48, dipole r 0.82, soma RMSE 2.66 mV, spike F1 0.15".
    None when the model has no metrics for ``split``."""
    try:
        path = resolve_model_path(name_or_path) / "metrics.json"
        metrics = json.loads(path.read_text())[split]
    except (LfpsurrogateError, OSError, ValueError, KeyError, TypeError):
        return None
    parts = []
    for key, label in (("lfp_r_median", "LFP r"), ("eeg_r_median", "EEG r"),
                       ("meg_r_median", "MEG r"), ("dipole_r", "dipole r")):
        if metrics.get(key) is not None:
            parts.append(f"{label} {metrics[key]:.2f}")
    if metrics.get("soma_rmse_mv") is not None:
        parts.append(f"soma RMSE {metrics['soma_rmse_mv']:.2f} mV")
    if metrics.get("spike_f1") is not None:
        parts.append(f"spike F1 {metrics['spike_f1']:.2f}")
    seconds = metrics.get("evaluated_ms", 0) / 1000
    return (f"held-out {split} ({metrics.get('n_samples', '?')} samples, {seconds:.0f} s, "
            f"free-running): " + ", ".join(parts))
