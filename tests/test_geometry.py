"""CellGeometry: validation, NEURON-free save/load, fingerprints, tamper detection."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lfpsurrogate.errors import GeometryError
from lfpsurrogate.geometry import CellGeometry

from conftest import make_stick_geometry


def test_roundtrip_preserves_everything(stick, tmp_path):
    path = stick.save(tmp_path / "g.npz")
    back = CellGeometry.load(path)
    assert back.fingerprint == stick.fingerprint
    for key in ("x", "y", "z", "d"):
        np.testing.assert_array_equal(getattr(back, key), getattr(stick, key))
    assert (back.vmem_to_imem != stick.vmem_to_imem).nnz == 0
    assert list(back.region) == list(stick.region)
    assert back.n_channels == 2 * stick.n_segments


def test_fingerprint_changes_with_geometry_and_meta(stick):
    other = make_stick_geometry(length_um=21.0)
    assert other.fingerprint != stick.fingerprint
    meta = make_stick_geometry()
    meta.meta = {"kind": "synthetic", "synapses": {"exc_weight_uS": 1.0}}
    assert meta.fingerprint != stick.fingerprint


def test_altered_file_is_refused(stick, tmp_path):
    path = stick.save(tmp_path / "g.npz")
    data = dict(np.load(path, allow_pickle=False))
    data["d"] = data["d"] * 1.1
    np.savez(path, **data)
    with pytest.raises(GeometryError, match="altered or corrupted"):
        CellGeometry.load(path)


def test_truncated_file_is_refused(stick, tmp_path):
    path = stick.save(tmp_path / "g.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(GeometryError, match="not a readable CellGeometry"):
        CellGeometry.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(GeometryError, match="does not exist"):
        CellGeometry.load(tmp_path / "nope.npz")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(x=np.zeros((3, 2))), "shape"),
        (dict(region=["soma"] + ["dendrite"] * 10), "unknown regions"),
        (dict(input_segments=[0, 99]), "outside the cell"),
        (dict(d=np.full(11, np.nan)), "non-finite"),
        (dict(section=["soma"] * 10), "one entry per segment"),
        (dict(region=["soma"] * 12), "one entry per segment"),
        (dict(input_segments=[0, 11]), "outside the cell"),  # 11 segments: 0..10
        (dict(input_segments=[-1, 3]), "outside the cell"),
    ],
)
def test_invalid_geometry(stick, change, message):
    fields = dict(name="s", x=stick.x, y=stick.y, z=stick.z, d=stick.d, section=stick.section,
                  region=stick.region, vmem_to_imem=stick.vmem_to_imem,
                  input_segments=stick.input_segments)
    fields.update(change)
    with pytest.raises(GeometryError, match=message):
        CellGeometry(**fields)


def test_load_works_without_neuron(stick, tmp_path):
    path = stick.save(tmp_path / "g.npz")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["neuron"] = None  # any `import neuron` now fails
        import lfpsurrogate
        g = lfpsurrogate.CellGeometry.load({str(path)!r})
        assert g.fingerprint == {stick.fingerprint!r}
        assert "neuron" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("ok", g.n_segments)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok 11" in out.stdout


def _fields(g, **change):
    fields = dict(name="s", x=g.x, y=g.y, z=g.z, d=g.d, section=g.section, region=g.region,
                  vmem_to_imem=g.vmem_to_imem, input_segments=g.input_segments)
    fields.update(change)
    return fields


def test_derived_quantities_by_hand(stick):
    """The stick of conftest: a 20 µm soma centred on the origin and ten 20 µm dendritic
    segments along +z, so midpoints are at z = 0, 20, ..., 200 µm."""
    assert stick.n_segments == 11 and stick.n_channels == 22
    np.testing.assert_allclose(stick.midpoints, np.c_[np.zeros((11, 2)), np.arange(11) * 20.0])
    np.testing.assert_allclose(stick.length, np.full(11, 20.0))
    assert stick.soma_index == 0
    # moved down by 60 µm: segment 3 is nearest the origin; the soma (segment 0) is chosen
    # while it is labelled soma, the nearest segment once no segment is
    low = CellGeometry(**_fields(stick, z=stick.z - 60.0))
    assert low.soma_index == 0
    no_soma = CellGeometry(**_fields(stick, z=stick.z - 60.0, region=["basal"] * 11))
    assert no_soma.soma_index == 3
    two = CellGeometry(**_fields(stick, z=stick.z - 60.0, region=["soma"] * 5 + ["apical"] * 6))
    assert two.soma_index == 3
    slanted = CellGeometry(**_fields(stick, x=np.c_[np.zeros(11), np.full(11, 15.0)]))
    np.testing.assert_allclose(slanted.length, np.full(11, 25.0))  # 15-20-25 triangle
    np.testing.assert_allclose(slanted.midpoints[:, 0], 7.5)
    tilted = CellGeometry(**_fields(stick, y=np.c_[np.zeros(11), np.full(11, 15.0)]))
    np.testing.assert_allclose(tilted.length, np.full(11, 25.0))  # the y term counts too
    text = repr(stick)
    assert "'stick'" in text and "11 segments" in text and "22 input channels" in text
    assert stick.fingerprint in text and "'apical': 10" in text


def test_save_adds_the_npz_suffix(stick, tmp_path):
    path = stick.save(tmp_path / "bundle.geom")
    assert path == tmp_path / "bundle.npz" and path.is_file()
    assert not (tmp_path / "bundle.geom").exists()
    assert CellGeometry.load(path).fingerprint == stick.fingerprint


def test_fingerprint_ignores_rounding_noise_but_not_changes(stick):
    """16 hex digits; unchanged by noise below the rounding (coordinates to 1e-6 µm, M to
    1e-9 of its largest entry, whatever its scale), changed by real differences; meta keys
    in any order give the same fingerprint."""
    import scipy.sparse as sp

    fp = stick.fingerprint
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert CellGeometry(**_fields(stick, name="stick", meta=stick.meta)).fingerprint == fp
    noisy_x = stick.x + 4e-7
    assert CellGeometry(**_fields(stick, name="stick", x=noisy_x, meta=stick.meta)).fingerprint == fp
    moved = stick.x + 1e-3
    assert CellGeometry(**_fields(stick, name="stick", x=moved, meta=stick.meta)).fingerprint != fp
    big = sp.csr_matrix(stick.vmem_to_imem) * 2e4  # entries ~1e3
    base = CellGeometry(**_fields(stick, vmem_to_imem=big)).fingerprint
    noisy = big.copy()
    noisy.data[0] *= 1 + 2e-10  # one entry, far below 1e-9 of the largest
    assert CellGeometry(**_fields(stick, vmem_to_imem=noisy)).fingerprint == base
    changed = big.copy()
    changed.data[0] *= 1.01
    assert CellGeometry(**_fields(stick, vmem_to_imem=changed)).fingerprint != base
    a = CellGeometry(**_fields(stick, meta={"kind": "x", "ra": 150}))
    b = CellGeometry(**_fields(stick, meta={"ra": 150, "kind": "x"}))
    assert a.fingerprint == b.fingerprint != fp


def test_geometries_are_hashable_and_compared_by_identity(stick):
    other = make_stick_geometry()
    assert {stick: 1, other: 2}[stick] == 1  # usable as cache keys
    assert stick == stick and stick != other


def test_a_bundle_with_an_object_array_is_refused(stick, tmp_path):
    """Loading never unpickles: an object array in the bundle is refused."""
    path = stick.save(tmp_path / "g.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["section"] = arrays["section"].astype(object)  # same names, pickled
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(GeometryError):
        CellGeometry.load(tmp_path / "evil.npz")
