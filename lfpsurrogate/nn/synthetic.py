"""Synthetic cable-like "cell" and in-memory datasets for tests and quick ablations.

Not a neuron model: a chain of segments along +z whose voltage is a causal, spatially
smoothed linear filter of the synaptic drive, plus spatially smooth noise; M is the chain's
graph Laplacian times an axial conductance (nA/mV), so imem = M v behaves like a cable's
(it amplifies independent per-segment errors). A threshold on the first segment ("soma")
gives somatic spikes, each adding a brief depolarisation that spreads along the chain.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

from ..geometry import CellGeometry


def chain_geometry(n_segments: int = 16, length_um: float = 20.0, g_axial_us: float = 0.05,
                   name: str = "synthetic_chain") -> CellGeometry:
    """A NEURON-free chain of n_segments along +z (segment 0 is the soma); every segment
    carries one excitatory and one inhibitory input slot."""
    n = n_segments
    z0 = np.arange(n) * length_um - length_um / 2
    zeros = np.zeros((n, 2))
    main = np.full(n, 2 * g_axial_us)
    main[[0, -1]] = g_axial_us
    m = sp.diags([main, np.full(n - 1, -g_axial_us), np.full(n - 1, -g_axial_us)], [0, -1, 1])
    return CellGeometry(
        name=name, x=zeros, y=zeros.copy(), z=np.stack([z0, z0 + length_um], 1),
        d=np.r_[20.0, np.full(n - 1, 2.0)], section=["soma"] + [f"dend[{i}]" for i in range(n - 1)],
        region=["soma"] + ["apical"] * (n - 1), vmem_to_imem=m.tocsr(),
        input_segments=np.arange(n), meta={"kind": "synthetic"})


def synthetic_windows(geometry: CellGeometry, n_windows: int, n_time: int = 256, *,
                      seed: int = 0, rate: float = 0.04, tau_bins: float = 8.0,
                      space_const: float = 3.0, noise_mv: float = 0.05,
                      threshold_mv: float = 4.0) -> dict[str, np.ndarray]:
    """Draw windows: inputs (n, channel, T) Poisson counts, v (n, segment, T) mV,
    spikes (n, T). Voltage = -65 mV + causal exponential filter (tau_bins) of the net drive
    (excitation - 1.5 x inhibition) spread along the chain by exp(-|i-j|/space_const)."""
    rng = np.random.default_rng(seed)
    n_seg = geometry.n_segments
    n_in = len(geometry.input_segments)
    mod = np.exp(0.6 * np.sin(2 * np.pi * (np.arange(n_time)[None] / rng.uniform(40, 200, (n_windows, 1))
                                           + rng.uniform(0, 1, (n_windows, 1)))))
    lam = rate * mod[:, None, :] * rng.uniform(0.5, 1.5, (n_windows, 2 * n_in, 1))
    counts = rng.poisson(lam).astype(np.float32)
    drive = np.zeros((n_windows, n_seg, n_time))
    np.add.at(drive, (slice(None), geometry.input_segments), counts[:, :n_in] - 1.5 * counts[:, n_in:])
    idx = np.arange(n_seg)
    spread = np.exp(-np.abs(idx[:, None] - idx[None]) / space_const)
    kernel = np.exp(-np.arange(int(5 * tau_bins)) / tau_bins)
    filt = np.zeros_like(drive)
    for k, h in enumerate(kernel):
        filt[..., k:] += h * drive[..., : n_time - k]
    noise = np.einsum("ij,njt->nit", spread, rng.standard_normal(drive.shape)) * noise_mv
    v = -65.0 + 2.0 * np.einsum("ij,njt->nit", spread, filt) + noise
    soma = v[:, 0] + 65.0
    spikes = ((soma[:, 1:] > threshold_mv) & (soma[:, :-1] <= threshold_mv)).astype(np.float32)
    spikes = np.concatenate([np.zeros((n_windows, 1), np.float32), spikes], axis=1)
    bump = 20.0 * np.exp(-idx / 2.0)
    v += bump[None, :, None] * spikes[:, None, :]
    return {"inputs": counts, "v": v.astype(np.float32), "spikes": spikes}


class WindowTensors(Dataset):
    """In-memory Dataset of windows: items are dicts of float32 tensors
    ``inputs`` (channel, T), ``v`` (segment, T) mV, ``spikes`` (T,)."""

    def __init__(self, inputs, v, spikes) -> None:
        self.inputs = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        self.v = torch.as_tensor(np.asarray(v), dtype=torch.float32)
        self.spikes = torch.as_tensor(np.asarray(spikes), dtype=torch.float32)
        if not len(self.inputs) == len(self.v) == len(self.spikes):
            raise ValueError("inputs, v and spikes need the same number of windows.")

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.inputs[i], "v": self.v[i], "spikes": self.spikes[i]}


def synthetic_datasets(n_segments: int = 16, n_train: int = 32, n_val: int = 8,
                       n_time: int = 256, seed: int = 0, **kwargs):
    """(geometry, train WindowTensors, val WindowTensors) of the synthetic chain cell."""
    geom = chain_geometry(n_segments)
    tr = synthetic_windows(geom, n_train, n_time, seed=seed, **kwargs)
    va = synthetic_windows(geom, n_val, n_time, seed=seed + 10_000, **kwargs)
    return geom, WindowTensors(**tr), WindowTensors(**va)


def physics_loss_ablation(architectures=("tcn", "ours"), *, n_segments: int = 32,
                          n_train: int = 128, n_val: int = 32, n_time: int = 256,
                          epochs: int = 20, seed: int = 0, out_dir=None) -> list[dict]:
    """Train each architecture on the synthetic chain with and without the imem + dipole
    loss terms (same data, epochs and seed); return best-epoch validation metrics.
    SYNTHETIC data: shows the effect of the loss terms, not the accuracy on a real cell."""
    import tempfile
    from pathlib import Path

    from .train import train

    geom, tr, va = synthetic_datasets(n_segments, n_train, n_val, n_time, seed=seed)
    model = {"hidden": 32, "layers": 4, "first_kernel": 9, "kernel_size": 3, "rank": 16,
             "tower_hidden": 8, "n_experts": 4, "expert_hidden": 16}
    variants = {"v+spike": {"v": 1.0, "spike": 0.01},
                "v+spike+imem+dipole": {"v": 1.0, "spike": 0.01, "imem": 1.0, "dipole": 1.0}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out_dir or tmp)
        for arch in architectures:
            for name, loss in variants.items():
                cfg = {"model": {**model, "architecture": arch, "seed": seed}, "loss": loss,
                       "train": {"epochs": epochs, "batch_size": 16, "patience": epochs,
                                 "seed": seed}, "optim": {"lr": 3e-3}}
                res = train(cfg, tr, va, root / f"{arch}-{name}", geom, progress=False)
                m = res.best_metrics
                rows.append({"architecture": arch, "loss": name, "epoch": m["epoch"],
                             "parameters": res.model.n_parameters(),
                             **{k: m[f"val_{k}"] for k in ("v_rmse_mv", "v_corr", "imem_corr",
                                                          "dipole_corr")}})
    return rows


if __name__ == "__main__":  # python -m lfpsurrogate.nn.synthetic
    import json
    import sys

    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    for row in physics_loss_ablation(("tcn", "hps", "ours")):
        print(json.dumps(row))
