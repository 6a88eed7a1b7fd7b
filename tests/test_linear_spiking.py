"""The ``linear`` (closed-form kernel) and ``spiking`` surrogates: filters, the ridge fit,
the free-running spike generator, teacher forcing, training, firing-rate metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lfpsurrogate as lfps
from lfpsurrogate.evaluate import Evaluator
from lfpsurrogate.nn import build_model, fit_normalisation, load_model, train
from lfpsurrogate.nn.linear import causal_filter, raised_cosine_basis
from lfpsurrogate.nn.spiking import free_run
from lfpsurrogate.nn.synthetic import chain_geometry, synthetic_datasets

torch.set_num_threads(1)

SMALL = {"rank": 6, "n_bumps": 3, "max_lag_ms": 20, "input_modes": 6, "hidden": 8,
         "layers": 2, "first_kernel": 5, "spike_history_ms": 8, "waveform_ms": 6}


def test_raised_cosine_basis_is_a_delta_then_unit_bumps_later_and_wider():
    b = raised_cosine_basis(4, 30.0)
    assert b.shape == (5, 31)
    assert b[0, 0] == 1 and np.all(b[0, 1:] == 0)
    assert np.allclose(b.sum(1), 1.0) and np.all(b[1:, 0] == 0) and np.all(b >= 0)
    centre = (b[1:] * np.arange(31)).sum(1)
    width = (b[1:] > 1e-3).sum(1)
    assert np.all(np.diff(centre) > 0)
    assert np.all(np.diff(width[:-1]) >= 0)  # log-time: later bumps are wider (the last is cut at max_lag)


def test_causal_filter_equals_numpy_convolution():
    rng = np.random.default_rng(0)
    x = rng.poisson(0.3, (2, 3, 150)).astype(np.float32)
    basis = raised_cosine_basis(3, 25.0)
    y = causal_filter(torch.from_numpy(x), torch.from_numpy(basis).float()).numpy()
    for b in range(2):
        for c in range(3):
            for f in range(basis.shape[0]):
                ref = np.convolve(x[b, c], basis[f])[:150]  # full convolution, causal part
                assert np.allclose(y[b, c, f], ref, atol=1e-5)


@pytest.mark.parametrize("t_len", [15, 300])
def test_event_driven_local_term_equals_the_fft_convolution(t_len):
    geom = chain_geometry(9)
    torch.manual_seed(3)
    model = build_model({**SMALL, "architecture": "linear"}, geom.n_channels, geom.n_segments, geom)
    with torch.no_grad():
        model.in_mean.uniform_(0.0, 0.3)
        model.in_scale.uniform_(0.5, 2.0)
        model.w_local.normal_(0, 1.0)
    x = torch.poisson(torch.full((2, geom.n_channels, t_len), 0.1))
    xn = (x - model.in_mean[None, :, None]) * model.in_scale[None, :, None]
    with torch.no_grad():
        fft = model._local(xn)
        events = model._local_events(x)
    assert torch.allclose(events, fft, atol=1e-4 * float(fft.abs().max()))
    with torch.no_grad():  # the model's forward uses it, and equals the gradient path
        a = model(x)["v"]
    b = model(x)["v"].detach()
    assert torch.allclose(a, b, atol=1e-4)
    spk = build_model({**SMALL, "architecture": "spiking", "input_proj": 5}, geom.n_channels,
                      geom.n_segments, geom)
    with torch.no_grad():
        spk.in_mean.copy_(model.in_mean)
        spk.in_scale.copy_(model.in_scale)
        spk.head_drive.weight.normal_(0, 1.0)
        spk.head_z.weight.normal_(0, 1.0)
        fast = spk(x)
    slow = spk(x)  # gradients on: dense projections and FFT convolutions
    assert torch.equal(fast["spikes"], slow["spikes"])
    assert torch.allclose(fast["v"], slow["v"].detach(), atol=1e-4)
    assert torch.allclose(fast["spike_logit"], slow["spike_logit"].detach(), atol=1e-4)


def _known_linear_cell(geom, n, t_len, seed):
    """Voltages made by a known kernel model written out here with numpy: each segment's
    voltage is a fixed mix of its own and its neighbours' exponentially filtered inputs."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(0.05, (n, geom.n_channels, t_len)).astype(np.float32)
    kern = np.exp(-np.arange(20) / 4.0)
    filt = np.stack([[np.convolve(x[i, c], kern)[:t_len] for c in range(geom.n_channels)]
                     for i in range(n)])
    ns = geom.n_segments
    exc, inh = filt[:, :ns], filt[:, ns:]
    mix = np.exp(-np.abs(np.subtract.outer(np.arange(ns), np.arange(ns))) / 3.0)
    v = -65 + 2.0 * np.einsum("st,btk->bsk", mix, exc) - 1.0 * np.einsum("st,btk->bsk", mix, inh)
    return [{"inputs": x[i], "v": v[i].astype(np.float32), "spikes": np.zeros(t_len, np.float32)}
            for i in range(n)]


def test_closed_form_fit_recovers_a_linear_cell():
    geom = chain_geometry(8)
    tr = _known_linear_cell(geom, 12, 400, 0)
    va = _known_linear_cell(geom, 3, 400, 1)
    model = build_model({**SMALL, "architecture": "linear", "rank": 8, "input_modes": 8},
                        geom.n_channels, geom.n_segments, geom)
    fit_normalisation(model, np.stack([s["inputs"] for s in tr]), np.stack([s["v"] for s in tr]))
    untrained = model(torch.from_numpy(va[0]["inputs"])[None])["v"].detach()
    model.fit_closed_form(tr, va, stride=1)
    with torch.no_grad():
        pred = model(torch.from_numpy(va[0]["inputs"])[None])["v"][0].numpy()
    truth = va[0]["v"]
    burn = model.receptive_field
    err = pred[:, burn:] - truth[:, burn:]
    rel = (err**2).mean() / truth[:, burn:].var()
    assert rel < 0.02, rel  # the exponential kernel is not exactly in the basis span
    before = ((untrained[0].numpy() - truth)[:, burn:] ** 2).mean() / truth[:, burn:].var()
    assert before > 0.5


class _CountingSamples:
    """Sized, re-iterable samples (as ``nn.train.WholeSamples`` reads them from a store)
    that count how many are alive at once: each pass yields fresh copies."""

    def __init__(self, samples):
        self.samples, self.alive, self.peak, self.passes = samples, 0, 0, 0

    def __len__(self):
        return len(self.samples)

    def _gone(self):
        self.alive -= 1

    def __iter__(self):
        import weakref

        self.passes += 1
        for s in self.samples:
            fresh = {k: v.copy() for k, v in s.items()}
            self.alive += 1
            self.peak = max(self.peak, self.alive)
            weakref.finalize(fresh["v"], self._gone)
            yield fresh
            del fresh


def test_closed_form_fit_streams_samples_instead_of_holding_them():
    """The ridge fit passes over sized sample collections without keeping them: at most 2
    samples are alive at once (a store of 1505 x 2 s samples is 20 GB as float32), and the
    weights equal those of the fit on a list of the same samples."""
    geom = chain_geometry(8)
    tr = _known_linear_cell(geom, 12, 400, 0)
    va = _known_linear_cell(geom, 6, 400, 1)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = build_model({**SMALL, "architecture": "linear", "rank": 8, "input_modes": 8},
                        geom.n_channels, geom.n_segments, geom)
        fit_normalisation(m, np.stack([s["inputs"] for s in tr]), np.stack([s["v"] for s in tr]))
        models.append(m)
    models[0].fit_closed_form(tr, va, stride=2)
    counted_tr, counted_va = _CountingSamples(tr), _CountingSamples(va)
    models[1].fit_closed_form(counted_tr, counted_va, stride=2)
    assert counted_tr.passes == 2 and counted_tr.peak <= 2, (counted_tr.passes, counted_tr.peak)
    assert counted_va.peak <= 4  # the 4 samples that choose the local penalty
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.allclose(a, b), name


def _reference_free_run(drive, history):
    """The spike rule written as a plain loop: spike where the logit crosses 0 upwards."""
    b, t_len = drive.shape
    s = np.zeros((b, t_len))
    logit = np.zeros((b, t_len))
    for i in range(b):
        prev = -1.0
        for t in range(t_len):
            val = drive[i, t] + sum(history[k - 1] * s[i, t - k]
                                    for k in range(1, len(history) + 1) if t - k >= 0)
            s[i, t] = float(val >= 0 and prev < 0)
            logit[i, t] = val
            prev = val
    return logit, s


def test_free_run_matches_a_reference_loop():
    rng = np.random.default_rng(3)
    drive = rng.normal(-1.0, 2.0, (3, 200))
    history = np.r_[-20.0, -10.0, -4.0, 1.5, 0.5]
    logit, s = free_run(torch.from_numpy(drive).float(), torch.from_numpy(history).float())
    ref_logit, ref_s = _reference_free_run(drive, history)
    assert s.sum() > 10
    assert np.array_equal(s.numpy(), ref_s)
    assert np.allclose(logit.numpy(), ref_logit, atol=1e-4)
    # excitatory history: the logit stays above 0 after a spike; only the crossing counts
    slow = np.repeat(rng.normal(0.0, 2.0, (2, 20)), 10, axis=1)
    excite = np.r_[0.5, 0.2]
    logit, s = free_run(torch.from_numpy(slow).float(), torch.from_numpy(excite).float())
    ref_logit, ref_s = _reference_free_run(slow, excite)
    assert np.array_equal(s.numpy(), ref_s) and ref_s.sum() < (ref_logit >= 0).sum() / 3


@pytest.fixture(scope="module")
def spiking_model():
    geom = chain_geometry(10)
    torch.manual_seed(0)
    model = build_model({**SMALL, "architecture": "spiking"}, geom.n_channels,
                        geom.n_segments, geom).eval()
    with torch.no_grad():
        model.b_spike.fill_(0.5)
        model.soma_gain.fill_(0.0)
        model.waveform.normal_(0.0, 1.0)
    return geom, model


def test_spiking_model_fires_and_each_spike_adds_its_waveform(spiking_model):
    geom, model = spiking_model
    x = torch.poisson(torch.full((2, geom.n_channels, 300), 0.3))
    with torch.no_grad():
        out = model(x)
        silent = model(x, spikes=torch.zeros(2, 300))
    s = out["spikes"]
    assert s.sum() > 0
    # with its own spikes fed back as "true" spikes, teacher forcing gives the same output
    with torch.no_grad():
        forced = model(x, spikes=s)
    assert torch.allclose(forced["v"], out["v"]) and torch.allclose(forced["spike_logit"],
                                                                     out["spike_logit"])
    # v minus the spike-free v is the sum of waveforms at the spike times, in mV
    diff = (out["v"] - silent["v"]) / model.v_std[None, :, None]
    ln = model.waveform.shape[1]
    expect = torch.zeros_like(diff)
    for b, t in (s > 0).nonzero().tolist():
        stop = min(300, t + ln)
        expect[b, :, t:stop] += model.waveform[:, : stop - t]
    assert torch.allclose(diff, expect, atol=1e-4)


def test_spike_threshold_buffer_shifts_the_logit_and_thins_spikes(spiking_model):
    geom, model = spiking_model
    x = torch.poisson(torch.full((1, geom.n_channels, 400), 0.3))
    with torch.no_grad():
        a = model(x)
        model.spike_threshold.fill_(1.0)
        b = model(x)
        model.spike_threshold.fill_(0.0)
    assert b["spikes"].sum() < a["spikes"].sum()


def test_train_linear_is_closed_form_and_spiking_trains_with_scheduled_sampling(tmp_path):
    geom, tr, va = synthetic_datasets(n_segments=10, n_train=16, n_val=6, n_time=160, seed=2)
    cfg = {"model": {**SMALL, "architecture": "linear"},
           "loss": {"v": 1.0, "spike": 0.1, "imem": 0.1},
           "train": {"epochs": 1, "batch_size": 4, "stats_windows": 8, "closed_form_stride": 2}}
    res = train(cfg, tr, va, tmp_path / "lin", geom, progress=False)
    assert len(res.history) == 1 and (tmp_path / "lin" / "best.json").is_file()
    # the synthetic cell is a causal linear filter plus spikes: the ridge fit follows it
    assert res.best_metrics["val_v_corr"] > 0.8, res.best_metrics
    loaded, _ = load_model(tmp_path / "lin" / "best")
    x = torch.as_tensor(va[0]["inputs"])[None]
    assert torch.allclose(loaded(x)["v"], res.model(x)["v"], atol=1e-5)

    cfg["model"]["architecture"] = "spiking"
    cfg["train"].update(epochs=3, scheduled_sampling=1.0)
    res = train(cfg, tr, va, tmp_path / "spk", geom, progress=False)
    assert len(res.history) == 3
    assert all(math.isfinite(h["val_loss"]) for h in res.history)
    # a checkpoint rebuilt without the geometry keeps where the soma is (buffers)
    loaded, _ = load_model(tmp_path / "spk" / "best")
    with torch.no_grad():
        a, b = loaded(x), res.model(x)
    assert torch.equal(a["spikes"], b["spikes"]) and torch.allclose(a["v"], b["v"], atol=1e-5)


def test_fine_tuning_starts_from_the_given_weights_and_refuses_another_architecture(tmp_path):
    """train.init_from: the first validation of the new run scores the loaded weights exactly
    (same val windows), not a fresh closed-form fit; the loaded weights are then trained."""
    geom, tr, va = synthetic_datasets(n_segments=10, n_train=16, n_val=6, n_time=160, seed=2)
    cfg = {"model": {**SMALL, "architecture": "spiking"},
           "loss": {"v": 1.0, "spike": 0.1, "imem": 0.1},
           "train": {"epochs": 2, "batch_size": 4, "stats_windows": 8, "closed_form_stride": 2}}
    first = train(cfg, tr, va, tmp_path / "a", geom, progress=False)
    last_val = first.history[-1]["val_loss"]
    fresh = train({**cfg, "train": {**cfg["train"], "epochs": 1}}, tr, va, tmp_path / "fresh",
                  geom, progress=False)
    tuned = train({**cfg, "train": {**cfg["train"], "epochs": 1,
                                    "init_from": str(tmp_path / "a" / "last")}},
                  tr, va, tmp_path / "b", geom, progress=False)
    assert tuned.initial_metrics["val_loss"] == pytest.approx(last_val, rel=1e-5)
    assert fresh.initial_metrics["val_loss"] != pytest.approx(last_val, rel=1e-3)
    start, _ = load_model(tmp_path / "a" / "last")
    moved = [not torch.equal(p, q) for p, q in zip(start.parameters(), tuned.model.parameters())]
    assert any(moved)  # trained on from there
    other = {**cfg, "model": {**cfg["model"], "hidden": 12},
             "train": {**cfg["train"], "init_from": str(tmp_path / "a" / "last")}}
    with pytest.raises(ValueError, match="hidden"):
        train(other, tr, va, tmp_path / "c", geom, progress=False)


def test_fine_tuning_may_lengthen_the_post_spike_kernels_and_starts_from_the_same_output(tmp_path):
    """init_from with a longer spike_history_ms / waveform_ms: the saved kernels are
    zero-padded at their far lags, so the new run's first validation scores exactly what the
    saved model did (with the true spikes and free-running alike); a shorter one is refused."""
    geom, tr, va = synthetic_datasets(n_segments=10, n_train=16, n_val=6, n_time=160, seed=3)
    cfg = {"model": {**SMALL, "architecture": "spiking", "spike_history_ms": 6, "waveform_ms": 5},
           "loss": {"v": 1.0, "spike": 0.1, "imem": 0.1},
           "train": {"epochs": 1, "batch_size": 4, "stats_windows": 8, "closed_form_stride": 2}}
    first = train(cfg, tr, va, tmp_path / "a", geom, progress=False)
    longer = {**cfg, "model": {**cfg["model"], "spike_history_ms": 15, "waveform_ms": 12},
              "train": {**cfg["train"], "init_from": str(tmp_path / "a" / "last")}}
    tuned = train({**longer, "optim": {"lr": 1e-12}}, tr, va, tmp_path / "b", geom, progress=False)
    assert tuned.initial_metrics["val_loss"] == pytest.approx(first.history[-1]["val_loss"], rel=1e-5)
    assert tuned.model.history.shape == (15,) and tuned.model.waveform.shape == (10, 12)
    start, _ = load_model(tmp_path / "a" / "last")
    x = torch.as_tensor(np.asarray(va[0]["inputs"]), dtype=torch.float32)[None]
    with torch.no_grad():
        a, b = start(x), tuned.model(x)
    assert torch.equal(a["spikes"], b["spikes"]) and torch.allclose(a["v"], b["v"], atol=1e-4)
    shorter = {**cfg, "model": {**cfg["model"], "spike_history_ms": 4},
               "train": {**cfg["train"], "init_from": str(tmp_path / "a" / "last")}}
    with pytest.raises(ValueError, match="spike_history_ms"):
        train(shorter, tr, va, tmp_path / "c", geom, progress=False)


def test_evaluator_reports_true_and_predicted_firing_rates(stick):
    ev = Evaluator(stick, burn_in=100, bin_ms=1.0, signals=None)
    n = 1100  # 1000 evaluated bins = 1 s
    v = np.full((stick.n_segments, n), -65.0)
    logit = np.full(n, -5.0)
    pred_bins = [200, 400, 600, 800, 900, 1000]
    logit[pred_bins] = 5.0
    ev.add(v, v, logit, [200, 401, 700, 950])
    r = ev.result()
    assert r["firing_rate_true_hz"] == pytest.approx(4.0)
    assert r["firing_rate_predicted_hz"] == pytest.approx(6.0)
    assert r["firing_rate_rel_error"] == pytest.approx(0.5)


@pytest.mark.parametrize("arch", ["linear", "spiking", "spiking-no-waveform"])
def test_predict_lfp_with_linear_and_spiking_models(arch, pyramid, tmp_path):
    """predict_lfp's folded readout (linear) equals the voltage path, and both equal the
    forward model applied to the predicted voltages (lfpykit matrices)."""
    from lfpsurrogate import forward_model, predict_lfp
    from lfpsurrogate.modelfolder import load_surrogate

    from conftest import make_tiny_model_folder

    tweak = (lambda m: m.waveform_gain.fill_(0.0)) if arch == "spiking-no-waveform" else None
    folder = make_tiny_model_folder(pyramid.geometry, tmp_path, f"tiny_{arch}", tweak=tweak,
                                    local_gain_std=0.3, architecture=arch.split("-")[0])
    model = load_surrogate(folder).model
    foldable = arch != "spiking"  # a spiking model's v depends on its spikes unless gain 0
    assert callable(getattr(model, "readout_parts", None)) == foldable
    args = dict(rates={"duration_ms": 150, "n_cells": 1}, model=folder,
                signals=("lfp", "dipole", "eeg"), seed=2)
    folded = predict_lfp(**args)
    plain = predict_lfp(**args, fold_readout=False)
    with_v = predict_lfp(**{**args, "signals": ("v", "lfp", "dipole", "eeg")})
    fwd = forward_model(load_surrogate(folder).geometry, {"lfp": "laminar-16", "eeg": "eeg-10-20"},
                        position=(50, 0, 0))
    ref = fwd.from_voltages(with_v["v"].isel(cell=0).values.astype(np.float64))
    for key in ("lfp", "dipole", "eeg"):
        scale = np.abs(ref[key].values).max()
        assert np.abs(folded[key].values - plain[key].values).max() < 1e-4 * scale, key
        assert np.abs(plain[key].values - ref[key].values).max() < 1e-4 * scale, key


@pytest.mark.parametrize("arch", ["linear", "spiking", "spiking-no-waveform"])
@pytest.mark.parametrize("source", ["counts", "events"])
def test_folded_population_equals_the_voltage_path(arch, source, pyramid, tmp_path):
    """A population over several batches: the folded path (LFP rows summed over the cells
    before they are filtered, each cell's dipole on its own) gives every signal, each cell's
    dipole and the spikes of the voltage path (the model's forward, then the forward
    matrices cell by cell), from counts and from events."""
    from lfpsurrogate import predict_lfp
    from lfpsurrogate.bench import events_of

    from conftest import make_tiny_model_folder

    def tweak(m):  # spikes often, and every term of the folded rows and the drive non-zero
        m.w_spike.normal_(0.0, 0.3)
        m.b_spike.fill_(0.0)
        m.b_latent.normal_(0.0, 0.3)
        if arch != "linear":
            m.soma_gain.normal_(0.0, 0.5)
            m.waveform.normal_(0.0, 0.3)
            for conv in (m.head_z, m.head_drive):  # the TCN residual (zero at initialisation)
                conv.weight.normal_(0.0, 0.3)
        if arch == "spiking-no-waveform":
            m.waveform_gain.fill_(0.0)

    folder = make_tiny_model_folder(pyramid.geometry, tmp_path, f"tiny_{arch}", tweak=tweak,
                                    local_gain_std=0.3, architecture=arch.split("-")[0])
    g = pyramid.geometry
    counts = np.stack([lfps.poisson_inputs(g, 160, seed=s).values for s in (1, 2, 3)])
    pos = np.array([[60.0, 0, 0], [-80.0, 30.0, 10.0], [20.0, -90.0, -20.0]])
    rot = np.array([[0, 0, 0.3], [0, 0, 2.0], [0, 0, 4.1]])
    given = (dict(inputs=counts) if source == "counts" else
             dict(events=events_of(counts), duration_ms=160.0, n_cells=3))
    args = dict(model=folder, positions=pos, rotations=rot, batch_size=2,
                signals=("lfp", "dipole", "eeg", "meg", "spikes"), **given)
    folded = predict_lfp(**args)
    plain = predict_lfp(**args, fold_readout=False)
    assert folded["cell_dipole"].sizes["cell"] == 3
    for key in ("lfp", "dipole", "eeg", "meg", "cell_dipole"):
        scale = np.abs(plain[key].values).max()
        assert scale > 0, key
        assert np.abs(folded[key].values - plain[key].values).max() < 1e-4 * scale, key
    np.testing.assert_allclose(folded["spike_probability"].values,
                               plain["spike_probability"].values, atol=1e-5)
    np.testing.assert_array_equal(folded["spikes"].values, plain["spikes"].values)
    if arch != "linear":
        assert folded["spikes"].values.sum() > 0  # the spike generator and its feedback ran


def test_wide_causal_conv_by_fft_equals_the_direct_convolution():
    """CausalConv1d at inference (no gradients, several cells, wide kernel) runs by FFT:
    the same outputs as torch's conv1d on the left-padded input, for any length, and
    after the weights change (the cached kernel spectrum is refreshed)."""
    from lfpsurrogate.nn.layers import FFT_MIN_BATCH, CausalConv1d

    torch.manual_seed(3)
    conv = CausalConv1d(5, 7, 25)
    for t in (30, 257):
        x = torch.randn(FFT_MIN_BATCH + 1, 5, t)
        ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (24, 0)), conv.weight,
                                         conv.bias)
        with torch.no_grad():
            got = conv(x)
            conv.weight.mul_(2.0)
            doubled = conv(x)
            conv.weight.mul_(0.5)
        assert got.shape == ref.shape
        assert torch.allclose(got, ref, atol=1e-5 * float(ref.abs().max()))
        ref2 = 2 * (ref - conv.bias[None, :, None]) + conv.bias[None, :, None]
        assert torch.allclose(doubled, ref2, atol=1e-5 * float(ref2.abs().max()))


def test_calibration_finds_a_threshold_beyond_the_fixed_grid(spiking_model):
    """True spikes made by the model itself at a threshold of 14.3 (beyond both fixed grids,
    which stop at 8 and 12 logits, and between their points): calibration follows the
    drive's quantiles and finds a threshold that fires within 10 % of the true rate, with a
    high F1."""
    geom, model = spiking_model
    gen = torch.Generator().manual_seed(3)
    x = torch.poisson(torch.full((6, geom.n_channels, 400), 0.3), generator=gen)
    old = float(model.b_spike)
    try:
        with torch.no_grad():
            drive = model.drive_and_latents((x - model.in_mean[None, :, None])
                                            * model.in_scale[None, :, None])["drive"]
            model.b_spike.add_(14.3 - float(torch.quantile(drive[:, 100:], 0.99)))
            model.spike_threshold.fill_(14.3)
            out = model(x)
            model.spike_threshold.fill_(0.0)
        assert 10 < out["spikes"].sum() < 0.05 * out["spikes"].numel()
        samples = [{"inputs": x[i].numpy(), "spikes": out["spikes"][i].numpy(),
                    "v": out["v"][i].numpy()} for i in range(len(x))]
        rep = model.calibrate_threshold(samples, burn_in=50)
    finally:
        with torch.no_grad():
            model.b_spike.fill_(old)
            model.spike_threshold.fill_(0.0)
            model.waveform_gain.fill_(1.0)
    assert rep["threshold"] > 12.0 and abs(rep["rate_ratio"] - 1) <= 0.1 and rep["f1"] > 0.8, rep


def test_validation_scores_a_spiking_models_voltages_without_its_spike_waveforms(spiking_model):
    """In-loop validation scores the voltages an exported model gives (waveforms off, as the
    calibration has chosen for every model so far), so they do not move with the
    uncalibrated spike timing of an epoch; the model's own gain is restored afterwards."""
    from torch.utils.data import DataLoader

    from lfpsurrogate.nn import evaluate_batches
    from lfpsurrogate.nn.config import LossConfig
    from lfpsurrogate.nn.losses import SurrogateLoss
    from lfpsurrogate.nn.synthetic import synthetic_windows, WindowTensors

    geom, model = spiking_model
    val = WindowTensors(**synthetic_windows(geom, 4, 300, seed=3))
    loader = DataLoader(val, batch_size=2)
    loss = SurrogateLoss(LossConfig(v=1.0, spike=1.0), geom.n_segments)
    x = torch.stack([torch.as_tensor(val[i]["inputs"]) for i in range(4)])
    scores, n_spikes = [], []
    for threshold in (-2.0, 0.0):
        model.spike_threshold.fill_(threshold)
        with torch.no_grad():
            n_spikes.append(float(model(x)["spikes"].sum()))
        scores.append(evaluate_batches(model, loader, loss, 20, torch.device("cpu")))
    model.spike_threshold.fill_(0.0)
    assert n_spikes[0] > n_spikes[1] > 0 and float(model.waveform_gain) == 1.0
    for key in ("v_rmse_mv", "v_corr", "loss_v"):
        assert scores[0][key] == pytest.approx(scores[1][key], rel=1e-6), key
    # and they are the spike-free voltages' figures, not those with the waveforms added
    with torch.no_grad():
        silent = model(x, spikes=torch.zeros(4, 300))["v"][..., 20:]
        fired = model(x)["v"][..., 20:]
    v_true = torch.stack([torch.as_tensor(val[i]["v"]) for i in range(4)])[..., 20:]
    rmse = lambda v: float((v - v_true).pow(2).mean().sqrt())  # noqa: E731
    assert scores[0]["v_rmse_mv"] == pytest.approx(rmse(silent), rel=1e-4)
    assert abs(rmse(fired) - rmse(silent)) > 1e-3


def test_fast_fft_lengths_are_the_smallest_mostly_two_lengths_and_keep_the_filter_exact():
    """fast_fft_length(n): the smallest m >= n of the form 2^a 3^b 5^c with a >= b + c
    (checked against a plain search), and a causal filter through it equals the direct
    convolution for lengths whose T + K - 1 has a large prime factor."""
    from lfpsurrogate.nn.fftsize import fast_fft_length

    def mostly_twos(m):
        a, odd = 0, 0
        while m % 2 == 0:
            m, a = m // 2, a + 1
        for q in (3, 5):
            while m % q == 0:
                m, odd = m // q, odd + 1
        return m == 1 and a >= odd

    for n in range(1, 3000):
        m = n
        while not mostly_twos(m):
            m += 1
        assert fast_fft_length(n) == m, n
    assert fast_fft_length(10119) == 10240 and fast_fft_length(631) == 640
    basis = torch.from_numpy(raised_cosine_basis(3, 20)).float()
    for t in (512, 101):   # 512 + 20 - 1 = 531 = 3^2 x 59; 101 + 20 - 1 = 120
        x = torch.randn(2, 3, t)
        y = causal_filter(x, basis)
        ref = torch.stack([torch.nn.functional.conv1d(
            torch.nn.functional.pad(x.reshape(-1, 1, t), (basis.shape[1] - 1, 0)),
            basis[f].flip(0)[None, None]).reshape(2, 3, t) for f in range(basis.shape[0])], 2)
        assert torch.allclose(y, ref, atol=1e-5)
