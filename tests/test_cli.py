"""The `lfpsurrogate` command: simulate and demo write real result files."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import xarray as xr


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lfpsurrogate.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_simulate_command_writes_netcdf_and_figure(tmp_path):
    out, fig = tmp_path / "run.nc", tmp_path / "run.png"
    res = run_cli("simulate", "--cell", "pyramid_hh", "--duration-ms", "100", "--seed", "2",
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
    res = run_cli("simulate", "--cell", "no_such_cell", "--out", str(tmp_path / "x.nc"))
    assert res.returncode == 2
    assert "unknown cell" in res.stderr
    assert not (tmp_path / "x.nc").exists()


def test_demo_runs(tmp_path):
    res = run_cli("demo", "--out-dir", str(tmp_path / "demo"), "--duration-ms", "200", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert summary["cell"] == "l5_ttpc1"
    assert (tmp_path / "demo" / "demo_truth.png").exists()
    assert (tmp_path / "demo" / "demo_lfp.png").exists()
    with xr.open_dataset(tmp_path / "demo" / "demo_signals.nc") as sig:
        assert sig["lfp"].sizes["electrode"] == 16 and sig["lfp"].attrs["units"]
        assert set(sig.data_vars) >= {"lfp", "dipole", "eeg", "meg"}
    assert summary["lfp_peak_to_peak_uV"] > 1.0  # a spiking cell 50 µm from the probe
