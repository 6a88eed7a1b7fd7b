"""load_probe: MEAutility names, shipped YAML files, the EEG/MEG schema and its validation."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lfpsurrogate import load_probe
from lfpsurrogate.probes import (HeadModel, ProbeError, as_probe, eeg_10_20, mea_names,
                                 radial_meg_array, save_sensor_yaml, shipped_probes)

PROBES = Path(__file__).resolve().parents[1] / "probes"


def test_every_meautility_builtin_loads():
    import MEAutility as mu

    names = mea_names()
    assert {"Neuropixels-128", "Neuronexus-32", "tetrode"} <= set(names)
    for name in names:
        p = load_probe(name)
        assert p.kind == "mea" and p.n == mu.return_mea(name).number_electrodes
        np.testing.assert_allclose(p.positions, mu.return_mea(name).positions)
    assert load_probe("Neuropixels-128").n == 128


def test_shipped_laminar_probes():
    for stem, n, pitch in (("laminar-16", 16, 100.0), ("laminar-32", 32, 50.0)):
        p = load_probe(PROBES / f"{stem}.yaml")
        assert p.kind == "mea" and p.n == n and p.name == stem
        np.testing.assert_allclose(p.positions[:, :2], 0.0)
        np.testing.assert_allclose(np.diff(p.positions[:, 2]), -pitch)  # top to bottom
        assert load_probe(stem).fingerprint == p.fingerprint  # stem lookup in probes/


def test_shipped_neuropixels_style():
    p = load_probe(PROBES / "neuropixels-style-160.yaml")
    assert p.n == 160
    assert len(np.unique(p.positions[:, 1])) == 4  # four columns
    depths = np.unique(p.positions[:, 2])
    np.testing.assert_allclose(np.diff(depths), 20.0)  # staggered: a contact every 20 µm


def test_eeg_10_20_file_matches_generator_and_geometry():
    p = load_probe(PROBES / "eeg-10-20.yaml")
    gen = eeg_10_20()
    assert p.kind == "eeg" and p.labels == gen.labels and len(p.labels) == 19
    np.testing.assert_allclose(p.positions, gen.positions, atol=1e-3)
    r = np.linalg.norm(p.positions, axis=1)
    np.testing.assert_allclose(r, 90000.0, rtol=1e-9)
    assert np.all(r <= 90000.0)  # lfpykit rejects electrodes outside the scalp
    pos = dict(zip(p.labels, p.positions / 90000.0))

    def angle(a, b):
        return math.degrees(math.acos(np.clip(pos[a] @ pos[b], -1, 1)))

    np.testing.assert_allclose(pos["Cz"], [0, 0, 1], atol=1e-12)
    assert angle("Fz", "Cz") == pytest.approx(36) and angle("Cz", "Pz") == pytest.approx(36)
    assert angle("C3", "Cz") == pytest.approx(36) and angle("T7", "Cz") == pytest.approx(72)
    assert angle("F3", "F7") == pytest.approx(angle("F3", "Fz"))  # F3 halfway
    assert pos["T7"][0] < 0 < pos["T8"][0]  # left is -x
    assert pos["Fp1"][1] > 0 > pos["O1"][1]  # nose is +y
    np.testing.assert_allclose(pos["Fp1"] * [-1, 1, 1], pos["Fp2"], atol=1e-12)
    assert p.head == HeadModel()


def test_meg_file_matches_generator_radial_outside_head():
    p = load_probe(PROBES / "meg-radial.yaml")
    gen = radial_meg_array()
    assert p.kind == "meg" and p.conductor == "spherical" and p.n == gen.n > 50
    np.testing.assert_allclose(p.positions, gen.positions, atol=1e-3)
    r = np.linalg.norm(p.positions, axis=1)
    assert r.min() > p.head.scalp_radius
    np.testing.assert_allclose(p.orientations, p.positions / r[:, None], atol=1e-8)


def test_mm_units_are_converted(tmp_path):
    f = tmp_path / "mm.yaml"
    f.write_text("kind: eeg\nunits: mm\nhead: {radii: [79, 80, 85, 90], "
                 "conductivities: [0.3, 1.5, 0.015, 0.3]}\n"
                 "electrodes: {names: [Cz, X], positions: [[0, 0, 90], [90, 0, 0]]}\n")
    p = load_probe(f)
    np.testing.assert_allclose(p.positions, [[0, 0, 90000], [90000, 0, 0]], rtol=1e-9)
    assert p.head.radii == (79000.0, 80000.0, 85000.0, 90000.0)


# the same sensors written in each length unit: µm per unit, hard-coded here
UNIT_TEXT = {"um": "1", "µm": "1", "micrometer": "1", "mm": "1e-3", "cm": "1e-4", "m": "1e-6"}
EEG_UM = [[0.0, 0.0, 90000.0], [90000.0, 0.0, 0.0], [0.0, -54000.0, 72000.0]]
MEG_UM = [[0.0, 0.0, 100000.0], [0.0, 110000.0, 0.0]]
HEAD_UM = [79000.0, 80000.0, 85000.0, 90000.0]


def _in_unit(values, unit: str) -> str:
    """µm values as YAML text in ``unit``, in plain decimal notation (0.09 for 90000 µm in
    m): the product is exact, so the file holds what a user would type."""
    from decimal import Decimal

    f = Decimal(UNIT_TEXT[unit])

    def one(c: float) -> str:
        return format(Decimal(repr(float(c))) * f, "f")

    if isinstance(values[0], list):
        return "[" + ", ".join("[" + ", ".join(map(one, row)) + "]" for row in values) + "]"
    return "[" + ", ".join(map(one, values)) + "]"


@pytest.mark.parametrize("unit", sorted(UNIT_TEXT))
def test_one_probe_in_every_length_unit_loads_identically(tmp_path, unit):
    head = f"head: {{radii: {_in_unit(HEAD_UM, unit)}, conductivities: [0.3, 1.5, 0.015, 0.3]}}\n"
    eeg = tmp_path / f"eeg-{unit}.yaml"
    eeg.write_text(f"kind: eeg\nunits: {unit}\n{head}"
                   f"electrodes: {{names: [Cz, T8, X], positions: {_in_unit(EEG_UM, unit)}}}\n",
                   encoding="utf-8")
    meg = tmp_path / f"meg-{unit}.yaml"
    meg.write_text(f"kind: meg\nunits: {unit}\n{head}"
                   f"sensors: {{names: [A, B], positions: {_in_unit(MEG_UM, unit)}, "
                   "orientations: [[0, 0, 1], [0, 1, 0]]}\n", encoding="utf-8")
    e, m = load_probe(eeg), load_probe(meg)
    np.testing.assert_allclose(e.positions, EEG_UM, rtol=1e-9)
    np.testing.assert_allclose(m.positions, MEG_UM, rtol=1e-9)
    np.testing.assert_allclose(e.head.radii, HEAD_UM, rtol=1e-12)
    np.testing.assert_allclose(m.head.radii, HEAD_UM, rtol=1e-12)


def test_save_sensor_yaml_roundtrip(tmp_path):
    head = HeadModel((70000.0, 71000.0, 76000.0, 80000.0), (0.33, 1.79, 0.01, 0.33))
    e = eeg_10_20(head)
    back = load_probe(save_sensor_yaml(e, tmp_path / "e.yaml", "custom head"))
    assert back.head == head and back.labels == e.labels
    np.testing.assert_allclose(back.positions, e.positions, atol=1e-3)
    m = radial_meg_array(radius=95000.0, head=head, conductor="infinite")
    back = load_probe(save_sensor_yaml(m, tmp_path / "m.yaml"))
    assert back.conductor == "infinite" and back.n == m.n


def test_as_probe_accepts_mea_objects_and_probes():
    import MEAutility as mu

    p = as_probe(mu.return_mea("tetrode"))
    assert p.kind == "mea" and p.n == 4
    assert as_probe(p) is p
    moved = p.translated([10, 0, 0])
    np.testing.assert_allclose(moved.positions - p.positions, [[10, 0, 0]] * 4)
    np.testing.assert_allclose(moved.mea.positions, moved.positions)
    assert moved.fingerprint != p.fingerprint
    with pytest.raises(ProbeError, match="cannot use"):
        as_probe(42)


# ---- invalid files: the error names the file and the field ------------------------------
EEG_OK = ("kind: eeg\nunits: um\n"
          "electrodes:\n  names: [Cz, T8]\n  positions: [[0, 0, 90000], [90000, 0, 0]]\n")
MEG_OK = ("kind: meg\nunits: um\n"
          "sensors:\n  names: [A, B]\n  positions: [[0, 0, 100000], [100000, 0, 0]]\n"
          "  orientations: [[0, 0, 1], [1, 0, 0]]\n")


@pytest.mark.parametrize("text, field, message", [
    (EEG_OK.replace("units: um\n", ""), "units", "missing"),
    (EEG_OK.replace("units: um", "units: furlong"), "units", "unknown length unit"),
    (EEG_OK.replace("[0, 0, 90000], ", "[0, .nan, 90000], "), "electrodes.positions[0]",
     "non-finite"),
    (EEG_OK.replace("[90000, 0, 0]", "[85000, 0, 0]"), "electrodes.positions[1]",
     "not on the scalp"),
    (EEG_OK.replace("units: um", "units: mm"), "electrodes.positions[0]", "not on the scalp"),
    ("kind: eeg\nunits: um\n", "electrodes", "missing"),
    ("kind: eeg\nunits: um\nelectrodes: {names: [], positions: []}\n",
     "electrodes.positions", "no sites"),
    (EEG_OK.replace("names: [Cz, T8]", "names: [Cz]"), "electrodes.names", "one name"),
    (EEG_OK + "head: {radii: [79000, 80000, 85000], conductivities: [0.3, 1.5, 0.015, 0.3]}\n",
     "head.radii", "4 values"),
    (EEG_OK + "head: {radii: [80000, 79000, 85000, 90000], "
              "conductivities: [0.3, 1.5, 0.015, 0.3]}\n", "head.radii", "increase"),
    (EEG_OK + "head: {radii: [79000, 80000, 85000, 90000], "
              "conductivities: [0.3, -1.5, 0.015, 0.3]}\n", "head.conductivities", "positive"),
    (EEG_OK + "electrode_spacing: 3\n", "electrode_spacing", "unknown field"),
    (EEG_OK.replace("kind: eeg", "kind: ecog"), "kind", "must be 'eeg' or 'meg'"),
    (MEG_OK.replace("[100000, 0, 0]]", "[50000, 0, 0]]"), "sensors.positions[1]",
     "inside the head"),
    (MEG_OK.replace("  orientations: [[0, 0, 1], [1, 0, 0]]\n", ""), "sensors.orientations",
     "missing"),
    (MEG_OK.replace("[1, 0, 0]]", "[0, 0, 0]]"), "sensors.orientations[1]", "zero vector"),
    (MEG_OK + "conductor: wobbly\n", "conductor", "spherical"),
    ("electrode_name: p\npos: []\n", "pos", "no electrodes"),
    ("electrode_name: p\npos: [[0, 0, .inf]]\n", "pos[0]", "non-finite"),
    ("electrode_name: p\nplane: yz\n", "pos", "missing"),
    ("electrode_name: p\ndim: [4, 1]\n", "pitch", "missing"),
    ("electrode_name: p\ndim: [4, 1]\npitch: [.nan, 0]\n", "pitch", "finite"),
    ("electrode_name: p\npos: [[0, 0, 0]]\nunits: mm\n", "units", "µm"),
])
def test_invalid_files_name_file_and_field(tmp_path, text, field, message):
    f = tmp_path / "bad-probe.yaml"
    f.write_text(text)
    with pytest.raises(ProbeError) as err:
        load_probe(f)
    msg = str(err.value)
    assert "bad-probe.yaml" in msg and f"'{field}'" in msg and message in msg, msg


def test_unreadable_and_unknown(tmp_path):
    with pytest.raises(ProbeError, match="does not exist"):
        load_probe(tmp_path / "nope.yaml")
    f = tmp_path / "broken.yaml"
    f.write_text("kind: [eeg\n")
    with pytest.raises(ProbeError, match="broken.yaml: not valid YAML"):
        load_probe(f)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ProbeError, match="mapping"):
        load_probe(f)
    with pytest.raises(ProbeError, match="unknown probe 'Neuropixels-9999'.*Neuropixels-128"):
        load_probe("Neuropixels-9999")
    assert {"laminar-16", "laminar-32", "eeg-10-20", "meg-radial"} <= set(shipped_probes())


def test_eeg_file_without_kind_gets_a_hint(tmp_path):
    f = tmp_path / "nokind.yaml"
    f.write_text(EEG_OK.replace("kind: eeg\n", ""))
    with pytest.raises(ProbeError, match="nokind.yaml: field 'electrodes'.*kind: eeg"):
        load_probe(f)


def test_a_probe_file_edited_between_loads_gives_its_new_content(tmp_path):
    """Probe files are parsed once per content: an edit (even of the same size, within the
    file system's time resolution) must be seen, and what one caller changes must not leak."""
    src = (Path(__file__).parent.parent / "probes" / "laminar-16.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(src)
    first = load_probe(path)
    assert first.positions[0, 2] == 1100.0
    if first.positions.flags.writeable:
        first.positions[0, 2] = -1.0
    assert load_probe(path).positions[0, 2] == 1100.0
    path.write_text(src.replace("[0.0, 0.0, 1100.0]", "[0.0, 0.0, 1200.0]"))
    assert load_probe(path).positions[0, 2] == 1200.0


# ---- montages by hand, the scalp tolerance, fingerprints --------------------------------
def test_radial_meg_rings_by_hand():
    """Rings every 15° from the vertex to 90°: round(2 pi sin(theta) / 15°) sensors each,
    1, 6, 12, 17, 21, 23, 24 = 104, at 110 mm, facing outwards, labelled MEG001..."""
    p = radial_meg_array()
    assert p.n == 104 and p.labels[0] == "MEG001" and p.labels[-1] == "MEG104"
    r = np.linalg.norm(p.positions, axis=1)
    np.testing.assert_allclose(r, 110000.0, rtol=1e-12)
    theta = np.degrees(np.arccos(np.clip(p.positions[:, 2] / r, -1, 1)))
    rings, counts = np.unique(np.round(theta, 6), return_counts=True)
    np.testing.assert_allclose(rings, [0, 15, 30, 45, 60, 75, 90], atol=1e-6)
    assert counts.tolist() == [1, 6, 12, 17, 21, 23, 24]
    ring = p.positions[np.isclose(theta, 30)]
    az = np.sort(np.degrees(np.arctan2(ring[:, 0], ring[:, 1])) % 360)  # from +y towards +x
    np.testing.assert_allclose(az, np.arange(12) * 30.0, atol=1e-9)
    small = radial_meg_array(radius=120000.0, ring_step_deg=30.0, max_theta_deg=60.0)
    assert small.n == 1 + 6 + 10  # round(2 pi sin 30° / 30°) = 6, round(2 pi sin 60° / 30°) = 10.4
    assert p.conductor == "spherical" and p.head == HeadModel()


def test_eeg_positions_by_hand():
    """Idealised 10-20 sphere, 90 mm: Cz at the vertex, C3 at theta 36° towards -x, T8 at
    theta 72° on +x, O1 at theta 72°, azimuth -162° from the nose (+y)."""
    p = eeg_10_20()
    pos = dict(zip(p.labels, p.positions))
    s, c = math.sin, math.cos
    t36, t72 = math.radians(36), math.radians(72)
    want = {"Cz": [0, 0, 1], "C3": [-s(t36), 0, c(t36)], "T8": [s(t72), 0, c(t72)],
            "Fz": [0, s(t36), c(t36)], "Pz": [0, -s(t36), c(t36)],
            "O1": [s(t72) * s(math.radians(-162)), s(t72) * c(math.radians(-162)), c(t72)],
            "Fp2": [s(t72) * s(math.radians(18)), s(t72) * c(math.radians(18)), c(t72)]}
    for name, u in want.items():
        np.testing.assert_allclose(pos[name], np.array(u) * 90000.0, atol=1e-6, err_msg=name)
    mid = (pos["P8"] + pos["Pz"]) / 2  # P4: great-circle midpoint of P8 and Pz
    np.testing.assert_allclose(pos["P4"], mid / np.linalg.norm(mid) * 90000.0, atol=1e-6)
    r = np.linalg.norm(p.positions, axis=1)
    assert np.all(r < 90000.0) and np.all(r > 90000.0 * (1 - 1e-11))  # a hair inside


def test_scalp_tolerance_is_a_tenth_of_a_percent(tmp_path):
    def eeg(radius_factor):
        f = tmp_path / f"e{radius_factor}.yaml"
        f.write_text(f"kind: eeg\nunits: um\nelectrodes: {{names: [A], positions: "
                     f"[[0, 0, {90000.0 * radius_factor!r}]]}}\n")
        return load_probe(f)

    for ok in (1.0009, 0.9991):
        np.testing.assert_allclose(eeg(ok).positions, [[0, 0, 90000.0]], rtol=1e-9)
    for bad in (1.0011, 0.9989):
        with pytest.raises(ProbeError, match="not on the scalp"):
            eeg(bad)


def test_probe_fingerprint_and_translation():
    p = eeg_10_20()
    moved = p.translated([1.0, 2.0, 3.0])
    np.testing.assert_allclose(moved.positions - p.positions, np.tile([1.0, 2.0, 3.0], (19, 1)))
    assert moved.fingerprint != p.fingerprint
    assert p.translated([1e-11, 0, 0]).fingerprint == p.fingerprint  # rounded at 1e-9 µm
    assert eeg_10_20(HeadModel(conductivities=(0.3, 1.5, 0.01, 0.3))).fingerprint != p.fingerprint
    m = radial_meg_array()
    flipped = type(m)(**{**m.__dict__, "orientations": -m.orientations})
    assert flipped.fingerprint != m.fingerprint
    assert radial_meg_array(conductor="infinite").fingerprint != m.fingerprint


def test_positions_of_the_wrong_width_and_a_bare_dim_are_refused(tmp_path):
    f = tmp_path / "two.yaml"
    f.write_text("kind: eeg\nunits: um\nelectrodes: {names: [A, B], positions: [[0, 90000], [90000, 0]]}\n")
    with pytest.raises(ProbeError, match=r"electrodes.positions.*list of \[3\] entries"):
        load_probe(f)
    g = tmp_path / "dim.yaml"
    g.write_text("electrode_name: p\ndim: 1\n")
    with pytest.raises(ProbeError, match="pitch"):  # MEAutility itself needs a pitch
        load_probe(g)


def test_probes_compare_and_hash_by_identity():
    """Probes hold arrays: equality is identity (eq=False), so they hash and can key a dict."""
    p = eeg_10_20()
    same = p.translated([0.0, 0.0, 0.0])
    assert p == p and p != same and len({p, same}) == 2


def test_probes_are_frozen():
    import dataclasses

    p = eeg_10_20()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"  # forward matrices are cached by the probe's fingerprint
