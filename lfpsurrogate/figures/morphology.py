"""Morphology figure: placed cell(s) with the probe contacts drawn in the same frame."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ..geometry import CellGeometry
from .signals import _fig_ax

__all__ = ["plot_morphology"]

REGION_COLORS = {"soma": "k", "axon": "tab:purple", "basal": "tab:green", "apical": "tab:blue"}


def plot_morphology(geometry: CellGeometry | Any, probe=None, position=(0.0, 0.0, 0.0),
                    rotation=(0.0, 0.0, 0.0), plane: str = "xz", ax=None) -> Figure:
    """Placed cell(s) projected on ``plane`` ("xz", "yz" or "xy") with the probe contacts
    drawn in the same frame (µm). ``geometry`` may be a ForwardModel: its geometry,
    placement and LFP probe are used."""
    from ..forward import ForwardModel, place
    from ..probes import as_probe

    if isinstance(geometry, ForwardModel):
        fwd = geometry
        geometry, probe = fwd.geometry, probe or fwd.probes.get("lfp")
        position, rotation = fwd.placement.position, fwd.placement.rotation
    axes = {"xz": (0, 2), "yz": (1, 2), "xy": (0, 1)}
    if plane not in axes:
        raise ValueError(f"plane must be one of {sorted(axes)}.")
    i, j = axes[plane]
    coords = place(geometry, position, rotation)  # (x, y, z), each (C, S, 2)
    a, b = coords[i], coords[j]
    segs = np.stack([np.stack([a[..., 0], b[..., 0]], -1), np.stack([a[..., 1], b[..., 1]], -1)],
                    axis=-2).reshape(-1, 2, 2)
    colors = np.tile([REGION_COLORS.get(r, "gray") for r in geometry.region], len(a))
    widths = np.tile(np.clip(geometry.d / 2, 0.3, 4.0), len(a))
    fig, ax = _fig_ax(ax, figsize=(5.0, 7.0))
    ax.add_collection(LineCollection(segs, colors=colors, linewidths=widths))
    if probe is not None:
        pr = as_probe(probe)
        ax.plot(pr.positions[:, i], pr.positions[:, j], "s", color="tab:red", ms=4,
                label=f"{pr.name} ({pr.n} contacts)")
        ax.legend(loc="upper right", fontsize=8)
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.set_xlabel(f"{plane[0]} (µm)")
    ax.set_ylabel(f"{plane[1]} (µm)")
    return fig
