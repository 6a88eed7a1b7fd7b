"""predict_lfp and model folders: correctness against the forward models, folding,
populations, gradients, refusals, and running without NEURON."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import lfpsurrogate as lfps
from lfpsurrogate.errors import InputError, ModelFolderError
from lfpsurrogate.forward import forward_model
from lfpsurrogate.modelfolder import load_surrogate, write_manifest
from lfpsurrogate.predict import predict_lfp

from conftest import make_tiny_model_folder


@pytest.fixture(scope="module")
def model_dir(pyramid, tmp_path_factory):
    """A small (untrained but normalised) low-rank surrogate of pyramid_hh as a model folder."""
    return make_tiny_model_folder(pyramid.geometry, tmp_path_factory.mktemp("model"),
                                  "tiny_pyramid", local_gain_std=0.3,
                                  metrics={"note": "untrained"}, card="# tiny test model\n")


def test_voltages_and_signals_agree_with_forward_model(model_dir):
    ds = predict_lfp(rates={"duration_ms": 200}, model=model_dir,
                     signals=("v", "lfp", "dipole", "eeg", "meg"))
    loaded = load_surrogate(model_dir)
    fwd = forward_model(loaded.geometry, {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"},
                        position=(50, 0, 0))
    ref = fwd.from_voltages(ds["v"].isel(cell=0).values.astype(np.float64))
    for key in ("lfp", "dipole", "eeg", "meg"):
        err = np.abs(ds[key].values - ref[key].values).max() / np.abs(ref[key].values).max()
        assert err < 1e-4, key
    assert ds["lfp"].attrs["units"] == "mV" and ds.attrs["source"] == "surrogate"


def test_folded_readout_equals_voltage_path(model_dir):
    args = dict(rates={"duration_ms": 200, "n_cells": 3}, model=model_dir,
                signals=("lfp", "dipole", "eeg", "meg"), seed=4)
    folded = predict_lfp(**args)
    plain = predict_lfp(**args, fold_readout=False)
    for key in ("lfp", "dipole", "eeg", "meg"):
        scale = np.abs(plain[key].values).max()
        assert np.abs(folded[key].values - plain[key].values).max() < 1e-4 * scale, key


def test_population_is_the_sum_of_its_cells(model_dir):
    g = load_surrogate(model_dir).geometry
    x = np.stack([lfps.poisson_inputs(g, 150, seed=s).values for s in (1, 2)])
    pos = np.array([[60.0, 0, 0], [-80.0, 30.0, 0]])
    rot = np.array([[0, 0, 0.3], [0, 0, 2.0]])
    both = predict_lfp(x, model=model_dir, positions=pos, rotations=rot, signals=("lfp", "dipole"),
                       batch_size=1)
    one = [predict_lfp(x[i], model=model_dir, positions=pos[i], rotations=rot[i],
                       signals=("lfp", "dipole")) for i in range(2)]
    for key in ("lfp", "dipole"):
        total = one[0][key].values + one[1][key].values
        assert np.allclose(both[key].values, total, rtol=1e-4, atol=1e-6 * np.abs(total).max())


def test_same_seed_same_output_and_spikes(model_dir):
    a = predict_lfp(rates={"duration_ms": 100, "n_cells": 2}, model=model_dir, seed=3,
                    signals=("lfp", "spikes"))
    b = predict_lfp(rates={"duration_ms": 100, "n_cells": 2}, model=model_dir, seed=3,
                    signals=("lfp", "spikes"))
    assert np.array_equal(a["lfp"].values, b["lfp"].values)
    assert a["spikes"].dims == ("cell", "time") and set(np.unique(a["spikes"])) <= {0, 1}


def test_gradients_flow_to_inputs(model_dir):
    """The gradient of the LFP with respect to the input counts: causal (the LFP at bin t
    does not depend on input after t), non-zero on the receptive field, and equal to a
    central finite difference of the same function along a random direction."""
    g = load_surrogate(model_dir).geometry
    x0 = torch.tensor(lfps.poisson_inputs(g, 120, seed=0).values, dtype=torch.float64)
    t, e = 80, 5

    def lfp_at(x):
        out = predict_lfp(x.float(), model=model_dir, signals=("lfp", "eeg"), return_tensors=True)
        return out["lfp"][..., e, t].sum() + 1e3 * out["eeg"][..., 0, t].sum()

    x = x0.clone().float().requires_grad_(True)
    lfp_at(x).backward()
    grad = x.grad.double()
    assert float(grad[:, t + 1:].abs().max()) == 0.0  # causal
    assert float(grad[:, :t + 1].abs().max()) > 0
    direction = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    direction[:, t + 1:] = 0
    eps = 1e-2
    with torch.no_grad():
        fd = (float(lfp_at(x0 + eps * direction)) - float(lfp_at(x0 - eps * direction))) / (2 * eps)
    analytic = float((grad * direction).sum())
    assert fd == pytest.approx(analytic, rel=2e-2, abs=1e-3 * abs(analytic))


def _onsets(logit: np.ndarray, threshold: float) -> np.ndarray:
    """Bins where logit >= threshold and the previous bin (if any) is below it."""
    above = logit >= threshold
    return np.flatnonzero(above & ~np.r_[False, above[:-1]])


def test_model_spike_threshold_sets_predicted_spikes(pyramid, tmp_path):
    """predict_lfp's spikes are the upward crossings of the threshold written in the model
    folder: two folders of the same weights with different thresholds give the crossings of
    each (computed here from the logit), and different spike trains."""
    g = pyramid.geometry
    x = lfps.poisson_inputs(g, 300, seed=4).values
    base = make_tiny_model_folder(g, tmp_path / "base", "m0")
    out = predict_lfp(x, model=base, signals=("spikes",))
    raw = predict_lfp(torch.tensor(x, dtype=torch.float32), model=base, signals=("lfp",),
                      return_tensors=True)
    logit = raw["spike_logit"].detach().double().numpy().reshape(-1)
    assert logit.std() > 0
    # thresholds halfway between neighbouring distinct logit values, at two quantiles
    levels = np.unique(logit)
    picks = [levels[int(q * (len(levels) - 1))] for q in (0.3, 0.8)]
    thresholds = [float((a + levels[np.searchsorted(levels, a) + 1]) / 2) for a in picks]
    at_zero = np.isin(np.arange(logit.size), _onsets(logit, 0.0)).astype(np.int8)
    assert np.array_equal(out["spikes"].values[0], at_zero)  # no threshold in the folder: 0
    trains = []
    for k, thr in enumerate(thresholds):
        folder = make_tiny_model_folder(g, tmp_path / f"t{k}", f"m{k + 1}",
                                        sidecar_extra={"input_rate_hz": [0.5, 20.0],
                                                       "spike_logit_threshold": thr})
        spikes = predict_lfp(x, model=folder, signals=("spikes",))["spikes"].values[0]
        want = np.isin(np.arange(logit.size), _onsets(logit, thr)).astype(np.int8)
        assert want.sum() > 0 and np.array_equal(spikes, want), thr
        trains.append(spikes)
    assert not np.array_equal(trains[0], trains[1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(inputs=np.zeros((5, 50))), "channels"),
        (dict(inputs="channels"), "numeric"),
        (dict(rates={"duration_ms": 50}, signals=("lfp", "ecog")), "unknown signals"),
        (dict(rates={"duration_ms": 50, "bogus": 1}), "unknown rate keys"),
        (dict(rates={"duration_ms": 50, "n_cells": 2}, positions=np.zeros((3, 3))), "positions"),
        (dict(rates={"duration_ms": 50}, positions=[np.nan, 0, 0]), "non-finite"),
        (dict(), "give inputs"),
    ],
)
def test_bad_requests_are_refused(model_dir, kwargs, message):
    with pytest.raises(InputError, match=message):
        predict_lfp(model=model_dir, **kwargs)


def test_bad_counts_are_refused(model_dir):
    n = load_surrogate(model_dir).geometry.n_channels
    for bad, message in ((np.full((n, 20), np.nan), "non-finite"), (np.full((n, 20), -1), "negative"),
                         (np.full((n, 20), 0.5), "non-integer")):
        with pytest.raises(InputError, match=message):
            predict_lfp(bad, model=model_dir)


def test_model_of_another_cell_is_refused(model_dir, l5):
    with pytest.raises(InputError, match="trained for cell 'pyramid_hh'"):
        predict_lfp(rates={"duration_ms": 20}, model=model_dir, cell=l5)
    with pytest.raises(ModelFolderError, match="trained for cell"):
        load_surrogate(model_dir, geometry=l5.geometry)


def test_out_of_distribution_rate_warns(model_dir):
    with pytest.warns(UserWarning, match="outside the training range"):
        predict_lfp(rates={"duration_ms": 50, "rate_exc_hz": 300, "rate_inh_hz": 300}, model=model_dir)


@pytest.mark.parametrize("damage", ["missing", "altered", "truncated", "no_manifest", "bad_manifest"])
def test_damaged_model_folder_is_refused(model_dir, tmp_path, damage):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(model_dir, folder)
    if damage == "missing":
        (folder / "geometry.npz").unlink()
    elif damage == "altered":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (folder / "model.safetensors").write_bytes(bytes(data))
    elif damage == "truncated":
        path = folder / "model.json"
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "no_manifest":
        (folder / "MANIFEST.json").unlink()
    else:
        (folder / "MANIFEST.json").write_text("{not json")
    with pytest.raises(ModelFolderError):
        load_surrogate(folder)


def test_manifest_cannot_point_outside_the_folder(model_dir, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(model_dir, folder)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["files"]["../evil"] = {"sha256": "0", "bytes": 1}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="plain file names"):
        load_surrogate(folder)
    write_manifest(folder)  # a rewritten manifest is consistent again
    load_surrogate(folder)


def test_predict_runs_where_neuron_cannot_be_imported(model_dir):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["neuron"] = None
        sys.modules["LFPy"] = None
        import numpy as np, lfpsurrogate as lfps
        ds = lfps.predict_lfp(rates={{"duration_ms": 100, "n_cells": 2}}, model={str(model_dir)!r},
                              signals=("lfp", "eeg", "meg", "dipole"))
        assert np.isfinite(ds["lfp"].values).all()
        print("ok", ds["lfp"].shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ok (16, 100)" in out.stdout


# ---- rate specifications, default placement, training-range warning, output dataset ------
# (references: poisson_inputs called with seed + i, closed-form annulus statistics, counts
# built in the test to an exact mean rate, M v computed here with the dense matrix)
def test_inputs_from_rates_draws_cell_i_with_seed_plus_i(model_dir):
    from lfpsurrogate.predict import inputs_from_rates

    g = load_surrogate(model_dir).geometry
    spec = {"duration_ms": 40, "n_cells": 3, "rate_exc_hz": 8.0, "protocol": "constant"}
    x = inputs_from_rates(g, spec, seed=5)
    assert x.dims == ("cell", "channel", "time") and x.sizes["cell"] == 3
    for i in range(3):
        ref = lfps.poisson_inputs(g, 40, seed=5 + i, rate_exc_hz=8.0, protocol="constant")
        assert np.array_equal(x.isel(cell=i).values, ref.values)
    assert x.attrs["seed"] == 5 and x.attrs["n_cells"] == 3
    by_rates = predict_lfp(rates=spec, model=model_dir, seed=5, signals=("dipole",))
    by_inputs = predict_lfp(x, model=model_dir, seed=5, signals=("dipole",))
    np.testing.assert_allclose(by_rates["dipole"].values, by_inputs["dipole"].values, rtol=1e-6)


def test_default_placement_one_cell_and_an_annulus():
    from lfpsurrogate.predict import default_placement

    pos, rot = default_placement(1, seed=9)
    assert pos.tolist() == [[50.0, 0.0, 0.0]] and rot.tolist() == [[0.0, 0.0, 0.0]]
    pos, rot = default_placement(2000, seed=2)
    r = np.hypot(pos[:, 0], pos[:, 1])
    assert 20.0 <= r.min() < 22.0 and 198.0 < r.max() <= 200.0 and np.all(pos[:, 2] == 0)
    # uniform in area: P(r < 110) = (110² - 20²) / (200² - 20²) = 0.298
    assert np.mean(r < 110.0) == pytest.approx((110**2 - 20**2) / (200**2 - 20**2), abs=0.04)
    phi = np.arctan2(pos[:, 1], pos[:, 0])
    assert np.mean(phi > 0) == pytest.approx(0.5, abs=0.04)  # all directions
    assert np.all(rot[:, :2] == 0) and 0 <= rot[:, 2].min() < 0.05 and 6.2 < rot[:, 2].max() < 2 * np.pi
    again, _ = default_placement(2000, seed=2)
    other, _ = default_placement(2000, seed=3)
    assert np.array_equal(pos, again) and not np.array_equal(pos, other)


def _counts_at_rate(n_channels: int, n_bins: int, hz: float, bin_ms: float = 1.0) -> np.ndarray:
    """Counts whose mean rate per channel is ``hz`` (ones spread evenly over channels and bins)."""
    k = round(hz * n_channels * n_bins * bin_ms / 1000.0)
    x = np.zeros(n_channels * n_bins, np.uint8)
    x[np.linspace(0, x.size - 1, k).astype(int)] = 1
    assert x.mean() * 1000.0 / bin_ms == pytest.approx(hz, rel=1e-2)
    return x.reshape(n_channels, n_bins)


def test_training_range_warning_at_its_bounds(model_dir):
    """The model was trained on 0.5-20 Hz (sidecar input_rate_hz): a cell warns above 3 x 20
    Hz or below 0.5 / 3 Hz, measured in Hz with the bin width of the inputs."""
    import warnings

    import xarray as xr

    n = load_surrogate(model_dir).geometry.n_channels

    def warns(x, **kw):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predict_lfp(x, model=model_dir, signals=("dipole",), **kw)
        hits = [w for w in caught if "training range" in str(w.message)]
        # attributed to the line that called predict_lfp (stacklevel), not to the library
        assert all(w.filename == __file__ for w in hits), [w.filename for w in hits]
        return str(hits[0].message) if hits else None

    assert warns(_counts_at_rate(n, 1000, 56.0)) is None      # 2.8 x 20 Hz
    assert "64.00 Hz" in warns(_counts_at_rate(n, 1000, 64.0))  # 3.2 x 20 Hz
    assert warns(_counts_at_rate(n, 1000, 0.2)) is None       # 0.5 / 2.5 Hz
    assert "0.13 Hz" in warns(_counts_at_rate(n, 1000, 0.5 / 3.75))
    # the same counts in 2 ms bins are half the rate: 64 Hz per 1 ms bin is 32 Hz
    x = xr.DataArray(_counts_at_rate(n, 1000, 64.0), dims=("channel", "time"), attrs={"bin_ms": 2.0})
    assert warns(x) is None
    # the warning names the cell: the fourth of four, in the second batch of two
    ok = _counts_at_rate(n, 1000, 10.0)
    msg = warns(np.stack([ok, ok, ok, _counts_at_rate(n, 1000, 64.0)]), batch_size=2)
    assert "(cell 3; 1 of 2 cells in this batch)" in msg


def test_dataset_time_voltages_currents_and_spike_probability(model_dir):
    import xarray as xr

    loaded = load_surrogate(model_dir)
    g = loaded.geometry
    counts = lfps.poisson_inputs(g, 60, seed=2).values
    x = xr.DataArray(counts, dims=("channel", "time"), attrs={"bin_ms": 2.0})  # no time coord
    ds = predict_lfp(x, model=model_dir, signals=("v", "imem", "spikes"), return_tensors=False)
    assert np.array_equal(ds["time"].values, np.arange(counts.shape[1]) * 2.0)
    assert ds.attrs["bin_ms"] == 2.0
    v = ds["v"].values[0].astype(np.float64)
    m = g.vmem_to_imem.toarray()
    np.testing.assert_allclose(ds["imem"].values[0], m @ v, rtol=1e-9, atol=1e-12)
    assert ds["segment"].values.tolist() == list(range(g.n_segments))
    assert list(ds["region"].values) == list(g.region)
    logit = predict_lfp(counts.astype(np.float32), model=model_dir, signals=("v",),
                        return_tensors=True)["spike_logit"].detach().numpy()
    np.testing.assert_allclose(ds["spike_probability"].values, 1 / (1 + np.exp(-logit)),
                               rtol=1e-5, atol=1e-7)


def test_one_position_for_a_population_is_broadcast(model_dir):
    spec = {"duration_ms": 40, "n_cells": 2}
    one = predict_lfp(rates=spec, model=model_dir, positions=(60.0, 0, 0), rotations=(0, 0, 0.5),
                      signals=("lfp",))
    each = predict_lfp(rates=spec, model=model_dir, positions=[[60.0, 0, 0]] * 2,
                       rotations=[[0, 0, 0.5]] * 2, signals=("lfp",))
    np.testing.assert_allclose(one["lfp"].values, each["lfp"].values, rtol=1e-6)


def test_all_finite_catches_every_non_finite_value_and_not_an_overflowing_sum():
    """predict_lfp's output guard: one reduction first, the element-wise check only when the
    sum is not finite; a NaN, an inf or a +inf/-inf pair anywhere is caught, and finite
    values whose float32 sum overflows are not mistaken for non-finite ones."""
    import torch

    from lfpsurrogate.predict import all_finite

    x = torch.randn(3, 1000)
    assert all_finite(x)
    for bad in ([float("nan")], [float("inf")], [float("-inf")], [float("inf"), float("-inf")]):
        y = x.clone()
        y.view(-1)[torch.tensor([17, 2900][:len(bad)])] = torch.tensor(bad)
        assert not all_finite(y), bad
    big = torch.full((4,), 3e38)
    assert not torch.isfinite(big.sum()) and all_finite(big)
