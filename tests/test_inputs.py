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
    d = np.array([20.0, 2.0, 1.0, 0.5, 0.07, 3.0, 0.19])  # two below 0.2 µm
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
