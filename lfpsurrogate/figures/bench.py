"""Figure of a benchmark run (``lfpsurrogate bench``): wall time of the surrogate and of
NEURON against cell count and simulated duration."""
from __future__ import annotations

import numpy as np

__all__ = ["plot_scaling"]


def plot_scaling(result: dict):
    """Log-log wall time of the surrogate and NEURON vs cell count (1 s) and vs duration
    (1 cell). Returns a matplotlib Figure (no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), constrained_layout=True)
    axes = fig.subplots(1, 2)
    sweep = result.get("sweep") or []
    per = result.get("neuron_s_per_cell_second_used_for_estimates")
    dev = result.get("device", "?")
    for ax, key, fixed, label in ((axes[0], "cells", ("duration_ms", 1000.0), "cells (1 s each)"),
                                  (axes[1], "duration_ms", ("cells", 1), "simulated duration (ms), 1 cell")):
        rows = sorted((r for r in sweep if r[fixed[0]] == fixed[1]), key=lambda r: r[key])
        if rows:
            xs = np.array([r[key] for r in rows], float)
            ax.loglog(xs, [r["surrogate_wall_s"] for r in rows], "o-", color="C0",
                      label=f"surrogate ({dev}), warm")
            ax.loglog(xs, [r["surrogate_first_call_s"] for r in rows], "o:", color="C0", alpha=0.5,
                      label="surrogate, first call")
            ax.loglog(xs, [r["neuron_wall_s_estimated"] for r in rows], "s--", color="C3",
                      label="NEURON + forward (linear estimate)")
        for part, name in (("single", "(a)"), ("population", "(b)")):
            run = result.get(part) or {}
            if run and run.get(fixed[0]) == fixed[1]:
                ax.loglog([run[key]], [run["neuron_wall_s"]], "*", ms=12, color="C3",
                          label=f"NEURON {name} measured" + (" (scaled)" if part == "population" else ""))
                ax.loglog([run[key]], [run["surrogate_wall_s"]], "*", ms=12, color="C0",
                          label=f"surrogate {name}")
        ax.set_xlabel(label)
        ax.set_ylabel("wall time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    cpu = (result.get("machine") or {}).get("cpu_model", "?")
    fig.suptitle(f"{result.get('model_name')} on {cpu}, {result.get('torch_threads')} torch "
                 f"thread(s); NEURON {per and round(per, 2)} s per cell-second", fontsize=9)
    return fig
