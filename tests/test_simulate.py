"""Ground truth against physics and against an independent NEURON recording: imem = M v,
bin averages, spike times and threshold, determinism, firing, rest, event timing."""
from __future__ import annotations

import json

import numpy as np
import pytest

import lfpsurrogate as lfps
from lfpsurrogate.errors import InputError

from conftest import neuron_recording


@pytest.fixture(scope="module")
def l5_run(l5):
    inputs = lfps.poisson_inputs(l5, 200, seed=11)
    return inputs, lfps.simulate(l5, inputs)


def test_bin_averaged_currents_equal_m_times_voltages(l5, l5_run):
    _, ds = l5_run
    m = l5.geometry.vmem_to_imem
    err = np.linalg.norm(m @ ds.v.values - ds.imem.values) / np.linalg.norm(ds.imem.values)
    assert err <= 1e-3
    # Kirchhoff: the membrane currents sum to zero at every time
    assert np.abs(ds.imem.sum("segment")).max() < 1e-6 * np.abs(ds.imem).max()


def test_output_layout_and_units(l5, l5_run):
    inputs, ds = l5_run
    g = l5.geometry
    assert ds.v.dims == ("segment", "time") and ds.v.shape == (g.n_segments, 200)
    assert ds.imem.shape == ds.v.shape
    assert ds.v.attrs["units"] == "mV" and ds.imem.attrs["units"] == "nA"
    assert ds.time.values[1] - ds.time.values[0] == 1.0
    assert np.array_equal(ds.inputs.values, inputs.values)
    assert ds.attrs["cell_fingerprint"] == g.fingerprint
    assert ds.attrs["seed"] == 11
    assert "neuron" in json.loads(ds.attrs["versions"])
    assert ds.spikes.sum() == ds.spike_times.size
    assert np.all(np.isfinite(ds.v)) and -100 < float(ds.v.min()) and float(ds.v.max()) < 60


def test_same_seed_bit_identical(l5, l5_run):
    inputs, ds = l5_run
    again = lfps.simulate(l5, lfps.poisson_inputs(l5, 200, seed=11))
    for key in ("v", "imem", "spike_times", "inputs"):
        assert np.array_equal(ds[key].values, again[key].values), key


def test_strong_input_fires_and_zero_input_rests(l5):
    strong = lfps.poisson_inputs(l5, 200, seed=1, protocol="constant", rate_exc_hz=20, rate_inh_hz=0)
    assert lfps.simulate(l5, strong).spike_times.size >= 2
    rest = lfps.simulate(l5, np.zeros((l5.n_channels, 200), dtype=np.uint8))
    assert rest.spike_times.size == 0
    soma = rest.v.values[l5.geometry.soma_index]
    assert np.ptp(soma) < 0.1  # settled to rest: no drift
    assert -80 < soma.mean() < -60


def test_spikes_are_delivered_at_bin_start(pyramid):
    g = pyramid.geometry
    zero = np.zeros((g.n_channels, 60), dtype=np.uint8)
    one = zero.copy()
    channel = int(np.flatnonzero(g.input_segments == g.soma_index)[0])  # soma, excitatory
    one[channel, 30] = 3
    a = lfps.simulate(pyramid, zero).v.values[g.soma_index]
    b = lfps.simulate(pyramid, one).v.values[g.soma_index]
    assert np.array_equal(a[:30], b[:30])  # nothing before the bin
    assert b[30] > a[30] + 0.01  # the response starts inside bin 30
    assert b[31] > b[30]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda n: np.full((n, 10), -1), "negative"),
        (lambda n: np.full((n, 10), 1.5), "non-integer"),
        (lambda n: np.full((n, 10), np.inf), "non-finite"),
        (lambda n: np.zeros((n + 2, 10)), "channels"),
    ],
)
def test_bad_inputs_are_refused(pyramid, make, message):
    with pytest.raises(InputError, match=message):
        lfps.simulate(pyramid, make(pyramid.n_channels))


def test_dt_must_divide_bin(pyramid):
    with pytest.raises(InputError, match="divide"):
        lfps.simulate(pyramid, np.zeros((pyramid.n_channels, 5)), dt=0.3)


def test_cells_can_alternate_in_one_process(pyramid, l5):
    a = lfps.simulate(pyramid, np.zeros((pyramid.n_channels, 20)))
    b = lfps.simulate(l5, np.zeros((l5.n_channels, 20)))
    c = lfps.simulate(pyramid, np.zeros((pyramid.n_channels, 20)))
    assert a.v.shape[0] != b.v.shape[0]
    assert np.array_equal(a.v.values, c.v.values)


@pytest.mark.parametrize("bin_ms, dt", [(1.0, 1 / 16), (2.0, 1 / 8), (0.5, 1 / 16)])
def test_matches_an_independent_neuron_recording(pyramid, bin_ms, dt):
    """simulate's v, imem and spike times against the test's own NEURON run (own NetCons,
    Vector.record of every step, bin averages computed here), for bin widths of 0.5, 1 and
    2 ms. Strong input, so the soma fires and the spike path is covered too."""
    g = pyramid.geometry
    n_bins = int(round(120 / bin_ms))
    counts = lfps.poisson_inputs(pyramid, 120, seed=3, protocol="constant", rate_exc_hz=40,
                                 rate_inh_hz=5, bin_ms=bin_ms).values
    assert counts.shape == (g.n_channels, n_bins)
    ds = lfps.simulate(pyramid, counts, dt=dt, bin_ms=bin_ms)
    v_ref, i_ref, t_ref = neuron_recording(pyramid, counts, dt=dt, bin_ms=bin_ms)
    assert t_ref.size >= 1  # the reference fired: spike detection is exercised
    assert ds.v.shape == v_ref.shape == (g.n_segments, n_bins)
    np.testing.assert_allclose(ds.v.values, v_ref, rtol=0, atol=1e-6)
    scale = np.abs(i_ref).max()
    np.testing.assert_allclose(ds.imem.values, i_ref, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(ds.spike_times.values, t_ref, atol=1e-9)
    np.testing.assert_allclose(ds.time.values, np.arange(n_bins) * bin_ms)
    per_bin = np.bincount((t_ref // bin_ms).astype(int), minlength=n_bins)
    assert np.array_equal(ds.spikes.values, per_bin)


def test_spike_threshold_is_used_and_recorded(pyramid):
    """The detector threshold given to simulate is the one used and the one recorded."""
    counts = lfps.poisson_inputs(pyramid, 100, seed=3, protocol="constant", rate_exc_hz=40,
                                 rate_inh_hz=5).values
    _, _, t_low = neuron_recording(pyramid, counts, threshold_mv=-40.0)
    _, _, t_high = neuron_recording(pyramid, counts, threshold_mv=10.0)
    low = lfps.simulate(pyramid, counts, spike_threshold_mv=-40.0)
    high = lfps.simulate(pyramid, counts, spike_threshold_mv=10.0)
    assert low.attrs["spike_threshold_mv"] == -40.0 and high.attrs["spike_threshold_mv"] == 10.0
    np.testing.assert_allclose(low.spike_times.values, t_low, atol=1e-9)
    np.testing.assert_allclose(high.spike_times.values, t_high, atol=1e-9)
    # a lower threshold is crossed by more action potentials, and earlier on each
    assert t_low.size > t_high.size >= 1 and t_low[0] < t_high[0]


def test_input_after_the_first_500_bins_arrives(pyramid):
    """Events are queued 500 bins at a time: input only after bin 500 must still reach the
    cell, exactly as in the test's own NEURON run."""
    counts = lfps.poisson_inputs(pyramid, 560, seed=4, protocol="constant", rate_exc_hz=40,
                                 rate_inh_hz=5).values
    counts[:, :505] = 0
    ds = lfps.simulate(pyramid, counts)
    v_ref, _, _ = neuron_recording(pyramid, counts)
    soma = pyramid.geometry.soma_index
    assert v_ref[soma, 505:].max() - v_ref[soma, 500] > 1.0  # the input depolarises
    np.testing.assert_allclose(ds.v.values, v_ref, rtol=0, atol=1e-6)


def test_segment_coordinates_are_lfpy_s(pyramid):
    """seg_start/seg_end/seg_x.. of the output against LFPy's own cell coordinates."""
    ds = lfps.simulate(pyramid, np.zeros((pyramid.geometry.n_channels, 3), np.uint8))
    c = pyramid.lfpy_cell
    for k, name in enumerate("xyz"):
        ends = getattr(c, name)
        np.testing.assert_allclose(ds["seg_start"].values[:, k], ends[:, 0], atol=1e-9)
        np.testing.assert_allclose(ds["seg_end"].values[:, k], ends[:, 1], atol=1e-9)
        np.testing.assert_allclose(ds[f"seg_{name}"].values, ends.mean(axis=1), atol=1e-9)
