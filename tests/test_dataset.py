"""Dataset stores: generation on dask, resume after SIGKILL or a failed write, splits,
fingerprint checks and torch streaming. Uses the fast pyramid_hh cell."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lfpsurrogate.data import (
    DatasetError,
    GenerationParams,
    WindowDataset,
    done_mask,
    open_store,
    sample_plan,
    split_samples,
    store_geometry,
    store_info,
)
from lfpsurrogate.data import generate as gen

# 16 + 2 samples of 400 ms at a rate that makes the cell fire: long enough that a run can
# be killed part-way, short enough for the whole file to take about a minute
ARGS = dict(cell="pyramid_hh", n_samples=16, duration_ms=400.0, seed=11, n_shift=2,
            rate_exc_hz=10.0)
CLI = ["--cell", "pyramid_hh", "--n-samples", "16", "--duration-ms", "400", "--seed", "11",
       "--n-shift", "2", "--rate-exc", "10", "--workers", "2", "--no-progress", "--json"]
N_TOTAL = 18


def cli_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "lfpsurrogate.cli", "dataset", "generate", *CLI, "--out", str(out)]


def run_command(out: Path) -> dict:
    proc = subprocess.run(cli_cmd(out), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def n_done(out: Path) -> int:
    try:
        return int(done_mask(out).sum())
    except Exception:  # store not created yet
        return -1


def assert_stores_equal(a: Path, b: Path) -> None:
    """Every variable (data and coordinates), the attributes and the geometry, bit for bit."""
    for group in (None, "geometry"):
        da_, db_ = (xr.open_zarr(p, group=group, consolidated=False).load() for p in (a, b))
        assert set(da_.variables) == set(db_.variables)
        for name in da_.variables:
            x, y = da_[name].values, db_[name].values
            assert x.dtype == y.dtype and x.shape == y.shape, name
            if x.dtype.kind == "f":
                assert np.array_equal(x.view(f"u{x.itemsize}"), y.view(f"u{y.itemsize}")), name
            else:
                assert np.array_equal(x, y), name
        assert da_.attrs == db_.attrs


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The store generated in one go."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    summary = run_command(out)
    assert summary["done"] == summary["generated"] == N_TOTAL and summary["workers"] == 2
    return out


def test_reference_store_content(reference):
    ds = open_store(reference)
    assert ds.sizes["sample"] == N_TOTAL and ds.v.dtype == np.float32
    assert ds.done.values.all()
    labels = ds.split.values.tolist()
    assert labels == ["train"] * 13 + ["val"] * 2 + ["test"] * 1 + ["shift"] * 2
    assert len(set(ds.seed.values.tolist())) == N_TOTAL  # disjoint seeds
    names = [json.loads(p)["protocol"] for p in ds.protocol.values.tolist()]
    assert names[-2:] == ["clustered", "clustered"]
    assert "clustered" not in names[:-2]
    assert names == ds.protocol_name.values.tolist()
    # spike counts and NaN-padded spike times agree, and the cell did fire
    counts = ds.spikes.values.sum(1)
    assert counts.sum() > 0
    assert np.array_equal(counts, np.isfinite(ds.spike_times.values).sum(1))
    v = ds.v.values
    assert np.isfinite(v).all() and -100 < v.min() and v.max() < 80
    geom = store_geometry(reference)
    assert geom.fingerprint == ds.attrs["cell_fingerprint"] and geom.n_segments == ds.sizes["segment"]
    info = store_info(reference)
    assert info["done"] == N_TOTAL and info["splits"]["shift"] == {"samples": 2, "done": 2}


def test_sample_matches_an_independent_neuron_recording(reference):
    """A stored sample holds the inputs drawn for its seed and protocol, and the voltages and
    spikes of the test's own NEURON run of those inputs (not simulate())."""
    import lfpsurrogate as lfps
    from conftest import neuron_recording

    ds = open_store(reference)
    i = 14  # a validation sample
    cell = lfps.load_cell("pyramid_hh")
    inputs = lfps.poisson_inputs(cell, 400.0, int(ds.seed[i]), protocol=str(ds.protocol_name.values[i]),
                                 rate_exc_hz=10.0)
    assert np.array_equal(ds.inputs[i].values, inputs.values)
    v_ref, _, t_ref = neuron_recording(cell, inputs.values)
    assert ds.v[i].dtype == np.float32
    np.testing.assert_allclose(ds.v[i].values, v_ref, rtol=0, atol=1e-4)  # float32 of ~70 mV
    per_bin = np.bincount(t_ref.astype(int), minlength=ds.sizes["time"])
    assert per_bin.sum() > 0 and np.array_equal(ds.spikes[i].values, per_bin)


def test_sigkill_driver_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen(cli_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while n_done(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = int(done_mask(out).sum())
    assert 2 <= partial < N_TOTAL, f"the run was not killed part-way ({partial} done)"
    # the partial store streams only its finished samples
    snapshot = tmp_path / "snapshot.zarr"
    shutil.copytree(out, snapshot)
    finished = set(np.flatnonzero(done_mask(snapshot)).tolist())
    wd = WindowDataset(snapshot, "train", 50.0, n_windows=40) if split_samples(snapshot, "train").size else None
    if wd is not None:
        assert {wd.locate(k)[1] for k in range(len(wd))} <= finished

    summary = run_command(out)
    assert summary["already_done"] == partial
    assert summary["generated"] == N_TOTAL - partial and summary["done"] == N_TOTAL
    assert_stores_equal(reference, out)


def test_sigkill_worker_is_retried(reference, tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "worker_killed.zarr"
    proc = subprocess.Popen(cli_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 90
        while n_done(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = [c for c in psutil.Process(proc.pid).children()
                   if "spawn_main" in " ".join(c.cmdline())]
        assert workers, "no worker process found"
        killed = workers[0].pid
        os.kill(killed, signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["done"] == N_TOTAL and summary["failed"] == 0
    assert_stores_equal(reference, out)


def test_failed_write_leaves_sample_unmarked_and_resume_completes(reference, tmp_path, monkeypatch):
    out = tmp_path / "full.zarr"
    params = GenerationParams(**ARGS)
    calls = {"n": 0}
    real = gen._mark_done

    def failing_mark_done(path, i):
        calls["n"] += 1
        if calls["n"] == 3:  # data of this sample are written, its flag is not
            calls["failed"] = i
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, i)

    monkeypatch.setattr(gen, "_mark_done", failing_mark_done)
    with pytest.raises(gen.GenerationInterrupted, match="disk is full.*run the same command"):
        gen.generate_dataset(out, params, workers=2, progress=False)
    done = done_mask(out)
    assert done.sum() == 2 and not done[calls["failed"]]
    # the unmarked sample's data chunks exist, yet it is absent for readers
    assert calls["failed"] not in split_samples(out, "train").tolist() + \
        split_samples(out, "val").tolist() + split_samples(out, "test").tolist()
    monkeypatch.setattr(gen, "_mark_done", real)
    summary = gen.generate_dataset(out, params, workers=2, progress=False)
    assert summary["already_done"] == 2 and summary["done"] == N_TOTAL
    assert_stores_equal(reference, out)


def test_other_parameters_or_foreign_data_are_refused(reference, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*") if p.is_file()}
    other = GenerationParams(**{**ARGS, "duration_ms": 500.0})
    with pytest.raises(DatasetError, match=r"duration_ms: store has 400.0, asked 500.0"):
        gen.generate_dataset(reference, other, workers=1, progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("user data")
    with pytest.raises(DatasetError, match="not a readable zarr store|not an lfpsurrogate dataset"):
        gen.generate_dataset(foreign, GenerationParams(**ARGS), workers=1, progress=False)
    assert (foreign / "notes.txt").read_text() == "user data"
    after = {p: p.stat().st_mtime_ns for p in reference.rglob("*") if p.is_file()}
    assert before == after


def test_second_generator_on_same_store_is_refused(reference):
    import fcntl

    lock = reference.with_name(f".{reference.name}.lock")
    with open(lock, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DatasetError, match="another process is generating"):
            gen.generate_dataset(reference, GenerationParams(**ARGS), workers=1, progress=False)


def test_store_of_another_cell_version_is_refused_by_name(reference, tmp_path):
    """A finer discretization of the same cell is another version: its store is refused
    when mixed in, and a store whose cell changed on disk is not resumed."""
    other = tmp_path / "fine.zarr"
    params = GenerationParams(cell="pyramid_hh", n_samples=1, duration_ms=50.0, seed=0,
                              splits=(("train", 1.0),), d_lambda=0.1)
    gen.generate_dataset(other, params, workers=1, progress=False)
    fp_ref = open_store(reference).attrs["cell_fingerprint"]
    fp_other = open_store(other).attrs["cell_fingerprint"]
    assert fp_ref != fp_other
    with pytest.raises(DatasetError, match=rf"store {re.escape(str(other))} was made with cell 'pyramid_hh' "
                                           rf"fingerprint {fp_other}.*expects fingerprint {fp_ref}"):
        WindowDataset([reference, other], "train", 50.0)
    with pytest.raises(DatasetError, match=f"fingerprint {fp_other}, but the model expects cell "
                                           f"'pyramid_hh' fingerprint {fp_ref}"):
        open_store(other, expected_fingerprint=store_geometry(reference))
    # the cell's files changed since the store was started: resuming is refused
    import zarr

    g = zarr.open_group(str(other), mode="r+")
    g.attrs["cell_fingerprint"] = "0123456789abcdef"
    g["done"][0] = 0  # something left to generate
    with pytest.raises(DatasetError, match="fingerprint 0123456789abcdef, but cell 'pyramid_hh' "
                                           f"loads now with fingerprint {fp_other}"):
        gen.generate_dataset(other, params, workers=1, progress=False)


@pytest.mark.parametrize("package", ["neuron", "lfpsurrogate"])
def test_resume_after_a_package_version_change_is_refused(tmp_path, package):
    """A store started under other package versions is not resumed: the samples would mix
    software. The stored version of one package is edited, one sample is left undone."""
    import zarr

    out = tmp_path / "small.zarr"
    params = GenerationParams(cell="pyramid_hh", n_samples=2, duration_ms=20.0, seed=0,
                              splits=(("train", 1.0),))
    gen.generate_dataset(out, params, workers=1, progress=False)
    g = zarr.open_group(str(out), mode="r+")
    versions = json.loads(g.attrs["versions"])
    assert package in versions
    old = versions[package]
    g.attrs["versions"] = json.dumps({**versions, package: "0.0.1"})
    g["done"][1] = 0
    with pytest.raises(DatasetError, match=rf"other package versions \({package} 0\.0\.1 -> "
                                           rf"{re.escape(str(old))}\)"):
        gen.generate_dataset(out, params, workers=1, progress=False)
    assert int(done_mask(out).sum()) == 1  # nothing was generated
    # with the versions restored the same store resumes
    g.attrs["versions"] = json.dumps(versions)
    summary = gen.generate_dataset(out, params, workers=1, progress=False)
    assert summary["already_done"] == 1 and summary["done"] == 2


def test_window_dataset_with_two_loader_workers_matches_store(reference):
    import torch

    ds = WindowDataset(reference, "train", window_ms=64.0, n_windows=24, seed=5,
                       expected_fingerprint=open_store(reference).attrs["cell_fingerprint"])
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    store = open_store(reference).load()
    train = set(split_samples(reference, "train").tolist())
    seen = 0
    for batch in loader:
        for k in range(batch["v"].shape[0]):
            i, t0 = int(batch["sample"][k]), int(batch["start"][k])
            assert i in train
            t = slice(t0, t0 + 64)
            assert np.array_equal(batch["v"][k].numpy(), store.v.values[i, :, t])
            assert np.array_equal(batch["inputs"][k].numpy(), store.inputs.values[i, :, t].astype(np.float32))
            assert np.array_equal(batch["spikes"][k].numpy(), store.spikes.values[i, t].astype(np.float32))
            assert batch["v"][k].dtype == torch.float32 and batch["v"][k].shape == (store.sizes["segment"], 64)
            seen += 1
    assert seen == 24
    # deterministic: same (seed, index) -> same window, another epoch -> other windows
    again = WindowDataset(reference, "train", window_ms=64.0, n_windows=24, seed=5)
    assert [again.locate(k) for k in range(24)] == [ds.locate(k) for k in range(24)]
    again.set_epoch(1)
    assert [again.locate(k) for k in range(24)] != [ds.locate(k) for k in range(24)]
    with pytest.raises(DatasetError, match="window_ms=500.0 does not fit"):
        WindowDataset(reference, "train", window_ms=500.0)


def test_sample_plan_seeds_are_disjoint_and_stable():
    small = GenerationParams(cell="c", n_samples=10, duration_ms=10.0, seed=3, n_shift=3)
    large = GenerationParams(cell="c", n_samples=100, duration_ms=10.0, seed=3, n_shift=3)
    s_split, s_seed, s_proto = sample_plan(small)
    l_split, l_seed, _ = sample_plan(large)
    assert len(set(l_seed.tolist())) == len(l_seed)
    # a sample's seed depends on (seed, split, index in split) only
    for name in ("train", "val", "test", "shift"):
        a, b = s_seed[s_split == name], l_seed[l_split == name]
        assert np.array_equal(a, b[: len(a)])
    other = sample_plan(GenerationParams(cell="c", n_samples=10, duration_ms=10.0, seed=4, n_shift=3))[1]
    assert not set(other.tolist()) & set(s_seed.tolist())
    assert set(s_proto[s_split != "shift"]) <= {"constant", "modulated", "piecewise"}
    with pytest.raises(DatasetError, match="shift protocol 'clustered' is also a training protocol"):
        GenerationParams(cell="c", n_samples=10, duration_ms=10.0, seed=3, n_shift=2, protocols=("mixed",))
    with pytest.raises(DatasetError, match="sum to 1"):
        GenerationParams(cell="c", n_samples=10, duration_ms=10.0, seed=3, splits=(("train", 0.5),))
