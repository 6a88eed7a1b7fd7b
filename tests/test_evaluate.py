"""lfpsurrogate.evaluate: metrics, free-running evaluation of a model on a store, figures,
the `evaluate` command and its refusals. Uses a tiny pyramid_hh store (5 samples x 300 ms)."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lfpsurrogate.errors import LfpsurrogateError
from lfpsurrogate.evaluate import (
    Evaluator, EvaluationError, evaluate, evaluate_model, match_spikes, pearson_r,
    relative_rmse, roc_auc, segment_regions, signal_matrices, soma_rmse_clipped, spike_counts,
    spike_f1, spike_onsets,
)

torch.set_num_threads(1)

REQUIRED = (
    "soma_rmse_mv", "spike_auc", "spike_f1", "v_rmse_mv_median", "v_explained_variance_median",
    "v_explained_variance_by_region", "imem_r_median", "dipole_r", "dipole_r_by_axis",
    "lfp_r_median", "eeg_r_median", "meg_r_median", "v_rel_rmse", "imem_rel_rmse",
    "dipole_rel_rmse", "lfp_rel_rmse", "eeg_rel_rmse", "meg_rel_rmse", "n_samples",
    "evaluated_ms", "burn_in_ms", "split", "data_fingerprint", "cell_fingerprint",
    "model_fingerprint", "architecture", "n_parameters", "surrogate_wall_s",
)
TINY = {"architecture": "tcn", "hidden": 8, "layers": 2, "first_kernel": 5, "kernel_size": 3}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from lfpsurrogate.data import GenerationParams
    from lfpsurrogate.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("evaluate") / "s.zarr"
    params = GenerationParams(cell="pyramid_hh", n_samples=4, duration_ms=300.0, seed=5,
                              n_shift=1, rate_exc_hz=10.0,
                              splits=(("train", 0.5), ("val", 0.25), ("test", 0.25)))
    generate_dataset(out, params, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def geom(store):
    from lfpsurrogate.data import store_geometry

    return store_geometry(store)


@pytest.fixture(scope="module")
def signals(geom):
    return signal_matrices(geom)


def load_samples(store, split):
    import zarr

    from lfpsurrogate.data import split_samples

    g = zarr.open_group(str(store), mode="r")
    out = []
    for i in split_samples(store, split):
        s = np.asarray(g["spikes"][i]).astype(int)
        out.append((np.asarray(g["inputs"][i]), np.asarray(g["v"][i], dtype=np.float64),
                    np.repeat(np.flatnonzero(s), s[s > 0])))
    return out


def logits_from(spike_bins, n_time):
    logit = np.full(n_time, -8.0)
    logit[spike_bins] = 8.0
    return logit


class Oracle(torch.nn.Module):
    """Returns the stored voltages of whichever stored sample it is given (looked up by its
    input counts) and a spike logit built from the true spikes."""

    def __init__(self, samples, n_channels, n_segments, receptive_field=7):
        super().__init__()
        self.table = {x.astype(np.float32).tobytes(): (v, b) for x, v, b in samples}
        self.n_channels, self.n_segments, self.receptive_field = n_channels, n_segments, receptive_field

    def forward(self, x):
        vs, ls = [], []
        for row in x.numpy():
            v, bins = self.table[row.tobytes()]
            vs.append(v)
            ls.append(logits_from(bins, v.shape[1]))
        return {"v": torch.tensor(np.stack(vs), dtype=torch.float32),
                "spike_logit": torch.tensor(np.stack(ls), dtype=torch.float32)}


def saved_model(tmp_path, geom, fingerprint=None):
    from lfpsurrogate.nn import build_model, save_checkpoint

    model = build_model(TINY, geom.n_channels, geom.n_segments, geom)
    save_checkpoint(tmp_path / "ck" / "best", model,
                    cell_fingerprint=fingerprint or geom.fingerprint)
    return tmp_path / "ck" / "best"


# ---- plain metrics --------------------------------------------------------------------
def test_soma_rmse_clips_both_at_minus_55():
    truth = np.array([-70.0, -50.0, 0.0, 20.0])
    pred = np.array([-69.0, -40.0, -56.0, 30.0])
    # clipped: truth -70 -55 -55 -55, pred -69 -55 -56 -55 -> errors 1 0 1 0
    assert soma_rmse_clipped(pred, truth) == pytest.approx(math.sqrt(2 / 4))
    assert soma_rmse_clipped(truth + 100, truth) == pytest.approx(
        math.sqrt(np.mean((np.minimum(truth + 100, -55) - np.minimum(truth, -55)) ** 2)))


def test_auc_matches_hand_computation_and_pairwise_count():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)  # 3 of 4 pairs
    assert roc_auc([1.0, 1.0, 0.0], [1, 0, 0]) == pytest.approx(0.75)  # a tie counts one half
    assert roc_auc([0.3, 0.2], [1, 0]) == 1.0 and roc_auc([0.3, 0.2], [0, 1]) == 0.0
    assert math.isnan(roc_auc([1, 2, 3], [0, 0, 0]))
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=300), 1)  # many ties
    y = rng.random(300) < 0.2
    diff = s[y][:, None] - s[~y][None, :]
    brute = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert roc_auc(s, y) == pytest.approx(brute, abs=1e-12)


def test_spike_onsets_are_upward_crossings():
    logit = np.array([-1, 1, 2, -1, 0, 0, -3, 5, -1], dtype=float)  # p >= 0.5 at logit >= 0
    assert spike_onsets(logit).tolist() == [1, 4, 7]
    assert spike_onsets(logit, start=2).tolist() == [4, 7]


@pytest.mark.parametrize("offset, hit", [(0, True), (2, True), (-2, True), (3, False), (-3, False)])
def test_spike_f1_tolerance_is_two_ms(offset, hit):
    n, true_bin = 400, 200
    logit = logits_from([true_bin + offset], n)
    tp, fp, fn = spike_counts(logit, [true_bin], burn_in=50, tolerance_bins=2)
    assert (tp, fp, fn) == ((1, 0, 0) if hit else (0, 1, 1))
    assert spike_f1(tp, fp, fn) == (1.0 if hit else 0.0)


def test_spike_matching_is_one_to_one():
    assert len(match_spikes([99, 101], [100], 2)) == 1  # two predictions, one true spike
    assert len(match_spikes([100], [99, 101], 2)) == 1
    assert len(match_spikes([98, 103], [100, 101], 2)) == 2  # greedy must not waste 98
    logit = logits_from([99, 101], 300)  # two onsets (99, 101): one TP, one FP
    assert spike_counts(logit, [100], burn_in=50, tolerance_bins=2) == (1, 1, 0)
    # a prediction matched to a spike inside the burn-in counts neither way
    assert spike_counts(logits_from([51], 300), [49], burn_in=50, tolerance_bins=2) == (0, 0, 0)
    assert math.isnan(spike_f1(0, 0, 0))


def test_regions_and_tuft_rule(stick):
    regions = segment_regions(stick)
    assert set(regions) == {"soma", "apical_trunk_oblique", "tuft"}  # absent ones omitted
    z = stick.midpoints[:, 2]
    assert np.all(z[regions["tuft"]] > 0.6 * z.max())
    assert np.all(z[regions["apical_trunk_oblique"]] <= 0.6 * z.max())
    assert len(regions["tuft"]) + len(regions["apical_trunk_oblique"]) == 10


def test_streaming_statistics_equal_pooled_numpy(stick):
    rng = np.random.default_rng(1)
    s = stick.n_segments
    a = [-65 + rng.normal(size=(s, 120)).cumsum(1) * 0.3 for _ in range(2)]
    b = [x + rng.normal(scale=0.5, size=x.shape) for x in a]
    ev = Evaluator(stick, burn_in=20)
    for x, y in zip(a, b):
        ev.add(y, x)
    res = ev.result()
    xa = np.concatenate([x[:, 20:] for x in a], 1)
    ya = np.concatenate([y[:, 20:] for y in b], 1)
    assert res["v_rel_rmse"] == pytest.approx(relative_rmse(ya, xa), rel=1e-9)
    assert ev.v.r() == pytest.approx(pearson_r(xa, ya), rel=1e-9)
    ev_direct = 1 - (ya - xa).var(1) / xa.var(1)
    assert res["v_explained_variance_median"] == pytest.approx(np.median(ev_direct), rel=1e-9)
    m = stick.vmem_to_imem
    assert res["imem_rel_rmse"] == pytest.approx(relative_rmse(m @ ya, m @ xa), rel=1e-9)
    assert res["evaluated_ms"] == 200 and res["n_samples"] == 2


def test_radial_stick_has_no_meg_and_no_tangential_dipole(stick):
    """Every point of the stick is on the z axis; placed under the vertex its dipole is
    exactly radial, so the MEG of a spherical conductor is zero on every channel: those
    channels are excluded from the r median (no channel left: null), not counted as r = 0."""
    sig = signal_matrices(stick, position=(0.0, 0.0, 0.0))
    assert np.abs(sig.matrix[sig.slices["meg"]]).max() == 0
    rng = np.random.default_rng(2)
    v = -65 + rng.normal(size=(stick.n_segments, 200)).cumsum(1) * 0.2
    ev = Evaluator(stick, burn_in=50, signals=sig)
    ev.add(v + rng.normal(scale=0.1, size=v.shape), v)
    res = ev.result()
    assert res["meg_channels_used"] == 0 and math.isnan(res["meg_r_median"])
    assert math.isnan(res["dipole_r_by_axis"]["x"]) and res["dipole_r"] == pytest.approx(
        res["dipole_r_by_axis"]["z"])
    assert res["eeg_channels_used"] == 19


# ---- on a real store ------------------------------------------------------------------
def test_oracle_is_perfect(store, geom, signals):
    samples = load_samples(store, "test") + load_samples(store, "shift")
    ev = Evaluator(geom, burn_in=50, signals=signals)
    for _, v, bins in samples:
        ev.add(v, v, logits_from(bins, v.shape[1]), bins)
    res = ev.result()
    assert res["n_true_spikes"] > 0
    for key in ("imem_r_median", "dipole_r", "lfp_r_median", "eeg_r_median", "meg_r_median",
                "v_explained_variance_median", "spike_f1", "spike_auc"):
        assert res[key] == pytest.approx(1.0, abs=1e-9), key
    for key in ("soma_rmse_mv", "v_rmse_mv_median", "v_rel_rmse", "imem_rel_rmse",
                "dipole_rel_rmse", "lfp_rel_rmse", "eeg_rel_rmse", "meg_rel_rmse"):
        assert res[key] == pytest.approx(0.0, abs=1e-9), key
    assert set(res["v_explained_variance_by_region"]) == {"soma", "basal", "apical_trunk_oblique", "tuft"}


def test_oracle_model_through_evaluate_model(store, geom, tmp_path):
    samples = load_samples(store, "test")
    oracle = Oracle(samples, geom.n_channels, geom.n_segments)
    res = evaluate_model(oracle, geom, store, "test", out_dir=tmp_path / "figs")
    assert res["n_samples"] == 1 and res["burn_in_ms"] == 50.0 and res["evaluated_ms"] == 250.0
    assert res["lfp_r_median"] == pytest.approx(1.0, abs=1e-6)
    assert res["soma_rmse_mv"] < 1e-4 and res["spike_f1"] == 1.0
    for name in ("voltage_rmse_by_region.png", "example_traces.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 10_000
    json.dumps(res, allow_nan=False)


def test_noise_lowers_lfp_r_and_gives_one_mv_soma_rmse(store, geom, signals):
    rng = np.random.default_rng(0)
    samples = load_samples(store, "train") + load_samples(store, "test")
    ev = Evaluator(geom, burn_in=50, signals=signals)
    soma, pred_all, true_all = geom.soma_index, [], []
    for _, v, bins in samples:
        noisy = v + rng.normal(scale=1.0, size=v.shape)
        ev.add(noisy, v, logits_from(bins, v.shape[1]), bins)
        pred_all.append(noisy[soma, 50:])
        true_all.append(v[soma, 50:])
    res = ev.result()
    assert 0.5 < res["lfp_r_median"] < 0.95 and res["imem_r_median"] < 0.5  # M amplifies noise
    assert res["v_rmse_mv_median"] == pytest.approx(1.0, abs=0.1)
    expected = soma_rmse_clipped(np.concatenate(pred_all), np.concatenate(true_all))
    assert res["soma_rmse_mv"] == pytest.approx(expected, rel=1e-12)
    assert res["soma_rmse_mv"] < 1.0  # clipping removes the error while v > -55 mV
    assert res["soma_rmse_mv"] == pytest.approx(1.0, abs=0.15)


def test_signal_r_against_lfpykit(store, geom, signals):
    """lfp_r_median and dipole_r of a noisy prediction against the same figures computed
    here from lfpykit's own LineSourcePotential and CurrentDipoleMoment (cell at
    (50, 0, 0) µm, laminar-16 contacts, sigma 0.3 S/m), not from signal_matrices."""
    from lfpykit import CellGeometry as KitGeometry, CurrentDipoleMoment, LineSourcePotential

    from lfpsurrogate import load_probe

    rng = np.random.default_rng(1)
    samples = load_samples(store, "train") + load_samples(store, "test")
    burn_in = 50
    ev = Evaluator(geom, burn_in=burn_in, signals=signals)
    truth, pred = [], []
    for _, v, bins in samples:
        noisy = v + rng.normal(scale=0.5, size=v.shape)
        ev.add(noisy, v, logits_from(bins, v.shape[1]), bins)
        truth.append(v[:, burn_in:])
        pred.append(noisy[:, burn_in:])
    res = ev.result()
    v_true, v_pred = np.concatenate(truth, 1), np.concatenate(pred, 1)
    m = geom.vmem_to_imem
    kit = KitGeometry(x=geom.x + 50.0, y=geom.y, z=geom.z, d=geom.d)
    contacts = load_probe("laminar-16").positions
    k_lfp = LineSourcePotential(kit, x=contacts[:, 0], y=contacts[:, 1], z=contacts[:, 2],
                                sigma=0.3).get_transformation_matrix()

    def r_rows(a, b):
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))

    lfp_r = r_rows(k_lfp @ (m @ v_true), k_lfp @ (m @ v_pred))
    assert res["lfp_r_median"] == pytest.approx(float(np.median(lfp_r)), rel=1e-6)
    p_kit = CurrentDipoleMoment(KitGeometry(x=geom.x, y=geom.y, z=geom.z, d=geom.d)) \
        .get_transformation_matrix()
    p_true, p_pred = p_kit @ (m @ v_true), p_kit @ (m @ v_pred)
    weights = p_true.var(1)
    dipole_r = float((r_rows(p_true, p_pred) * weights).sum() / weights.sum())
    assert res["dipole_r"] == pytest.approx(dipole_r, rel=1e-6)
    assert 0.2 < res["lfp_r_median"] < 0.999  # the noise is visible, not swamping


def test_burn_in_follows_the_receptive_field(store, geom):
    samples = load_samples(store, "test")
    res = evaluate_model(Oracle(samples, geom.n_channels, geom.n_segments, receptive_field=87),
                         geom, store, "test")
    assert res["burn_in_ms"] == 87.0 and res["evaluated_ms"] == 300.0 - 87.0


def test_cli_command_on_a_checkpoint_and_a_model_folder(store, geom, tmp_path):
    from lfpsurrogate.cli.evaluate import add_parser
    from lfpsurrogate.modelfolder import export_model_folder

    ck = saved_model(tmp_path, geom)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["evaluate", "--model", str(ck), "--data", str(store),
                              "--split", "shift", "--n-samples", "1",
                              "--out-dir", str(tmp_path / "figs"), "--json"])
    res = args.func(args)
    missing = [k for k in REQUIRED if k not in res]
    assert not missing, missing
    assert res["split"] == "shift" and res["n_samples"] == 1 and res["architecture"] == "tcn"
    assert len(res["model_fingerprint"]) == 16 and res["cell_fingerprint"] == geom.fingerprint
    assert len(res["figures"]) == 2
    json.dumps(res, allow_nan=False)

    folder = export_model_folder(ck, geom, tmp_path / "models" / "tiny")
    res2 = evaluate(folder, store, "test")
    assert res2["model_fingerprint"] == res["model_fingerprint"]
    assert not [k for k in REQUIRED if k not in res2]


# ---- refusals -------------------------------------------------------------------------
def test_refuses_a_model_of_another_cell(store, geom, tmp_path, stick):
    from lfpsurrogate.modelfolder import export_model_folder
    from lfpsurrogate.nn import build_model, save_checkpoint

    ck = saved_model(tmp_path, geom, fingerprint="0123456789abcdef")
    with pytest.raises(LfpsurrogateError, match="0123456789abcdef"):
        evaluate(ck, store)
    other = build_model(TINY, stick.n_channels, stick.n_segments, stick)
    save_checkpoint(tmp_path / "st" / "best", other, cell_fingerprint=stick.fingerprint)
    folder = export_model_folder(tmp_path / "st" / "best", stick, tmp_path / "models" / "stick")
    with pytest.raises(LfpsurrogateError, match="trained for cell"):
        evaluate(folder, store)
    with pytest.raises(LfpsurrogateError, match="fingerprint"):
        evaluate_model(other, stick, store)  # the store holds another cell


def test_refuses_empty_split_and_missing_store(store, geom, tmp_path):
    import zarr

    ck = saved_model(tmp_path, geom)
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    from lfpsurrogate.data import split_samples

    done = zarr.open_array(str(copy / "done"), mode="r+")
    for i in split_samples(copy, "shift"):
        done[int(i)] = 0
    with pytest.raises(EvaluationError, match="no finished samples in split 'shift'"):
        evaluate(ck, copy, "shift")
    with pytest.raises(LfpsurrogateError, match="does not exist"):
        evaluate(ck, tmp_path / "nowhere.zarr")
    with pytest.raises(LfpsurrogateError, match="not a"):
        evaluate(ck, tmp_path / "ck")  # a folder that is not a dataset store
    with pytest.raises(LfpsurrogateError, match="unknown split"):
        evaluate(ck, store, "bogus")


def test_spike_threshold_calibration_recovers_a_biased_logit(stick):
    from lfpsurrogate.evaluate import Evaluator

    rng = np.random.default_rng(0)
    n_time, burn_in = 400, 20
    true_bins = np.array([50, 120, 200, 310])
    logit = rng.uniform(0.0, 2.0, n_time)  # biased up: p > 0.5 almost everywhere
    logit[true_bins] = 4.0
    v = np.zeros((stick.n_segments, n_time))
    ev = Evaluator(stick, burn_in)
    ev.add(v + rng.normal(0, 1, v.shape), v + rng.normal(0, 1, v.shape), logit, true_bins)
    at_zero = ev.result()["spike_f1"]
    best = ev.best_spike_threshold()
    assert 2.0 <= best < 4.0
    calibrated = Evaluator(stick, burn_in, spike_threshold=best)
    calibrated.add(v + 1.0, v, logit, true_bins)
    result = calibrated.result()
    assert result["spike_f1"] == 1.0 and at_zero < 0.2
    assert result["spike_logit_threshold"] == best


# ---- the spike threshold of a model folder ---------------------------------------------
def _folder_with_threshold(tmp_path, geom, threshold, name):
    """A tiny tcn model folder (same weights every time) whose sidecar sets the threshold."""
    from lfpsurrogate.modelfolder import export_model_folder

    torch.manual_seed(0)
    ck = saved_model(tmp_path / name, geom)
    extra = {} if threshold is None else {"spike_logit_threshold": threshold}
    return export_model_folder(ck, geom, tmp_path / name / "folder", sidecar_extra=extra)


def test_model_folder_spike_threshold_sets_evaluate_f1(store, geom, tmp_path):
    """evaluate() calls spikes at the model folder's threshold: the predicted count and the
    F1 are the ones computed here from the model's logits at that threshold (and differ
    between two thresholds); an explicit spike_threshold overrides the folder's."""
    from lfpsurrogate.modelfolder import load_surrogate

    samples = load_samples(store, "test")
    plain = _folder_with_threshold(tmp_path, geom, None, "plain")
    model = load_surrogate(plain).model
    burn = max(int(model.receptive_field), 50)
    with torch.no_grad():
        logits = [model(torch.tensor(x[None], dtype=torch.float32))["spike_logit"][0].double().numpy()
                  for x, _, _ in samples]
    post = np.concatenate([lg[burn:] for lg in logits])
    assert post.std() > 0
    levels = np.unique(post)
    candidates = [float((levels[i] + levels[i + 1]) / 2)
                  for i in (int(q * (len(levels) - 2)) for q in (0.5, 0.9, 0.2, 0.97, 0.7))]

    def expected(thr):
        """(predicted, F1) with onsets at >= thr after burn-in, matched within 2 bins."""
        n_pred, tp, n_true = 0, 0, 0
        for lg, (_, _, bins) in zip(logits, samples):
            above = lg >= thr
            onsets = np.flatnonzero(above[1:] & ~above[:-1]) + 1
            onsets, true = onsets[onsets >= burn], bins[bins >= burn]
            used, hits = set(), 0
            for p in onsets:  # greedy one-to-one: fine for spikes further apart than 4 bins
                near = [i for i, t in enumerate(true) if abs(int(p) - int(t)) <= 2 and i not in used]
                if near:
                    used.add(near[0])
                    hits += 1
            n_pred, tp, n_true = n_pred + len(onsets), tp + hits, n_true + len(true)
        f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else float("nan")
        return n_pred, f1

    counts = {thr: expected(thr)[0] for thr in candidates}
    thresholds = [candidates[0]]
    thresholds.append(next(t for t in candidates[1:] if counts[t] != counts[candidates[0]]))
    results = []
    for k, thr in enumerate(thresholds):
        folder = _folder_with_threshold(tmp_path, geom, thr, f"t{k}")
        res = evaluate(folder, store, "test")
        n_pred, f1 = expected(thr)
        assert res["spike_logit_threshold"] == thr
        assert res["n_predicted_spikes"] == n_pred > 0
        assert res["spike_f1"] == pytest.approx(f1, abs=1e-12)
        results.append(res)
    assert results[0]["n_predicted_spikes"] != results[1]["n_predicted_spikes"]
    override = evaluate(_folder_with_threshold(tmp_path, geom, thresholds[0], "o"), store, "test",
                        spike_threshold=thresholds[1])
    assert override["n_predicted_spikes"] == results[1]["n_predicted_spikes"]


# ---- end to end on a tiny store ----------------------------------------------------------
def test_train_export_evaluate_predict_end_to_end(store, geom, tmp_path):
    """train (from a YAML config, as the command does) -> export -> evaluate -> predict_lfp
    on the tiny store. evaluate's LFP r and soma RMSE on the test sample equal the ones
    computed here from predict_lfp's output against the LFP of the stored NEURON voltages."""
    import yaml

    from lfpsurrogate import forward_model, predict_lfp
    from lfpsurrogate.modelfolder import export_model_folder
    from lfpsurrogate.training import run_training

    config = {"model": {"architecture": "ours", "hidden": 8, "layers": 2, "first_kernel": 5,
                        "rank": 4, "local_features": 2},
              "data": {"train": [str(store)], "window_ms": 120, "n_windows": 8},
              "loss": {"v": 1.0, "spike": 0.1, "imem": 0.5, "dipole": 0.5},
              "optim": {"lr": 3e-3}, "train": {"epochs": 2, "batch_size": 4, "stats_windows": 4}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = run_training(path, tmp_path / "run", progress=False)
    assert summary["epochs_run"] == 2 and summary["cell_fingerprint"] == geom.fingerprint
    # the checkpoint records how many training samples of each store the run saw
    from lfpsurrogate.data import store_info

    n_train = store_info(store)["splits"]["train"]["done"]
    sidecar = json.loads(Path(summary["best_checkpoint"]).read_text())
    assert n_train > 0 and sidecar["train_samples"] == {str(store): n_train}
    folder = export_model_folder(summary["best_checkpoint"], geom, tmp_path / "tiny-model")
    assert json.loads((folder / "model.json").read_text())["train_samples"] == {str(store): n_train}
    res = evaluate(folder, store, "test")
    for key in REQUIRED:
        assert key in res, key
    assert res["n_samples"] == 1 and res["architecture"] == "ours"
    x, v_true, _ = load_samples(store, "test")[0]
    pred = predict_lfp(x, model=folder, probe="laminar-16", positions=(50, 0, 0),
                       rotations=(0, 0, 0), signals=("v", "lfp"))
    burn = int(res["burn_in_ms"])
    lfp_true = forward_model(geom, "laminar-16", position=(50, 0, 0)).from_voltages(v_true)["lfp"].values
    r = pearson_r(pred["lfp"].values[:, burn:], lfp_true[:, burn:])
    assert res["lfp_r_median"] == pytest.approx(float(np.median(r)), abs=1e-4)
    soma = geom.soma_index
    rmse = soma_rmse_clipped(pred["v"].values[0, soma, burn:], v_true[soma, burn:])
    assert res["soma_rmse_mv"] == pytest.approx(rmse, rel=1e-4)
    assert np.isfinite(pred["lfp"].values).all() and 0 < res["soma_rmse_mv"] < 30


# ---- the Evaluator's result, every field by hand (no store) ------------------------------
def _by_hand_corr(x, y):
    return np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(x, y)])


def test_evaluator_result_by_hand(stick):
    """Two samples on the stick, burn-in 30 bins: every voltage, current and spike field
    of result() recomputed here with numpy (np.corrcoef, a pairwise AUC, matches counted
    by hand), and the dipole r against lfpykit's CurrentDipoleMoment of M v."""
    from lfpykit import CellGeometry as KitGeometry, CurrentDipoleMoment

    rng = np.random.default_rng(4)
    s, n_time, b = stick.n_segments, 250, 30
    truth = [-60 + rng.normal(size=(s, n_time)).cumsum(1) * 0.4 for _ in range(2)]
    pred = [x + rng.normal(scale=0.7, size=x.shape) + 0.2 for x in truth]
    spikes = [np.array([10, 80, 150, 151]), np.array([31, 200])]  # 10: in the burn-in
    # predicted onsets: 81 (hit), 149 (hit), 152 (hit on the second spike at 151), 230 (FP);
    # sample 2: 33 (hit on 31), 200 missing (FN) -> TP 4, FP 1, FN 1 ... see below
    logits = [np.full(n_time, -5.0), np.full(n_time, -5.0)]
    for t in (81, 149, 152, 230):
        logits[0][t] = 3.0
    logits[1][33] = 3.0
    logits[1][120] = 0.5  # an onset below the threshold of 1.0 used here
    ev = Evaluator(stick, burn_in=b, spike_threshold=1.0)
    for p, x, lg, sp in zip(pred, truth, logits, spikes):
        ev.add(p, x, lg, sp)
    res = ev.result()
    assert ev.example["v_true"] is not None and np.array_equal(ev.example["v_true"], truth[0])
    assert np.array_equal(ev.example["spike_logit"], logits[0]) and ev.example["burn_in"] == b
    xa = np.concatenate([x[:, b:] for x in truth], 1)
    ya = np.concatenate([y[:, b:] for y in pred], 1)
    rmse = np.sqrt(((ya - xa) ** 2).mean(1))
    assert res["n_samples"] == 2 and res["evaluated_ms"] == 2 * (n_time - b)
    assert res["burn_in_ms"] == b
    assert res["v_rmse_mv_median"] == pytest.approx(np.median(rmse), rel=1e-9)
    assert res["v_r_median"] == pytest.approx(np.median(_by_hand_corr(xa, ya)), rel=1e-9)
    ev_seg = 1 - (ya - xa).var(1) / xa.var(1)
    reg = segment_regions(stick)
    for name, idx in reg.items():
        assert res["v_explained_variance_by_region"][name] == pytest.approx(np.median(ev_seg[idx]), rel=1e-9)
        assert res["v_rmse_mv_by_region"][name] == pytest.approx(np.median(rmse[idx]), rel=1e-9)
    soma = stick.soma_index
    clip = np.minimum(ya[soma], -55.0) - np.minimum(xa[soma], -55.0)
    assert res["soma_rmse_mv"] == pytest.approx(np.sqrt(np.mean(clip**2)), rel=1e-9)
    m = stick.vmem_to_imem.toarray()
    assert res["imem_r_median"] == pytest.approx(np.median(_by_hand_corr(m @ xa, m @ ya)), rel=1e-9)
    den = np.sqrt(((xa - xa.mean(1, keepdims=True)) ** 2).sum())
    assert res["v_rel_rmse"] == pytest.approx(np.sqrt(((ya - xa) ** 2).sum()) / den, rel=1e-9)
    # spikes: sample 1 counts 80, 150, 151 (10 is in the burn-in); onsets 81, 149, 152, 230
    # match 80, 150, 151 one to one (|d| <= 2); 230 is a false positive. Sample 2: 33 matches
    # 31; 200 is missed; 120 never reaches the threshold. TP 4, FP 1, FN 1.
    assert (res["n_true_spikes"], res["n_predicted_spikes"]) == (5, 5)
    assert res["spike_f1"] == pytest.approx(8 / 10)
    assert res["spike_precision"] == pytest.approx(4 / 5) and res["spike_recall"] == pytest.approx(4 / 5)
    seconds = 2 * (n_time - b) / 1000
    assert res["firing_rate_true_hz"] == pytest.approx(5 / seconds)
    assert res["firing_rate_predicted_hz"] == pytest.approx(5 / seconds)
    assert res["firing_rate_rel_error"] == 0.0 and res["spike_logit_threshold"] == 1.0
    scores = np.concatenate([lg[b:] for lg in logits])
    labels = np.zeros(scores.size, bool)
    for k, sp in enumerate(spikes):
        labels[k * (n_time - b) + sp[sp >= b] - b] = True
    diff = scores[labels][:, None] - scores[~labels][None, :]
    assert res["spike_auc"] == pytest.approx(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)
    # the dipole: lfpykit's matrix applied to M v, r per axis (the stick is along z only)
    sig = signal_matrices(stick, position=(0.0, 0.0, 0.0))
    ev2 = Evaluator(stick, burn_in=b, signals=sig)
    for p, x in zip(pred, truth):
        ev2.add(p, x)
    kit = CurrentDipoleMoment(KitGeometry(x=stick.x, y=stick.y, z=stick.z, d=stick.d))
    pz_true = (kit.get_transformation_matrix() @ m @ xa)[2]
    pz_hat = (kit.get_transformation_matrix() @ m @ ya)[2]
    r2 = ev2.result()
    assert r2["dipole_r_by_axis"]["z"] == pytest.approx(np.corrcoef(pz_true, pz_hat)[0, 1], rel=1e-9)
    assert r2["dipole_rel_rmse"] == pytest.approx(
        np.sqrt(((pz_hat - pz_true) ** 2).sum() / ((pz_true - pz_true.mean()) ** 2).sum()), rel=1e-9)


def test_burn_in_and_true_spike_bins():
    """Burn-in: max(receptive field, 50 ms) unless given (ceil to whole bins); stored spike
    counts per bin become one bin index per spike."""
    from types import SimpleNamespace

    from lfpsurrogate.evaluate import _burn_in_bins, _true_spike_bins

    assert _burn_in_bins(SimpleNamespace(receptive_field=80), 1.0, None) == 80
    assert _burn_in_bins(SimpleNamespace(receptive_field=10), 1.0, None) == 50
    assert _burn_in_bins(SimpleNamespace(receptive_field=10), 2.0, None) == 25
    assert _burn_in_bins(SimpleNamespace(), 0.5, None) == 100
    assert _burn_in_bins(SimpleNamespace(receptive_field=80), 2.0, 33.0) == 17
    assert _burn_in_bins(SimpleNamespace(receptive_field=80), 1.0, 20.0) == 20
    assert _true_spike_bins(np.array([0, 2, 0, 1, 0])).tolist() == [1, 1, 3]
    assert _true_spike_bins(np.zeros(4, np.int16)).tolist() == []


def test_pearson_r_edge_cases_and_relative_rmse_by_hand():
    x = np.array([[1.0, 2.0, 3.0, 5.0], [2.0, 2.0, 2.0, 2.0], [1.0, 0.0, 1.0, 0.0]])
    y = np.array([[2.0, 1.0, 4.0, 4.0], [1.0, 3.0, 2.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    r = pearson_r(x, y)
    assert r[0] == pytest.approx(np.corrcoef(x[0], y[0])[0, 1])
    assert math.isnan(r[1]) and r[2] == 0.0  # no variance in x: NaN; only in y: 0
    assert pearson_r([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # ||pred - true|| / ||true - mean||: errors (1, -1, 0, 0), deviations (-1.5, -0.5, 0.5, 1.5)
    assert relative_rmse([2.0, 1.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(math.sqrt(2 / 5))
    assert math.isnan(relative_rmse([1.0, 2.0], [3.0, 3.0]))


def test_best_spike_threshold_pools_the_samples(stick):
    """The calibrated threshold maximises F1 over the counts pooled across samples (here:
    sample 1 alone would pick a low threshold, sample 2 a high one; pooled F1 by hand)."""
    from lfpsurrogate.evaluate import Evaluator

    n_time = 300
    v = np.zeros((stick.n_segments, n_time))
    l1 = np.full(n_time, -5.0)
    l1[[100, 200]] = 1.5      # two true spikes called at logit 1.5
    l2 = np.full(n_time, -5.0)
    l2[[50, 150, 250]] = 1.0  # three false calls at logit 1.0
    l2[120] = 3.0             # the true spike of sample 2
    ev = Evaluator(stick, 0)
    ev.add(v, v, l1, [100, 200])
    ev.add(v, v, l2, [120])
    grid = np.array([0.5, 1.25, 2.0])
    # by hand: thr 0.5 -> TP 3, FP 3, FN 0 (F1 6/9); 1.25 -> TP 3, FP 0 (F1 1); 2.0 -> TP 1,
    # FN 2 (F1 2/4)
    assert ev.best_spike_threshold(grid) == 1.25
    # 0.5: F1 6/9 at 6 predicted for 3 true; 2.0: F1 2/4 at 1 for 3. Neither fires within
    # 10 % of the truth, so the closer rate wins (calibrate.choose_threshold): 2.0
    assert ev.best_spike_threshold(np.array([0.5, 2.0])) == 2.0
    assert ev.best_spike_threshold() == 1.25  # default grid: -2 to 12 in steps of 0.25
    # ... plus quantiles of the pooled logits: a model whose logits are 100 times smaller
    # (a ridge score of the 0/1 spike train) gets a threshold between its false calls
    # (0.010) and its true ones (0.015, 0.030), F1 1, instead of 0 (none of its logits
    # reach 0.25) or 0.0 (all six calls)
    small = Evaluator(stick, 0)
    small.add(v, v, l1 / 100, [100, 200])
    small.add(v, v, l2 / 100, [120])
    assert 0.010 < small.best_spike_threshold() <= 0.015


# ---- issue 15b: boundaries by hand, streaming far from zero, a hand-written store --------
def test_match_counts_scores_given_spike_bins_as_spike_counts_scores_onsets():
    """Spike bins of a re-simulation (benchmarks/spike_reliability.py) are counted as
    evaluate counts a logit's onsets: predictions in the burn-in are ignored, a spike
    repeated in one bin counts twice, one-to-one matching within the tolerance."""
    from lfpsurrogate.evaluate import match_counts

    # 30 lies in the burn-in (ignored, not a false positive); 100 matches 101; 200 is false;
    # 150 is missed; the true spike at 40 is in the burn-in
    assert match_counts([30, 100, 200], [40, 101, 150], burn_in=50, tolerance_bins=2) == (1, 1, 1)
    assert match_counts([100, 100], [100, 100], burn_in=50, tolerance_bins=2) == (2, 0, 0)
    assert match_counts([100, 100], [100], burn_in=50, tolerance_bins=2) == (1, 1, 0)
    # the same counts as spike_counts on a logit crossing 0 at those bins
    logit = np.full(300, -1.0)
    logit[[30, 100, 200]] = 1.0
    assert spike_counts(logit, [40, 101, 150], 50, 2) == (1, 1, 1)


def test_spike_onsets_and_true_spikes_at_the_first_evaluated_bin_count():
    """The burn-in is bins 0 .. burn_in - 1: a true spike and an onset both in bin burn_in
    are evaluated (a hit), one bin earlier the true spike is in the burn-in (neither way)."""
    assert spike_counts(logits_from([50], 300), [50], burn_in=50, tolerance_bins=2) == (1, 0, 0)
    assert spike_counts(logits_from([51], 300), [49], burn_in=50, tolerance_bins=2) == (0, 0, 0)
    assert spike_counts(logits_from([200], 300), [50], burn_in=50, tolerance_bins=2) == (0, 1, 1)


def test_spike_matching_one_to_one_skips_an_unmatched_early_prediction():
    """Sorted sweep by hand: 90 is more than 2 bins before 100 and matches nothing; the next
    prediction, 100, is then compared and matches (1 pair). Likewise 10 (alone) then 20."""
    assert match_spikes([90, 100], [100], 2) == [(1, 0)]
    assert match_spikes([10, 20, 30], [20, 31], 2) == [(1, 0), (2, 1)]
    assert match_spikes([5, 6, 7, 50], [50], 0) == [(3, 0)]


def test_streaming_needs_two_bins_after_the_burn_in(stick):
    """A variance needs two bins: a sample of burn_in + 2 bins is evaluated (2 bins), one of
    burn_in + 1 bins is refused."""
    rng = np.random.default_rng(3)
    v = -65 + rng.normal(size=(stick.n_segments, 7))
    ev = Evaluator(stick, burn_in=5)
    ev.add(v + 0.1, v)
    assert ev.result()["evaluated_ms"] == 2.0
    with pytest.raises(EvaluationError, match="too short"):
        Evaluator(stick, burn_in=6).add(v + 0.1, v)


def test_streaming_sums_stay_exact_far_from_zero(stick):
    """The streaming sums are taken about the first batch's mean, so a signal far from zero
    (1e7 mV offset, fluctuations of order 1) keeps r and explained variance to 1e-6 of
    np.corrcoef / numpy's variance (raw sums of squares would lose every digit)."""
    rng = np.random.default_rng(5)
    x = 1e7 + rng.normal(size=(stick.n_segments, 2000))
    y = x + rng.normal(scale=0.5, size=x.shape)
    ev = Evaluator(stick, burn_in=0)
    ev.add(y, x)
    assert ev.v.r() == pytest.approx(_by_hand_corr(x, y), rel=1e-6)
    want = 1 - (y - x).var(1) / x.var(1)
    assert ev.v.explained_variance() == pytest.approx(want, rel=1e-6)


def test_evaluator_result_by_hand_at_half_ms_bins(stick):
    """bin_ms 0.5: 300 bins after a burn-in of 100 are 150 ms, 3 true spikes are 20 Hz, and
    the 2 ms tolerance is 4 bins (an onset 4 bins late hits, the other 5 bins late misses)."""
    n_time, b = 400, 100
    v = np.zeros((stick.n_segments, n_time))
    logit = logits_from([154, 255, 305], n_time)
    ev = Evaluator(stick, burn_in=b, bin_ms=0.5)
    ev.add(v, v, logit, [150, 250, 300])
    res = ev.result()
    assert res["evaluated_ms"] == 150.0 and res["burn_in_ms"] == 50.0
    assert res["firing_rate_true_hz"] == pytest.approx(3 / 0.150)
    assert res["firing_rate_predicted_hz"] == pytest.approx(3 / 0.150)
    assert (res["n_true_spikes"], res["spike_precision"]) == (3, pytest.approx(1 / 3))


def _hand_written_store(path, geom, n_time=60):
    """Two test samples (and two train) as docs/datasets.md lays a store out, written here
    with xarray: random inputs, random-walk voltages, a few somatic spikes."""
    import xarray as xr

    from lfpsurrogate.data.store import FORMAT_VERSION, STORE_FORMAT, GenerationParams, geometry_dataset

    p = GenerationParams(cell="stick", n_samples=4, duration_ms=float(n_time), seed=1,
                         splits=(("train", 0.5), ("test", 0.5)))
    rng = np.random.default_rng(0)
    n = 4
    spikes = np.zeros((n, n_time), np.int16)
    spikes[:, [30, 45]] = 1
    ds = xr.Dataset(
        {"inputs": (("sample", "channel", "time"),
                    rng.integers(0, 3, (n, geom.n_channels, n_time)).astype(np.uint8)),
         "v": (("sample", "segment", "time"),
               (-65 + rng.normal(size=(n, geom.n_segments, n_time)).cumsum(2)).astype(np.float32)),
         "spikes": (("sample", "time"), spikes),
         "split": ("sample", np.array(["train", "train", "test", "test"], object)),
         "done": ("sample", np.ones(n, np.uint8)),
         "seed": ("sample", np.arange(n, dtype=np.int64))},
        attrs={"format": STORE_FORMAT, "format_version": FORMAT_VERSION,
               "generation": p.to_json(), "cell": "stick", "cell_fingerprint": geom.fingerprint,
               "versions": json.dumps({"numpy": np.__version__})})
    ds.to_zarr(path, consolidated=False)
    geometry_dataset(geom).to_zarr(path, group="geometry", consolidated=False, mode="a")
    samples = [(ds["inputs"].values[i], ds["v"].values[i].astype(np.float64),
                np.flatnonzero(spikes[i])) for i in (2, 3)]
    return samples


def test_evaluate_model_on_a_hand_written_store(tmp_path):
    """evaluate_model over a store written here: an oracle scores perfectly; the burn-in must
    leave two bins (refused naming the receptive field otherwise); a model of another channel
    or segment count is refused; the surrogate time per simulated second is its wall time
    over 2 samples x 60 ms."""
    from conftest import make_stick_geometry

    geom = make_stick_geometry(n=4)
    store = tmp_path / "s.zarr"
    samples = _hand_written_store(store, geom)
    oracle = Oracle(samples, geom.n_channels, geom.n_segments, receptive_field=5)
    res = evaluate_model(oracle, geom, store, "test", burn_in_ms=20.0)
    assert res["n_samples"] == 2 and res["evaluated_ms"] == 80.0 and res["burn_in_ms"] == 20.0
    assert res["v_rmse_mv_median"] == 0.0 and res["spike_f1"] == 1.0
    assert res["firing_rate_true_hz"] == pytest.approx(4 / 0.080)
    assert res["surrogate_s_per_simulated_s"] == pytest.approx(res["surrogate_wall_s"] / 0.120, rel=1e-9)
    assert "n_parameters" not in res and res["receptive_field_ms"] == 5.0
    assert evaluate_model(oracle, geom, store, "test", burn_in_ms=58.0)["evaluated_ms"] == 4.0
    with pytest.raises(EvaluationError, match="too short for the burn-in of 59.0 ms .receptive field 5"):
        evaluate_model(oracle, geom, store, "test", burn_in_ms=59.0)
    for n_ch, n_seg in ((geom.n_channels + 2, geom.n_segments), (geom.n_channels, geom.n_segments + 1)):
        other = Oracle(samples, n_ch, n_seg)
        with pytest.raises(EvaluationError, match=f"the model has {n_ch} channels / {n_seg} segments"):
            evaluate_model(other, geom, store, "test")


def test_evaluate_on_a_hand_written_store_and_a_missing_store(tmp_path):
    """evaluate() loads a model folder and scores it on an existing store; a missing store is
    refused with an EvaluationError before any model is loaded."""
    from conftest import make_stick_geometry, make_tiny_model_folder

    geom = make_stick_geometry(n=4)
    store = tmp_path / "s.zarr"
    _hand_written_store(store, geom)
    folder = make_tiny_model_folder(geom, tmp_path)
    res = evaluate(folder, store, "test")
    assert res["n_samples"] == 2 and res["cell_fingerprint"] == geom.fingerprint
    assert res["n_parameters"] > 0 and len(res["model_fingerprint"]) == 16
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate(folder, tmp_path / "missing.zarr")
