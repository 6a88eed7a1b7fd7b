"""Causal building blocks: dilated causal Conv1d, a residual TCN trunk, batched per-segment towers.

Tensors are (batch, channel, time); "causal" means the output at bin t depends only on
inputs at bins <= t (zeros are padded on the left only).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fftsize import fast_fft_length


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left by (kernel-1)*dilation bins: output length = input length."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int = 1,
                 groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, dilation=dilation, groups=groups)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.groups == 1 and self.dilation[0] == 1 and self.kernel_size[0] >= FFT_MIN_KERNEL
                and x.shape[0] >= FFT_MIN_BATCH and not torch.is_grad_enabled()):
            return self._forward_fft(x)
        return super().forward(F.pad(x, (self.left_pad, 0)))

    def _forward_fft(self, x: torch.Tensor) -> torch.Tensor:
        """The same causal convolution by FFT (inference): a K-tap kernel costs K
        multiply-adds per bin and channel pair directly, about one per frequency here (the
        spiking model's first layer: 25 taps, about half the time). The kernel's spectrum
        is kept for the next call of the same length. Equal to the direct form up to float
        rounding (tested)."""
        t, k = x.shape[-1], self.kernel_size[0]
        n = fast_fft_length(t + k - 1)
        key = (n, self.weight._version, self.weight.data_ptr(), x.dtype, x.device)
        cache = getattr(self, "_fft_kernel", None)
        if cache is None or cache[0] != key:
            wf = torch.fft.rfft(self.weight.to(x.dtype).flip(-1), n=n)         # (o, i, f)
            cache = (key, wf.permute(2, 1, 0).contiguous())                    # (f, i, o)
            self._fft_kernel = cache
        xf = torch.fft.rfft(x, n=n).permute(2, 0, 1).contiguous()             # (f, b, i)
        yf = torch.bmm(xf, cache[1]).permute(1, 2, 0)                           # (b, o, f)
        y = torch.fft.irfft(yf, n=n)[..., :t]
        return y if self.bias is None else y + self.bias[None, :, None].to(y.dtype)


# wide kernels over several cells are cheaper by FFT (measured: 64 cells x 1 s, 25 taps,
# 64 channels: 2.1x faster; one cell: slower); inference only, training stays direct
FFT_MIN_KERNEL = 9
FFT_MIN_BATCH = 4


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
