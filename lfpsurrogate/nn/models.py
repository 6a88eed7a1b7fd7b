"""Registry of surrogate architectures: ``build_model(config, n_channels, n_segments)``."""
from __future__ import annotations

from typing import Any

from .base import Surrogate
from .config import ARCHITECTURES, ConfigError, ModelConfig, model_config
from .linear import LinearSurrogate
from .lowrank import LowRankSurrogate
from .mmoe import MMoEExSurrogate, MMoESurrogate
from .sharing import HPSSurrogate
from .spiking import SpikingSurrogate
from .tcn import TCNSurrogate

MODELS: dict[str, type[Surrogate]] = {
    "tcn": TCNSurrogate,
    "hps": HPSSurrogate,
    "mmoe": MMoESurrogate,
    "mmoeex": MMoEExSurrogate,
    "ours": LowRankSurrogate,
    "linear": LinearSurrogate,
    "spiking": SpikingSurrogate,
}
assert set(MODELS) == set(ARCHITECTURES)


def build_model(config: dict | ModelConfig | Any, n_channels: int, n_segments: int,
                geometry=None) -> Surrogate:
    """Build an untrained surrogate.

    config: a ``model`` section (dict or ModelConfig) or a whole SurrogateConfig.
    n_channels: input channels (2 x input segments). n_segments: output segments.
    geometry: the CellGeometry (``ours`` uses its M for the cable basis; optional).
    Initialisation is seeded by ``model.seed``.
    """
    import torch

    cfg = config.model if hasattr(config, "model") else config
    cfg = model_config(cfg)
    if n_channels < 1 or n_segments < 1:
        raise ConfigError(f"n_channels={n_channels} and n_segments={n_segments} must be >= 1.")
    if geometry is not None and geometry.n_segments != n_segments:
        raise ConfigError(f"geometry has {geometry.n_segments} segments, model asked for {n_segments}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return MODELS[cfg.architecture](n_channels, n_segments, cfg, geometry)
