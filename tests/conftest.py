"""Shared fixtures. NEURON-backed fixtures are session-scoped: loading l5_ttpc1 costs ~10 s."""
from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def pyramid():
    import lfpsurrogate as lfps

    return lfps.load_cell("pyramid_hh")


@pytest.fixture(scope="session")
def l5():
    import lfpsurrogate as lfps

    return lfps.load_cell("l5_ttpc1")


def make_stick_geometry(n: int = 10, length_um: float = 20.0, name: str = "stick"):
    """A NEURON-free ball-and-stick along +z: soma segment at the origin, n dendritic
    segments; M is the graph Laplacian of the chain scaled by an axial conductance."""
    from lfpsurrogate.geometry import CellGeometry

    z0 = np.concatenate([[-10.0], np.arange(n) * length_um + 10.0])
    z1 = np.concatenate([[10.0], np.arange(1, n + 1) * length_um + 10.0])
    zeros = np.zeros((n + 1, 2))
    g = 0.05  # µS between neighbours
    main = np.full(n + 1, 2 * g)
    main[[0, -1]] = g
    m = sp.diags([-main, np.full(n, g), np.full(n, g)], [0, -1, 1])  # imem_i = sum_j g (v_j - v_i)
    return CellGeometry(
        name=name, x=zeros, y=zeros.copy(), z=np.stack([z0, z1], 1),
        d=np.r_[20.0, np.full(n, 2.0)], section=["soma"] + [f"apic[{i}]" for i in range(n)],
        region=["soma"] + ["apical"] * n, vmem_to_imem=m, input_segments=np.arange(n + 1),
        meta={"kind": "synthetic"},
    )


@pytest.fixture
def stick():
    return make_stick_geometry()


def make_tiny_model_folder(geometry, root, name: str = "tiny", local_gain_std: float = 0.0,
                           architecture: str = "ours", **export_kwargs):
    """A small (untrained, normalised) low-rank surrogate of ``geometry`` as a model folder,
    for tests that need a model without training one."""
    import torch

    import lfpsurrogate as lfps
    from lfpsurrogate.modelfolder import export_model_folder
    from lfpsurrogate.nn import build_model, fit_normalisation, save_checkpoint

    g = geometry
    torch.manual_seed(0)
    model = build_model({"architecture": architecture, "hidden": 8, "layers": 2, "rank": 6,
                         "first_kernel": 5, "local_features": 2, "n_bumps": 3, "max_lag_ms": 20,
                         "input_modes": 8, "spike_history_ms": 8, "waveform_ms": 6},
                        g.n_channels, g.n_segments, g)
    x = torch.from_numpy(lfps.poisson_inputs(g, 300, seed=0).values[None].astype(np.float32))
    fit_normalisation(model, x, torch.randn(1, g.n_segments, 300) * 3 - 65)
    if local_gain_std:
        with torch.no_grad():  # non-zero local gains, so that folding the readout is exercised
            if hasattr(model, "local_gain"):
                model.local_gain.normal_(0, local_gain_std)
            if hasattr(model, "b_segment"):
                model.w_local.normal_(0, local_gain_std)
                model.b_segment.normal_(0, local_gain_std)
    save_checkpoint(root / "ckpt" / "best", model, config={}, cell_fingerprint=g.fingerprint)
    export_kwargs.setdefault("sidecar_extra", {"input_rate_hz": [0.5, 20.0]})
    return export_model_folder(root / "ckpt" / "best", g, root / name, **export_kwargs)
