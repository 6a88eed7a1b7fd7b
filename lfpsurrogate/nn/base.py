"""Base class of every surrogate: input/output normalisation buffers, shape checks, the
``forward(x) -> {"v", "spike_logit"}`` contract, and ``fit_normalisation``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .config import ModelConfig


class Surrogate(nn.Module):
    """Causal sequence-to-sequence surrogate of one cell.

    forward(x): x (batch, channel, time) spike counts per bin (float) ->
    ``{"v": (batch, segment, time) mV, "spike_logit": (batch, time)}`` in one pass.
    Subclasses implement ``core(xn) -> (vn, spike_logit)`` on normalised inputs, returning
    per-segment standardised voltages vn; the base class maps v = v_mean + v_std * vn.
    """

    architecture = "base"

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_channels = int(n_channels)
        self.n_segments = int(n_segments)
        self.cfg = cfg
        self.register_buffer("in_mean", torch.zeros(n_channels))
        self.register_buffer("in_scale", torch.ones(n_channels))
        self.register_buffer("v_mean", torch.full((n_segments,), -65.0))
        self.register_buffer("v_std", torch.ones(n_segments))

    # ---- contract -------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        """Bins of input history (current bin included) that one output bin depends on."""
        raise NotImplementedError

    def core(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 3 or x.shape[1] != self.n_channels:
            raise InputError(f"surrogate input must be (batch, {self.n_channels} channels, time); "
                             f"got shape {tuple(x.shape)}.")
        xn = (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]
        vn, logit = self.core(xn)
        v = self.v_mean[None, :, None] + self.v_std[None, :, None] * vn
        return {"v": v, "spike_logit": logit}

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def describe(self) -> dict[str, Any]:
        """Sizes that rebuild this model (stored in checkpoint sidecars)."""
        from dataclasses import asdict

        return {"architecture": self.architecture, "n_channels": self.n_channels,
                "n_segments": self.n_segments, "receptive_field": self.receptive_field,
                "n_parameters": self.n_parameters(), "model": asdict(self.cfg)}

    def fit_basis(self, vn: torch.Tensor) -> None:
        """Hook: called by fit_normalisation with standardised voltages (segment, samples)."""


def _as_tensor(a: Any) -> torch.Tensor:
    if isinstance(a, (list, tuple)):
        a = torch.stack([_as_tensor(x) for x in a])
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    return a.detach().to(torch.float64).cpu()


@torch.no_grad()
def fit_normalisation(model: Surrogate, inputs: Any, v: Any, *, min_std_mv: float = 1e-3) -> dict:
    """Set the model's normalisation buffers from data.

    inputs: (n, channel, time) counts; v: (n, segment, time) mV (tensors, arrays or lists of
    (channel, time) / (segment, time) arrays). Sets per-channel input mean and scale
    (1/std; 1 for silent channels) and per-segment voltage mean and std (floored at
    min_std_mv mV), then lets the model fit its output basis (``ours``). Returns the stats.
    """
    x, vv = _as_tensor(inputs), _as_tensor(v)
    if x.dim() == 2:
        x = x[None]
    if vv.dim() == 2:
        vv = vv[None]
    if x.shape[1] != model.n_channels or vv.shape[1] != model.n_segments:
        raise InputError(f"fit_normalisation: got {x.shape[1]} channels and {vv.shape[1]} segments; "
                         f"the model has {model.n_channels} and {model.n_segments}.")
    in_mean = x.mean(dim=(0, 2))
    in_std = x.std(dim=(0, 2))
    in_scale = torch.where(in_std > 1e-8, 1.0 / in_std.clamp_min(1e-8), torch.ones_like(in_std))
    v_mean = vv.mean(dim=(0, 2))
    v_std = vv.std(dim=(0, 2)).clamp_min(min_std_mv)
    dev = model.in_mean.device
    model.in_mean.copy_(in_mean.to(dev))
    model.in_scale.copy_(in_scale.to(dev))
    model.v_mean.copy_(v_mean.to(dev))
    model.v_std.copy_(v_std.to(dev))
    vn = ((vv - v_mean[None, :, None]) / v_std[None, :, None]).permute(1, 0, 2)
    model.fit_basis(vn.reshape(model.n_segments, -1))
    return {"in_mean": in_mean, "in_scale": in_scale, "v_mean": v_mean, "v_std": v_std}
