"""lfpsurrogate.nn: architectures, causality, losses, training, checkpoints, config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lfpsurrogate.nn import (
    ARCHITECTURES, CheckpointError, ConfigError, SurrogateLoss, build_model, fit_normalisation,
    load_config, load_model, save_checkpoint, train,
)
from lfpsurrogate.nn.config import LossConfig
from lfpsurrogate.nn.losses import apply_segment_matrix, spike_weights, to_torch_matrix
from lfpsurrogate.nn.synthetic import chain_geometry, synthetic_datasets

torch.set_num_threads(1)

TINY = {"hidden": 8, "layers": 3, "first_kernel": 5, "kernel_size": 3, "rank": 4,
        "n_experts": 3, "expert_hidden": 4, "tower_hidden": 4, "gate_hidden": 4,
        "n_bumps": 3, "max_lag_ms": 20, "input_modes": 3, "spike_history_ms": 8, "waveform_ms": 6}


def tiny(arch: str, **kw) -> dict:
    return {**TINY, "architecture": arch, **kw}


@pytest.fixture(scope="module")
def data():
    return synthetic_datasets(n_segments=12, n_train=24, n_val=8, n_time=96, seed=1)


def train_cfg(arch: str, epochs: int = 10, **train_kw) -> dict:
    return {"model": tiny(arch, hidden=16, rank=8),
            "loss": {"v": 1.0, "spike": 0.01, "imem": 0.1, "dipole": 0.1},
            "optim": {"lr": 1e-2},
            "train": {"epochs": epochs, "batch_size": 8, "patience": 50, "stats_windows": 16,
                      **train_kw}}


# ---- architectures ----------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_shapes(arch):
    geom = chain_geometry(12)
    model = build_model(tiny(arch), geom.n_channels, geom.n_segments, geom)
    out = model(torch.rand(2, geom.n_channels, 200))
    assert out["v"].shape == (2, 12, 200) and out["spike_logit"].shape == (2, 200)
    assert torch.isfinite(out["v"]).all() and torch.isfinite(out["spike_logit"]).all()
    assert model.n_parameters() > 0 and model.receptive_field > 1
    with pytest.raises(ValueError, match="channels"):
        model(torch.rand(2, geom.n_channels + 1, 50))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_causal_and_receptive_field(arch):
    torch.manual_seed(0)
    model = build_model(tiny(arch), 10, 6).eval()
    x = torch.poisson(torch.full((1, 10, 80), 0.5))
    t0 = 40
    y = torch.poisson(torch.full((1, 10, 80), 2.0))
    future = x.clone()
    future[..., t0:] = y[..., t0:]
    one_bin = x.clone()
    one_bin[..., t0] += 3.0
    with torch.no_grad():
        a, b, c = model(x), model(future), model(one_bin)
    for key in ("v", "spike_logit"):
        assert torch.equal(a[key][..., :t0], b[key][..., :t0]), "output depends on future input"
        assert not torch.allclose(a[key][..., t0:], b[key][..., t0:])
        if getattr(model, "uses_spike_feedback", False):
            continue  # its own spikes feed back: memory beyond the input receptive field
        rf = model.receptive_field
        diff = (a[key] - c[key]).abs().reshape(-1, 80).amax(0)
        assert diff[t0 + rf - 1] > 0, "receptive_field is too large"
        # FFT convolutions (linear, spiking) spread float rounding, never more
        assert torch.all(diff[t0 + rf:] <= 1e-6 * float(a[key].abs().max())), \
            "receptive_field is too small"


@pytest.mark.parametrize("arch", ["hps", "mmoe", "mmoeex", "ours"])
def test_parameters_grow_sublinearly_without_per_segment_modules(arch):
    sizes = (20, 200, 2000)
    models = [build_model(tiny(arch), 16, s) for s in sizes]
    n_modules = {len(list(m.modules())) for m in models}
    assert len(n_modules) == 1, "modules must not be created per segment"
    p = [m.n_parameters() for m in models]
    assert p[1] < 10 * p[0] and p[2] < 10 * p[1]
    assert (p[2] - p[1]) == pytest.approx(10 * (p[1] - p[0]), rel=1e-6)  # affine in segments


def test_mmoeex_mask_is_fixed_and_keeps_an_expert_per_task():
    a = build_model(tiny("mmoeex", exclusivity=0.6, seed=3), 8, 50)
    b = build_model(tiny("mmoeex", exclusivity=0.6, seed=3), 8, 50)
    assert torch.equal(a.gate_mask, b.gate_mask) and a.gate_mask.any(dim=1).all()
    assert (~a.gate_mask).sum() >= 0.5 * 51 * 3
    g = a.gates(torch.rand(1, 8, 30))
    assert torch.all(g[:, ~a.gate_mask] == 0)
    assert torch.allclose(g.sum(2), torch.ones(()))


def test_fit_normalisation_sets_buffers_and_pca_basis(data):
    geom, tr, _ = data
    model = build_model(tiny("ours", rank=6), geom.n_channels, geom.n_segments, geom)
    fit_normalisation(model, tr.inputs, tr.v)
    assert torch.allclose(model.v_mean, tr.v.mean(dim=(0, 2)), atol=1e-4)
    assert torch.allclose(model.v_std, tr.v.std(dim=(0, 2)), rtol=1e-3)
    vn = ((tr.v - model.v_mean[:, None]) / model.v_std[:, None]).permute(1, 0, 2).reshape(12, -1)
    q, _ = torch.linalg.qr(model.basis.detach())
    explained = (q.T @ vn).pow(2).sum() / vn.pow(2).sum()
    assert explained > 0.9  # 6 of 12 physics-weighted PCA modes hold most voltage variance


# ---- losses -----------------------------------------------------------------------------
def test_loss_physics_terms(data):
    geom, tr, _ = data
    v = tr.v[:4]
    batch = {"v": v, "spikes": tr.spikes[:4]}
    cfg = LossConfig(v=1.0, spike=0.0, imem=1.0, dipole=1.0, spike_boost=0.0)
    # the loss sees only M and the midpoints: bend the chain in x and y (a straight chain
    # along z hides a dipole that drops its x and y components)
    ends = np.c_[np.cumsum(np.random.default_rng(3).normal(0, 8.0, (13, 2)), axis=0),
                 np.r_[geom.z[:, 0], geom.z[-1, 1]]]
    xyz = [np.stack([ends[:-1, k], ends[1:, k]], 1) for k in range(3)]
    midpoints = (ends[:-1] + ends[1:]) / 2
    loss = SurrogateLoss(cfg, 12, vmem_to_imem=geom.vmem_to_imem, midpoints=midpoints)
    loss.fit(tr.v, tr.spikes)
    _, parts = loss({"v": v + 1.0, "spike_logit": torch.zeros(4, 96)}, batch)
    assert parts["v"] > 0.01 and parts["imem"] < 1e-8 and parts["dipole"] < 1e-6  # M 1 = 0
    err = torch.randn_like(v) * 0.3
    _, parts = loss({"v": v + err, "spike_logit": torch.zeros(4, 96)}, batch)
    m = torch.as_tensor(geom.vmem_to_imem.toarray(), dtype=torch.float32)
    # the dipole of imem from lfpykit (an independent reference), not the loss's own matrix
    from lfpykit import CellGeometry as KitGeometry, CurrentDipoleMoment

    kit = KitGeometry(x=xyz[0], y=xyz[1], z=xyz[2], d=geom.d)
    p_kit = CurrentDipoleMoment(kit).get_transformation_matrix()  # (3, segment), µm
    p = torch.as_tensor(p_kit, dtype=torch.float32) @ m
    imem_var = torch.einsum("rs,nst->nrt", m, tr.v).var(dim=(0, 2)).mean()
    assert parts["imem"] == pytest.approx(float((m @ err).pow(2).mean() / imem_var), rel=1e-3)
    dip_var = torch.einsum("rs,nst->nrt", p, tr.v).var(dim=(0, 2)).sum()  # relative to |p|
    want = (p @ err).pow(2).sum(dim=1).mean() / dip_var
    assert parts["dipole"] == pytest.approx(float(want), rel=1e-3)
    dense = SurrogateLoss(cfg, 12, vmem_to_imem=m, midpoints=midpoints)
    dense.fit(tr.v, tr.spikes)
    _, parts_dense = dense({"v": v + err, "spike_logit": torch.zeros(4, 96)}, batch)
    assert parts_dense["imem"] == pytest.approx(parts["imem"], rel=1e-4)


def test_burn_in_bins_change_neither_loss_nor_gradients(data):
    """Corrupting the first burn_in bins of prediction and target (voltages, logits, and the
    spike labels that lie farther than the spike window before the first counted bin)
    leaves the loss and its gradients unchanged; the gradient there is zero."""
    geom, tr, _ = data
    cfg = LossConfig(v=1.0, spike=1.0, imem=1.0, dipole=1.0, spike_boost=2.0, spike_window_ms=3)
    loss = SurrogateLoss(cfg, 12, vmem_to_imem=geom.vmem_to_imem, midpoints=geom.midpoints)
    loss.fit(tr.v, tr.spikes)
    burn_in, torch_gen = 20, torch.Generator().manual_seed(0)
    v_true, spikes = tr.v[:4].clone(), tr.spikes[:4].clone()
    v_hat = v_true + torch.randn(v_true.shape, generator=torch_gen)
    logit = torch.randn(spikes.shape, generator=torch_gen)

    def run(vh, lg, vt, sp):
        vh, lg = vh.clone().requires_grad_(True), lg.clone().requires_grad_(True)
        total, parts = loss({"v": vh, "spike_logit": lg}, {"v": vt, "spikes": sp}, burn_in)
        total.backward()
        return total.detach(), parts, vh.grad, lg.grad

    clean = run(v_hat, logit, v_true, spikes)
    bad_vh, bad_lg, bad_vt, bad_sp = v_hat.clone(), logit.clone(), v_true.clone(), spikes.clone()
    bad_vh[..., :burn_in] += 40 * torch.randn(4, 12, burn_in, generator=torch_gen)
    bad_vt[..., :burn_in] -= 30.0
    bad_lg[:, :burn_in] = 50.0
    bad_sp[:, :burn_in - 3] = 1.0 - bad_sp[:, :burn_in - 3]  # outside the 3-bin spike window
    dirty = run(bad_vh, bad_lg, bad_vt, bad_sp)
    assert set(clean[1]) == {"v", "spike", "imem", "dipole"}
    assert torch.equal(clean[0], dirty[0]) and clean[1] == dirty[1]
    for g_clean, g_dirty in zip(clean[2:], dirty[2:]):
        assert torch.equal(g_clean, g_dirty)
        assert float(g_clean[..., burn_in:].abs().max()) > 0  # the counted bins do get gradient
        assert float(g_clean[..., :burn_in].abs().max()) == 0.0
    # without the burn-in the same corruption does change the loss
    assert float(loss({"v": bad_vh, "spike_logit": bad_lg}, {"v": bad_vt, "spikes": bad_sp})[0]) \
        > 2 * float(clean[0])


def test_training_ignores_the_burn_in_bins(data, tmp_path):
    """train() with the voltages of each window's first receptive-field bins scrambled
    (reversed in time: the same values, so the normalisation statistics are unchanged)
    ends with the same weights and validation losses as with clean data."""
    from lfpsurrogate.nn.synthetic import WindowTensors

    geom, tr, va = data
    cfg = train_cfg("ours", epochs=3)
    burn_in = build_model(cfg["model"], geom.n_channels, geom.n_segments, geom).receptive_field
    assert 4 < burn_in < 40

    def scrambled(d):
        v = d.v.clone()
        v[..., :burn_in] = v[..., :burn_in].flip(-1)
        assert not torch.equal(v, d.v)
        return WindowTensors(inputs=d.inputs, v=v, spikes=d.spikes)

    a = train(cfg, tr, va, tmp_path / "clean", geom, progress=False)
    b = train(cfg, scrambled(tr), scrambled(va), tmp_path / "scrambled", geom, progress=False)
    for ha, hb in zip(a.history, b.history):
        assert ha["val_loss"] == pytest.approx(hb["val_loss"], rel=1e-4)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    for k in sa:
        assert torch.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-5), k


def test_loss_burn_in_spike_weights_and_errors(data):
    geom, tr, _ = data
    batch = {"v": tr.v[:2], "spikes": tr.spikes[:2]}
    loss = SurrogateLoss(LossConfig(spike=1.0), 12)
    loss.fit(tr.v, tr.spikes)
    out = {"v": tr.v[:2].clone(), "spike_logit": torch.zeros(2, 96)}
    out["v"][..., :10] += 5.0
    total, parts = loss(out, batch, burn_in=10)
    assert parts["v"] == 0.0 and total > 0 and float(loss.pos_weight) > 1
    w = spike_weights(torch.tensor([[0.0] * 10 + [1.0] + [0.0] * 10]), 2, 4.0)
    assert w[0, 8:13].tolist() == [5.0] * 5 and w[0, 7] == 1.0 and w[0, 13] == 1.0
    with pytest.raises(ValueError, match="burn-in"):
        loss(out, batch, burn_in=96)
    with pytest.raises(ValueError, match="vmem_to_imem"):
        SurrogateLoss(LossConfig(imem=1.0), 12)
    with pytest.raises(ValueError, match="LFP matrix"):
        SurrogateLoss(LossConfig(lfp=1.0), 12, vmem_to_imem=geom.vmem_to_imem)
    k = np.random.default_rng(0).standard_normal((3, 12))
    lfp = SurrogateLoss(LossConfig(v=0.0, spike=0.0, lfp=1.0), 12,
                        vmem_to_imem=geom.vmem_to_imem, lfp_matrix=k)
    lfp.fit(tr.v)
    _, parts = lfp({"v": tr.v[:2] + 0.1 * torch.randn(2, 12, 96), "spike_logit": out["spike_logit"]},
                   batch)
    assert parts["lfp"] > 0
    sp_m = to_torch_matrix(geom.vmem_to_imem)
    assert sp_m.is_sparse
    assert torch.allclose(apply_segment_matrix(sp_m, tr.v[:2]),
                          apply_segment_matrix(sp_m.to_dense(), tr.v[:2]), atol=1e-4)


# ---- training, checkpoints, resume ------------------------------------------------------
@pytest.mark.parametrize("arch", ["tcn", "ours"])
def test_training_reduces_val_loss(arch, data, tmp_path):
    geom, tr, va = data
    res = train(train_cfg(arch), tr, va, tmp_path, geom, progress=False)
    assert len(res.history) == 10
    final = res.history[-1]["val_loss"]
    assert final < 0.5 * res.initial_metrics["val_loss"], (final, res.initial_metrics)
    assert res.best_metrics["val_v_corr"] > 0.8
    for name in ("best.json", "best.safetensors", "last.json", "last.safetensors",
                 "last.state.safetensors"):
        assert (tmp_path / name).is_file()


def test_checkpoint_round_trip_never_unpickles(data, tmp_path, monkeypatch):
    geom, tr, _ = data
    model = build_model(tiny("mmoeex", seed=4), geom.n_channels, geom.n_segments, geom)
    fit_normalisation(model, tr.inputs, tr.v)
    path = save_checkpoint(tmp_path / "m", model, cell_fingerprint=geom.fingerprint,
                           data_fingerprint="abc", epoch=3, metrics={"val_loss": 0.5})

    def no_unpickling(*a, **k):
        raise AssertionError("torch.load must not be used on checkpoints")

    monkeypatch.setattr(torch, "load", no_unpickling)
    loaded, meta = load_model(path, geometry=geom)
    x = tr.inputs[:2]
    with torch.no_grad():
        assert torch.equal(model.eval()(x)["v"], loaded(x)["v"])
    assert meta["epoch"] == 3 and meta["data_fingerprint"] == "abc"
    assert meta["architecture"] == "mmoeex" and torch.equal(loaded.gate_mask, model.gate_mask)
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_model(path, expected_fingerprint="0000")
    src = Path(__import__("lfpsurrogate.nn", fromlist=["x"]).__file__).parent
    assert not any("torch.load(" in f.read_text() for f in src.glob("*.py"))


def test_resume_continues_exactly(data, tmp_path):
    geom, tr, va = data
    straight = train(train_cfg("ours", epochs=4), tr, va, tmp_path / "a", geom, progress=False)
    train(train_cfg("ours", epochs=2), tr, va, tmp_path / "b", geom, progress=False)
    with pytest.raises(CheckpointError, match="resume=True"):
        train(train_cfg("ours", epochs=4), tr, va, tmp_path / "b", geom, progress=False)
    resumed = train(train_cfg("ours", epochs=4), tr, va, tmp_path / "b", geom, progress=False,
                    resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[-1]["val_loss"] == pytest.approx(straight.history[-1]["val_loss"],
                                                           rel=1e-5)
    a, _ = load_model(tmp_path / "a" / "last.json")
    b, _ = load_model(tmp_path / "b" / "last.json")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name
    with pytest.raises(CheckpointError, match="model"):
        cfg = train_cfg("ours", epochs=5)
        cfg["model"]["hidden"] = 12
        train(cfg, tr, va, tmp_path / "b", geom, progress=False, resume=True)


def test_resume_of_a_checkpoint_from_before_a_new_option(data, tmp_path):
    """A checkpoint written before an option existed (here: loss.soma, loss.soma_clip_mv)
    resumes with that option at its default; a real change of the loss is still refused."""
    import json

    geom, tr, va = data
    train(train_cfg("ours", epochs=1), tr, va, tmp_path, geom, progress=False)
    sidecar = tmp_path / "last.json"
    meta = json.loads(sidecar.read_text())
    for key in ("soma", "soma_clip_mv"):
        del meta["config"]["loss"][key]
    sidecar.write_text(json.dumps(meta))
    res = train(train_cfg("ours", epochs=2), tr, va, tmp_path, geom, progress=False, resume=True)
    assert [h["epoch"] for h in res.history] == [1, 2]
    cfg = train_cfg("ours", epochs=3)
    cfg["loss"] = {**cfg.get("loss", {}), "soma": 1.0}
    with pytest.raises(CheckpointError, match="loss"):
        train(cfg, tr, va, tmp_path, geom, progress=False, resume=True)


def test_early_stopping(data, tmp_path, monkeypatch):
    import sys

    tmod = sys.modules["lfpsurrogate.nn.train"]  # the module (the package exports the function)
    real = tmod.evaluate_batches

    def flat(*a, **k):
        return {**real(*a, **k), "loss": 1.0}

    monkeypatch.setattr(tmod, "evaluate_batches", flat)
    geom, tr, va = data
    res = train(train_cfg("tcn", epochs=6, patience=2), tr, va, tmp_path, geom, progress=False)
    assert len(res.history) == 3 and res.stopped_early


def test_train_rejects_short_windows_and_wrong_cell(data, tmp_path):
    geom, tr, va = data
    cfg = train_cfg("tcn")
    cfg["model"].update(first_kernel=90)
    with pytest.raises(ConfigError, match="receptive field"):
        train(cfg, tr, va, tmp_path / "a", geom, progress=False)
    with pytest.raises(ValueError, match="segments"):
        train(train_cfg("tcn"), tr, va, tmp_path / "b", chain_geometry(5), progress=False)


# ---- config -----------------------------------------------------------------------------
def test_config_round_trip_and_yaml(tmp_path):
    import yaml

    cfg = load_config({"model": {"architecture": "mmoe", "n_experts": 6},
                       "data": {"train": "store.zarr"}, "loss": {"spike_pos_weight": 20}})
    assert cfg.model.n_experts == 6 and cfg.data.train == ["store.zarr"]
    assert cfg.loss.spike_pos_weight == 20.0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert load_config(path) == cfg


@pytest.mark.parametrize("raw, match", [
    ({"model": {"hiden": 3}}, r"model\.hiden: unknown key; did you mean 'hidden'"),
    ({"modle": {}}, r"modle: unknown key; did you mean 'model'"),
    ({"model": {"architecture": "lstm"}}, r"model\.architecture: 'lstm' is not one of"),
    ({"model": {"layers": 0}}, r"model\.layers: 0 is below the minimum 1"),
    ({"model": {"hidden": 2.5}}, r"model\.hidden: expected an integer"),
    ({"optim": {"lr": "fast"}}, r"optim\.lr: expected a number"),
    ({"loss": {"imem": -1}}, r"loss\.imem: -1.0 is below the minimum"),
    ({"loss": {"spike_pos_weight": "big"}}, r"loss\.spike_pos_weight: expected a number"),
    ({"model": {"train_basis": "yes"}}, r"model\.train_basis: expected true or false"),
    ({"train": []}, r"train: expected a mapping"),
])
def test_bad_config_names_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_config(raw)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_cosine_schedule_decays_from_lr_to_floor():
    from lfpsurrogate.nn.config import load_config
    from lfpsurrogate.nn.train import epoch_lr

    cfg = load_config({"optim": {"lr": 1e-3, "schedule": "cosine", "min_lr_ratio": 0.1}})
    lrs = [epoch_lr(cfg.optim, e, 11) for e in range(11)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    const = load_config({"optim": {"lr": 2e-3}})
    assert epoch_lr(const.optim, 5, 11) == 2e-3


def test_soma_term_sees_only_the_subthreshold_soma_voltage(data):
    """The soma term ignores everything above the clip (action potentials) and elsewhere than
    the soma; below it, a constant error of d mV costs d^2 / var(clipped soma v)."""
    geom, tr, _ = data
    v = tr.v[:2].clone()
    v[:, 3, 40:43] = 20.0                           # a spike at the soma (segment 3)
    batch = {"v": v, "spikes": torch.zeros(2, 96)}
    loss = SurrogateLoss(LossConfig(v=0.0, spike=0.0, soma=1.0, soma_clip_mv=-55.0,
                                    spike_boost=0.0), 12, soma_index=3)
    loss.fit(v)
    clipped = v[:, 3].clamp(max=-55.0)
    assert float(loss.soma_var) == pytest.approx(float(clipped.var()), rel=1e-5)
    spike_only = v.clone()
    spike_only[:, 3, 40:43] = -10.0                 # a different spike height: not counted
    spike_only[:, 5] += 7.0                         # another segment: not counted
    _, parts = loss({"v": spike_only, "spike_logit": torch.zeros(2, 96)}, batch)
    assert parts["soma"] == 0.0
    below = v.clone()
    below[:, 3] = torch.where(v[:, 3] < -60.0, v[:, 3] + 2.0, v[:, 3])
    _, parts = loss({"v": below, "spike_logit": torch.zeros(2, 96)}, batch)
    frac = float((v[:, 3] < -60.0).float().mean())
    assert parts["soma"] == pytest.approx(4.0 * frac / float(clipped.var()), rel=1e-4)
    with pytest.raises(ValueError, match="soma's segment"):
        SurrogateLoss(LossConfig(soma=1.0), 12)
    with pytest.raises(ValueError, match="not one of the 12 segments"):
        SurrogateLoss(LossConfig(soma=1.0), 12, soma_index=12)
