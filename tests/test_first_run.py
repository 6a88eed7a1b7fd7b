"""What a new user meets first: help texts, --version, refusals that name the fix, the
names in results, the demo's figures and the README's accuracy line."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import lfpsurrogate as lfps
from lfpsurrogate.cli import build_parser
from lfpsurrogate.errors import InputError

from conftest import make_stick_geometry, make_tiny_model_folder

ROOT = Path(__file__).resolve().parents[1]


def run_command(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stick_model(tmp_path_factory):
    g = make_stick_geometry(n=12)
    return make_tiny_model_folder(g, tmp_path_factory.mktemp("stick_model"))


# ---- CLI surface -----------------------------------------------------------------------
def _all_parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_every_option_has_help_and_shows_its_default():
    parsers = list(_all_parsers(build_parser()))
    assert len(parsers) >= 10  # main + simulate, predict, demo, dataset(+2), train, export, ...
    missing = [(p.prog, a.option_strings) for p in parsers for a in p._actions
               if a.option_strings and not (a.help or "").strip()]
    assert not missing, missing
    text = build_parser().parse_known_args  # noqa: F841  (parsers build without error)
    sim = next(p for p in parsers if p.prog.endswith(" simulate"))
    help_text = sim.format_help()
    assert "(default: 1000.0)" in help_text and "(required)" in help_text
    assert "cell file (.yaml)" in help_text  # --cell mentions users' own cells


def test_top_level_description_and_version():
    res = run_command("--help")
    assert res.returncode == 0
    assert "LFP, EEG and MEG" in res.stdout and "dataset generate" in res.stdout
    res = run_command("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"lfpsurrogate {lfps.__version__}"


def test_dataset_info_on_a_missing_store_names_it(tmp_path):
    missing = tmp_path / "nowhere.zarr"
    res = run_command("dataset", "info", str(missing))
    assert res.returncode == 2
    assert "{path}" not in res.stderr
    assert f"--out {missing}" in res.stderr


def test_predict_lfp_is_in_dir():
    names = dir(lfps)
    for name in ("predict_lfp", "load_model", "forward_model", "load_probe", "to_mne", "load_cell"):
        assert name in names


@pytest.mark.parametrize("command", ["simulate", "predict"])
def test_out_with_a_wrong_suffix_is_refused_before_any_work(tmp_path, command):
    extra = ["--cell", "pyramid_hh"] if command == "simulate" else []
    res = run_command(command, *extra, "--out", str(tmp_path / "x.csv"), timeout=60)
    assert res.returncode == 2
    assert "--out" in res.stderr and ".csv" in res.stderr and "x.nc" in res.stderr
    assert "Traceback" not in res.stderr
    assert not list(tmp_path.iterdir())
    res = run_command(command, *extra, "--out", str(tmp_path / "x.nc"), "--plot",
                  str(tmp_path / "x.nc"), timeout=60)
    assert res.returncode == 2 and "--plot" in res.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda_is_one_clear_line(tmp_path, stick_model):
    res = run_command("predict", "--model", str(stick_model), "--device", "cuda", "--duration-ms",
                  "20", "--out", str(tmp_path / "x.nc"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "no CUDA" in res.stderr and "cpu" in res.stderr
    with pytest.raises(InputError, match="no CUDA"):
        lfps.predict_lfp(rates={"duration_ms": 20}, model=stick_model, device="cuda")


def test_bench_writes_into_the_current_directory_by_default():
    from lfpsurrogate.bench import run_bench

    args = build_parser().parse_args(["bench", "--quick"])
    assert args.out_dir == "."
    import inspect

    assert inspect.signature(run_bench).parameters["out_dir"].default == "."


# ---- predict_lfp -----------------------------------------------------------------------
def test_signals_as_one_string(stick_model):
    ds = lfps.predict_lfp(rates={"duration_ms": 30}, model=stick_model, signals="lfp")
    assert set(ds.data_vars) == {"lfp"}
    ds = lfps.predict_lfp(rates={"duration_ms": 30}, model=stick_model, signals="lfp, dipole")
    assert set(ds.data_vars) == {"lfp", "dipole"}


def test_rotations_alone_keep_the_default_position(stick_model):
    from lfpsurrogate.predict import default_placement

    kw = dict(rates={"duration_ms": 30}, model=stick_model, signals=("lfp",), seed=3)
    rot = (0.0, 0.0, 0.7)  # about the apical axis
    alone = lfps.predict_lfp(rotations=rot, **kw)
    explicit = lfps.predict_lfp(positions=default_placement(1, 3)[0][0], rotations=rot, **kw)
    on_axis = lfps.predict_lfp(positions=(0, 0, 0), rotations=rot, **kw)
    np.testing.assert_array_equal(alone.lfp.values, explicit.lfp.values)
    assert not np.allclose(alone.lfp.values, on_axis.lfp.values)


def test_a_population_too_large_for_memory_is_refused_at_once(stick_model):
    import time

    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"GiB of memory.*groups of cells"):
        lfps.predict_lfp(rates={"duration_ms": 1000, "n_cells": 10**9}, model=stick_model,
                         signals=("lfp", "eeg", "meg"))
    assert time.perf_counter() - t0 < 30


def test_population_bytes_counts_matrices_and_dipoles():
    from lfpsurrogate.resources import population_bytes

    # 2 cells, 10 segments, 100 bins, 4 LFP contacts, no EEG/MEG:
    # (4 + 3) rows x 10 segments x 20 bytes + 3 x 100 x 4 bytes, per cell
    assert population_bytes(2, 10, 100, 4, 0, 0) == 2 * (7 * 10 * 20 + 1200)


def test_progress_bar_on_request(stick_model, capfd):
    lfps.predict_lfp(rates={"duration_ms": 30, "n_cells": 3}, model=stick_model, batch_size=1,
                     progress=True)
    assert "predict_lfp" in capfd.readouterr().err
    lfps.predict_lfp(rates={"duration_ms": 30, "n_cells": 3}, model=stick_model, batch_size=1,
                     progress=False)
    assert "predict_lfp" not in capfd.readouterr().err


def test_predict_plot_draws_every_signal(tmp_path, stick_model):
    res = run_command("predict", "--model", str(stick_model), "--n-cells", "2", "--duration-ms", "50",
                  "--out", str(tmp_path / "r.nc"), "--plot", str(tmp_path / "r.png"), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["plots"] == [str(tmp_path / n) for n in ("r.png", "r_eeg.png", "r_meg.png")]
    for p in summary["plots"]:
        assert Path(p).stat().st_size > 5000


# ---- names -----------------------------------------------------------------------------
def test_one_name_for_the_spatial_axis_and_electrode_coordinates(stick_model):
    ds = lfps.predict_lfp(rates={"duration_ms": 20}, model=stick_model, signals=("lfp", "dipole"))
    pos = ds["electrode_position"].values
    for k, a in enumerate("xyz"):
        np.testing.assert_array_equal(ds[f"electrode_{a}"].values, pos[:, k])
        assert ds[f"electrode_{a}"].dims == ("electrode",)
    by_depth = ds.lfp.swap_dims(electrode="electrode_z")
    assert by_depth.sel(electrode_z=pos[3, 2]).shape == (20,)
    assert ds["dipole"].dims == ("axis", "time")


def test_simulate_uses_axis_not_xyz():
    cell = lfps.load_cell(ROOT / "tests" / "data" / "l5like" / "cell.yaml")
    ds = lfps.simulate(cell, lfps.poisson_inputs(cell, 5, seed=0), progress=False)
    assert "xyz" not in ds.dims
    assert ds["seg_start"].dims == ("segment", "axis")
    assert list(ds["axis"].values) == ["x", "y", "z"]


# ---- the shipped model's accuracy, stated where the speed is ----------------------------
def test_accuracy_line_is_read_from_metrics_json():
    from lfpsurrogate.modelfolder import held_out_accuracy

    metrics = json.loads((ROOT / "models" / "l5_ttpc1" / "metrics.json").read_text())["test"]
    line = held_out_accuracy("l5_ttpc1")
    assert f"LFP r {metrics['lfp_r_median']:.2f}" in line
    assert f"EEG r {metrics['eeg_r_median']:.2f}" in line
    assert f"MEG r {metrics['meg_r_median']:.2f}" in line
    assert f"spike F1 {metrics['spike_f1']:.2f}" in line
    assert f"{metrics['n_samples']} samples" in line
    assert held_out_accuracy(ROOT / "no-such-model") is None


def test_readme_states_the_shipped_accuracy_from_metrics_json():
    from lfpsurrogate.modelfolder import held_out_accuracy

    readme = (ROOT / "README.md").read_text()
    assert held_out_accuracy("l5_ttpc1") in readme, (
        "README's accuracy line differs from models/l5_ttpc1/metrics.json; paste "
        "lfpsurrogate.modelfolder.held_out_accuracy('l5_ttpc1') into it")
