"""Figures of forward-model output: laminar LFP + CSD, EEG topography, MEG field map, and
the set of them the command line draws (:func:`signal_figures`).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state, works on
headless machines with the Agg canvas); every function returns the Figure. Inputs are the
Datasets of :meth:`ForwardModel.from_currents` / ``from_voltages``.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

__all__ = ["csd_from_lfp", "plot_laminar", "plot_eeg_topography", "plot_meg_field_map",
           "laminar_column", "scalp_projection", "readable_units", "decade_units",
           "signal_figures", "scaling_note"]

_PREFIXES = {"": 1.0, "m": 1e-3, "µ": 1e-6, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
             "a": 1e-18, "z": 1e-21}


def readable_units(values, units: str) -> tuple[float, str]:
    """(factor, units') such that ``values * factor`` in ``units'`` has its largest magnitude
    between 1 and 1000: e.g. 2e-6 mV -> (1e6, "nV"), 0.002 fT -> (1000, "aT"). Units
    without a known SI prefix and base ("mV", "V", "fT", "T", ...) are left as they are."""
    base, scale = units, 1.0
    if len(units) > 1 and units[0] in _PREFIXES and units[1:] in ("V", "T", "A"):
        base, scale = units[1:], _PREFIXES[units[0]]
    elif units not in ("V", "T", "A"):
        return 1.0, units
    peak = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    if not peak > 0:
        return 1.0, units
    for prefix in ("", "m", "µ", "n", "p", "f", "a", "z"):
        if peak * scale / _PREFIXES[prefix] >= 1.0:
            return float(f"{scale / _PREFIXES[prefix]:.12g}"), prefix + base
    return scale / _PREFIXES["z"], "z" + base


def _fig_ax(ax, figsize=(6.0, 5.0)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def laminar_column(positions: np.ndarray) -> np.ndarray:
    """Indices of the contacts in the most populated vertical column (same x, y to 0.1
    µm), sorted from top (largest z) to bottom."""
    xy = np.round(np.asarray(positions)[:, :2], 1)
    _, inverse, counts = np.unique(xy, axis=0, return_inverse=True, return_counts=True)
    idx = np.flatnonzero(inverse.ravel() == np.argmax(counts))
    return idx[np.argsort(-positions[idx, 2], kind="stable")]


def csd_from_lfp(lfp: np.ndarray, z: np.ndarray, sigma: float = 0.3):
    """Standard (second spatial difference) current source density.

    lfp: (n_contacts, n_time) mV at depths z (µm, equally spaced, any order).
    Returns (z of the inner contacts, CSD (n_contacts - 2, n_time) in µA/mm³), with
    CSD = -sigma d²phi/dz²; positive = source (current leaving the cells).
    """
    z = np.asarray(z, dtype=float)
    order = np.argsort(-z)
    z, lfp = z[order], np.asarray(lfp, dtype=float)[order]
    if len(z) < 3:
        raise ValueError("a CSD needs at least 3 contacts in one column.")
    h = np.diff(z)
    if not np.allclose(h, h[0], rtol=1e-6):
        raise ValueError("a CSD needs equally spaced contacts.")
    d2 = (lfp[:-2] - 2 * lfp[1:-1] + lfp[2:]) / h[0] ** 2  # mV/µm²
    # S/m * mV/µm² = 1e9 A/m³ = 1e6 µA/mm³
    return z[1:-1], -sigma * d2 * 1e6


def plot_laminar(ds: xr.Dataset, sigma: float | None = None, title: str | None = None) -> Figure:
    """LFP traces by depth (left) and CSD image (right) of the main contact column.

    Each trace has its own time mean removed (the DC offsets of the contacts differ by far
    more than the fluctuations); the scale bar gives the amplitude in readable units."""
    lfp = ds["lfp"]
    pos = np.asarray(ds["electrode_position"].values)
    idx = laminar_column(pos)
    z = pos[idx, 2]
    data = np.asarray(lfp.values)[idx]
    t = np.asarray(ds["time"].values)
    traces = data - data.mean(axis=1, keepdims=True)
    sigma = float(sigma if sigma is not None else ds.attrs.get("sigma_S_per_m", 0.3))
    fig = Figure(figsize=(10.0, 5.0), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    pitch = float(np.median(np.abs(np.diff(z)))) if len(z) > 1 else 100.0
    amp = float(np.abs(traces).max()) or 1.0
    scale = 0.8 * pitch / amp
    for zi, trace in zip(z, traces):
        ax1.plot(t, zi + scale * trace, color="k", lw=0.8)
    # scale bar: a round amplitude near half the largest deflection
    factor, units = readable_units(amp, lfp.attrs.get("units", "mV"))
    bar = _round_down(0.5 * amp * factor)
    bar_height = bar / factor * scale
    x0 = t[-1] + 0.02 * (t[-1] - t[0] if len(t) > 1 else 1.0)
    ax1.vlines(x0, z.min() - 0.5 * pitch, z.min() - 0.5 * pitch + bar_height,
               color="tab:red", lw=2.5, clip_on=False)  # a collection: ax.lines are the traces
    ax1.annotate(f"{bar:g} {units}", (x0, z.min() - 0.5 * pitch + bar_height / 2),
                 xytext=(4, 0), textcoords="offset points", va="center", fontsize=8,
                 color="tab:red", annotation_clip=False)
    ax1.set_xlabel("time (ms)")
    ax1.set_ylabel("contact depth z (µm)")
    ax1.set_title("LFP, each contact's mean removed")
    if len(z) >= 3:
        zc, csd = csd_from_lfp(data, z, sigma)
        lim = float(np.abs(csd).max()) or 1.0
        half = pitch / 2
        im = ax2.imshow(csd, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                        extent=(t[0], t[-1], zc[-1] - half, zc[0] + half), origin="upper")
        fig.colorbar(im, ax=ax2, label="CSD (µA/mm³), + = source")
        ax2.set_title("current source density")
    ax2.set_xlabel("time (ms)")
    ax1.set_ylim(z.min() - pitch, z.max() + pitch)
    if title:
        fig.suptitle(title)
    return fig


def _round_down(x: float) -> float:
    """The largest of 1, 2, 5 times a power of ten not above x (x > 0)."""
    if not x > 0:
        return 1.0
    x = x * (1 + 1e-9)  # 19.999999999 is 20
    e = np.floor(np.log10(x))
    for m in (5.0, 2.0, 1.0):
        if m * 10**e <= x:
            return float(m * 10**e)
    return float(10**e)


def scalp_projection(positions: np.ndarray) -> np.ndarray:
    """Azimuthal equidistant projection about the vertex: (n, 2) with x right and y
    towards the nose; radius = polar angle (rad), so the equator is at pi/2."""
    p = np.asarray(positions, dtype=float)
    r = np.linalg.norm(p, axis=1)
    theta = np.arccos(np.clip(p[:, 2] / r, -1, 1))
    phi = np.arctan2(p[:, 0], p[:, 1])
    return np.stack([theta * np.sin(phi), theta * np.cos(phi)], axis=1)


def _time_index(values: np.ndarray, times: np.ndarray, time: float | None) -> int:
    if time is None:  # strongest spatial pattern: maximal global field power
        return int(np.argmax(values.reshape(-1, values.shape[-1]).std(axis=0)))
    return int(np.argmin(np.abs(times - time)))


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def decade_units(values, units: str) -> tuple[float, str]:
    """(factor, label) keeping ``units`` but scaling by a power of 1000 so that the largest
    magnitude is between 1 and 1000: 0.002 fT -> (1000, "10⁻³ fT")."""
    peak = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    if not peak > 0:
        return 1.0, units
    k = int(np.floor(np.log10(peak) / 3)) * 3
    if k == 0:
        return 1.0, units
    return 10.0 ** -k, f"10{str(k).translate(_SUPERSCRIPT)} {units}"


def _topo(ax, fig, xy, values, labels, units, title, keep_units: bool = False):
    factor, units = (decade_units if keep_units else readable_units)(values, units)
    values = np.asarray(values) * factor
    lim = float(np.abs(values).max()) or 1.0
    levels = np.linspace(-lim, lim, 21)
    cs = ax.tricontourf(xy[:, 0], xy[:, 1], values, levels=levels, cmap="RdBu_r")
    ax.plot(xy[:, 0], xy[:, 1], "k.", ms=3)
    if labels is not None and len(labels) <= 40:
        for (x, y), name in zip(xy, labels):
            ax.annotate(str(name), (x, y), fontsize=7, ha="center", va="bottom")
    circle = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.pi / 2 * np.cos(circle), np.pi / 2 * np.sin(circle), "k", lw=1)
    ax.plot([-0.15, 0, 0.15], [np.pi / 2, np.pi / 2 + 0.2, np.pi / 2], "k", lw=1)  # nose
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title)
    bar = fig.colorbar(cs, ax=ax, label=units, shrink=0.8)
    ticks = np.linspace(-lim, lim, 5)
    bar.set_ticks(ticks, labels=[f"{v:.3g}" for v in ticks])


def plot_eeg_topography(ds: xr.Dataset, time: float | None = None, ax=None) -> Figure:
    """EEG scalp map at ``time`` (ms; default: the time of maximal global field power),
    seen from above, nose up."""
    eeg = ds["eeg"]
    k = _time_index(np.asarray(eeg.values), np.asarray(ds["time"].values), time)
    fig, ax = _fig_ax(ax)
    xy = scalp_projection(ds["eeg_position"].values)
    t = float(ds["time"].values[k])
    _topo(ax, fig, xy, np.asarray(eeg.values)[:, k], ds["eeg_electrode"].values,
          eeg.attrs.get("units", "mV"), f"EEG at t = {t:g} ms")
    return fig


def plot_meg_field_map(ds: xr.Dataset, time: float | None = None, ax=None) -> Figure:
    """Map of the MEG field component along each sensor's orientation (B·n, fT) at
    ``time`` (ms; default: maximal spatial spread), seen from above, nose up."""
    meg = ds["meg"]
    bn = np.einsum("sat,sa->st", np.asarray(meg.values), np.asarray(ds["sensor_orientation"]))
    k = _time_index(bn, np.asarray(ds["time"].values), time)
    fig, ax = _fig_ax(ax)
    xy = scalp_projection(ds["sensor_position"].values)
    t = float(ds["time"].values[k])
    _topo(ax, fig, xy, bn[:, k], ds["sensor"].values, meg.attrs.get("units", "fT"),
          f"MEG B·n at t = {t:g} ms", keep_units=True)  # MEG users read fT
    return fig


def signal_figures(ds: xr.Dataset, what: str) -> dict:
    """One figure per signal present: laminar LFP + CSD, EEG map, MEG map; each says what
    it shows (``what``) and how the amplitude of a population scales."""
    note = scaling_note(int(ds.attrs.get("n_cells", 1)))
    figures = {}
    if "lfp" in ds:
        figures["lfp"] = plot_laminar(ds, title=f"{what}: laminar LFP and CSD\n{note}")
    if "eeg" in ds:
        figures["eeg"] = plot_eeg_topography(ds)
        figures["eeg"].suptitle(f"{what}: EEG (four-sphere head)\n{note}", fontsize=9)
    if "meg" in ds:
        figures["meg"] = plot_meg_field_map(ds)
        figures["meg"].suptitle(f"{what}: MEG\n{note}", fontsize=9)
    return figures


def scaling_note(n_cells: int) -> str:
    return (f"{n_cells} cell(s), independent inputs; the signals of cells add: amplitude grows\n"
            "about as sqrt(cells) for independent inputs, as cells for synchronous inputs")
