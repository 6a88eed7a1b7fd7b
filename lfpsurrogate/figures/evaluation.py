"""Figures of an evaluation: per-segment voltage RMSE by region, and example traces.

Built with ``matplotlib.figure.Figure`` (no pyplot, headless-safe) and saved atomically
with :func:`lfpsurrogate.io.save_figure`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_rmse_by_region", "plot_example_traces", "write_figures", "pick_channels"]

REGION_COLORS = {"soma": "k", "axon": "tab:purple", "basal": "tab:green",
                 "apical_trunk_oblique": "tab:blue", "tuft": "tab:orange"}
REGION_LABELS = {"soma": "soma", "axon": "axon", "basal": "basal",
                 "apical_trunk_oblique": "apical\ntrunk/oblique", "tuft": "tuft"}


def plot_rmse_by_region(rmse: np.ndarray, regions: dict[str, np.ndarray], *, title: str = "",
                        seed: int = 0) -> Figure:
    """Jittered strip plot of per-segment voltage RMSE (mV), one column per region, with
    each region's median as a bar (after Fig. 2 of Verhellen et al. 2024)."""
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    names = list(regions)
    for k, name in enumerate(names):
        vals = np.asarray(rmse)[regions[name]]
        x = k + rng.uniform(-0.28, 0.28, size=vals.size)
        ax.scatter(x, vals, s=9, alpha=0.6, color=REGION_COLORS.get(name, "tab:gray"), lw=0)
        if vals.size:
            ax.hlines(np.median(vals), k - 0.38, k + 0.38, color="k", lw=1.5)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{REGION_LABELS.get(n, n)}\n(n={len(regions[n])})" for n in names])
    ax.set_ylabel("voltage RMSE per segment (mV)")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "per-segment voltage RMSE", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def pick_channels(example: dict, signals, regions: dict[str, np.ndarray]) -> dict[str, int]:
    """Channels to show: the tuft segment (else the farthest apical/any segment) with the
    largest true voltage variance, and the LFP contact and EEG electrode with the largest
    true variance, all over the example sample after burn-in."""
    b = example["burn_in"]
    var_v = example["v_true"][:, b:].var(axis=1)
    pool = regions.get("tuft")
    if pool is None or not len(pool):
        pool = regions.get("apical_trunk_oblique", np.arange(len(var_v)))
    out = {"segment": int(pool[np.argmax(var_v[pool])])}
    if signals is not None and "signals_true" in example:
        for name in ("lfp", "eeg"):
            rows = example["signals_true"][signals.slices[name], b:]
            out[name] = int(np.argmax(rows.var(axis=1)))
    return out


def plot_example_traces(example: dict, soma: int, signals=None, regions=None, *,
                        title: str = "") -> Figure:
    """Truth vs prediction over one whole sample: soma voltage, one tuft segment, one LFP
    contact and one EEG electrode (burn-in shaded)."""
    regions = regions or {}
    pick = pick_channels(example, signals, regions)
    b, dt = example["burn_in"], example["bin_ms"]
    n_time = example["v_true"].shape[1]
    t = np.arange(n_time) * dt
    seg = pick["segment"]
    seg_label = "tuft" if "tuft" in regions and seg in set(regions["tuft"].tolist()) else "dendrite"
    panels = [("soma v (mV)", example["v_true"][soma], example["v_hat"][soma]),
              (f"{seg_label} segment {seg} v (mV)", example["v_true"][seg], example["v_hat"][seg])]
    if "lfp" in pick:
        sl, k = signals.slices["lfp"], pick["lfp"]
        panels.append((f"LFP contact {signals.labels['lfp'][k]} (µV)",
                       example["signals_true"][sl][k] * 1e3, example["signals_hat"][sl][k] * 1e3))
        sl, k = signals.slices["eeg"], pick["eeg"]
        panels.append((f"EEG {signals.labels['eeg'][k]} (nV)",
                       example["signals_true"][sl][k] * 1e6, example["signals_hat"][sl][k] * 1e6))
    fig = Figure(figsize=(9.0, 1.9 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, truth, pred) in zip(axes, panels):
        ax.axvspan(0, b * dt, color="0.9", lw=0)
        ax.plot(t, truth, color="k", lw=0.9, label="NEURON (truth)")
        ax.plot(t, pred, color="tab:red", lw=0.9, alpha=0.85, label="surrogate")
        ax.set_ylabel(label, fontsize=8)
    axes[0].legend(loc="upper right", fontsize=8, frameon=False, ncol=2)
    axes[-1].set_xlabel("time (ms); grey: burn-in, excluded from the metrics")
    fig.suptitle(title or "example held-out sample", fontsize=10)
    return fig


def write_figures(evaluator, out_dir: str | Path, signals=None, *, title: str = "") -> list[Path]:
    """Write ``voltage_rmse_by_region.png`` and ``example_traces.png`` into out_dir."""
    from ..io import save_figure

    out_dir = Path(out_dir)
    paths = [save_figure(plot_rmse_by_region(evaluator.per_segment_rmse(), evaluator.regions,
                                             title=f"per-segment voltage RMSE · {title}"),
                         out_dir / "voltage_rmse_by_region.png")]
    if evaluator.example is not None:
        paths.append(save_figure(
            plot_example_traces(evaluator.example, evaluator.soma, signals, evaluator.regions,
                                title=f"example held-out sample · {title}"),
            out_dir / "example_traces.png"))
    return paths
