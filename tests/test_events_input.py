"""predict_lfp(events=...): presynaptic spike times as (cell, channel, time_ms) rows give
the same signals and spikes as the binned counts they make, and bad events are refused."""
from __future__ import annotations

import numpy as np
import pytest

import lfpsurrogate as lfps
from lfpsurrogate.errors import InputError
from lfpsurrogate.predict import predict_lfp

from conftest import make_tiny_model_folder


@pytest.fixture(scope="module", params=["spiking", "linear", "ours"])
def folder(request, pyramid, tmp_path_factory):
    return make_tiny_model_folder(pyramid.geometry, tmp_path_factory.mktemp(request.param),
                                  f"tiny_{request.param}", local_gain_std=0.3,
                                  architecture=request.param)


def _events_of(counts: np.ndarray, rng) -> np.ndarray:
    """Each count k in bin t of (cell, channel) -> k events at t + U[0, 1) ms, shuffled."""
    cell, channel, t = np.nonzero(counts)
    k = counts[cell, channel, t].astype(int)
    rows = np.repeat(np.stack([cell, channel, t], 1), k, axis=0).astype(float)
    rows[:, 2] += rng.uniform(0.0, 0.999, len(rows))
    return rows[rng.permutation(len(rows))]


def test_events_give_the_signals_of_their_binned_counts(folder, pyramid):
    rng = np.random.default_rng(3)
    g = pyramid.geometry
    counts = np.stack([lfps.poisson_inputs(g, 180, seed=s, rate_exc_hz=20.0).values for s in (1, 2, 3)])
    counts[1, 5, 100] = 3  # several events in one bin of one channel are summed
    events = _events_of(counts, rng)
    pos = np.array([[60.0, 0, 0], [-80.0, 30.0, 0], [0, 90.0, 10.0]])
    args = dict(model=folder, positions=pos, signals=("lfp", "dipole", "eeg", "meg", "spikes"),
                batch_size=2)
    dense = predict_lfp(counts, **args)
    ev = predict_lfp(events=events, duration_ms=180.0, n_cells=3, **args)
    for key in ("lfp", "dipole", "eeg", "meg"):
        scale = np.abs(dense[key].values).max()
        assert np.abs(ev[key].values - dense[key].values).max() < 1e-5 * scale, key
    np.testing.assert_array_equal(ev["spikes"].values, dense["spikes"].values)
    np.testing.assert_allclose(ev["spike_probability"].values, dense["spike_probability"].values,
                               atol=1e-5)
    assert ev.sizes["time"] == 180


@pytest.mark.filterwarnings("ignore:mean input rate")
def test_cells_without_events_and_default_cell_count(folder, pyramid):
    """n_cells defaults to the largest cell index + 1; a cell with no events is a cell
    with zero input (as an all-zero count matrix)."""
    g = pyramid.geometry
    counts = np.zeros((2, g.n_channels, 120), np.uint8)
    counts[1, 3, 10] = 1
    counts[1, 7, 50] = 2
    events = np.array([[1, 3, 10.2], [1, 7, 50.0], [1, 7, 50.9]])
    dense = predict_lfp(counts, model=folder, signals=("dipole",))
    ev = predict_lfp(events=events, duration_ms=120, model=folder, signals=("dipole",))
    np.testing.assert_allclose(ev["dipole"].values, dense["dipole"].values, rtol=1e-5,
                               atol=1e-6 * np.abs(dense["dipole"].values).max())


@pytest.mark.parametrize("kwargs, message", [
    (dict(events=np.zeros((4, 2)), duration_ms=100), r"\(n, 3\)"),
    (dict(events=np.array([[0, 1, 5.0]])), "duration_ms"),
    (dict(events=np.array([[0, 1, 100.0]]), duration_ms=100), r"\[0, duration_ms"),
    (dict(events=np.array([[0, 1, -1.0]]), duration_ms=100), r"\[0, duration_ms"),
    (dict(events=np.array([[0, 99999, 1.0]]), duration_ms=100), "channel 99999"),
    (dict(events=np.array([[0.5, 1, 1.0]]), duration_ms=100), "non-negative integers"),
    (dict(events=np.array([[3, 1, 1.0]]), duration_ms=100, n_cells=2), "n_cells=2"),
    (dict(events=np.array([[0, 1, np.nan]]), duration_ms=100), "non-finite"),
    (dict(events=np.array([[0, 1, 1.0]]), duration_ms=0.2), "at least one bin"),
    (dict(events=np.array([[0, 1, 1.0]]), duration_ms=100, rates={"duration_ms": 10}),
     "not events and rates|not rates and events"),
    (dict(rates={"duration_ms": 10}, duration_ms=100), "go with events"),
])
def test_bad_events_are_refused(folder, kwargs, message):
    with pytest.raises(InputError, match=message):
        predict_lfp(model=folder, **kwargs)
