"""Plots: CSD arithmetic, and that each figure shows the data it is given."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from lfpsurrogate import forward_model, load_probe
from lfpsurrogate.geometry import CellGeometry
from lfpsurrogate.figures import (csd_from_lfp, laminar_column, plot_eeg_topography,
                                  plot_laminar, plot_meg_field_map, plot_morphology,
                                  scalp_projection)

PROBES = Path(__file__).resolve().parents[1] / "probes"


@pytest.fixture(scope="module")
def tall_stick():
    """Soma + 12 apical segments along z with a chain Laplacian M."""
    n = 13
    z = np.r_[-10.0, np.arange(10.0, 1211.0, 100.0)]
    zz = np.c_[z[:-1], z[1:]]
    a = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tocsr() * 0.05
    m = a - sp.diags(np.asarray(a.sum(axis=1)).ravel())
    return CellGeometry("stick", np.zeros((n, 2)), np.zeros((n, 2)), zz, np.full(n, 2.0),
                        [f"s{i}" for i in range(n)], ["soma"] + ["apical"] * (n - 1), m,
                        np.arange(n))


@pytest.fixture(scope="module")
def output(tall_stick):
    t = np.arange(30)
    v = -65 + 5 * np.sin(t / 5.0)[None] * np.linspace(-1, 1, tall_stick.n_segments)[:, None]
    fwd = forward_model(tall_stick, {"lfp": PROBES / "laminar-16.yaml",
                                "eeg": PROBES / "eeg-10-20.yaml",
                                "meg": PROBES / "meg-radial.yaml"},
                        position=(40, 0, 0), rotation=(0, 0.6, 0))  # tilted: MEG not zero
    return fwd, fwd.from_voltages(v)


def test_csd_of_a_parabola():
    z = np.arange(0.0, 1000.0, 100.0)[::-1]
    phi = (2e-6 * z ** 2)[:, None] * np.ones((1, 4))  # mV; d2phi/dz2 = 4e-6 mV/µm²
    zc, csd = csd_from_lfp(phi, z, sigma=0.3)
    np.testing.assert_allclose(zc, z[1:-1])
    np.testing.assert_allclose(csd, -0.3 * 4e-6 * 1e6, rtol=1e-9)  # µA/mm³
    with pytest.raises(ValueError, match="equally spaced"):
        csd_from_lfp(phi[:3], np.array([0.0, 100.0, 250.0]))


def test_laminar_column_picks_the_longest_column():
    p = load_probe("Neuropixels-128").positions
    idx = laminar_column(p)
    assert len(idx) == 32 and np.all(np.diff(p[idx, 2]) < 0)
    assert len(np.unique(np.round(p[idx, :2], 1), axis=0)) == 1


def test_plot_laminar(output, tmp_path):
    _, ds = output
    fig = plot_laminar(ds, title="stick")
    assert isinstance(fig, Figure)
    traces, image = fig.axes[0], fig.axes[1]
    assert len(traces.lines) == 16
    csd = image.images[0].get_array()
    zc, expected = csd_from_lfp(ds["lfp"].values, ds["electrode_position"].values[:, 2])
    np.testing.assert_allclose(csd, expected)
    fig.savefig(tmp_path / "laminar.png")
    assert (tmp_path / "laminar.png").stat().st_size > 10_000


def test_plot_eeg_topography_default_time_is_peak_field_power(output, tmp_path):
    _, ds = output
    fig = plot_eeg_topography(ds)
    gfp = ds["eeg"].std("eeg_electrode")
    assert f"t = {float(ds['time'][int(np.argmax(gfp.values))]):g} ms" in fig.axes[0].get_title()
    assert "t = 7 ms" in plot_eeg_topography(ds, time=7.2).axes[0].get_title()
    fig.savefig(tmp_path / "eeg.png")
    xy = scalp_projection(ds["eeg_position"].values)
    cz = list(ds["eeg_electrode"].values).index("Cz")
    np.testing.assert_allclose(xy[cz], 0.0, atol=1e-9)
    fz = list(ds["eeg_electrode"].values).index("Fz")
    assert xy[fz][1] > 0 and abs(xy[fz][0]) < 1e-9  # nose up


def test_plot_meg_field_map(output, tmp_path):
    _, ds = output
    assert np.abs(ds["meg"].values).max() > 0
    fig = plot_meg_field_map(ds, time=3.0)
    assert "MEG" in fig.axes[0].get_title() and len(fig.axes) == 2  # map + colorbar
    fig.savefig(tmp_path / "meg.png")


def test_plot_morphology_draws_cells_and_probe(tall_stick, output):
    fwd, _ = output
    fig = plot_morphology(fwd)
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)][0]
    segs = lines.get_segments()
    assert len(segs) == tall_stick.n_segments
    # tilted by 0.6 rad about y, soma at x = 40: top of the cell at x = 40 + 1210 sin(0.6)
    top = max(s[:, 0].max() for s in segs)
    assert top == pytest.approx(40 + 1210 * np.sin(0.6), rel=1e-9)
    contacts = ax.lines[0].get_xydata()
    np.testing.assert_allclose(contacts, fwd.probes["lfp"].positions[:, [0, 2]])
    pop = plot_morphology(tall_stick, "tetrode", position=[[0, 0, 0], [100, 0, 0], [200, 0, 0]],
                          plane="xy")
    assert len(pop.axes[0].collections[0].get_segments()) == 3 * tall_stick.n_segments


def test_readable_units():
    from lfpsurrogate.figures import readable_units

    assert readable_units(np.array([2e-6, -1e-6]), "mV") == (1e6, "nV")
    assert readable_units(np.array([0.001999]), "fT") == (1e3, "aT")
    assert readable_units(np.array([0.25]), "mV") == (1e3, "µV")
    assert readable_units(np.array([3.0]), "mV") == (1.0, "mV")
    assert readable_units(np.array([3e3]), "fT") == (1e-3, "pT")
    assert readable_units(np.array([1.0]), "nA·µm") == (1.0, "nA·µm")


def test_laminar_traces_are_mean_subtracted_with_a_scale_bar(output):
    fwd, ds = output
    ds = ds.copy()
    centred = ds["lfp"] - ds["lfp"].mean("time")
    # 40 µV peak fluctuations on large DC offsets that differ between contacts
    ds["lfp"] = centred / float(np.abs(centred).max()) * 0.04 + 5.0 + ds["electrode"] * 0.5
    fig = plot_laminar(ds)
    ax = fig.axes[0]
    idx = laminar_column(ds["electrode_position"].values)
    z = ds["electrode_position"].values[idx, 2]
    traces = [ln for ln in ax.lines if len(ln.get_xdata()) == ds.sizes["time"]]
    assert len(traces) == len(z)
    for zi, ln in zip(z, traces):  # each trace centred on its own contact
        assert np.mean(ln.get_ydata()) == pytest.approx(zi, abs=1e-6)
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["20 µV"]  # a round value near half the largest deflection


def test_eeg_and_meg_maps_use_readable_units(output):
    fwd, ds = output
    ds = ds.copy()
    ds["eeg"] = ds["eeg"] / float(np.abs(ds["eeg"]).max()) * 2e-6  # 2 nV peak
    ds["meg"] = ds["meg"] / float(np.abs(ds["meg"]).max()) * 2e-3  # 2 aT peak
    for fig, unit in ((plot_eeg_topography(ds), "nV"), (plot_meg_field_map(ds), "10⁻³ fT")):
        bar = fig.axes[-1]
        assert bar.get_ylabel() == unit
        ticks = [t.get_text() for t in bar.get_yticklabels()]
        assert ticks and all("e" not in t and len(t) <= 6 for t in ticks), ticks
