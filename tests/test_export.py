"""Spike-threshold calibration on the validation split, and `lfpsurrogate export`: a training
run of a user's cell -> a model folder that predict_lfp loads."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lfpsurrogate as lfps
from lfpsurrogate.calibrate import best_threshold, calibrate_spike_threshold

CELL_FILE = Path(__file__).parent / "data" / "l5like" / "cell.yaml"


def test_best_threshold_recovers_a_biased_logit():
    rng = np.random.default_rng(0)
    logits, spikes = [], []
    for _ in range(5):
        bins = np.sort(rng.choice(np.arange(5, 995), 8, replace=False))
        bins = bins[np.r_[True, np.diff(bins) > 3]]
        logit = np.full(1000, 2.0)  # a logit biased upwards: 0 would call a spike everywhere
        logit[bins] = 7.0
        logits.append(logit)
        spikes.append(bins)
    thr, f1 = best_threshold(logits, spikes)
    assert f1 == 1.0
    assert thr == 2.25  # the first grid value above the bias: every spike, nothing else
    thr0, f10 = best_threshold(logits, spikes, grid=[0.0])
    assert f10 < 0.1  # at logit 0 every sample's first bin is a false spike... and no match


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A store of the l5like cell (train/val/test) and a run folder with a small untrained
    'ours' checkpoint whose spike logit is biased upwards, as training leaves it."""
    import torch

    from lfpsurrogate.data import store_geometry
    from lfpsurrogate.nn import build_model, fit_normalisation, save_checkpoint

    root = tmp_path_factory.mktemp("export")
    store = root / "s.zarr"
    res = subprocess.run(
        [sys.executable, "-m", "lfpsurrogate.cli", "dataset", "generate", "--cell", str(CELL_FILE),
         "--n-samples", "6", "--duration-ms", "400", "--splits", "train=0.34,val=0.33,test=0.33",
         "--protocol", "constant", "--rate-exc", "8", "--workers", "1", "--no-progress",
         "--json", "--out", str(store)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    g = store_geometry(store)
    torch.manual_seed(0)
    model = build_model({"architecture": "ours", "hidden": 8, "layers": 2, "rank": 6,
                         "first_kernel": 5, "local_features": 2}, g.n_channels, g.n_segments, g)
    x = torch.from_numpy(lfps.poisson_inputs(g, 300, seed=0).values[None].astype(np.float32))
    fit_normalisation(model, x, torch.randn(1, g.n_segments, 300) * 3 - 65)
    with torch.no_grad():
        model.spike_head.weight.mul_(20.0)
        model.spike_head.bias.fill_(3.0)
    save_checkpoint(root / "run" / "best", model, config={"note": "test"},
                    cell_fingerprint=g.fingerprint)
    return root, store, model


def test_calibration_equals_evaluate_on_the_val_split(trained_run):
    from lfpsurrogate.evaluate import evaluate

    root, store, model = trained_run
    thr = calibrate_spike_threshold(model, store, "val")
    ref = evaluate(root / "run" / "best", store, "val", calibrate_spikes=True)
    assert thr == ref["spike_logit_threshold_best"]
    assert thr != 0.0  # the biased logit needs a threshold above 0


def test_export_cli_writes_a_loadable_model_folder(trained_run):
    root, store, model = trained_run
    out = root / "my_model"
    res = subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", "export", "--run",
                          str(root / "run"), "--data", str(store), "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    thr = calibrate_spike_threshold(model, store, "val")
    # the chosen threshold may be a quantile of the logits, whose last float32 bits depend
    # on the torch thread count (the CLI's process vs this one's)
    assert summary["spike_logit_threshold"] == pytest.approx(thr, rel=1e-6)
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["spike_logit_threshold"] == summary["spike_logit_threshold"]
    lo, hi = sidecar["input_rate_hz"]
    assert 0 < lo <= hi
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["spike_logit_threshold"] == summary["spike_logit_threshold"]
    assert metrics["test"]["split"] == "test"
    card = (out / "README.md").read_text()
    assert "l5like" in card and f"{thr:.2f}" in card and "validation split" in card
    assert (out / "MANIFEST.json").is_file()
    ds = lfps.predict_lfp(rates={"duration_ms": 100}, model=out, signals=("lfp", "spikes"))
    assert ds.attrs["model"] == "my_model" and np.isfinite(ds.lfp.values).all()
    # refusals: an existing folder, a run without a checkpoint
    res = subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", "export", "--run",
                          str(root / "run"), "--data", str(store), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "--overwrite" in res.stderr
    res = subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", "export", "--run",
                          str(root), "--data", str(store), "--out", str(root / "x")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "holds no checkpoint" in res.stderr


def test_export_of_a_spiking_model_calibrates_inside_its_feedback_loop(trained_run):
    """A spiking model's threshold acts inside its loop: export writes a calibrated
    checkpoint (threshold in the weights, sidecar threshold 0), and predict_lfp's spikes from
    the folder are the model's own free-running spikes."""
    import torch

    from lfpsurrogate.calibrate import calibrate_for_export
    from lfpsurrogate.data import store_geometry
    from lfpsurrogate.export import export_run
    from lfpsurrogate.nn import build_model, fit_normalisation, load_model, save_checkpoint

    root, store, _ = trained_run
    g = store_geometry(store)
    torch.manual_seed(1)
    model = build_model({"architecture": "spiking", "hidden": 8, "layers": 2, "rank": 6,
                         "first_kernel": 5, "n_bumps": 3, "max_lag_ms": 20, "input_modes": 6,
                         "spike_history_ms": 8, "waveform_ms": 6}, g.n_channels, g.n_segments, g)
    x = torch.from_numpy(lfps.poisson_inputs(g, 300, seed=0).values[None].astype(np.float32))
    fit_normalisation(model, x, torch.randn(1, g.n_segments, 300) * 3 - 65)
    with torch.no_grad():
        model.w_spike.mul_(300.0)  # a drive that crosses 0 now and then
    save_checkpoint(root / "spk" / "best", model, config={"note": "test"},
                    cell_fingerprint=g.fingerprint)
    ckpt, threshold, report = calibrate_for_export(root / "spk" / "best", store, g)
    assert threshold == 0.0 and ckpt.name == "best_calibrated"
    calibrated, meta = load_model(ckpt, geometry=g)
    assert float(calibrated.spike_threshold) == report["threshold"]
    assert meta["spike_calibration"]["threshold"] == report["threshold"]
    errs = report["val_error_by_waveform_gain"]
    assert float(calibrated.waveform_gain) == min(errs, key=lambda k: errs[k]["total"])

    out = root / "spk_model"
    export_run(root / "spk", store, out)
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["spike_logit_threshold"] == 0.0 and "spike_calibration" in sidecar
    counts = lfps.poisson_inputs(g, 400, seed=5, rate_exc_hz=8.0)
    ds = lfps.predict_lfp(counts, model=out, signals=("lfp", "spikes"))
    with torch.no_grad():
        own = calibrated(torch.from_numpy(counts.values[None].astype(np.float32)))["spikes"]
    assert own.sum() > 0
    assert np.array_equal(ds["spikes"].values[0] > 0, own[0].numpy() > 0)


def test_threshold_choice_treats_f1_within_a_hundredth_as_a_tie():
    """The 32-wide l5_ttpc1's validation scores (session 8): the best F1 (3.25) fires 7 %
    too rarely; 3.10 gives up 0.007 of F1, within the spread of retraining, for a rate
    within 1 %. Recurrent networks amplify a rate error (a 12-cell network fired 29 % below
    NEURON at 3.25)."""
    from lfpsurrogate.calibrate import choose_threshold

    scores = {2.75: (0.1226, 1.182), 3.0: (0.1228, 1.042), 3.102: (0.1182, 0.991),
              3.25: (0.1251, 0.926), 3.39: (0.1180, 0.863), 3.5: (0.1227, 0.826)}
    assert choose_threshold(scores) == 3.102
    assert choose_threshold(scores, f1_tolerance=0.0) == 3.25
    # the tolerance is 0.01: 0.008 below the best is a tie, 0.012 below is not
    assert choose_threshold({1.0: (0.200, 0.93), 2.0: (0.192, 1.0)}) == 2.0
    assert choose_threshold({1.0: (0.200, 0.93), 2.0: (0.188, 1.0)}) == 1.0
    # the best F1 is taken among rates within 10 % only: a threshold firing 50 % too often
    # with F1 0.30 does not raise the bar (else none would be left and the closest rate
    # over all, 3.0, would win)
    assert choose_threshold({0.5: (0.30, 1.5), 1.0: (0.20, 0.92), 2.0: (0.195, 0.95),
                             3.0: (0.10, 0.99)}) == 2.0
    # equal rates: the better F1, whatever the order
    assert choose_threshold({1.0: (0.195, 1.04), 2.0: (0.200, 1.04)}) == 2.0
    assert choose_threshold({1.0: (0.200, 1.04), 2.0: (0.195, 1.04)}) == 1.0


def test_threshold_choice_keeps_the_firing_rate_within_ten_percent():
    """The shipped model's validation scores (threshold: (F1, rate ratio)): the best F1
    fires 42 % too often; the chosen threshold gives up 0.005 of F1 for a rate within 2 %."""
    from lfpsurrogate.calibrate import choose_threshold

    scores = {-2.5: (0.1151, 1.665), -2.0: (0.1217, 1.417), -1.5: (0.1194, 1.194),
              -1.0: (0.1168, 1.014), -0.5: (0.1070, 0.871), 0.0: (0.1070, 0.754)}
    assert choose_threshold(scores) == -1.0
    # a looser rate rule: the best F1 (-2.0), unless F1 within 0.01 counts as a tie
    assert choose_threshold(scores, rate_tolerance=0.5, f1_tolerance=0.0) == -2.0
    assert choose_threshold(scores, rate_tolerance=0.5) == -1.0  # 0.0049 below: the closer rate
    # no threshold within 10 %: the closest rate (0.80 beats 1.30), whatever its F1
    assert choose_threshold({1.0: (0.5, 1.30), 2.0: (0.1, 0.80), 3.0: (0.05, 0.5)}) == 2.0
    # undefined F1s are skipped; nothing defined -> None
    assert choose_threshold({1.0: (float("nan"), 1.0), 2.0: (0.2, 1.05)}) == 2.0
    assert choose_threshold({1.0: (float("nan"), 1.0)}) is None
