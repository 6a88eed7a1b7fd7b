"""A user's own cell of the shape published layer-5 models come in (tests/data/l5like):
a morphology file, a .mod folder, a hoc template whose init takes the morphology path, and
a biophysics file that defines another template and must be loaded before the template."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lfpsurrogate as lfps
from lfpsurrogate.cells.sources import spec_from_yaml
from lfpsurrogate.errors import CellLoadError

CELL_DIR = Path(__file__).parent / "data" / "l5like"
CELL_FILE = CELL_DIR / "cell.yaml"


@pytest.fixture(scope="module")
def l5like():
    return lfps.load_cell(CELL_FILE)


def densities(cell) -> dict:
    """Every PARAMETER of every density mechanism of every segment, and Ra, cm."""
    from neuron import h

    out = {}
    for i, seg in enumerate(cell.neuron_segments()):
        out[(i, "Ra")], out[(i, "cm")] = seg.sec.Ra, seg.cm
        for mech in seg:
            ms = h.MechanismStandard(mech.name(), 1)
            name = h.ref("")
            for j in range(int(ms.count())):
                ms.name(name, j)
                out[(i, name[0])] = getattr(seg, name[0])
    return out


def test_template_with_morphology_argument_and_preloaded_biophysics(l5like):
    spec = l5like.spec
    assert spec.template_args == [str((CELL_DIR / "morphology.swc").resolve())]
    assert [p.name for p in spec.hoc_files] == ["biophys.hoc"]
    assert spec.biophysics_template == "L5likeBiophys"
    g = l5like.geometry
    assert set(g.region) == {"soma", "axon", "basal", "apical"}
    # the template cut one segment per section; d_lambda 0.1 (the cell file's choice) re-cut
    n_sections = len({s for s in g.section})
    assert g.n_segments > 2 * n_sections
    assert l5like.discretization.d_lambda == 0.1
    # the synaptic weights of the cell file
    assert l5like.synapse_params["exc_weight_uS"] == 0.001
    assert l5like.synapse_params["inh_weight_uS"] == 0.001


def test_densities_are_evaluated_at_the_final_segments(l5like):
    """Re-running the template's own biophysics after loading changes no density, and the
    apical gradient equals the formula of biophys.hoc at each segment's distance."""
    from neuron import h

    before = densities(l5like)
    l5like.lfpy_cell.template.biophys()  # the template's own proc: soma distance(), biophys
    after = densities(l5like)
    assert before.keys() == after.keys()
    changed = [k for k in before if not np.isclose(before[k], after[k], rtol=1e-12, atol=0)]
    assert not changed, f"{len(changed)} densities changed, e.g. {changed[:5]}"
    soma = l5like.lfpy_cell.template.soma[0]
    checked = 0
    for seg, region in zip(l5like.neuron_segments(), l5like.geometry.region):
        if region != "apical":
            continue
        dist = h.distance(soma(0), seg)
        assert seg.l5likeih.gbar == pytest.approx(2e-5 * np.exp(dist / 300), rel=1e-9)
        assert seg.hh.gnabar == (0.03 if 500 < dist < 700 else 0.003)
        checked += 1
    assert checked > 20


def test_native_discretization_keeps_the_template_nseg(tmp_path):
    copy = tmp_path / "l5like"
    shutil.copytree(CELL_DIR, copy)
    text = (copy / "cell.yaml").read_text()
    (copy / "cell.yaml").write_text(
        text.replace("discretization: {method: d_lambda, d_lambda: 0.1, lambda_f: 100}",
                     "discretization: native"))
    cell = lfps.load_cell(copy / "cell.yaml")
    g = cell.geometry
    assert g.n_segments == len(set(g.section))  # nseg = 1 in every section, as template.hoc
    assert cell.discretization.method == "native"
    # an explicit argument beats the cell file
    cell = lfps.load_cell(copy / "cell.yaml", nsegs_method="lambda_f", d_lambda=0.3)
    assert cell.geometry.n_segments > len(set(cell.geometry.section))


def test_fingerprint_covers_every_loaded_file(tmp_path):
    copy = tmp_path / "l5like"
    shutil.copytree(CELL_DIR, copy)
    # a file the template loads itself, named nowhere in the cell file
    (copy / "extra.hoc").write_text("// constants\nextra_constant = 1\n")
    tpl = copy / "template.hoc"
    tpl.write_text('load_file("extra.hoc")\n' + tpl.read_text())

    def fingerprint():
        return spec_from_yaml(copy / "cell.yaml").biophysics_hash()

    seen = {fingerprint()}
    edits = [
        ("biophys.hoc", "gbar_l5likeih = 2e-5", "gbar_l5likeih = 3e-5"),
        ("template.hoc", "nseg = 1", "nseg = 3"),
        ("extra.hoc", "extra_constant = 1", "extra_constant = 2"),
        ("morphology.swc", "17 2 0 -300 0 0.5 16", "17 2 0 -310 0 0.5 16"),
        ("mod/l5likeih.mod", "e = -45 (mV)", "e = -40 (mV)"),
        ("cell.yaml", "exc_weight_uS: 0.001", "exc_weight_uS: 0.002"),
    ]
    for name, old, new in edits:
        path = copy / name
        assert old in path.read_text(), name
        path.write_text(path.read_text().replace(old, new))
        fp = fingerprint()
        assert fp not in seen, f"editing {name} left the fingerprint unchanged"
        seen.add(fp)


def test_loaded_cell_fingerprint_includes_the_file_hash(l5like):
    assert l5like.geometry.meta["biophysics_hash"] == spec_from_yaml(CELL_FILE).biophysics_hash()


def test_simulate_json_is_valid_with_a_printing_template(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lfpsurrogate.cli", "simulate", "--cell", str(CELL_FILE),
         "--duration-ms", "50", "--out", str(tmp_path / "x.nc"), "--json"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)  # the whole of stdout is the one JSON object
    assert summary["cell"] == "l5like" and summary["segments"] > 40
    assert "L5likeCell" not in out.stdout


def test_cell_file_synaptic_weights_change_the_firing(l5like):
    x = lfps.poisson_inputs(l5like, 1000, seed=0, protocol="constant")
    weak = lfps.simulate(l5like, x, progress=False).spike_times.size
    strong_cell = lfps.load_cell(CELL_FILE, synapses={"exc_weight_uS": 0.004})
    strong = lfps.simulate(strong_cell, x, progress=False).spike_times.size
    assert strong > weak + 5


@pytest.mark.parametrize("extra, message", [
    ("synapses: {exc_weight: 0.001}\n", "unknown synapse parameters"),
    ("synapses: {exc_weight_uS: -1}\n", "must be a number >= 0"),
    ("discretization: {method: fine}\n", "discretization method 'fine'"),
    ("discretization: {method: d_lambda, dlambda: 0.1}\n", "unknown discretization keys"),
    ("template_args: [{a: 1}]\n", "template_args must be strings or numbers"),
    ("biophysics_template: NoSuchTemplate\n", "is not defined in the hoc files"),
])
def test_bad_cell_file_keys_are_refused(tmp_path, extra, message):
    copy = tmp_path / "l5like"
    shutil.copytree(CELL_DIR, copy)
    lines = [ln for ln in (copy / "cell.yaml").read_text().splitlines()
             if not ln.startswith(extra.split(":")[0] + ":")]
    (copy / "cell.yaml").write_text("\n".join(lines) + "\n" + extra)
    with pytest.raises(CellLoadError, match=message):
        lfps.load_cell(copy / "cell.yaml")


def test_missing_hoc_file_is_named(tmp_path):
    copy = tmp_path / "l5like"
    shutil.copytree(CELL_DIR, copy)
    (copy / "biophys.hoc").unlink()
    with pytest.raises(CellLoadError, match="biophys.hoc"):
        lfps.load_cell(copy / "cell.yaml")


def test_firing_summary_per_protocol():
    from lfpsurrogate.data.generate import firing_summary

    counts = [0, 0, 0, 4, 20, 60, 61]  # spikes per 500 ms sample
    names = ["constant"] * 4 + ["modulated"] * 3
    report, warnings = firing_summary(counts, names, 500.0)
    assert report["constant"] == {"samples": 4, "mean_rate_hz": 2.0, "silent": 3, "above_50_hz": 0}
    assert report["modulated"]["mean_rate_hz"] == pytest.approx((40 + 120 + 122) / 3, abs=1e-3)
    assert report["modulated"]["above_50_hz"] == 2
    assert len(warnings) == 2
    assert "'constant': 3 of 4 samples have no somatic spike" in warnings[0]
    assert "'modulated': 2 of 3 samples fire above 50 Hz" in warnings[1]
    assert firing_summary([10, 10], ["constant"] * 2, 1000.0)[1] == []


def test_dataset_generate_reports_firing_and_warns_when_silent(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lfpsurrogate.cli", "dataset", "generate", "--cell", str(CELL_FILE),
         "--n-samples", "3", "--duration-ms", "200", "--splits", "train=0.34,val=0.33,test=0.33",
         "--protocol", "constant", "--rate-exc", "0.01", "--rate-inh", "0", "--workers", "1",
         "--no-progress", "--json", "--out", str(tmp_path / "s.zarr")],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["firing"] == {"constant": {"samples": 3, "mean_rate_hz": 0.0, "silent": 3,
                                              "above_50_hz": 0}}
    assert "3 of 3 samples have no somatic spike" in summary["warnings"][0]
    assert "warning: protocol 'constant'" in out.stderr


def test_recut_without_a_known_biophysics_template_warns(tmp_path):
    copy = tmp_path / "l5like"
    shutil.copytree(CELL_DIR, copy)
    # the template loads its biophysics itself; the cell file names no hoc_files. hoc keeps
    # one definition per template name per process: this variant gets its own name
    tpl = copy / "template.hoc"
    tpl.write_text('load_file("biophys.hoc")\n' + tpl.read_text().replace("L5likeCell", "L5likeCellW")
                   .replace("L5likeBiophys", "L5likeBiophysW"))
    bio = copy / "biophys.hoc"
    bio.write_text(bio.read_text().replace("L5likeBiophys", "L5likeBiophysW"))
    text = (copy / "cell.yaml").read_text().replace("hoc_files: [biophys.hoc]\n", "")
    text = text.replace("template_name: L5likeCell", "template_name: L5likeCellW")
    (copy / "cell.yaml").write_text(text)
    with pytest.warns(UserWarning, match="no biophysics template is known"):
        cell = lfps.load_cell(copy / "cell.yaml")
    assert cell.spec.biophysics_template is None
