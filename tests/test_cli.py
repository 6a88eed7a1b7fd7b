"""The `lfpsurrogate` command: simulate and demo write real result files."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import xarray as xr


def run_command(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_simulate_command_writes_netcdf_and_figure(tmp_path):
    out, fig = tmp_path / "run.nc", tmp_path / "run.png"
    res = run_command("simulate", "--cell", "pyramid_hh", "--duration-ms", "100", "--seed", "2",
                  "--out", str(out), "--plot", str(fig), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert summary["segments"] > 100 and summary["duration_ms"] == 100
    assert fig.stat().st_size > 10_000
    with xr.open_dataset(out) as ds:
        assert ds.v.shape == (summary["segments"], 100)
        assert ds.attrs["seed"] == 2
        assert np.isfinite(ds.v.values).all()


def test_simulate_command_reports_bad_cell(tmp_path):
    res = run_command("simulate", "--cell", "no_such_cell", "--out", str(tmp_path / "x.nc"))
    assert res.returncode == 2
    assert "unknown cell" in res.stderr
    assert not (tmp_path / "x.nc").exists()


def test_demo_runs_the_shipped_surrogate(tmp_path):
    res = run_command("demo", "--out-dir", str(tmp_path / "demo"), "--duration-ms", "200",
                  "--n-cells", "20", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert summary["model"] == "l5_ttpc1" and summary["n_cells"] == 20
    for name in ("demo_lfp.png", "demo_eeg.png", "demo_meg.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 10_000
    with xr.open_dataset(tmp_path / "demo" / "demo_population.nc") as ds:
        assert ds["lfp"].sizes == {"electrode": 16, "time": 200}
        assert set(ds.data_vars) >= {"lfp", "dipole", "eeg", "meg", "spikes"}
        assert np.isfinite(ds["lfp"].values).all() and ds["lfp"].attrs["units"] == "mV"
    assert summary["lfp_peak_to_peak_uV"] > 0.1
    # the speed and the shipped model's held-out accuracy, read from its metrics.json
    from lfpsurrogate.modelfolder import held_out_accuracy

    assert summary["speed_and_accuracy"].endswith(held_out_accuracy("l5_ttpc1"))
    assert "cell-seconds per second" in summary["speed_and_accuracy"]


def test_demo_without_a_model_runs_ground_truth(tmp_path):
    env = dict(os.environ, LFPSURROGATE_MODELS=str(tmp_path / "no-models"))
    res = subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", "demo", "--out-dir",
                          str(tmp_path / "demo"), "--duration-ms", "200", "--json"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["cell"] == "l5_ttpc1" and "NEURON ground truth" in summary["note"]
    with xr.open_dataset(tmp_path / "demo" / "demo_signals.nc") as sig:
        assert sig["lfp"].sizes["electrode"] == 16
        assert set(sig.data_vars) >= {"lfp", "dipole", "eeg", "meg"}
    assert summary["lfp_peak_to_peak_uV"] > 1.0  # a spiking cell 50 µm from the probe


def test_predict_command(tmp_path):
    out = tmp_path / "res.nc"
    res = run_command("predict", "--n-cells", "3", "--duration-ms", "100", "--out", str(out),
                  "--plot", str(tmp_path / "res.png"), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["n_cells"] == 3 and (tmp_path / "res.png").exists()
    with xr.open_dataset(out) as ds:
        assert ds["eeg"].dims == ("eeg_electrode", "time") and ds.sizes["time"] == 100
