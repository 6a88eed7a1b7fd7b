"""``ours``: shared causal TCN trunk -> rank-r latent z(t) -> v = v_mean + v_std * (U z) for
every segment, plus a spike head.

Why: voltages of neighbouring segments are strongly correlated (cable), and imem = M v
amplifies independent per-segment errors (M is a graph Laplacian). Predicting r latent
traces and mapping them through a smooth basis U (segment x rank) keeps the error of v in
the span of smooth, data-driven modes, so M v_hat stays accurate; the cost per segment is r
parameters. U starts from a physics-weighted PCA of the training voltages
(``fit_normalisation``): the r modes that best explain both the standardised voltages and
the currents M v (metric I + w (M D)^T (M D) / var(imem), w = ``basis_imem_weight``), so the
modes that carry imem are kept even where their voltage variance is small. Columns the data
cannot fill are the smoothest eigenvectors of the cell's (symmetrised) M ("cable modes").

A smooth basis cannot hold the sharp voltage kink that a synapse makes at its own segment,
and that kink is what carries the synaptic part of imem. So a local pathway adds, to each
input segment, shared causal filters (``local_features`` of them) of that segment's own
excitatory and inhibitory channels, mixed by per-segment gains: 2 x local_features x kernel
shared parameters plus local_features per segment.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Surrogate
from .config import ModelConfig
from .layers import TCN, CausalConv1d


def cable_modes(vmem_to_imem, k: int) -> np.ndarray:
    """(segment, k) orthonormal eigenvectors of (M + M^T)/2 with the smallest |eigenvalue|:
    the smoothest voltage patterns along the cell (the first is the constant)."""
    m = vmem_to_imem.toarray() if hasattr(vmem_to_imem, "toarray") else np.asarray(vmem_to_imem)
    w, vec = np.linalg.eigh(0.5 * (m + m.T))
    return vec[:, np.argsort(np.abs(w))[:k]]


def _orthonormal_random(n: int, k: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, max(k, 1)))
    q, _ = np.linalg.qr(a)
    return q[:, :k]


class LowRankSurrogate(Surrogate):
    """Trunk TCN (hidden) -> 1x1 conv to rank latents z -> vn = U z; 1x1 conv -> spike logit.
    Parameters per segment: rank (the row of U)."""

    architecture = "ours"

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig, geometry=None) -> None:
        super().__init__(n_channels, n_segments, cfg)
        self.rank = min(cfg.rank, n_segments)
        self.trunk = TCN(n_channels, cfg.hidden, cfg.layers, cfg.first_kernel, cfg.kernel_size,
                         cfg.dilation_base, cfg.dropout, in_proj=cfg.input_proj)
        self.latent = CausalConv1d(cfg.hidden, self.rank, 1)
        self.spike_head = CausalConv1d(cfg.hidden, 1, 1)
        n_in = n_channels // 2
        self.local = None
        if cfg.local_features > 0 and n_channels % 2 == 0:
            seg = (geometry.input_segments if geometry is not None
                   else np.arange(n_in) % n_segments)
            self.register_buffer("input_segments", torch.as_tensor(np.asarray(seg), dtype=torch.long))
            self.local = CausalConv1d(2, cfg.local_features, cfg.first_kernel)
            self.local_gain = nn.Parameter(torch.zeros(n_in, cfg.local_features))
        self._modes = None
        self._m = None if geometry is None else geometry.vmem_to_imem
        if cfg.basis != "random" and geometry is not None:
            self._modes = cable_modes(geometry.vmem_to_imem, self.rank)
        base = self._modes if self._modes is not None else _orthonormal_random(
            n_segments, self.rank, cfg.seed)
        u = torch.from_numpy(base * math.sqrt(n_segments / self.rank)).float()
        self.basis = nn.Parameter(u, requires_grad=cfg.train_basis)

    @property
    def receptive_field(self) -> int:
        return max(self.trunk.receptive_field, self.cfg.first_kernel)

    def _local_term(self, xn: torch.Tensor) -> torch.Tensor | None:
        """Local synaptic pathway: (batch, n_input_segments, T) standardised voltage.

        Mathematically sum_f gain[n, f] * (filter_f of segment n's (exc, inh) channels);
        computed as one depthwise causal conv whose per-channel kernels are the gains
        folded into the shared filters (gain @ W), which is ~5x faster than filtering every
        segment with every shared filter and mixing afterwards."""
        if self.local is None:
            return None
        n = xn.shape[1] // 2
        w = self.local.weight                                  # (F, 2, K)
        kernels = torch.einsum("nf,fck->cnk", self.local_gain, w).reshape(2 * n, 1, w.shape[-1])
        y = F.conv1d(F.pad(xn, (w.shape[-1] - 1, 0)), kernels, groups=2 * n)
        return y[:, :n] + y[:, n:] + (self.local_gain @ self.local.bias)[None, :, None]

    def readout_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """The pieces of the linear readout, for folding it into forward matrices:
        v = v_mean + v_std * (basis @ z + scatter(local, input_segments)).
        Returns z (batch, rank, T), local (batch, n_input_segments, T) or None, spike_logit."""
        if x.dim() != 3 or x.shape[1] != self.n_channels:
            raise ValueError(f"input must be (batch, {self.n_channels}, time); got {tuple(x.shape)}.")
        xn = (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]
        h = self.trunk(xn)
        return {"z": self.latent(h), "local": self._local_term(xn),
                "spike_logit": self.spike_head(h)[:, 0]}

    def core(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(xn)
        vn = torch.einsum("sr,brt->bst", self.basis, self.latent(h))
        local = self._local_term(xn)
        if local is not None:
            vn = vn.index_add(1, self.input_segments, local)
        return vn, self.spike_head(h)[:, 0]

    @torch.no_grad()
    def fit_basis(self, vn: torch.Tensor) -> None:
        """Weighted PCA of standardised voltages vn (segment, samples): with metric
        W = R^2, U = R^-1 Q sqrt(eigenvalues) for the top eigenvectors Q of R C R (C the
        covariance of vn), so z has unit variance. Columns beyond the data's rank are cable
        modes (or random) orthogonal to the kept ones, scaled like the weakest kept one."""
        if self.cfg.basis != "pca":
            return
        x = vn.to(torch.float64)
        x = x - x.mean(dim=1, keepdim=True)
        cov = (x @ x.T / max(x.shape[1] - 1, 1)).numpy()
        r = r_inv = np.eye(self.n_segments)
        if self._m is not None and self.cfg.basis_imem_weight > 0:
            m = self._m.toarray() if hasattr(self._m, "toarray") else np.asarray(self._m)
            md = m * self.v_std.double().cpu().numpy()[None, :]  # imem per unit of vn
            var_imem = max(np.trace(md @ cov @ md.T) / self.n_segments, 1e-30)
            ew, ev = np.linalg.eigh(np.eye(self.n_segments)
                                    + self.cfg.basis_imem_weight * md.T @ md / var_imem)
            r = (ev * np.sqrt(ew)) @ ev.T
            r_inv = (ev / np.sqrt(ew)) @ ev.T
        w, vec = np.linalg.eigh(r @ cov @ r)
        order = np.argsort(w)[::-1][: self.rank]
        w, vec = np.clip(w[order], 0, None), vec[:, order]
        keep = w > 1e-6 * max(w[0], 1e-12)
        u = r_inv @ vec[:, keep] * np.sqrt(w[keep])
        missing = self.rank - u.shape[1]
        if missing > 0:
            pool = self._modes if self._modes is not None else _orthonormal_random(
                self.n_segments, self.rank, self.cfg.seed)
            q, _ = np.linalg.qr(u)
            extra = pool - q @ (q.T @ pool)
            extra, _ = np.linalg.qr(extra)
            scale = np.sqrt(w[keep][-1]) if keep.any() else 1.0
            u = np.concatenate([u, extra[:, :missing] * scale], axis=1)
        self.basis.copy_(torch.from_numpy(u).to(self.basis))
