"""The shipped models against NEURON on fixed seeds: the regression guard of every retraining.

Three short samples of the shipped cell (one per training protocol, fixed seeds) are
simulated in NEURON and predicted by the surrogate through the public API only
(``load_cell``, ``poisson_inputs``, ``simulate``, ``load_model``, ``predict_lfp``,
``forward_model`` and the metric functions of ``lfpsurrogate.evaluate``). The figures are
compared with the model's own held-out figures, read at run time from ``metrics.json`` in
the model folder (``test`` split), so the test follows whatever model is shipped. Every
shipped model (``SHIPPED``) is checked on the same NEURON runs.

Margins (3 x 3 s here against 59 x 2 s in metrics.json, so sampling noise is allowed for):

* soma RMSE (clipped at -55 mV): at most 1.5 x the reference + 0.5 mV;
* LFP r (laminar-16, soma at (50, 0, 0) µm, median over contacts): at least the reference
  - 0.3 (the first shipped model: 0.35 here against 0.56 in metrics.json; r varies from
  sample to sample much more than the soma RMSE);
* spikes (the model's calibrated threshold, ±2 ms): the number of predicted spikes that
  match a true one must not be improbably low for the reference precision: P(X <= hits)
  >= 1e-3 for X ~ Binomial(predicted, reference precision). (A fixed F1 margin cannot be
  both safe and meaningful here: at F1 0.13 a correct model matches ~2 of ~17 spikes in
  3 s, and 0 with probability ~0.1; a broken spike generator matches none of many.)
* predicted / true spike count within a factor 2 of the reference's ratio (the firing
  rate that the calibrated threshold gives; a threshold of 0 instead of the calibrated one
  multiplies it several-fold).

The margins are stated again in docs/reliability.md.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import lfpsurrogate as lfps
from lfpsurrogate import evaluate as ev

SEEDS = {"constant": 101, "modulated": 202, "piecewise": 303}
DURATION_MS = 3000
SOMA_RMSE_FACTOR, SOMA_RMSE_EXTRA_MV = 1.5, 0.5
LFP_R_DROP = 0.3
HITS_TAIL = 1e-3   # matched spikes this improbable under the reference precision fail
RATE_FACTOR = 2.0


SHIPPED = ("l5_ttpc1", "l5_ttpc1_fast")


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request):
    import torch

    torch.set_num_threads(1)
    model = lfps.load_model(request.param, device="cpu")
    reference = json.loads((model.path / "metrics.json").read_text())["test"]
    assert reference["model_fingerprint"] == model.fingerprint, \
        "metrics.json was not made with the shipped weights"
    return model, reference


@pytest.fixture(scope="module")
def neuron_runs():
    """The cell, and for each protocol its inputs and NEURON's run (shared by the models)."""
    cell = lfps.load_cell("l5_ttpc1")
    runs = []
    for protocol, seed in SEEDS.items():
        x = lfps.poisson_inputs(cell, DURATION_MS, seed, protocol=protocol)
        runs.append((x, lfps.simulate(cell, x, progress=False)))
    return cell, runs


@pytest.mark.slow
def test_shipped_model_against_neuron_on_fixed_seeds(shipped, neuron_runs):
    model, ref = shipped
    cell, runs = neuron_runs
    assert cell.geometry.fingerprint == model.geometry.fingerprint
    burn = max(int(model.model.receptive_field), 50)
    fwd = lfps.forward_model(cell.geometry, "laminar-16", signals=("lfp",), position=(50, 0, 0),
                             rotation=(0, 0, 0))
    soma = cell.geometry.soma_index
    v_hat, v_true, lfp_hat, lfp_true = [], [], [], []
    tp = fp = fn = 0
    for x, truth in runs:
        pred = lfps.predict_lfp(x, model=model.path, probe="laminar-16", positions=(50, 0, 0),
                                rotations=(0, 0, 0), signals=("v", "lfp", "spikes"), cell=cell,
                                device="cpu")
        v_hat.append(pred["v"].values[0, soma, burn:])
        v_true.append(truth["v"].values[soma, burn:])
        lfp_hat.append(pred["lfp"].values[:, burn:])
        lfp_true.append(fwd.from_currents(truth["imem"])["lfp"].values[:, burn:])
        true_bins = np.flatnonzero(truth["spikes"].values[burn:] > 0)
        pred_bins = np.flatnonzero(pred["spikes"].values[0, burn:] > 0)
        hits = len(ev.match_spikes(pred_bins, true_bins, tolerance_bins=2))
        tp, fp, fn = tp + hits, fp + len(pred_bins) - hits, fn + len(true_bins) - hits
    soma_rmse = ev.soma_rmse_clipped(np.concatenate(v_hat), np.concatenate(v_true))
    lfp_r = float(np.nanmedian(ev.pearson_r(np.concatenate(lfp_hat, 1), np.concatenate(lfp_true, 1))))
    f1 = ev.spike_f1(tp, fp, fn) if tp + fp + fn else float("nan")
    print(f"{model.path.name}: soma RMSE {soma_rmse:.2f} mV (ref {ref['soma_rmse_mv']:.2f}), LFP r {lfp_r:.3f} "
          f"(ref {ref['lfp_r_median']:.3f}), spike F1 {f1:.3f} (ref {ref['spike_f1']:.3f}; "
          f"true {tp + fn}, predicted {tp + fp})")
    assert soma_rmse <= SOMA_RMSE_FACTOR * ref["soma_rmse_mv"] + SOMA_RMSE_EXTRA_MV
    assert lfp_r >= ref["lfp_r_median"] - LFP_R_DROP
    assert tp + fn > 0, "the cell did not fire on these seeds: choose others"
    from scipy.stats import binom

    precision = ref["spike_precision"]
    assert binom.cdf(tp, tp + fp, precision) >= HITS_TAIL, (tp, tp + fp, precision)
    ratio, ref_ratio = (tp + fp) / (tp + fn), ref["n_predicted_spikes"] / ref["n_true_spikes"]
    assert ref_ratio / RATE_FACTOR <= ratio <= ref_ratio * RATE_FACTOR, (ratio, ref_ratio)


def test_every_shipped_model_folder_is_checked_against_neuron():
    from lfpsurrogate.modelfolder import models_root

    folders = {p.name for p in models_root().iterdir() if (p / "model.json").is_file()}
    assert folders == set(SHIPPED), f"add {sorted(folders - set(SHIPPED))} to SHIPPED"
