"""Neural-network surrogates: causal sequence-to-sequence models of every segment's voltage
and the somatic spike logit, physics-aware losses, training, safe checkpoints.

Public API::

    from lfpsurrogate.nn import build_model, fit_normalisation, train, load_model, load_config
"""
from __future__ import annotations

from .base import Surrogate, fit_normalisation
from .checkpoint import CheckpointError, load_model, read_sidecar, save_checkpoint
from .config import ARCHITECTURES, ConfigError, SurrogateConfig, load_config
from .losses import SurrogateLoss, apply_segment_matrix, spike_weights
from .models import MODELS, build_model
from .train import TrainResult, evaluate_batches, train

__all__ = [
    "ARCHITECTURES", "CheckpointError", "ConfigError", "MODELS", "Surrogate",
    "SurrogateConfig", "SurrogateLoss", "TrainResult", "apply_segment_matrix", "build_model",
    "evaluate_batches", "fit_normalisation", "load_config", "load_model", "read_sidecar",
    "save_checkpoint", "spike_weights", "train",
]
