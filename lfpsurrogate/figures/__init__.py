"""Every figure lfpsurrogate draws, in one place: ``from lfpsurrogate import figures``.

Figures are matplotlib ``Figure`` objects returned to the caller; save them with
:func:`lfpsurrogate.io.save_figure` (atomic). Modules by theme:

- ``signals``: laminar LFP + CSD, EEG topography, MEG field map, readable units, and the
  set of them the command line draws (``signal_figures``);
- ``morphology``: placed cell(s) with the probe drawn in place;
- ``truth``: one ground-truth (NEURON) run;
- ``evaluation``: per-segment voltage RMSE by region, example traces of a held-out sample;
- ``bench``: wall time of the surrogate and NEURON against cells and duration.
"""
from __future__ import annotations

from .bench import plot_scaling
from .evaluation import pick_channels, plot_example_traces, plot_rmse_by_region, write_figures
from .morphology import plot_morphology
from .signals import (csd_from_lfp, decade_units, laminar_column, plot_eeg_topography,
                      plot_laminar, plot_meg_field_map, readable_units, scaling_note,
                      scalp_projection, signal_figures)
from .truth import plot_simulation

__all__ = [
    # signals
    "csd_from_lfp", "decade_units", "laminar_column", "plot_eeg_topography", "plot_laminar",
    "plot_meg_field_map", "readable_units", "scaling_note", "scalp_projection", "signal_figures",
    # morphology
    "plot_morphology",
    # truth
    "plot_simulation",
    # evaluation
    "pick_channels", "plot_example_traces", "plot_rmse_by_region", "write_figures",
    # bench
    "plot_scaling",
]
