"""EEG and MEG of a result as MNE-Python objects (optional extra ``[mne]``).

``to_mne(result)`` turns the ``eeg`` and ``meg`` of a ``predict_lfp`` / ``ForwardModel``
Dataset into one ``mne.io.RawArray`` (or ``mne.EvokedArray``) with

- EEG channels named as the result names them (the 10-20 system for the shipped
  ``eeg-10-20`` montage: Fp1, Fp2, F7, ...), in volts, with a montage: the electrode
  positions the signals were computed at (``montage="model"``, the default), or MNE's
  ``standard_1020`` template positions for the same names (``montage="standard_1020"``);
- MEG channels as point magnetometers (``FIFFV_COIL_POINT_MAGNETOMETER``), in tesla, each
  holding the field component along its sensor's orientation, B·n, with the sensor's
  position and orientation in ``info["chs"][i]["loc"]`` (device frame = head frame).

Frames and units: lfpsurrogate's head frame has the sphere centre at the origin, +x right,
+y towards the nose, +z through the vertex (the orientation of MNE's head frame), in µm;
MNE wants metres. EEG mV -> V (x 1e-3), MEG fT -> T (x 1e-15), time ms -> s.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import InputError

UM = 1e-6  # metres per µm


def _import_mne():
    try:
        import mne
    except ImportError as exc:
        raise ImportError(
            "to_mne needs MNE-Python: pip install 'lfpsurrogate[mne]' (or pip install mne)."
        ) from exc
    return mne


def _sfreq(ds: xr.Dataset) -> tuple[float, float]:
    """(sampling frequency in Hz, first time in s) from the result's time coordinate."""
    t = np.asarray(ds["time"].values, dtype=float)
    if t.size >= 2:
        dt = np.diff(t)
        if not np.allclose(dt, dt[0], rtol=1e-6):
            raise InputError("the result's time coordinate is not evenly spaced; MNE needs a "
                             "fixed sampling rate.")
        step_ms = float(dt[0])
    else:
        step_ms = float(ds.attrs.get("bin_ms", 1.0))
    return 1000.0 / step_ms, float(t[0]) / 1000.0 if t.size else 0.0


def to_mne(result: xr.Dataset, kind: str = "raw", signals=("eeg", "meg"),
           montage: str = "model"):
    """EEG and MEG of ``result`` as one MNE object.

    result: a Dataset from :func:`lfpsurrogate.predict_lfp` or
        ``ForwardModel.from_currents``/``from_voltages`` holding ``eeg`` (eeg_electrode,
        time) in mV and/or ``meg`` (sensor, axis, time) in fT.
    kind: "raw" (``mne.io.RawArray``) or "evoked" (``mne.EvokedArray``, e.g. for
        ``evoked.plot_topomap``); ``nave`` is the number of cells.
    signals: which of "eeg", "meg" to include (those present in ``result``).
    montage: "model" (the electrode positions the EEG was computed at) or
        "standard_1020" (MNE's template positions for the same 10-20 names, the montage
        MNE >= 1.13 calls "colin27_1020").

    Example::

        out = lfps.predict_lfp(rates={"duration_ms": 500, "n_cells": 50},
                               signals=("eeg", "meg"))
        evoked = lfps.to_mne(out, kind="evoked")
        evoked.plot_topomap(times=[0.25], ch_type="eeg")
    """
    mne = _import_mne()
    if not isinstance(result, xr.Dataset):
        raise InputError(f"to_mne takes the Dataset of predict_lfp or a ForwardModel, got "
                         f"{type(result).__name__}.")
    if kind not in ("raw", "evoked"):
        raise InputError(f"kind={kind!r}; use 'raw' or 'evoked'.")
    if montage not in ("model", "standard_1020"):
        raise InputError(f"montage={montage!r}; use 'model' or 'standard_1020'.")
    if isinstance(signals, str):
        signals = (signals,)
    bad = [s for s in signals if s not in ("eeg", "meg")]
    if bad:
        raise InputError(f"signals {bad}: to_mne exports 'eeg' and 'meg'.")
    present = [s for s in signals if s in result]
    if not present:
        raise InputError(f"the result holds none of {list(signals)}; compute them with "
                         "predict_lfp(..., signals=('eeg', 'meg')).")
    sfreq, tmin = _sfreq(result)
    names, types, rows = [], [], []
    if "eeg" in present:
        eeg = result["eeg"].transpose("eeg_electrode", "time")
        _check_units(eeg, "mV", "eeg")
        names += [str(n) for n in result["eeg_electrode"].values]
        types += ["eeg"] * eeg.sizes["eeg_electrode"]
        rows.append(np.asarray(eeg.values, dtype=float) * 1e-3)  # mV -> V
    if "meg" in present:
        meg = result["meg"].transpose("sensor", "axis", "time")
        _check_units(meg, "fT", "meg")
        normals = np.asarray(result["sensor_orientation"].values, dtype=float)
        bn = np.einsum("sat,sa->st", np.asarray(meg.values, dtype=float), normals)
        names += [str(n) for n in result["sensor"].values]
        types += ["mag"] * meg.sizes["sensor"]
        rows.append(bn * 1e-15)  # fT -> T
    info = mne.create_info(names, sfreq, types)
    if "meg" in present:
        _set_magnetometers(mne, info, result)
    data = np.concatenate(rows, axis=0)
    n_cells = int(result.attrs.get("n_cells", 1))
    description = (f"lfpsurrogate: {n_cells} {result.attrs.get('cell', '')} cell(s), "
                   f"{result.attrs.get('source', '')} {result.attrs.get('model', '')}").strip()
    if kind == "raw":
        out = mne.io.RawArray(data, info, first_samp=int(round(tmin * sfreq)), verbose=False)
    else:
        out = mne.EvokedArray(data, info, tmin=tmin, nave=max(n_cells, 1), comment=description,
                              verbose=False)
    if "eeg" in present:
        out.set_montage(_montage(mne, result, montage), verbose=False)
    with out.info._unlock():
        out.info["description"] = description
    return out


def _check_units(da: xr.DataArray, expected: str, name: str) -> None:
    units = da.attrs.get("units", expected)
    if units != expected:
        raise InputError(f"result[{name!r}] is in {units!r}; to_mne expects {expected!r} as "
                         "lfpsurrogate writes it.")


def standard_1020_name(mne) -> str:
    """MNE's template 10-20 montage: "colin27_1020" in MNE >= 1.13, which deprecates the
    same montage's old name "standard_1020"."""
    builtin = mne.channels.get_builtin_montages()
    return "colin27_1020" if "colin27_1020" in builtin else "standard_1020"


def _montage(mne, result: xr.Dataset, which: str):
    names = [str(n) for n in result["eeg_electrode"].values]
    if which == "standard_1020":
        standard = mne.channels.make_standard_montage(standard_1020_name(mne))
        missing = sorted(set(names) - set(standard.ch_names))
        if missing:
            raise InputError(f"EEG channels {missing} are not in MNE's standard_1020 montage; "
                             "use montage='model'.")
        return standard
    pos = np.asarray(result["eeg_position"].values, dtype=float) * UM
    return mne.channels.make_dig_montage(ch_pos=dict(zip(names, pos)), coord_frame="head")


def _set_magnetometers(mne, info, result: xr.Dataset) -> None:
    """Point magnetometers at the sensor positions, normal = sensor orientation; the
    device frame is the head frame (identity dev_head_t)."""
    from mne.io.constants import FIFF

    pos = np.asarray(result["sensor_position"].values, dtype=float) * UM
    normals = np.asarray(result["sensor_orientation"].values, dtype=float)
    names = set(str(n) for n in result["sensor"].values)
    k = 0
    for ch in info["chs"]:
        if ch["ch_name"] not in names or ch["kind"] != FIFF.FIFFV_MEG_CH:
            continue
        ez = normals[k] / np.linalg.norm(normals[k])
        # any two unit vectors orthogonal to the normal complete the coil frame
        helper = np.array([1.0, 0.0, 0.0]) if abs(ez[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        ex = np.cross(helper, ez)
        ex /= np.linalg.norm(ex)
        ey = np.cross(ez, ex)
        ch["loc"] = np.concatenate([pos[k], ex, ey, ez])
        ch["coil_type"] = FIFF.FIFFV_COIL_POINT_MAGNETOMETER
        ch["coord_frame"] = FIFF.FIFFV_COORD_DEVICE
        ch["unit"] = FIFF.FIFF_UNIT_T
        k += 1
    with info._unlock():
        info["dev_head_t"] = mne.transforms.Transform("meg", "head", np.eye(4))
