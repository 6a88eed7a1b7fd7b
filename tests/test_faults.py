"""Fault injection: training killed (SIGKILL) at a random moment or in the middle of writing
its checkpoint resumes with no lost epochs beyond the last checkpoint, and ends with the
same weights as an uninterrupted run.

Dataset generation faults (killed driver, killed worker, full disk) are covered by
tests/test_dataset.py. Each run here is a fresh Python process on the synthetic chain cell
(lfpsurrogate.nn.synthetic), one thread, a tiny model: about a second of training.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

EPOCHS = 6

TRAINER = textwrap.dedent("""
    import os, sys, time, pathlib
    import torch
    torch.set_num_threads(1)
    from lfpsurrogate.nn import train
    from lfpsurrogate.nn.synthetic import synthetic_datasets

    out, epochs, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    kill_at = int(os.environ.get("KILL_AT_RENAME", "-1"))  # die before this rename of last.*
    slow = float(os.environ.get("SLOW_ITEM_S", "0"))
    geom, tr, va = synthetic_datasets(n_segments=12, n_train=24, n_val=8, n_time=96, seed=1)
    if slow:  # stretch each epoch so that a kill from outside lands inside one
        get = type(tr).__getitem__
        type(tr).__getitem__ = lambda self, i: (time.sleep(slow), get(self, i))[1]
    if kill_at >= 0:
        renames = {"n": 0}
        real = pathlib.Path.replace
        def replace(self, target):
            if pathlib.Path(target).name.startswith("last."):
                if renames["n"] == kill_at:
                    os._exit(137)  # as abrupt as SIGKILL: no cleanup, no flush
                renames["n"] += 1
            return real(self, target)
        pathlib.Path.replace = replace
    cfg = {"model": {"architecture": "ours", "hidden": 16, "layers": 3, "first_kernel": 5,
                     "kernel_size": 3, "rank": 8},
           "loss": {"v": 1.0, "spike": 0.01, "imem": 0.1, "dipole": 0.1},
           "optim": {"lr": 1e-2},
           "train": {"epochs": epochs, "batch_size": 8, "patience": 50, "stats_windows": 16}}
    res = train(cfg, tr, va, out, geom, resume=resume, progress=False)
    print("EPOCHS", [h["epoch"] for h in res.history])
""")


def run(out: Path, resume: bool = False, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-c", TRAINER, str(out), str(EPOCHS), "1" if resume else "0"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=600)


def last_epoch(out: Path) -> int:
    try:
        return int(json.loads((out / "last.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its final weights and history."""
    out = tmp_path_factory.mktemp("straight")
    done = run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def check_same_as_reference(out: Path, reference: Path) -> None:
    meta = json.loads((out / "last.json").read_text())
    ref = json.loads((reference / "last.json").read_text())
    assert meta["epoch"] == EPOCHS
    assert [h["epoch"] for h in meta["history"]] == list(range(1, EPOCHS + 1))  # each once
    assert [h["val_loss"] for h in meta["history"]] == [h["val_loss"] for h in ref["history"]]
    a, b = load_file(str(out / "last.safetensors")), load_file(str(reference / "last.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs from the uninterrupted run"
    leftovers = sorted(p.name for p in out.iterdir() if ".tmp" in p.name)
    assert not leftovers, leftovers


def test_sigkill_during_an_epoch_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "killed"
    proc = run(out, env={"SLOW_ITEM_S": "0.02"}, wait=False)
    try:
        deadline = time.time() + 300
        while last_epoch(out) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = last_epoch(out)
    assert 2 <= killed_at < EPOCHS, f"not killed part-way (last checkpoint: epoch {killed_at})"
    resumed = run(out, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_same_as_reference(out, reference)


# the checkpoint of epoch 3 writes last.state.safetensors, last.safetensors, last.json:
# renames 6, 7, 8 of last.* files in the run (epochs 1 and 2 did 0..5)
@pytest.mark.parametrize("kill_at", [6, 7, 8], ids=["before-state", "after-state", "before-json"])
def test_kill_while_writing_the_checkpoint_then_resume_is_bit_identical(reference, tmp_path,
                                                                         kill_at):
    out = tmp_path / "torn"
    killed = run(out, env={"KILL_AT_RENAME": str(kill_at)})
    assert killed.returncode == 137, killed.stderr[-3000:]
    resumed = run(out, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_same_as_reference(out, reference)
