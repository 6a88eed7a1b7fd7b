"""Forward models: physics sanity against lfpykit and closed forms, placement, populations,
caching, input handling; ground truth from NEURON runs (lazily imported, last)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import xarray as xr

from lfpsurrogate import forward_model, load_probe
from lfpsurrogate.errors import InputError
from lfpsurrogate.forward import (H_TO_FT, cache_info, place, radial_rotation,
                                  rotation_matrix)
from lfpsurrogate.geometry import CellGeometry
from lfpsurrogate.probes import ProbeError, as_probe, eeg_10_20, radial_meg_array

PROBES = Path(__file__).resolve().parents[1] / "probes"


# ---- helpers ----------------------------------------------------------------------------
def geometry(segments, d=1.0, parents=None, name="synthetic"):
    """CellGeometry from (start, end) point pairs; M = conductance Laplacian of the tree
    given by ``parents`` (default: a chain), so that M @ ones == 0."""
    seg = np.asarray(segments, dtype=float)
    n = len(seg)
    parents = list(range(-1, n - 1)) if parents is None else parents
    rows = [(i, p) for i, p in enumerate(parents) if p >= 0]
    a = sp.coo_matrix((np.ones(len(rows)), ([r for r, _ in rows], [p for _, p in rows])),
                      shape=(n, n))
    a = (a + a.T).tocsr() * 0.05
    m = a - sp.diags(np.asarray(a.sum(axis=1)).ravel())
    region = ["soma"] + ["apical"] * (n - 1)
    return CellGeometry(name, seg[:, :, 0], seg[:, :, 1], seg[:, :, 2], np.full(n, d),
                        [f"s{i}" for i in range(n)], region, m, np.arange(n))


def branched():
    """Asymmetric cell: soma, apical trunk along +z, an oblique branch towards +x+y and a
    basal branch towards -x; soma at the origin."""
    segs, parents = [[(0, 0, -10), (0, 0, 10)]], [-1]
    for k in range(10):  # trunk 10..1010
        segs.append([(0, 0, 10 + 100 * k), (0, 0, 110 + 100 * k)])
        parents.append(len(segs) - 2)
    for k in range(4):  # oblique from z=310
        segs.append([(60 * k, 30 * k, 310 + 20 * k), (60 * (k + 1), 30 * (k + 1), 330 + 20 * k)])
        parents.append(3 if k == 0 else len(segs) - 2)
    for k in range(3):  # basal
        segs.append([(-50 * k, 10 * k, -10 - 30 * k), (-50 * (k + 1), 10 * (k + 1), -40 - 30 * k)])
        parents.append(0 if k == 0 else len(segs) - 2)
    return geometry(segs, d=2.0, parents=parents, name="branched")


def mea(positions, name="test-probe"):
    import MEAutility as mu

    info = {"electrode_name": name, "pos": np.asarray(positions, float).tolist(),
            "center": False, "shape": "circle", "size": 5.0, "plane": "xz", "type": "wire"}
    return as_probe(mu.return_mea(info=info))


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def cell():
    return branched()


@pytest.fixture(scope="module")
def currents(cell):
    rng = np.random.default_rng(0)
    v = rng.normal(-65.0, 3.0, (cell.n_segments, 40))
    return v, cell.vmem_to_imem @ v


# ---- physics ----------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.3, 0.5])
def test_point_source_gives_inverse_distance(sigma):
    g = geometry([[(0, 0, -5e-4), (0, 0, 5e-4)]])
    r = np.array([50.0, 100.0, 400.0])
    probe = mea(np.c_[r, np.zeros(3), np.zeros(3)])
    imem = np.array([[1.0, -2.5]])  # nA
    for method, tol in (("pointsource", 1e-12), ("linesource", 1e-9)):
        ds = forward_model(g, probe, sigma=sigma, method=method).from_currents(imem)
        expected = imem / (4 * np.pi * sigma * r[:, None])  # nA / (S/m µm) = mV
        np.testing.assert_allclose(ds["lfp"].values, expected, rtol=tol)
        assert ds["lfp"].attrs["units"] == "mV"


def test_symmetric_current_pair_dipole_and_far_field():
    g = geometry([[(0, 0, 49.9995), (0, 0, 50.0005)], [(0, 0, -50.0005), (0, 0, -49.9995)]])
    i0 = 2.0
    far = 5000.0
    angles = np.radians([0.0, 45.0, 90.0, 135.0])
    probe = mea(far * np.c_[np.sin(angles), np.zeros(4), np.cos(angles)])
    ds = forward_model(g, probe, method="pointsource").from_currents(np.array([[i0], [-i0]]))
    np.testing.assert_allclose(ds["dipole"].values[:, 0], [0, 0, 100 * i0], atol=1e-9)
    expected = 100 * i0 * np.cos(angles) / (4 * np.pi * 0.3 * far ** 2)
    np.testing.assert_allclose(ds["lfp"].values[:, 0], expected, atol=1e-3 * expected.max())
    assert ds["dipole"].attrs["units"] == "nA*um"


def test_radial_dipole_eeg_matches_lfpykit_four_sphere():
    from lfpykit.eegmegcalc import FourSphereVolumeConductor

    g = geometry([[(0, 0, 99.9995), (0, 0, 100.0005)], [(0, 0, -5e-4), (0, 0, 5e-4)]])
    imem = np.array([[1.0, -0.5], [-1.0, 0.5]])  # p_z = 100, -50 nA µm
    eeg = load_probe(PROBES / "eeg-10-20.yaml")
    ds = forward_model(g, signals=("dipole", "eeg")).from_currents(imem)  # default montage
    p = ds["dipole"].values
    np.testing.assert_allclose(p, [[0, 0], [0, 0], [100, -50]], atol=1e-8)
    four = FourSphereVolumeConductor(eeg.positions, radii=[79000., 80000., 85000., 90000.],
                                     sigmas=[0.3, 1.5, 0.015, 0.3])
    expected = four.get_dipole_potential(p, np.array([0.0, 0.0, 78000.0]))
    assert rel(ds["eeg"].values, expected) < 1e-9
    v = ds["eeg"].sel(time=0.0)
    assert v.idxmax().item() == "Cz" and v.sel(eeg_electrode="Cz") > 0  # radial, under vertex
    np.testing.assert_allclose(v.sel(eeg_electrode="T7"), v.sel(eeg_electrode="T8"), rtol=1e-9)
    assert ds["eeg"].attrs["units"] == "mV"


def test_head_conductivities_come_from_the_file(tmp_path):
    from lfpykit.eegmegcalc import FourSphereVolumeConductor

    g = geometry([[(0, 0, 0), (0, 0, 100)]])
    head = eeg_10_20()
    f = tmp_path / "eeg.yaml"
    text = (PROBES / "eeg-10-20.yaml").read_text().replace(
        "conductivities: [0.3, 1.5, 0.015, 0.3]", "conductivities: [0.33, 1.79, 0.01, 0.33]")
    f.write_text(text)
    ds = forward_model(g, f).from_currents(np.array([[1.0]]))
    four = FourSphereVolumeConductor(head.positions, sigmas=[0.33, 1.79, 0.01, 0.33])
    p = ds["dipole"].values
    assert rel(ds["eeg"].values, four.get_dipole_potential(p, np.array([0, 0, 78000.0]))) < 1e-9
    default = forward_model(g, eeg_10_20()).from_currents(np.array([[1.0]]))
    assert rel(default["eeg"].values, ds["eeg"].values) > 0.1


def test_radial_dipole_meg_vanishes_in_spherical_conductor():
    g = geometry([[(0, 0, 99.9995), (0, 0, 100.0005)], [(0, 0, -5e-4), (0, 0, 5e-4)]])
    imem = np.array([[1.0], [-1.0]])
    radial = forward_model(g, signals=("meg",)).from_currents(imem)
    tangential = forward_model(g, signals=("meg",), rotation=(0, math.pi / 2, 0)).from_currents(imem)
    b_tan = np.abs(tangential["meg"].values).max()
    assert b_tan > 0
    assert np.abs(radial["meg"].values).max() < 1e-12 * b_tan
    assert radial["meg"].attrs["units"] == "fT"


def test_meg_units_fT_against_si_biot_savart():
    """Infinite homogeneous conductor: B = mu0/(4 pi) p x R / R^3 in SI, converted to fT."""
    g = geometry([[(0, 0, 49.9995), (0, 0, 50.0005)], [(0, 0, -50.0005), (0, 0, -49.9995)]])
    meg = radial_meg_array(conductor="infinite")
    ds = forward_model(g, meg, rotation=(0, math.pi / 2, 0)).from_currents(np.array([[1.0], [-1.0]]))
    p_si = ds["dipole"].values[:, 0] * 1e-9 * 1e-6  # nA µm -> A m
    np.testing.assert_allclose(p_si, [1e-13, 0, 0], atol=1e-25)
    R = (meg.positions - [0, 0, 78000.0]) * 1e-6  # m
    b_si = 1e-7 * np.cross(p_si, R) / np.linalg.norm(R, axis=1)[:, None] ** 3  # T
    np.testing.assert_allclose(ds["meg"].values[:, :, 0], b_si * 1e15, rtol=1e-10, atol=1e-14)
    assert H_TO_FT == pytest.approx(4 * math.pi * 1e5)


# ---- placement ---------------------------------------------------------------------------
def test_rotation_matrix_convention():
    np.testing.assert_allclose(rotation_matrix([0, 0, math.pi / 2]) @ [1, 0, 0], [0, 1, 0],
                               atol=1e-15)  # counter-clockwise about z
    np.testing.assert_allclose(rotation_matrix([math.pi / 2, 0, 0]) @ [0, 0, 1], [0, -1, 0],
                               atol=1e-15)
    a = np.array([0.3, -1.1, 2.0])
    expected = (rotation_matrix([0, 0, a[2]]) @ rotation_matrix([0, a[1], 0])
                @ rotation_matrix([a[0], 0, 0]))  # x first, then y, then z
    np.testing.assert_allclose(rotation_matrix(a), expected, atol=1e-15)
    for pos in ([3.0, -4.0, 5.0], [0, 1, 0], [-1, 0, -1]):
        u = np.asarray(pos, float) / np.linalg.norm(pos)
        np.testing.assert_allclose(rotation_matrix(radial_rotation(pos)) @ [0, 0, 1], u,
                                   atol=1e-12)


def test_rotating_180_about_probe_axis_mirrors(cell, currents):
    _, imem = currents
    z = np.arange(-200.0, 1001.0, 200.0)
    pts = [(x, y, zz) for zz in z for (x, y) in ((0, 25), (0, -25), (25, 0), (-25, 0), (0, 0))]
    probe = mea(pts)
    pts = np.asarray(pts)
    mirror = [int(np.flatnonzero(np.all(np.isclose(pts, p * [-1, -1, 1]), axis=1))[0])
              for p in pts]
    a = forward_model(cell, probe, position=(30, 10, 0)).from_currents(imem)
    b = forward_model(cell, probe, position=(-30, -10, 0),
                      rotation=(0, 0, math.pi)).from_currents(imem)
    assert rel(b["lfp"].values, a["lfp"].values[mirror]) < 1e-10
    assert rel(b["dipole"].values, a["dipole"].values * [[-1], [-1], [1]]) < 1e-12
    assert rel(a["lfp"].values, b["lfp"].values) > 1e-2  # the cell is not axially symmetric


def test_translating_cell_and_probe_together_changes_nothing(cell, currents):
    _, imem = currents
    probe = load_probe(PROBES / "laminar-16.yaml")
    a = forward_model(cell, probe, position=(40, 0, 0), rotation=(0.2, 0.1, 0.5)).from_currents(imem)
    d = np.array([1234.5, -321.0, 77.0])
    b = forward_model(cell, probe.translated(d), position=np.array([40, 0, 0]) + d,
                      rotation=(0.2, 0.1, 0.5)).from_currents(imem)
    assert rel(b["lfp"].values, a["lfp"].values) < 1e-9
    assert rel(b["dipole"].values, a["dipole"].values) < 1e-12


def test_place_matches_lfpy_set_rotation(cell):
    """Our rotated coordinates equal LFPy's Cell.set_rotation for the same angles."""
    LFPy = pytest.importorskip("LFPy")  # imports NEURON

    class Stub:  # the attributes set_rotation reads and writes, nothing else
        pt3d, verbose = False, False
        _rel_positions = LFPy.Cell._rel_positions
        _real_positions = LFPy.Cell._real_positions

        def _Cell__update_synapse_positions(self):
            pass

    angles = (0.4, -1.2, 2.5)
    stub = Stub()
    stub.x, stub.y, stub.z = cell.x.copy(), cell.y.copy(), cell.z.copy()
    stub.somapos = np.zeros(3)
    LFPy.Cell.set_rotation(stub, x=angles[0], y=angles[1], z=angles[2])
    x, y, z = place(cell, (0, 0, 0), angles)
    for ours, theirs in ((x, stub.x), (y, stub.y), (z, stub.z)):
        np.testing.assert_allclose(ours[0], theirs, atol=1e-9)


# ---- from_voltages, cache, populations ----------------------------------------------------
def test_from_voltages_equals_from_currents_and_is_cached(cell, currents):
    v, imem = currents
    probes = {"lfp": PROBES / "laminar-32.yaml", "eeg": PROBES / "eeg-10-20.yaml",
              "meg": PROBES / "meg-radial.yaml"}
    f1 = forward_model(cell, probes, position=(50, 0, 0), rotation=(0, 0.3, 0))
    a, b = f1.from_voltages(v), f1.from_currents(imem)
    for k in ("lfp", "dipole", "eeg", "meg"):
        assert rel(a[k].values, b[k].values) < 1e-9, k
    before = cache_info()
    f2 = forward_model(cell, probes, position=(50, 0, 0), rotation=(0, 0.3, 0))
    m1, m2 = f1.matrices("voltages"), f2.matrices("voltages")
    assert cache_info()["hits"] > before["hits"]
    assert all(np.shares_memory(m1[k], m2[k]) for k in m1)
    assert not m1["lfp"].flags.writeable
    f3 = forward_model(cell, probes, position=(51, 0, 0), rotation=(0, 0.3, 0))
    assert not np.shares_memory(f3.matrices("voltages")["lfp"], m1["lfp"])
    m = cell.vmem_to_imem.toarray()
    k = f1.matrices("currents")
    np.testing.assert_allclose(m1["lfp"], k["lfp"] @ m, rtol=1e-12, atol=1e-18)
    assert m1["lfp"].shape == (1, 32, cell.n_segments)


def test_population_sums_cells(cell):
    rng = np.random.default_rng(3)
    n = 3
    pos = np.c_[rng.uniform(-300, 300, (n, 2)), rng.uniform(-100, 100, n)]
    rot = rng.uniform(-0.5, 0.5, (n, 3))
    imem = np.stack([cell.vmem_to_imem @ rng.normal(-65, 3, (cell.n_segments, 20))
                     for _ in range(n)])
    probes = {"lfp": PROBES / "laminar-16.yaml", "eeg": eeg_10_20(), "meg": radial_meg_array()}
    pop = forward_model(cell, probes, position=pos, rotation=rot).from_currents(imem)
    singles = [forward_model(cell, probes, position=pos[c], rotation=rot[c]).from_currents(imem[c])
               for c in range(n)]
    for k in ("lfp", "dipole"):
        assert rel(pop[k].values, sum(s[k].values for s in singles)) < 1e-12
    for c in range(n):
        assert rel(pop["cell_dipole"].values[c], singles[c]["dipole"].values) < 1e-12
    # summed mode: EEG/MEG of the summed dipole at the mean soma position
    centre = forward_model(cell, probes, position=pos.mean(0), signals=("eeg", "meg"))
    k = centre.matrices()
    p = pop["dipole"].values
    assert rel(pop["eeg"].values, k["eeg"][0] @ p) < 1e-12
    assert rel(pop["meg"].values, np.einsum("nij,jt->nit", k["meg"][0], p)) < 1e-12
    # per-cell mode: each dipole at its own soma
    per = forward_model(cell, probes, position=pos, rotation=rot,
                        eeg_dipoles="per_cell").from_currents(imem)
    for key in ("eeg", "meg"):
        assert rel(per[key].values, sum(s[key].values for s in singles)) < 1e-12
    assert pop["cell_position"].shape == (n, 3) and pop.sizes["cell"] == n


def test_dataarray_inputs_dims_time_and_units(cell, currents):
    v, imem = currents
    fwd = forward_model(cell, PROBES / "laminar-16.yaml", position=(50, 0, 0))
    t = 10.0 + 0.5 * np.arange(v.shape[1])
    da = xr.DataArray(v.T, dims=("time", "segment"), coords={"time": t})
    ds = fwd.from_voltages(da)
    np.testing.assert_allclose(ds["time"].values, t)
    assert rel(ds["lfp"].values, fwd.from_voltages(v)["lfp"].values) < 1e-14
    ds3 = fwd.from_currents(xr.Dataset({"imem": (("segment", "time"), imem)}))
    assert rel(ds3["lfp"].values, fwd.from_currents(imem)["lfp"].values) < 1e-14
    np.testing.assert_allclose(fwd.from_currents(imem, dt=0.25)["time"].values[:3], [0, .25, .5])
    cells = fwd.from_currents(imem[None])
    assert cells["cell_dipole"].dims == ("cell", "axis", "time")
    for name, arr in ds.data_vars.items():
        assert "units" in arr.attrs, name
    assert ds["electrode_position"].dims == ("electrode", "axis")
    assert set(ds.data_vars) == {"lfp", "dipole"}


def test_signal_and_probe_api(cell):
    lam = load_probe(PROBES / "laminar-16.yaml")
    assert forward_model(cell, lam).signals == ("lfp", "dipole")
    assert forward_model(cell).signals == ("dipole",)
    assert forward_model(cell, [lam, eeg_10_20()]).signals == ("lfp", "dipole", "eeg")
    only_meg = forward_model(cell, signals=("meg",))
    assert set(only_meg.probes) == {"meg"}
    ds = only_meg.from_currents(np.zeros((cell.n_segments, 2)))
    assert set(ds.data_vars) == {"meg"} and ds["meg"].dims == ("sensor", "axis", "time")
    full = forward_model(cell, lam, signals=("lfp", "dipole", "eeg", "meg"), position=(50, 0, 0))
    assert full.probes["eeg"].n == 19 and full.probes["meg"].kind == "meg"
    with pytest.raises(ProbeError, match="'lfp' needs an extracellular probe"):
        forward_model(cell, signals=("lfp",))
    with pytest.raises(ProbeError, match="choose from"):
        forward_model(cell, lam, signals=("lfp", "ecog"))
    with pytest.raises(ProbeError, match=r"probes\['eeg'\] is a 'mea' probe"):
        forward_model(cell, {"eeg": lam})
    with pytest.raises(ProbeError, match="two 'mea' probes"):
        forward_model(cell, [lam, "tetrode"])
    with pytest.raises(ProbeError, match="method"):
        forward_model(cell, lam, method="root_as_point")


def test_bad_inputs_are_explained(cell):
    fwd = forward_model(cell, PROBES / "laminar-16.yaml", position=(50, 0, 0))
    with pytest.raises(InputError, match=f"has 7 segments but geometry 'branched' has "
                                         f"{cell.n_segments}"):
        fwd.from_currents(np.zeros((7, 5)))
    with pytest.raises(InputError, match="dims"):
        fwd.from_currents(np.zeros(5))
    with pytest.raises(InputError, match="dims"):
        fwd.from_currents(xr.DataArray(np.zeros((cell.n_segments, 2)), dims=("seg", "time")))
    pop = forward_model(cell, PROBES / "laminar-16.yaml", position=np.zeros((4, 3)))
    with pytest.raises(InputError, match="holds 1 cell"):
        pop.from_currents(np.zeros((cell.n_segments, 5)))
    with pytest.raises(InputError, match="position has 4 cells and rotation 2"):
        forward_model(cell, signals=("dipole",), position=np.zeros((4, 3)),
                      rotation=np.zeros((2, 3)))
    with pytest.raises(InputError, match="non-finite"):
        forward_model(cell, position=(np.nan, 0, 0))
    with pytest.raises(InputError, match="outside the brain sphere"):
        forward_model(cell, signals=("eeg",), position=(0, 0, 2000)).from_currents(
            np.zeros((cell.n_segments, 1)))


def test_no_neuron_import():
    code = ("import sys, numpy as np; import lfpsurrogate as l; "
            "import lfpsurrogate.forward, lfpsurrogate.figures; "
            "p = l.load_probe('Neuropixels-128'); "
            "assert 'neuron' not in sys.modules and 'LFPy' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROBES.parent)


# ---- ground truth (NEURON) ----------------------------------------------------------------
def _ground_truth(request, fixture):
    pytest.importorskip("lfpsurrogate.simulate")
    import lfpsurrogate as lfps

    cell = request.getfixturevalue(fixture)  # session fixtures of conftest.py (NEURON)
    truth = lfps.simulate(cell, lfps.poisson_inputs(cell, duration_ms=100, seed=1))
    return cell.geometry, truth


@pytest.mark.parametrize("fixture", ["pyramid", "l5"])
def test_ground_truth_equals_lfpykit(request, fixture):
    import lfpykit
    from lfpykit.eegmegcalc import FourSphereVolumeConductor, SphericallySymmetricVolCondMEG

    geom, truth = _ground_truth(request, fixture)
    lam = load_probe(PROBES / "laminar-16.yaml")
    eeg = load_probe(PROBES / "eeg-10-20.yaml")
    meg = load_probe(PROBES / "meg-radial.yaml")
    shift = np.array([50.0, 0.0, 0.0])
    fwd = forward_model(geom, {"lfp": lam, "eeg": eeg, "meg": meg}, position=shift)
    ours = fwd.from_currents(truth["imem"])
    imem = truth["imem"].values
    s, e, d = truth["seg_start"].values, truth["seg_end"].values, truth["seg_diam"].values

    def lfpykit_cell(offset):
        return lfpykit.CellGeometry(x=np.c_[s[:, 0], e[:, 0]] + offset[0],
                                    y=np.c_[s[:, 1], e[:, 1]] + offset[1],
                                    z=np.c_[s[:, 2], e[:, 2]] + offset[2], d=d)

    lfp = lfpykit.RecExtElectrode(lfpykit_cell(shift), sigma=0.3, probe=lam.mea,
                                  method="linesource").get_transformation_matrix() @ imem
    p = lfpykit.CurrentDipoleMoment(lfpykit_cell(np.zeros(3))).get_transformation_matrix() @ imem
    loc = np.array([0.0, 0.0, 78000.0]) + shift
    v_eeg = FourSphereVolumeConductor(eeg.positions).get_dipole_potential(p, loc)
    b_meg = SphericallySymmetricVolCondMEG(meg.positions).calculate_B(p, loc) * 1e-3 * 1e15
    for key, expected in (("lfp", lfp), ("dipole", p), ("eeg", v_eeg), ("meg", b_meg)):
        assert rel(ours[key].values, expected) <= 1e-6, key
    np.testing.assert_allclose(ours["time"].values, truth["time"].values)
    from_v = fwd.from_voltages(truth["v"])
    for key in ("lfp", "dipole", "eeg", "meg"):
        assert rel(from_v[key].values, ours[key].values) <= 1e-3, key


# ---- cache (docs/forward.md: process-wide LRU of 16 entries) and dipole locations ----------
def test_cache_is_an_lru_of_sixteen_entries(cell):
    from lfpsurrogate.forward import clear_cache

    clear_cache()
    assert cache_info() == {"hits": 0, "misses": 0, "entries": 0}
    fms = [forward_model(cell, signals=("dipole",), position=(float(k), 0, 0)) for k in range(17)]
    for fm in fms[1:]:
        fm.matrices()
    assert cache_info() == {"hits": 0, "misses": 16, "entries": 16}
    fms[1].matrices()  # a hit: entry 1 becomes the most recent, entry 2 the oldest
    fms[0].matrices()  # a miss: evicts entry 2
    assert cache_info() == {"hits": 1, "misses": 17, "entries": 16}
    fms[1].matrices()
    fms[2].matrices()
    assert cache_info() == {"hits": 2, "misses": 18, "entries": 16}
    clear_cache()
    assert cache_info() == {"hits": 0, "misses": 0, "entries": 0}


def test_dipole_locations_and_head_position(cell):
    pos = np.array([[10.0, 0, 0], [30.0, 60, -20]])
    summed = forward_model(cell, signals=("dipole",), position=pos)
    assert summed.dipole_locations.tolist() == [[20.0, 30.0, 78000.0 - 10.0]]  # 78 mm default
    per = forward_model(cell, signals=("dipole",), position=pos, eeg_dipoles="per_cell",
                        head_position=(1.0, 2.0, 3.0))
    assert per.dipole_locations.tolist() == [[11.0, 2.0, 3.0], [31.0, 62.0, -17.0]]
    assert per.n_cells == 2 and summed.sigma == 0.3 and summed.method == "linesource"


def test_place_defaults_and_a_non_geometry(cell):
    x, y, z = place(cell)  # defaults: at the origin, not rotated
    assert np.array_equal(x[0], cell.x) and np.array_equal(y[0], cell.y) and np.array_equal(z[0], cell.z)
    with pytest.raises(InputError, match="must be a CellGeometry, got str"):
        forward_model("branched", signals=("dipole",))
    x, y, z = place(cell, position=(10.0, 20.0, 30.0))
    assert np.allclose(x[0], cell.x + 10) and np.allclose(y[0], cell.y + 20) and np.allclose(z[0], cell.z + 30)
    for bad in (-1, 0, float("nan"), "0.3"):
        with pytest.raises(ProbeError, match="sigma"):
            forward_model(cell, signals=("dipole",), sigma=bad)


def test_a_dipole_on_the_brain_surface_is_refused(cell):
    """The brain sphere has radius 79 mm: a dipole at exactly 79 mm is outside it."""
    with pytest.raises(InputError, match="outside the brain sphere"):
        forward_model(cell, signals=("eeg",), head_position=(0.0, 0.0, 79000.0)).matrices()
    fm = forward_model(cell, signals=("eeg",), head_position=(0.0, 0.0, 78999.0))
    assert fm.matrices()["eeg"].shape[1] == 19
