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
                           architecture: str = "ours", tweak=None, **export_kwargs):
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
    if tweak is not None:  # a test's own change of the weights, before export
        with torch.no_grad():
            tweak(model)
    save_checkpoint(root / "ckpt" / "best", model, config={}, cell_fingerprint=g.fingerprint)
    export_kwargs.setdefault("sidecar_extra", {"input_rate_hz": [0.5, 20.0]})
    return export_model_folder(root / "ckpt" / "best", g, root / name, **export_kwargs)


def neuron_recording(cell, counts, dt: float = 1 / 16, bin_ms: float = 1.0,
                     threshold_mv: float = -20.0, settle_ms: float = 2000.0):
    """An independent ground truth for ``simulate``: the same cell and input run through
    NEURON with this function's own NetCons, events, ``h.Vector().record`` of v and
    ``i_membrane_`` at every time step, and its own spike detector; bin averages are
    computed here from the raw samples.

    Protocol (docs/architecture.md): initialise at v_init, relax for ``settle_ms`` with 10 ms
    steps, reset the clock to t = 0; the spikes of bin k arrive at t = k * bin_ms. A bin's
    average is the trapezoid over its samples; bin 0 has no sample of i_membrane_ at t = 0,
    so it is the plain mean of its samples at dt, 2 dt, ..., bin_ms.

    Segments are taken in LFPy's order straight from ``cell.lfpy_cell.allseclist``.
    Returns (v (segment, bin) mV, imem (segment, bin) nA, spike times (ms)).
    """
    from neuron import h

    counts = np.asarray(counts)
    n_bins = counts.shape[1]
    exc, inh = cell.synapses()
    segs = [seg for sec in cell.lfpy_cell.allseclist for seg in sec]
    assert len(segs) == cell.geometry.n_segments
    p = cell.synapse_params
    ncs = [h.NetCon(None, s) for s in list(exc) + list(inh)]
    for k, nc in enumerate(ncs):
        nc.weight[0] = p["exc_weight_uS"] if k < len(exc) else p["inh_weight_uS"]
        nc.delay = 0
    soma = segs[cell.geometry.soma_index]
    spikes = h.Vector()
    det = h.NetCon(soma._ref_v, None, sec=soma.sec)
    det.threshold = threshold_mv
    det.record(spikes)
    h.cvode.use_fast_imem(1)  # i_membrane_ exists only with fast_imem on
    h.cvode_active(0)
    tvec = h.Vector().record(h._ref_t)
    rec_v = [h.Vector().record(s._ref_v) for s in segs]
    rec_i = [h.Vector().record(s._ref_i_membrane_) for s in segs]
    h.celsius = cell.spec.celsius
    h.finitialize(cell.spec.v_init)
    h.t = -settle_ms
    h.dt = 10.0
    while h.t < -1e-9:
        h.fadvance()
    h.t, h.dt = 0.0, dt
    h.fcurrent()
    for c, k in zip(*np.nonzero(counts)):
        for _ in range(int(counts[c, k])):
            ncs[c].event(float(k * bin_ms))
    n_steps = int(round(n_bins * bin_ms / dt))
    for _ in range(n_steps):
        h.fadvance()
    t = tvec.as_numpy()
    keep = np.arange(t.size - n_steps, t.size)  # the samples at dt, 2 dt, ..., T
    np.testing.assert_allclose(t[keep], dt * np.arange(1, n_steps + 1), atol=1e-6)
    v = np.array([r.as_numpy()[keep] for r in rec_v])
    i = np.array([r.as_numpy()[keep] for r in rec_i])
    n = int(round(bin_ms / dt))
    v_bins, i_bins = np.empty((len(segs), n_bins)), np.empty((len(segs), n_bins))
    for k in range(n_bins):
        sv, si = v[:, k * n:(k + 1) * n], i[:, k * n:(k + 1) * n]  # samples at the bin's dt..end
        if k == 0:
            v_bins[:, 0], i_bins[:, 0] = sv.mean(1), si.mean(1)
        else:
            pv, pi = v[:, k * n - 1], i[:, k * n - 1]  # the sample at the bin start
            v_bins[:, k] = (0.5 * pv + sv[:, :-1].sum(1) + 0.5 * sv[:, -1]) / n
            i_bins[:, k] = (0.5 * pi + si[:, :-1].sum(1) + 0.5 * si[:, -1]) / n
    times = np.array(spikes.to_python())
    del ncs, det, rec_v, rec_i, tvec
    return v_bins, i_bins, times[times >= 0]
