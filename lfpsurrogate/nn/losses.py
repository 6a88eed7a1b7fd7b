"""Physics-aware losses: voltage MSE, spike BCE, and MSE on the linear read-outs of the
voltages that the extracellular signals are made of.

imem = M v (nA; M: CellGeometry.vmem_to_imem, nA/mV), current dipole p = P M v (nA·µm; P the
(3, segment) matrix of segment midpoints, µm), LFP = K M v (K: (electrode, segment)).
M is linear, so every physics term is computed on the voltage error e = v_hat - v:
one (sparse) matmul per term. Each term is divided by the variance of its target (voltage:
per segment; imem: mean over segments; dipole and LFP: summed over axes / electrodes, i.e. a
relative error of the whole signal, so axes or electrodes with tiny signals get no extra
weight), so a model that predicts the mean scores ~1 on every term.

The soma term is the MSE of the soma voltage with both prediction and target clipped at
``soma_clip_mv`` (the action potentials cut off, as Spieler et al. 2024 score soma RMSE), over
the clipped target's variance: the subthreshold trajectory near threshold is what times the
spikes, and in the voltage MSE the soma is one segment among hundreds.

Bins are weighted, balanced around somatic spikes: w(t) = 1 + spike_boost if a spike lies
within spike_window_ms of t, else 1; the first ``burn_in`` bins of each window are ignored.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .config import LossConfig


def to_torch_matrix(m: Any) -> torch.Tensor:
    """scipy.sparse / numpy / torch (dense or sparse) -> float32 torch tensor (sparse stays sparse)."""
    if isinstance(m, torch.Tensor):
        return m.to(torch.float32).coalesce() if m.is_sparse else m.to(torch.float32)
    if hasattr(m, "tocoo"):
        c = m.tocoo()
        idx = torch.from_numpy(np.vstack([c.row, c.col]).astype(np.int64))
        return torch.sparse_coo_tensor(idx, torch.from_numpy(c.data.astype(np.float32)),
                                       c.shape, check_invariants=True).coalesce()
    return torch.as_tensor(np.asarray(m), dtype=torch.float32)


def apply_segment_matrix(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """a (rows, segment) dense or sparse, v (batch, segment, time) -> (batch, rows, time)."""
    if a.is_sparse:
        b, s, t = v.shape
        flat = v.permute(1, 0, 2).reshape(s, b * t).float()
        return torch.sparse.mm(a, flat).reshape(a.shape[0], b, t).permute(1, 0, 2)
    return torch.einsum("rs,bst->brt", a.to(v.dtype), v)


def spike_weights(spikes: torch.Tensor, window_bins: int, boost: float) -> torch.Tensor:
    """(batch, time) bin weights: 1 + boost within window_bins of a somatic spike."""
    if boost == 0 or window_bins < 0:
        return torch.ones_like(spikes)
    near = F.max_pool1d((spikes > 0).float()[:, None], 2 * window_bins + 1, stride=1,
                        padding=window_bins)[:, 0]
    return 1.0 + boost * near


class SurrogateLoss(nn.Module):
    """Weighted sum of the loss terms of LossConfig; ``forward`` returns (total, parts).

    vmem_to_imem: M (segment, segment); needed for the imem, dipole and lfp terms.
    midpoints: (segment, 3) µm, gives P for the dipole term. lfp_matrix: K (electrode,
    segment). segment_weights: optional (segment,) weights of the voltage MSE.
    bin_ms: bin width, ms (converts spike_window_ms to bins).
    Call ``fit(v, spikes)`` with training data to set the normalising variances.
    """

    def __init__(self, cfg: LossConfig, n_segments: int, *, vmem_to_imem: Any = None,
                 midpoints: Any = None, lfp_matrix: Any = None,
                 segment_weights: Any = None, soma_index: int | None = None,
                 bin_ms: float = 1.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.window_bins = int(round(cfg.spike_window_ms / bin_ms))
        need_m = cfg.imem > 0 or cfg.dipole > 0 or cfg.lfp > 0
        if need_m and vmem_to_imem is None:
            raise InputError("loss.imem/dipole/lfp > 0 need the cell's vmem_to_imem matrix M "
                             "(pass geometry to train()).")
        if cfg.dipole > 0 and midpoints is None:
            raise InputError("loss.dipole > 0 needs segment midpoints (pass geometry to train()).")
        if cfg.lfp > 0 and lfp_matrix is None:
            raise InputError("loss.lfp > 0 needs an LFP matrix K (electrode, segment); pass "
                             "lfp_matrix=... to train(), or set loss.lfp to 0.")
        if cfg.soma > 0 and soma_index is None:
            raise InputError("loss.soma > 0 needs the soma's segment (pass geometry to train()), "
                             "or set loss.soma to 0.")
        if soma_index is not None and not 0 <= int(soma_index) < n_segments:
            raise InputError(f"soma_index {soma_index} is not one of the {n_segments} segments.")
        self.soma_index = None if soma_index is None else int(soma_index)
        self.m = to_torch_matrix(vmem_to_imem) if vmem_to_imem is not None else None
        if self.m is not None and tuple(self.m.shape) != (n_segments, n_segments):
            raise InputError(f"M has shape {tuple(self.m.shape)}, expected ({n_segments}, {n_segments}).")
        self.register_buffer("pm", self._compose(midpoints, transpose=True), persistent=False)
        self.register_buffer("km", self._compose(lfp_matrix), persistent=False)
        sw = torch.ones(n_segments) if segment_weights is None else torch.as_tensor(
            np.asarray(segment_weights), dtype=torch.float32)
        if sw.shape != (n_segments,) or (sw < 0).any():
            raise InputError(f"segment_weights must be {n_segments} non-negative numbers.")
        self.register_buffer("segment_weights", sw / sw.mean().clamp_min(1e-12))
        self.register_buffer("v_var", torch.ones(n_segments))
        self.register_buffer("imem_var", torch.ones(()))
        self.register_buffer("dipole_var", torch.ones(()))
        self.register_buffer("lfp_var", torch.ones(()))
        self.register_buffer("soma_var", torch.ones(()))
        pw = 1.0 if cfg.spike_pos_weight == "auto" else float(cfg.spike_pos_weight)
        self.register_buffer("pos_weight", torch.tensor(pw))

    def _compose(self, a: Any, transpose: bool = False) -> torch.Tensor | None:
        """Dense (rows, segment) = A M, with A = a (or a^T)."""
        if a is None or self.m is None:
            return None
        a = torch.as_tensor(np.asarray(a), dtype=torch.float32)
        a = a.T if transpose else a
        if a.shape[-1] != self.m.shape[0]:
            raise InputError(f"matrix of shape {tuple(a.shape)} does not match {self.m.shape[0]} segments.")
        mt = self.m.to_dense() if self.m.is_sparse else self.m
        return (a.double() @ mt.double()).float().contiguous()

    def _apply(self, fn, *args, **kwargs):  # keep the (possibly sparse) M on the same device
        super()._apply(fn, *args, **kwargs)
        if self.m is not None:
            self.m = fn(self.m)
        return self

    @torch.no_grad()
    def fit(self, v: torch.Tensor, spikes: torch.Tensor | None = None) -> dict:
        """Set target variances from training voltages v (n, segment, time), mV, and 'auto'
        pos_weight (= negative/positive bins, clipped to [1, 1000]) from spikes (n, time)."""
        v = torch.as_tensor(v, dtype=torch.float32).to(self.v_var.device)
        self.v_var.copy_(v.var(dim=(0, 2)).clamp_min(1e-6))
        if self.m is not None:
            imem = apply_segment_matrix(self.m, v)
            self.imem_var.copy_(imem.var(dim=(0, 2)).mean().clamp_min(1e-20))
        if self.pm is not None:
            self.dipole_var.copy_(apply_segment_matrix(self.pm, v).var(dim=(0, 2)).sum()
                                  .clamp_min(1e-20))
        if self.km is not None:
            self.lfp_var.copy_(apply_segment_matrix(self.km, v).var(dim=(0, 2)).sum()
                               .clamp_min(1e-30))
        if self.soma_index is not None:
            soma = v[:, self.soma_index].clamp(max=self.cfg.soma_clip_mv)
            self.soma_var.copy_(soma.var().clamp_min(1e-6))
        if spikes is not None and self.cfg.spike_pos_weight == "auto":
            pos = float((torch.as_tensor(spikes) > 0).float().mean())
            self.pos_weight.fill_(float(np.clip((1 - pos) / max(pos, 1e-9), 1.0, 1000.0)))
        return {"v_var": self.v_var, "imem_var": self.imem_var, "dipole_var": self.dipole_var,
                "soma_var": self.soma_var, "pos_weight": self.pos_weight}

    def forward(self, out: dict, batch: dict, burn_in: int = 0) -> tuple[torch.Tensor, dict]:
        """out: model output; batch: {"v" (b, segment, time) mV, "spikes" (b, time)}.
        Returns (total loss, {term: float}) over bins burn_in.. of each window."""
        v_hat, logit = out["v"].float(), out["spike_logit"].float()
        v, spikes = batch["v"].float(), batch["spikes"].float()
        if v_hat.shape != v.shape:
            raise InputError(f"prediction {tuple(v_hat.shape)} and target {tuple(v.shape)} differ.")
        if burn_in >= v.shape[-1]:
            raise InputError(f"windows of {v.shape[-1]} bins are not longer than the burn-in "
                             f"({burn_in} bins, the receptive field): use longer windows.")
        w = spike_weights(spikes, self.window_bins, self.cfg.spike_boost)[:, burn_in:]
        wsum = w.sum()
        err = (v_hat - v)[..., burn_in:]
        parts: dict[str, torch.Tensor] = {}

        def weighted(sq: torch.Tensor, total: bool = False) -> torch.Tensor:
            """sq (b, rows, time) -> weighted mean over bins of the mean (or sum) over rows."""
            per_bin = sq.sum(dim=1) if total else sq.mean(dim=1)
            return (per_bin * w).sum() / wsum

        c = self.cfg
        if c.v > 0:
            parts["v"] = weighted(err.pow(2) * (self.segment_weights / self.v_var)[None, :, None])
        if c.imem > 0:
            parts["imem"] = weighted(apply_segment_matrix(self.m, err).pow(2)) / self.imem_var
        if c.dipole > 0:
            parts["dipole"] = weighted(apply_segment_matrix(self.pm, err).pow(2),
                                       total=True) / self.dipole_var
        if c.lfp > 0:
            parts["lfp"] = weighted(apply_segment_matrix(self.km, err).pow(2),
                                    total=True) / self.lfp_var
        if c.soma > 0:
            k, top = self.soma_index, c.soma_clip_mv
            d = (v_hat[:, k, burn_in:].clamp(max=top) - v[:, k, burn_in:].clamp(max=top))
            parts["soma"] = (d.pow(2) * w).sum() / wsum / self.soma_var
        if c.spike > 0:
            parts["spike"] = F.binary_cross_entropy_with_logits(
                logit[:, burn_in:], (spikes[:, burn_in:] > 0).float(), pos_weight=self.pos_weight)
        total = sum(getattr(c, k) * val for k, val in parts.items())
        return total, {k: float(val.detach()) for k, val in parts.items()}
