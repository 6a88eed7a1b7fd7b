"""Checkpoints without pickle: weights as safetensors, everything else as a JSON sidecar.

``<stem>.safetensors``  model parameters and buffers (normalisation, mmoeex mask)
``<stem>.json``         format, architecture and sizes, config, cell/data fingerprints,
                        epoch, metrics, history, package versions
``<stem>.state.safetensors`` (optional) optimiser tensors, torch RNG state, loss buffers;
                        its non-tensor parts (param_groups, counters) live in the JSON.

Loading reads only safetensors and JSON: no code in a checkpoint ever runs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import LfpsurrogateError
from .base import Surrogate

FORMAT = "lfpsurrogate.nn.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(LfpsurrogateError, ValueError):
    """A checkpoint that is missing, malformed or does not match."""


def _stem(path: str | Path) -> Path:
    path = Path(path)
    for suffix in (".state.safetensors", ".safetensors", ".json"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _parts(stem: Path) -> list[Path]:
    """The files of a checkpoint in commit order: the JSON sidecar is renamed last."""
    return [stem.with_name(stem.name + s) for s in (".state.safetensors", ".safetensors", ".json")]


def recover_checkpoint(path: str | Path) -> None:
    """Finish or discard a checkpoint write that a kill interrupted.

    save_checkpoint writes every file of a checkpoint to ``<file>.tmp`` first, the JSON
    last, then renames them in order (state, weights, JSON). A complete ``<stem>.json.tmp``
    therefore means every new file was written: the renames left undone are done now (roll
    forward). Otherwise the new files are incomplete and are removed; the previous
    checkpoint is untouched.
    """
    parts = _parts(_stem(path))
    tmps = [_tmp(p) for p in parts]
    if not any(t.exists() for t in tmps):
        return
    try:
        complete = isinstance(json.loads(tmps[-1].read_text()), dict)
    except (OSError, ValueError):
        complete = False
    for final, tmp in zip(parts, tmps):
        if tmp.exists():
            tmp.replace(final) if complete else tmp.unlink()


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, st in opt_state["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim/{pid}/{key}"] = val
            else:
                scalars[f"{pid}/{key}"] = val
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("optim/"):
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = val
    for name, val in meta.get("scalars", {}).items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = val
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, model: Surrogate, *, config: dict | None = None,
                    cell_fingerprint: str | None = None, data_fingerprint: str | None = None,
                    epoch: int = 0, metrics: dict | None = None, extra: dict | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    training_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``<stem>.safetensors`` + ``<stem>.json`` (+ ``<stem>.state.safetensors`` when an
    optimizer or training_state tensors are given), each atomically. Returns the JSON path.

    model: the (unwrapped) surrogate. epoch: epochs completed. extra: JSON-serialisable
    additions to the sidecar (history, early-stopping counters, ...).
    """
    from .. import __version__

    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = _tensors(model.state_dict())
    sidecar: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, **model.describe(),
        "config": config, "cell_fingerprint": cell_fingerprint,
        "data_fingerprint": data_fingerprint, "epoch": int(epoch), "metrics": metrics or {},
        "versions": {"lfpsurrogate": __version__, "torch": torch.__version__},
        **(extra or {}),
    }
    if optimizer is not None or training_state:
        tensors = {f"train/{k}": v for k, v in (training_state or {}).items()}
        if optimizer is not None:
            opt_tensors, sidecar["optimizer"] = _flatten_optimizer(optimizer.state_dict())
            tensors.update(opt_tensors)
        tensors = _tensors(tensors)
    state_path, weights_path, json_path = _parts(stem)
    recover_checkpoint(stem)  # a write interrupted earlier: settle it before overwriting
    # two phases, so that a kill at any point leaves one consistent checkpoint (see
    # recover_checkpoint): write every file to .tmp (the JSON last), then rename in order
    written = []
    if optimizer is not None or training_state:
        save_file(tensors, str(_tmp(state_path)), metadata={"format": FORMAT})
        written.append(state_path)
    save_file(weights, str(_tmp(weights_path)), metadata={"format": FORMAT})
    written.append(weights_path)
    _tmp(json_path).write_text(json.dumps(sidecar, indent=1, default=_json_default))
    written.append(json_path)
    for final in written:
        _tmp(final).replace(final)
    return json_path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return str(obj)


def read_sidecar(path: str | Path) -> dict:
    """The JSON sidecar of a checkpoint (path: stem, .json or .safetensors)."""
    json_path = _stem(path).with_name(_stem(path).name + ".json")
    if not json_path.is_file():
        raise CheckpointError(f"checkpoint sidecar {json_path} does not exist.")
    try:
        meta = json.loads(json_path.read_text())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"{json_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{json_path} is not an lfpsurrogate checkpoint (format "
                              f"{meta.get('format') if isinstance(meta, dict) else None!r}).")
    return meta


def load_model(path: str | Path, *, geometry=None, device: str | torch.device = "cpu",
               expected_fingerprint: str | None = None) -> tuple[Surrogate, dict]:
    """Rebuild a surrogate from a checkpoint (stem, .json or .safetensors path).

    Returns (model in eval mode, sidecar dict). If geometry or expected_fingerprint is
    given, the checkpoint's cell fingerprint must match it.
    """
    from .models import build_model

    stem = _stem(path)
    meta = read_sidecar(stem)
    want = expected_fingerprint or (geometry.fingerprint if geometry is not None else None)
    if want and meta.get("cell_fingerprint") and meta["cell_fingerprint"] != want:
        raise CheckpointError(f"{stem}: trained for cell {meta['cell_fingerprint']}, "
                              f"but the cell given has fingerprint {want}.")
    weights_path = stem.with_name(stem.name + ".safetensors")
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights {weights_path} do not exist.")
    try:
        model = build_model(meta["model"], meta["n_channels"], meta["n_segments"])
    except (KeyError, TypeError, ValueError) as exc:  # ValueError covers ConfigError
        raise CheckpointError(f"{stem}.json does not describe a model ({type(exc).__name__}: "
                              f"{exc}).") from exc
    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # SafetensorError and friends: a damaged weights file
        raise CheckpointError(f"{weights_path} is not a readable safetensors file "
                              f"({type(exc).__name__}: {exc}).") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path} does not match architecture "
                              f"{meta.get('architecture')!r}: {exc}") from exc
    return model.to(device).eval(), meta


def load_training_state(path: str | Path) -> tuple[dict | None, dict[str, torch.Tensor], dict]:
    """(optimizer state_dict or None, training tensors, sidecar) of a checkpoint saved with
    an optimizer; for resuming."""
    stem = _stem(path)
    recover_checkpoint(stem)
    meta = read_sidecar(stem)
    state_path = stem.with_name(stem.name + ".state.safetensors")
    if not state_path.is_file():
        raise CheckpointError(f"{state_path} does not exist: this checkpoint has no training state.")
    tensors = load_file(str(state_path), device="cpu")
    opt = _unflatten_optimizer(tensors, meta["optimizer"]) if "optimizer" in meta else None
    train = {k[len("train/"):]: v for k, v in tensors.items() if k.startswith("train/")}
    return opt, train, meta
