"""Poisson input protocols and input validation (no NEURON needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lfpsurrogate.errors import InputError
from lfpsurrogate.inputs import PROTOCOLS, poisson_inputs, poisson_rates, validate_counts

from conftest import make_stick_geometry


@pytest.fixture
def geom():
    return make_stick_geometry(n=40)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_same_seed_same_counts(geom, protocol):
    a = poisson_inputs(geom, 500, seed=3, protocol=protocol)
    b = poisson_inputs(geom, 500, seed=3, protocol=protocol)
    c = poisson_inputs(geom, 500, seed=4, protocol=protocol)
    assert a.dtype == np.uint8 and a.shape == (geom.n_channels, 500)
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert json.loads(a.attrs["protocol"])["seed"] == 3


def test_mean_rate_matches_request(geom):
    counts = poisson_inputs(geom, 20000, seed=0, protocol="constant", rate_exc_hz=5, rate_inh_hz=2)
    params = json.loads(counts.attrs["protocol"])
    n = geom.n_channels // 2
    exc = counts.values[:n].sum() / n / 20.0
    inh = counts.values[n:].sum() / n / 20.0
    assert exc == pytest.approx(5 * params["exc_scale"], rel=0.05)
    assert inh == pytest.approx(2 * params["exc_scale"] * params["inh_over_exc_scale"], rel=0.05)


def test_rates_scale_with_membrane_area_and_skip_artefactually_thin_segments():
    from lfpsurrogate.geometry import CellGeometry

    stick = make_stick_geometry(n=6)
    d = np.array([20.0, 2.0, 1.0, 0.2, 0.07, 3.0, 0.19])  # two below 0.2 µm, one at it
    z = stick.z.copy()
    z[:, 1] = z[:, 0] + np.array([20.0, 10.0, 40.0, 5.0, 30.0, 15.0, 25.0])
    geom = CellGeometry(name="areas", x=stick.x, y=stick.y, z=z, d=d, section=stick.section,
                        region=stick.region, vmem_to_imem=stick.vmem_to_imem,
                        input_segments=stick.input_segments)
    rate_e, rate_i, _ = poisson_rates(geom, 10, seed=0, protocol="constant")
    length = z[:, 1] - z[:, 0]
    area = np.pi * d * length  # lateral membrane area, µm², written out here
    thick = d >= 0.2
    assert np.all(rate_e[~thick] == 0) and np.all(rate_i[~thick] == 0)
    ratio = rate_e[thick, 0] / area[thick]
    assert np.allclose(ratio, ratio[0])
    # the mean over all slots (zeros included) is still the requested rate x drawn scale
    params = poisson_rates(geom, 10, seed=0, protocol="constant")[2]
    assert rate_e[:, 0].mean() == pytest.approx(5.0 * params["exc_scale"])


def test_protocols_vary_in_time_and_space(geom):
    const_e, _, _ = poisson_rates(geom, 2000, seed=1, protocol="constant")
    mod_e, _, _ = poisson_rates(geom, 2000, seed=1, protocol="modulated")
    piece_e, _, _ = poisson_rates(geom, 2000, seed=1, protocol="piecewise")
    clus_e, _, p = poisson_rates(geom, 2000, seed=1, protocol="clustered")
    assert np.ptp(const_e, axis=1).max() == 0
    assert mod_e.sum(0).std() / mod_e.sum(0).mean() > 0.1
    assert len(np.unique(piece_e[0])) == p_pieces(piece_e[0])
    assert clus_e.max() > 3 * np.median(clus_e)  # bursts stand out above the background
    assert p["n_bursts"] >= 1


def p_pieces(row):
    return 1 + int(np.count_nonzero(np.diff(row)))


def test_mixed_covers_every_protocol(geom):
    seen = {json.loads(poisson_inputs(geom, 10, seed=s).attrs["protocol"])["protocol"] for s in range(40)}
    assert seen == {"constant", "modulated", "piecewise", "clustered"}


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((22, 5), -1), "negative"),
        (np.full((22, 5), 0.5), "non-integer"),
        (np.full((22, 5), np.nan), "non-finite"),
        (np.zeros((21, 5)), "channels"),
        (np.zeros((22,)), "2-D"),
        (np.zeros((22, 0)), "no time bins"),
        (np.array([["a"] * 5] * 22), "numeric"),
    ],
)
def test_invalid_counts(bad, message):
    with pytest.raises(InputError, match=message):
        validate_counts(bad, 22)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(duration_ms=-5), "duration_ms"),
        (dict(duration_ms=10.5), "whole number of bins"),
        (dict(rate_exc_hz=float("nan")), "rate_exc_hz"),
        (dict(protocol="nope"), "unknown protocol"),
    ],
)
def test_invalid_protocol_arguments(geom, kwargs, message):
    args = dict(duration_ms=100, seed=0)
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        poisson_inputs(geom, **args)


# ---- documented defaults, bounds and drive statistics (references: docs/cells.md,
# docs/inputs.md, closed-form statistics of the log-normal, uniform and OU draws) ----------
def test_defaults_are_the_documented_ones(geom):
    """docs/cells.md: default input 5 Hz excitatory, 2 Hz inhibitory per slot; 1 ms bins,
    1 s, protocol chosen by the seed."""
    x = poisson_inputs(geom, seed=2)
    p = json.loads(x.attrs["protocol"])
    assert (p["rate_exc_hz"], p["rate_inh_hz"], p["bin_ms"]) == (5.0, 2.0, 1.0)
    assert x.shape == (geom.n_channels, 1000) and x.attrs["bin_ms"] == 1.0
    assert p["protocol"] in ("constant", "modulated", "piecewise", "clustered")
    n = len(geom.input_segments)
    assert x["channel_kind"].values.tolist() == ["exc"] * n + ["inh"] * n
    assert x["channel_segment"].values.tolist() == [*geom.input_segments] * 2
    assert x.attrs["seed"] == 2 and x.attrs["cell_fingerprint"] == geom.fingerprint
    rate_e, rate_i, q = poisson_rates(geom, 10)  # the same defaults when called directly
    assert (q["rate_exc_hz"], q["rate_inh_hz"], q["bin_ms"], rate_e.shape[1]) == (5.0, 2.0, 1.0, 10)
    assert q["protocol"] in ("constant", "modulated", "piecewise", "clustered")


def test_bin_width_sets_time_axis_and_counts_per_bin(geom):
    x = poisson_inputs(geom, 4000, seed=1, protocol="constant", rate_exc_hz=50, rate_inh_hz=0,
                       bin_ms=2.0)
    p = json.loads(x.attrs["protocol"])
    assert x.shape[1] == 2000 and x["time"].values[:3].tolist() == [0.0, 2.0, 4.0]
    n = len(geom.input_segments)
    hz = x.values[:n].sum() / n / 4.0  # spikes per slot per second
    assert hz == pytest.approx(50 * p["exc_scale"], rel=0.05)
    assert x.values[n:].sum() == 0  # a rate of 0 Hz is allowed and gives no spikes


def test_rate_and_count_bounds(geom):
    """Counts up to MAX_COUNT = 255 pass, 256 does not; rates up to 1e5 Hz pass; bins and
    durations must be positive; the channel-count message states both counts."""
    ok = np.zeros((22, 3), np.int64)
    ok[0, 0] = 255
    assert validate_counts(ok, 22)[0, 0] == 255
    ok[0, 1] = 256
    with pytest.raises(InputError, match="count of 256 spikes"):
        validate_counts(ok, 22)
    # unsigned counts skip the sign, finiteness and whole-number checks, not the bound
    with pytest.raises(InputError, match="count of 256 spikes"):
        validate_counts(ok.astype(np.uint16), 22)
    assert validate_counts(np.full((22, 3), 255, np.uint8), 22).max() == 255
    with pytest.raises(InputError, match=r"has 21 channels but the cell has 22 \(.*: 2 x 11\)"):
        validate_counts(np.zeros((21, 5)), 22)
    assert validate_counts(np.zeros((22, 1)), 22).shape == (22, 1)
    x = poisson_inputs(geom, 10, protocol="constant", rate_exc_hz=1e5, bin_ms=5.0)
    assert x.values.max() == 255  # lambda up to 500 per bin: counts clipped at 255
    with pytest.raises(InputError, match="above 100000 Hz"):
        poisson_rates(geom, 10, rate_exc_hz=1.0001e5)
    for bad in (dict(bin_ms=0.0), dict(duration_ms=0.0), dict(rate_inh_hz=-1e-9),
                dict(duration_ms=True), dict(seed=-1)):
        with pytest.raises(InputError):
            poisson_rates(geom, **{"duration_ms": 10, **bad})
    assert poisson_rates(geom, 10, rate_exc_hz=0, protocol="constant")[0].max() == 0


def test_drive_variety_matches_docs_inputs_md(geom):
    """docs/inputs.md: the excitatory drive is log-normal of sigma 0.6 around the requested
    rate, the E/I ratio U(0.6, 1.6), the modulated correlation time log-uniform in 3-300 ms."""
    ps = [poisson_rates(geom, 5, seed=s, protocol="constant")[2] for s in range(600)]
    log_scale = np.log([p["exc_scale"] for p in ps])
    assert abs(log_scale.mean()) < 0.06 and log_scale.std() == pytest.approx(0.6, abs=0.05)
    ei = np.array([p["inh_over_exc_scale"] for p in ps])
    assert 0.6 <= ei.min() < 0.62 and 1.58 < ei.max() < 1.6 and ei.mean() == pytest.approx(1.1, abs=0.04)
    taus = np.array([poisson_rates(geom, 5, seed=s, protocol="modulated")[2]["tau_ms"]
                     for s in range(300)])
    assert 3.0 <= taus.min() < 3.6 and 250 < taus.max() <= 300.0
    assert np.log(taus).mean() == pytest.approx((np.log(3) + np.log(300)) / 2, abs=0.2)


def test_modulation_is_a_mean_one_log_normal_of_unit_ou_noise(geom):
    """modulated: log rate(t) of a slot = const + depth x s(t), s an Ornstein-Uhlenbeck series
    of unit variance and correlation time tau (autocorrelation e^-1 at lag tau)."""
    for seed in (3, 8):
        rate_e, _, p = poisson_rates(geom, 60000, seed=seed, protocol="modulated")
        s = np.log(rate_e[5])
        s = (s - s.mean()) / p["depth"]
        assert s.std() == pytest.approx(1.0, abs=0.15)
        lag = int(round(p["tau_ms"]))
        r = np.corrcoef(s[:-lag], s[lag:])[0, 1]
        assert r == pytest.approx(np.exp(-1), abs=0.12)
        assert 0.3 <= p["depth"] <= 1.2


def test_protocol_draws_stay_in_their_documented_ranges(geom):
    """docs/inputs.md: depth U(0.3, 1.2); piecewise mean length U(100, 600) ms and
    inhibitory/excitatory gain ratio U(0.5, 1.8) per piece; clustered bursts U(20, 80) Hz
    within U(30, 120) µm, 1 + Poisson(duration x U(2, 10) Hz) of them."""
    depth = [poisson_rates(geom, 5, seed=s, protocol="modulated")[2]["depth"] for s in range(200)]
    assert 0.3 <= min(depth) < 0.32 and 1.18 < max(depth) <= 1.2
    lo, hi = np.inf, 0.0
    for s in range(25):
        rate_e, rate_i, p = poisson_rates(geom, 4000, seed=s, protocol="piecewise")
        assert 100 <= p["mean_segment_ms"] <= 600
        assert p["n_pieces"] == 1 + np.count_nonzero(np.diff(rate_e[0]))
        ratio = rate_i[0] / rate_e[0]  # per piece: U(0.5, 1.8) x a constant
        starts = np.r_[0, np.flatnonzero(np.diff(rate_e[0])) + 1]
        r = ratio[starts]
        assert r.max() / r.min() <= 1.8 / 0.5 + 1e-9
        lo, hi = min(lo, r.max() / r.min()), max(hi, r.max() / r.min())
    assert hi > 2.5
    radii, bursts, counts = [], [], []
    for s in range(600):
        p = poisson_rates(geom, 500, seed=s, protocol="clustered")[2]
        radii.append(p["cluster_radius_um"])
        bursts.append(p["burst_rate_hz"])
        counts.append(p["n_bursts"])
    assert 30 <= min(radii) < 31 and 119 < max(radii) <= 120
    assert 20 <= min(bursts) < 21 and 79 < max(bursts) <= 80
    # mean of 1 + Poisson(0.5 s x U(2, 10) Hz) = 1 + 0.5 x 6 = 4
    assert min(counts) >= 1 and np.mean(counts) == pytest.approx(4.0, abs=0.45)


def test_a_dataarray_in_either_dim_order_gives_channel_time_counts():
    import xarray as xr

    counts = np.arange(22 * 3).reshape(22, 3) % 5
    for da in (xr.DataArray(counts, dims=("channel", "time")),
               xr.DataArray(counts.T, dims=("time", "channel"))):
        out = validate_counts(da, 22)
        assert out.dtype == np.int64 and np.array_equal(out, counts)
    with pytest.raises(InputError, match="dims"):
        validate_counts(xr.DataArray(counts, dims=("channel", "bin")), 22)


def _even_cell():
    """A cell whose input segments are all alike (every slot weight 1)."""
    from lfpsurrogate.geometry import CellGeometry

    stick = make_stick_geometry(n=30)
    return CellGeometry(name="even", x=stick.x, y=stick.y,
                        z=np.c_[np.arange(31) * 20.0, np.arange(1, 32) * 20.0], d=np.full(31, 2.0),
                        section=stick.section, region=stick.region,
                        vmem_to_imem=stick.vmem_to_imem, input_segments=stick.input_segments)


def _modulation_means(g, n_seeds=3):
    """Time averages of the excitatory and inhibitory modulation, sum_j rate[j, t] / (n x
    rate x drawn scales), on seeds with a correlation time under 10 ms (tight averages)."""
    n, means = len(g.input_segments), []
    for seed in range(80):
        if poisson_rates(g, 5, seed=seed, protocol="modulated")[2]["tau_ms"] >= 10:
            continue
        rate_e, rate_i, p = poisson_rates(g, 200000, seed=seed, protocol="modulated")
        time_e = rate_e.sum(0) / (n * 5.0 * p["exc_scale"])
        time_i = rate_i.sum(0) / (n * 2.0 * p["exc_scale"] * p["inh_over_exc_scale"])
        means.append((time_e.mean(), time_i.mean()))
        if len(means) == n_seeds:
            break
    return np.array(means)


def test_excitatory_modulation_has_mean_one():
    """On a cell of equal segments the spatial gains average to 1 over slots, so the summed
    rate is the temporal modulation itself: exp(depth s - depth²/2) with s ~ N(0, 1) (OU) has
    mean 1, i.e. the mean rate is the requested one."""
    means = _modulation_means(_even_cell())[:, 0]
    assert means.shape == (3,) and np.all(np.abs(means - 1) < 0.05), means
    assert abs(means.mean() - 1) < 0.02, means


def test_inhibitory_modulation_has_mean_one():
    """The inhibitory modulation mixes the excitatory series with its own (0.7 s + 0.3 s2);
    before 0.2.0 the mix kept variance 0.58, so its mean was exp(-0.21 depth²): 2-16 %
    below the requested rate."""
    means = _modulation_means(_even_cell())[:, 1]
    assert np.all(np.abs(means - 1) < 0.05) and abs(means.mean() - 1) < 0.02, means


# ---- issue 15b: seed default, one-bin runs, hot-spot width, piece lengths, bursts ---------
def test_one_bin_is_enough_and_the_default_seed_is_zero(geom):
    """A run of exactly one bin is a whole number of bins; poisson_rates' documented default
    seed is 0 (the same draw as seed=0, recorded as such)."""
    assert poisson_inputs(geom, 1.0, seed=1).shape == (geom.n_channels, 1)
    assert poisson_rates(geom, 2.0, bin_ms=2.0, protocol="constant")[0].shape == (geom.n_channels // 2, 1)
    rate_e, rate_i, p = poisson_rates(geom, 10)
    want_e, want_i, _ = poisson_rates(geom, 10, seed=0)
    assert p["seed"] == 0 and np.array_equal(rate_e, want_e) and np.array_equal(rate_i, want_i)


def test_hot_spots_are_wider_than_a_segment():
    """docs/inputs.md: the modulated spatial gain is a sum of Gaussian hot spots of width
    w >= 100 µm (over a non-negative floor), normalised to mean 1. On a straight cell of 31
    segments 20 µm apart a Gaussian changes between neighbours by at most 20 / (w sqrt(e))
    <= 0.121 of its peak, and its mean over the slots is at least m_min (a spot of width 100
    µm at the end of the cell, computed here), so the normalised gain changes between
    neighbouring slots by less than 0.121 / m_min (about 0.56)."""
    g = _even_cell()
    dz = 20.0 * np.arange(31)
    m_min = np.exp(-dz**2 / (2 * 100.0**2)).mean()
    bound = 20.0 / (100.0 * np.sqrt(np.e)) / m_min
    assert 0.5 < bound < 0.6
    for seed in range(20):
        rate_e, rate_i, p = poisson_rates(g, 5, seed=seed, protocol="modulated")
        for rate in (rate_e, rate_i):
            gain = rate[:, 0] / rate[:, 0].mean()  # every slot weight is 1: the spatial gain
            assert np.abs(np.diff(gain)).max() < bound, (seed, gain)
            assert np.ptp(gain) > 0  # and it is not flat


def test_piecewise_mean_length_covers_100_to_600_ms(geom):
    """docs/inputs.md: pieces of exponential length with mean U(100, 600) ms, per sample."""
    m = np.array([poisson_rates(geom, 5, seed=s, protocol="piecewise")[2]["mean_segment_ms"]
                  for s in range(400)])
    assert 100 <= m.min() < 102 and 599 < m.max() <= 600
    assert m.mean() == pytest.approx(350, abs=15)


def _straight_cell(n, z0=0.0, d=2.0):
    """n segments of 20 µm in a line along z from z0 (diameters d, µm)."""
    from lfpsurrogate.geometry import CellGeometry

    stick = make_stick_geometry(n=n - 1)
    z = z0 + 20.0 * np.arange(n)
    return CellGeometry(name="line", x=stick.x, y=stick.y, z=np.c_[z, z + 20.0],
                        d=np.broadcast_to(np.asarray(d, float), (n,)).copy(), section=stick.section,
                        region=stick.region, vmem_to_imem=stick.vmem_to_imem,
                        input_segments=stick.input_segments)


def test_clustered_bursts_add_the_burst_rate_per_area_for_20_to_100_ms():
    """docs/inputs.md: each burst adds U(20, 80) Hz onto the slots within the cluster radius
    of a random slot (the slot itself included), for U(20, 100) ms; like every rate, a slot's
    share scales with its membrane area pi d L (here by hand: mean-normalised). So the extra
    rate of a slot is a whole number of bursts x burst rate x its area weight, every sample
    has one, and runs of extra rate last at least 20 ms, some exactly 20 ms."""
    g = _straight_cell(31, z0=1000.0, d=np.tile([1.0, 2.0, 3.0], 11)[:31])  # 1 mm from the origin
    area = np.pi * g.d * 20.0
    w = area / area.mean()
    runs = []
    for seed in range(30):
        rate_e, _, p = poisson_rates(g, 2000, seed=seed, protocol="clustered")
        extra = rate_e - rate_e.min(1, keepdims=True)  # the constant background removed
        assert (extra > 0).any(), seed  # a burst lands on its own centre slot at least
        k = extra / (w[:, None] * p["burst_rate_hz"])
        assert np.allclose(k, np.round(k), atol=1e-9), seed
        for row in extra > 0:
            edges = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
            start, stop = edges[::2], edges[1::2]
            runs += list((stop - start)[stop < row.size])  # runs cut by the end left out
    assert min(runs) == 20


def test_hot_spots_rise_over_a_floor():
    """docs/inputs.md: a hot-spot map is 0.3 + A x (sum of 2-5 Gaussians of one width w <=
    400 µm), A >= 0.5, normalised to mean 1. On a 25 mm line the slots within 5 w = 2 mm of
    some spot are at most 5 x 4 mm = 80 % of the line, so at least a fifth of the slots are
    at the floor (the spots add < 5 e^-12.5 x A there), and at a spot's centre the gain is at
    least 0.3 + A: max / min >= 1 + 0.5 / 0.3 (and <= 1 + 5 x 2 / 0.3). A sum of Gaussians
    of one width has at most as many peaks as Gaussians: at most 5 peaks (5 is reached)."""
    g = _straight_cell(1250)
    peaks = []
    for seed in range(20):
        rate_e, rate_i, _ = poisson_rates(g, 5, seed=seed, protocol="modulated")
        for rate in (rate_e, rate_i):
            x = rate[:, 0]
            assert 1 + 0.5 / 0.3 - 1e-3 <= x.max() / x.min() <= 1 + 5 * 2 / 0.3, seed
            assert np.quantile(x, 0.19) <= x.min() * (1 + 1e-3), seed
            up = x > x.min() * (1 + 1e-9)  # above the floor (rounding noise aside)
            inner = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]) & up[1:-1]
            peaks.append(int(inner.sum()) + int(up[0] and x[0] > x[1]) + int(up[-1] and x[-1] > x[-2]))
    assert min(peaks) >= 1 and max(peaks) == 5, peaks


def test_every_piece_draws_its_own_gain():
    """docs/inputs.md: each piecewise piece's excitatory gain is log-normal (sigma 0.6), drawn
    independently, so the log gain steps between consecutive pieces have the standard
    deviation sqrt(2) x 0.6 = 0.85 of a difference of two such draws, the last step too."""
    g = make_stick_geometry(n=4)
    last, inner = [], []
    for seed in range(200):
        rate_e = poisson_rates(g, 1500, seed=seed, protocol="piecewise")[0][0]
        starts = np.r_[0, np.flatnonzero(np.diff(rate_e)) + 1]
        steps = np.diff(np.log(rate_e[starts]))
        if steps.size:
            last.append(steps[-1])
            inner.extend(steps[:-1])
    assert len(last) > 150
    assert np.std(last) == pytest.approx(np.sqrt(2) * 0.6, abs=0.12)
    assert np.std(inner) == pytest.approx(np.sqrt(2) * 0.6, abs=0.08)
