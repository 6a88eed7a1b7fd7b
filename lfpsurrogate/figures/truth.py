"""Figure of one ground-truth run: morphology, soma voltage, voltages of all segments."""
from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["plot_simulation"]


def plot_simulation(ds: xr.Dataset, title: str | None = None):
    """Three panels: morphology (x-z) coloured by peak voltage, somatic voltage with spike
    marks, and the voltage of every segment (sorted by height) over time. Returns a Figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    v = ds["v"].values
    time = ds["time"].values
    start, end = ds["seg_start"].values, ds["seg_end"].values
    soma = int(np.argmin(np.linalg.norm((start + end) / 2, axis=1)))
    fig = plt.figure(figsize=(12, 6), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 2.2])
    ax_m = fig.add_subplot(grid[:, 0])
    segs = np.stack([start[:, [0, 2]], end[:, [0, 2]]], axis=1)
    lines = LineCollection(segs, array=v.max(axis=1), cmap="viridis",
                           linewidths=np.clip(ds["seg_diam"].values, 0.5, 4))
    ax_m.add_collection(lines)
    ax_m.autoscale()
    ax_m.set_aspect("equal")
    ax_m.set_xlabel("x (µm)")
    ax_m.set_ylabel("z (µm)")
    fig.colorbar(lines, ax=ax_m, label="peak bin-averaged v (mV)")
    ax_s = fig.add_subplot(grid[0, 1])
    ax_s.plot(time, v[soma], lw=0.8, color="k")
    for t in ds["spike_times"].values:
        ax_s.axvline(t, color="r", lw=0.4, alpha=0.5)
    ax_s.set_ylabel("soma v (mV)")
    ax_v = fig.add_subplot(grid[1, 1], sharex=ax_s)
    order = np.argsort(((start + end) / 2)[:, 2])
    im = ax_v.imshow(v[order], aspect="auto", origin="lower", cmap="RdBu_r",
                     extent=[time[0], time[-1] + (time[1] - time[0] if len(time) > 1 else 1), 0, len(order)],
                     vmin=-80, vmax=-20)
    fig.colorbar(im, ax=ax_v, label="v (mV)")
    ax_v.set_xlabel("time (ms)")
    ax_v.set_ylabel("segment (sorted by z)")
    fig.suptitle(title or f"{ds.attrs.get('cell', 'cell')}: ground truth, "
                 f"{len(ds['spike_times'])} somatic spikes in {len(time) * ds.attrs.get('bin_ms', 1):.0f} ms")
    return fig
