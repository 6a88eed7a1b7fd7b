"""Cell loading: built-ins, BBP folders, user cells, mechanism compiling and conflicts."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

import lfpsurrogate as lfps
from lfpsurrogate.cells.mechanisms import compile_mechanisms, load_mechanisms
from lfpsurrogate.errors import CellLoadError, MechanismCompileError, MechanismConflictError

LEAK_MOD = """
NEURON {{
    SUFFIX {name}
    NONSPECIFIC_CURRENT i
    RANGE g, e
}}
UNITS {{ (mA) = (milliamp) (mV) = (millivolt) (S) = (siemens) }}
PARAMETER {{ g = {g} (S/cm2) e = -65 (mV) }}
ASSIGNED {{ v (mV) i (mA/cm2) }}
BREAKPOINT {{ i = g * (v - e) }}
"""

SWC = """# soma (3-point), apical trunk, one basal dendrite
1 1 0 0 0 8 -1
2 1 0 -8 0 8 1
3 1 0 8 0 8 1
4 4 0 20 0 2 3
5 4 0 150 0 1.5 4
6 4 0 300 0 1.0 5
7 4 40 400 0 0.8 6
8 3 0 -20 0 1.5 2
9 3 30 -120 0 1.0 8
"""


def write_user_cell(folder, mech_name):
    (folder / "mod").mkdir()
    (folder / "mod" / f"{mech_name}.mod").write_text(LEAK_MOD.format(name=mech_name, g=1e-5))
    (folder / "cell.swc").write_text(SWC)
    (folder / "biophys.hoc").write_text(
        "forall { Ra = 150 cm = 1 insert pas g_pas = 3e-5 e_pas = -65 insert %s }\n"
        'forsec "soma" { insert hh }\n' % mech_name
    )
    return folder


def test_l5_ttpc1_default(l5):
    g = l5.geometry
    assert 540 <= g.n_segments <= 600  # d_lambda 0.3 at 100 Hz
    counts = {r: int((g.region == r).sum()) for r in ("soma", "axon", "basal", "apical")}
    assert counts["soma"] >= 1 and counts["axon"] == 2  # BBP stub axon: 2 sections
    assert counts["basal"] > 100 and counts["apical"] > 100
    np.testing.assert_allclose(g.midpoints[g.soma_index], 0, atol=1e-6)
    assert g.midpoints[g.region == "apical", 2].mean() > 300  # apical along +z
    assert g.n_channels == 2 * (g.n_segments - counts["axon"])
    assert "CC-BY-NC-SA" in g.meta["licence"]
    assert g.vmem_to_imem.shape == (g.n_segments, g.n_segments)


def test_pyramid_hh_and_discretization(pyramid):
    g = pyramid.geometry
    assert 100 <= g.n_segments <= 200
    assert set(g.region) == {"soma", "basal", "apical"}
    fine = lfps.load_cell("pyramid_hh", d_lambda=0.1)
    assert fine.geometry.n_segments > g.n_segments
    assert fine.geometry.fingerprint != g.fingerprint
    assert fine.geometry.meta["discretization"]["d_lambda"] == 0.1


def test_vmem_to_imem_conserves_current(pyramid):
    # Kirchhoff: the transmembrane currents of a cell sum to zero (columns of M sum to 0)
    m = pyramid.geometry.vmem_to_imem
    col = np.asarray(m.sum(axis=0)).ravel()
    assert np.abs(col).max() < 1e-9 * np.abs(m).max()


def test_user_cell_from_files_loads_and_simulates(tmp_path):
    name = "tleak" + uuid.uuid4().hex[:6]
    folder = write_user_cell(tmp_path, name)
    cell = lfps.load_cell(folder / "cell.swc", mod_dir=folder / "mod",
                          biophysics=folder / "biophys.hoc", v_init=-65, celsius=6.3)
    g = cell.geometry
    assert set(g.region) == {"soma", "basal", "apical"}
    seg = cell.neuron_segments()[g.soma_index]
    assert hasattr(seg, name) and hasattr(seg, "hh")
    strong = lfps.poisson_inputs(cell, 100, seed=0, protocol="constant", rate_exc_hz=400, rate_inh_hz=0)
    ds = lfps.simulate(cell, strong)
    assert ds.spike_times.size >= 1
    rest = lfps.simulate(cell, np.zeros_like(strong.values))
    assert rest.spike_times.size == 0


def test_user_cell_python_biophysics(tmp_path):
    (tmp_path / "cell.swc").write_text(SWC)

    def biophysics(cell):
        for sec in cell.allseclist:
            sec.insert("pas")
            sec.g_pas = 1e-4

    cell = lfps.load_cell(tmp_path / "cell.swc", biophysics=biophysics)
    assert all(seg.pas.g == 1e-4 for seg in cell.neuron_segments())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name_or_path="/nonexistent/cell.swc"), "does not exist"),
        (dict(name_or_path="no_such_cell"), "unknown cell"),
        (dict(name_or_path="pyramid_hh", nsegs_method="weird"), "nsegs_method"),
        (dict(name_or_path="pyramid_hh", d_lambda=-1), "positive"),
        (dict(name_or_path="pyramid_hh", synapses={"bogus": 1}), "unknown synapse parameters"),
    ],
)
def test_bad_cell_arguments(kwargs, message):
    with pytest.raises(CellLoadError, match=message):
        lfps.load_cell(**kwargs)


def test_unreadable_and_bare_morphology(tmp_path):
    (tmp_path / "cell.swc").write_text(SWC)
    with pytest.raises(CellLoadError, match="biophysics"):
        lfps.load_cell(tmp_path / "cell.swc")
    (tmp_path / "cell.txt").write_text("x")
    with pytest.raises(CellLoadError, match="suffix"):
        lfps.load_cell(tmp_path / "cell.txt", biophysics=lambda c: None)
    (tmp_path / "broken.swc").write_text("1 1 0 0 0 garbage\n")
    with pytest.raises(CellLoadError, match="could not build"):
        lfps.load_cell(tmp_path / "broken.swc", biophysics=lambda c: None)


def test_mod_that_fails_to_compile_reports_compiler_output(tmp_path):
    bad = tmp_path / "bad.mod"
    bad.write_text("NEURON { SUFFIX broken" + uuid.uuid4().hex[:6] + " }\nBREAKPOINT { i = = 1 }\n")
    with pytest.raises(MechanismCompileError, match="nrnivmodl failed") as info:
        compile_mechanisms([bad])
    assert "bad.mod" in str(info.value)
    assert len(str(info.value)) > 200  # carries the compiler's message


def test_compiled_mechanisms_are_cached(tmp_path):
    name = "cleak" + uuid.uuid4().hex[:6]
    mod = tmp_path / f"{name}.mod"
    mod.write_text(LEAK_MOD.format(name=name, g=1e-5))
    first = compile_mechanisms([mod])
    mtime = first.stat().st_mtime_ns
    assert compile_mechanisms([mod]) == first
    assert first.stat().st_mtime_ns == mtime
    mod.write_text(LEAK_MOD.format(name=name, g=2e-5))
    assert compile_mechanisms([mod]) != first  # recompiled when the source changes


def test_conflicting_mechanism_gets_clear_error(tmp_path):
    name = "xleak" + uuid.uuid4().hex[:6]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / f"{name}.mod").write_text(LEAK_MOD.format(name=name, g=1e-5))
    (b / f"{name}.mod").write_text(LEAK_MOD.format(name=name, g=3e-5))
    load_mechanisms([a / f"{name}.mod"])
    load_mechanisms([a / f"{name}.mod"])  # same source again: fine
    with pytest.raises(MechanismConflictError, match=f"{name}.*new Python process"):
        load_mechanisms([b / f"{name}.mod"])


@pytest.mark.slow
def test_other_bbp_cell_from_mearec_loads_like_the_default():
    code = textwrap.dedent("""
        import numpy as np, lfpsurrogate as lfps
        cell = lfps.load_cell("L5_MC_bAC217_1")
        ds = lfps.simulate(cell, lfps.poisson_inputs(cell, 100, seed=0))
        m = cell.geometry.vmem_to_imem
        err = np.linalg.norm(m @ ds.v.values - ds.imem.values) / np.linalg.norm(ds.imem.values)
        print("RESULT", cell.geometry.n_segments, err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][0]
    n_seg, err = line.split()[1:]
    assert int(n_seg) > 50 and float(err) < 1e-3


def test_mearec_cells_are_found_without_importing_mearec():
    """The BBP folder comes from MEArec's installed files; MEArec itself (about 2 s of
    imports, and dependencies a GPU image may lack) is never imported."""
    code = textwrap.dedent("""
        import sys
        from lfpsurrogate.cells.sources import mearec_bbp_folder
        folder = mearec_bbp_folder("L5_TTPC1_cADpyr232_1")
        print("RESULT", "MEArec" in sys.modules, sorted(p.name for p in folder.iterdir())[:20])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][0]
    assert line.startswith("RESULT False"), line
    assert "morphology" in line and "biophysics.hoc" in line


def test_mearec_missing_or_without_the_cell_gives_clear_errors(monkeypatch):
    import importlib.machinery
    import importlib.util

    from lfpsurrogate.cells.sources import mearec_bbp_folder

    with pytest.raises(CellLoadError, match="no BBP cell 'no_such_cell'; available: .*L5_TTPC1_cADpyr232_1"):
        mearec_bbp_folder("no_such_cell")  # the message lists what MEArec has
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(CellLoadError, match="not installed: pip install MEArec"):
        mearec_bbp_folder("L5_TTPC1_cADpyr232_1")
    # a stray MEArec.py shadowing the package
    shadow = importlib.machinery.ModuleSpec("MEArec", None, origin="/home/me/MEArec.py")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: shadow)
    with pytest.raises(CellLoadError, match="MEArec.py, a module, not the package"):
        mearec_bbp_folder("L5_TTPC1_cADpyr232_1")


TEMPLATE = """
begintemplate TinyCell{tag}
public soma, dend, all
create soma[1], dend[1]
objref all
proc init() {{
    all = new SectionList()
    soma[0] {{ L = 20 diam = 20 nseg = 1 insert hh all.append() }}
    dend[0] {{ L = 400 diam = 2 insert pas g_pas = 5e-5 e_pas = -65 all.append() }}
    connect dend[0](0), soma[0](1)
    forall {{ Ra = 150 cm = 1 }}
}}
endtemplate TinyCell{tag}
"""


def test_user_cell_from_hoc_template(tmp_path):
    tag = uuid.uuid4().hex[:6]
    (tmp_path / "tiny.hoc").write_text(TEMPLATE.format(tag=tag))
    (tmp_path / "cell.swc").write_text(SWC)  # ignored: the template builds its own sections
    cell = lfps.load_cell(tmp_path / "cell.swc", template_file=tmp_path / "tiny.hoc",
                          v_init=-65, celsius=6.3)
    g = cell.geometry
    assert set(g.region) == {"soma", "basal"}
    assert g.n_segments > 2  # the d_lambda rule re-cut the 400 µm dendrite
    strong = lfps.poisson_inputs(cell, 100, seed=0, protocol="constant", rate_exc_hz=300, rate_inh_hz=0)
    ds = lfps.simulate(cell, strong)
    m = g.vmem_to_imem
    assert np.linalg.norm(m @ ds.v.values - ds.imem.values) <= 1e-3 * np.linalg.norm(ds.imem.values)
    assert ds.spike_times.size >= 1


def test_user_cell_from_a_cell_file(tmp_path):
    name = "yleak" + uuid.uuid4().hex[:6]
    write_user_cell(tmp_path, name)
    (tmp_path / "cell.yaml").write_text(
        f"name: my_cell\nmorphology: cell.swc\nmod_dir: mod\nbiophysics: biophys.hoc\n"
        "v_init: -65\ncelsius: 6.3\n")
    cell = lfps.load_cell(tmp_path / "cell.yaml")
    assert cell.name == "my_cell" and cell.spec.celsius == 6.3
    assert hasattr(cell.neuron_segments()[cell.geometry.soma_index], name)
    (tmp_path / "bad.yaml").write_text("morphology: cell.swc\nbiophysics: biophys.hoc\nspeed: 3\n")
    with pytest.raises(CellLoadError, match="unknown keys"):
        lfps.load_cell(tmp_path / "bad.yaml")
    (tmp_path / "nomorph.yaml").write_text("biophysics: biophys.hoc\n")
    with pytest.raises(CellLoadError, match="'morphology' is missing"):
        lfps.load_cell(tmp_path / "nomorph.yaml")
