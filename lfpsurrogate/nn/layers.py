"""Causal building blocks: dilated causal Conv1d, a residual TCN trunk, batched per-segment towers.

Tensors are (batch, channel, time); "causal" means the output at bin t depends only on
inputs at bins <= t (zeros are padded on the left only).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left by (kernel-1)*dilation bins: output length = input length."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int = 1,
                 groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, dilation=dilation, groups=groups)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))


class TCN(nn.Module):
    """Dilated causal TCN: a wide first conv, then residual blocks with dilations
    dilation_base**0, **1, ... (Beniaguev et al. 2021 used 7 undilated layers).

    groups > 1 runs `groups` independent TCNs side by side (the mmoe experts): the first
    conv maps the input to groups*hidden channels, later convs are grouped.
    Output: (batch, groups*hidden, time).
    """

    def __init__(self, c_in: int, hidden: int, layers: int, first_kernel: int,
                 kernel_size: int, dilation_base: int, dropout: float = 0.0,
                 groups: int = 1, in_proj: int = 0) -> None:
        super().__init__()
        width = hidden * groups
        # in_proj > 0: a pointwise (1x1) projection of the many input channels first, so the
        # wide temporal kernel acts on in_proj channels instead of all of them (factorised)
        self.proj = nn.Conv1d(c_in, in_proj, 1) if in_proj > 0 else None
        self.first = CausalConv1d(in_proj if in_proj > 0 else c_in, width, first_kernel)
        self.blocks = nn.ModuleList(
            CausalConv1d(width, width, kernel_size, dilation_base ** i, groups=groups)
            for i in range(layers - 1)
        )
        self.dropout = nn.Dropout(dropout)
        self.out_channels = width
        self.receptive_field = 1 + (first_kernel - 1) + sum(
            (kernel_size - 1) * dilation_base ** i for i in range(layers - 1))

    def forward(self, x: torch.Tensor, projected: torch.Tensor | None = None) -> torch.Tensor:
        """x (batch, c_in, T); ``projected``: the in_proj output, when the caller computed
        it (e.g. event by event from sparse counts), replaces ``self.proj(x)``."""
        if projected is not None:
            x = projected
        elif self.proj is not None:
            x = self.proj(x)
        h = F.gelu(self.first(x))
        for conv in self.blocks:
            h = h + self.dropout(F.gelu(conv(h)))
        return h


class SegmentTowers(nn.Module):
    """One small MLP tower per task, batched: weights are (task, hidden, out) tensors and
    the towers run as two einsums, not as one Module per task.

    forward(h): h is (batch, hidden, time) shared by all tasks, or (batch, task, hidden, time)
    per task; returns (batch, task, time).
    """

    def __init__(self, n_tasks: int, hidden: int, tower_hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(n_tasks, hidden, tower_hidden) / math.sqrt(hidden))
        self.b1 = nn.Parameter(torch.zeros(n_tasks, tower_hidden))
        self.w2 = nn.Parameter(torch.randn(n_tasks, tower_hidden) / math.sqrt(tower_hidden))
        self.b2 = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() == 3:
            z = torch.einsum("bht,shk->bskt", h, self.w1)
        else:
            z = torch.einsum("bsht,shk->bskt", h, self.w1)
        z = F.gelu(z + self.b1[None, :, :, None])
        return torch.einsum("bskt,sk->bst", z, self.w2) + self.b2[None, :, None]
