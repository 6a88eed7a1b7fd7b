"""``mmoe`` (Ma et al., KDD 2018) and ``mmoeex`` (Aoki et al. 2021): TCN experts mixed per
task by softmax gates, then per-task towers. Experts run as one grouped TCN; the gates of all
tasks are one einsum over a (task, gate feature, expert) weight tensor."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Surrogate
from .config import ModelConfig
from .layers import TCN, CausalConv1d, SegmentTowers


class MMoESurrogate(Surrogate):
    """Experts: n_experts TCNs of expert_hidden channels. Gates: a shared causal conv of the
    input (gate_hidden features, kernel first_kernel), then per task softmax over experts.
    Task n_segments is the spike logit. Per-segment parameters:
    (gate_hidden+1)*n_experts + tower."""

    architecture = "mmoe"

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig, geometry=None) -> None:
        super().__init__(n_channels, n_segments, cfg)
        e, n_tasks = cfg.n_experts, n_segments + 1
        self.experts = TCN(n_channels, cfg.expert_hidden, cfg.layers, cfg.first_kernel,
                           cfg.kernel_size, cfg.dilation_base, cfg.dropout, groups=e, in_proj=cfg.input_proj)
        self.gate_features = CausalConv1d(n_channels, cfg.gate_hidden, cfg.first_kernel)
        self.gate_w = nn.Parameter(torch.randn(n_tasks, cfg.gate_hidden, e) * 0.01)
        self.gate_b = nn.Parameter(torch.zeros(n_tasks, e))
        self.towers = SegmentTowers(n_tasks, cfg.expert_hidden, cfg.tower_hidden)
        self.register_buffer("gate_mask", torch.ones(n_tasks, e, dtype=torch.bool))

    @property
    def receptive_field(self) -> int:
        return max(self.experts.receptive_field, self.gate_features.kernel_size[0])

    def gates(self, xn: torch.Tensor) -> torch.Tensor:
        """(batch, task, expert, time) softmax weights; masked experts get weight 0."""
        g = F.gelu(self.gate_features(xn))
        logits = torch.einsum("bgt,sge->bset", g, self.gate_w) + self.gate_b[None, :, :, None]
        logits = logits.masked_fill(~self.gate_mask[None, :, :, None], float("-inf"))
        return torch.softmax(logits, dim=2)

    def core(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, t = xn.shape
        h = self.experts(xn).view(b, self.cfg.n_experts, self.cfg.expert_hidden, t)
        mixed = torch.einsum("bset,beht->bsht", self.gates(xn), h)
        out = self.towers(mixed)
        return out[:, :-1], out[:, -1]


def exclusivity_mask(n_tasks: int, n_experts: int, fraction: float, seed: int) -> np.ndarray:
    """(task, expert) bool mask: each expert is masked out of round(fraction*n_tasks) random
    tasks; every task keeps at least one expert. Fixed by the seed."""
    rng = np.random.default_rng(seed)
    mask = np.ones((n_tasks, n_experts), dtype=bool)
    k = int(round(fraction * n_tasks))
    for e in range(n_experts):
        mask[rng.permutation(n_tasks)[:k], e] = False
    for s in np.flatnonzero(~mask.any(axis=1)):
        mask[s, rng.integers(n_experts)] = True
    return mask


class MMoEExSurrogate(MMoESurrogate):
    """MMoE with exclusivity: a fixed random subset of experts is removed from each gate."""

    architecture = "mmoeex"

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig, geometry=None) -> None:
        super().__init__(n_channels, n_segments, cfg)
        mask = exclusivity_mask(n_segments + 1, cfg.n_experts, cfg.exclusivity, cfg.seed)
        self.gate_mask.copy_(torch.from_numpy(mask))
