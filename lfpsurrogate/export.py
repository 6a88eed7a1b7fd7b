"""`lfpsurrogate export`: a training run -> a model folder that predict_lfp can load.

Steps: load the run's checkpoint with the store's cell geometry; calibrate the spike-logit
threshold on the validation split (:mod:`lfpsurrogate.calibrate`); evaluate free-running
on the test split (and the shift split when the store has one) with that threshold; record
the range of input rates seen in training (predict_lfp warns outside it); write weights,
sidecar, geometry, metrics.json, the model card and the checksum manifest atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

CARD_KEYS = ("soma_rmse_mv", "spike_auc", "spike_f1", "v_explained_variance_median",
             "imem_r_median", "dipole_r", "lfp_r_median", "eeg_r_median", "meg_r_median")


def input_rate_range(store: str | Path, max_samples: int = 60) -> list[float]:
    """[min, max] over (up to ``max_samples`` evenly spread) training samples of the mean
    input rate per channel (Hz)."""
    from .data import open_store, split_samples, store_params

    ds = open_store(store)
    idx = split_samples(store, "train")
    bin_ms = float(store_params(store).bin_ms)
    rates = [float(ds["inputs"].isel(sample=int(i)).mean()) * 1000.0 / bin_ms
             for i in idx[:: max(1, len(idx) // max_samples)]]
    return [round(min(rates), 3), round(max(rates), 3)] if rates else []


def model_card(name: str, geometry, sidecar: dict, metrics: dict, store: str | Path,
               info: dict) -> str:
    """A model card: what the model is, its data, calibration and held-out metrics."""
    splits = [s for s in ("test", "shift") if s in metrics]
    head = " | ".join(splits)
    rows = "\n".join(
        f"| `{k}` | " + " | ".join(_fmt(metrics[s].get(k)) for s in splits) + " |"
        for k in CARD_KEYS)
    licence = geometry.meta.get("licence")
    return f"""# Surrogate model `{name}`

A `{sidecar.get('architecture')}` surrogate ({sidecar.get('n_parameters', 0):,} parameters,
receptive field {sidecar.get('receptive_field')} ms) of cell `{geometry.name}` (fingerprint
`{geometry.fingerprint}`, {geometry.n_segments} segments, {geometry.n_channels} input channels):
membrane potential of every segment and somatic spikes from synaptic input counts.
Use it with `lfpsurrogate.predict_lfp(..., model="path/to/this/folder")`.
{f"{chr(10)}Cell model licence: {licence}.{chr(10)}" if licence else ""}
## Data
Store `{store}` (data fingerprint `{sidecar.get('data_fingerprint')}`): {info.get('samples')}
samples of {info.get('duration_ms')} ms, splits {json.dumps(info.get('splits', {}))}, protocols
{info.get('protocols')} (shift: {info.get('shift_protocol')}). Mean input rate per channel in
training: {sidecar.get('input_rate_hz')} Hz (predict_lfp warns beyond 3x outside it).

## Spike threshold
Spikes are called where the spike logit crosses {sidecar.get('spike_logit_threshold'):.2f}
upwards: the threshold chosen on the validation split (never the test split): the best spike F1
with the firing rate within 10 % of the true one, an F1 within 0.01 of the best counting as a
tie that the closer rate decides (`calibrate.choose_threshold`).

## Held-out metrics (free-running; `metrics.json` holds every key)
| metric | {head} |
|---|{'---|' * len(splits)}
{rows}
"""


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def export_run(run: str | Path, data: str | Path, out: str | Path, *, checkpoint: str = "best",
               name: str | None = None, overwrite: bool = False, device: str = "cpu",
               n_samples: int | None = None) -> dict:
    """Export ``run/<checkpoint>`` as a model folder ``out`` (see the module docstring).
    Returns a summary: the folder, the threshold and the held-out metrics."""
    from .calibrate import calibrate_for_export
    from .data import store_geometry, store_info
    from .data.store import read_attrs
    from .errors import ModelFolderError
    from .evaluate import evaluate
    from .modelfolder import export_model_folder

    run, data, out = Path(run), Path(data), Path(out)
    ckpt = run / checkpoint
    if not Path(str(ckpt) + ".safetensors").is_file():
        raise ModelFolderError(
            f"{run} holds no checkpoint {checkpoint!r} ({ckpt}.safetensors); give the --out "
            "folder of `lfpsurrogate train` (it holds best.* and last.*).")
    if out.exists() and not overwrite:
        raise ModelFolderError(f"{out} exists; choose another --out or pass --overwrite.")
    read_attrs(data)
    geometry = store_geometry(data)
    ckpt, threshold, calibration = calibrate_for_export(ckpt, data, geometry, "val", device=device)
    info = store_info(data)
    splits = ["test"] + (["shift"] if info["splits"].get("shift", {}).get("done") else [])
    metrics = {s: evaluate(ckpt, data, s, spike_threshold=threshold, device=device,
                           n_samples=n_samples) for s in splits}
    sidecar = json.loads(Path(str(ckpt) + ".json").read_text())
    extra = {"spike_logit_threshold": threshold, "input_rate_hz": input_rate_range(data)}
    if calibration is not None:
        extra["spike_calibration"] = {k: v for k, v in calibration.items() if k != "scores"}
    sidecar.update(extra)
    name = name or out.name
    export_model_folder(ckpt, geometry, out, metrics=metrics, overwrite=overwrite,
                        sidecar_extra=extra,
                        card=model_card(name, geometry, sidecar, metrics, data, info))
    return {"out": str(out), "spike_logit_threshold": threshold,
            "input_rate_hz": extra["input_rate_hz"],
            **{f"{s}_{k}": metrics[s].get(k) for s in splits for k in CARD_KEYS}}


__all__ = ["export_run", "input_rate_range", "model_card"]
