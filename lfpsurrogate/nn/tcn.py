"""``tcn``: a dilated causal TCN with a 1x1 conv readout to every segment and the spike logit
(Beniaguev et al. 2021 style, but predicting all segments and every bin in one pass)."""
from __future__ import annotations

import torch

from .base import Surrogate
from .config import ModelConfig
from .layers import TCN, CausalConv1d


class TCNSurrogate(Surrogate):
    """Trunk TCN (hidden channels) -> 1x1 conv to n_segments + 1 outputs (last: spike logit).
    Readout parameters: (hidden + 1) per segment."""

    architecture = "tcn"

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig, geometry=None) -> None:
        super().__init__(n_channels, n_segments, cfg)
        self.trunk = TCN(n_channels, cfg.hidden, cfg.layers, cfg.first_kernel, cfg.kernel_size,
                         cfg.dilation_base, cfg.dropout, in_proj=cfg.input_proj)
        self.readout = CausalConv1d(cfg.hidden, n_segments + 1, 1)

    @property
    def receptive_field(self) -> int:
        return self.trunk.receptive_field

    def core(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.readout(self.trunk(xn))
        return out[:, :-1], out[:, -1]
