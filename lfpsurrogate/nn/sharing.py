"""``hps``: hard parameter sharing (Verhellen et al. 2024): one shared TCN trunk, one small
tower per segment (plus one for the spike logit), batched as einsums over (task, hidden, out)
weight tensors."""
from __future__ import annotations

import torch

from .base import Surrogate
from .config import ModelConfig
from .layers import TCN, SegmentTowers


class HPSSurrogate(Surrogate):
    """Shared trunk -> per-task towers (hidden -> tower_hidden -> 1); task n_segments is
    the spike logit. Tower parameters: (hidden+2)*tower_hidden + 1 per segment."""

    architecture = "hps"

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig, geometry=None) -> None:
        super().__init__(n_channels, n_segments, cfg)
        self.trunk = TCN(n_channels, cfg.hidden, cfg.layers, cfg.first_kernel, cfg.kernel_size,
                         cfg.dilation_base, cfg.dropout, in_proj=cfg.input_proj)
        self.towers = SegmentTowers(n_segments + 1, cfg.hidden, cfg.tower_hidden)

    @property
    def receptive_field(self) -> int:
        return self.trunk.receptive_field

    def core(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.towers(self.trunk(xn))
        return out[:, :-1], out[:, -1]
