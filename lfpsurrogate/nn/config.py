"""Training configuration: a dataclass schema read from YAML (or a dict), validated key by key.

Every section and key is checked: an unknown key, a wrong type or a value out of range
raises :class:`ConfigError` naming the key (``model.hiden: unknown key; did you mean
'hidden'?``). ``SurrogateConfig.to_dict()`` round-trips through ``load_config``.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import LfpsurrogateError

ARCHITECTURES = ("tcn", "hps", "mmoe", "mmoeex", "ours", "linear", "spiking")


class ConfigError(LfpsurrogateError, ValueError):
    """A training configuration with an unknown key or a bad value."""


def _f(default: Any, *, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, doc: str = "") -> Any:
    """A dataclass field with validation metadata (inclusive bounds lo/hi, allowed choices)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """Architecture and sizes. Keys that an architecture does not use are ignored by it."""

    architecture: str = _f("ours", choices=ARCHITECTURES)
    hidden: int = _f(64, lo=1, doc="channels of the TCN trunk")
    layers: int = _f(6, lo=1, doc="causal conv layers in a TCN (first layer included)")
    first_kernel: int = _f(25, lo=1, doc="kernel of the first conv layer, bins")
    input_proj: int = _f(0, lo=0, doc="1x1 projection of the input channels before the "
                         "first conv (0: none); factorises the widest layer")
    kernel_size: int = _f(3, lo=1, doc="kernel of the dilated layers, bins")
    dilation_base: int = _f(2, lo=1, doc="layer i>0 has dilation base**(i-1)")
    dropout: float = _f(0.0, lo=0.0, hi=0.9)
    tower_hidden: int = _f(16, lo=1, doc="hidden units of each per-segment tower (hps/mmoe)")
    n_experts: int = _f(4, lo=1, doc="experts of mmoe/mmoeex")
    expert_hidden: int = _f(32, lo=1, doc="channels of each TCN expert")
    gate_hidden: int = _f(16, lo=1, doc="causal gate features shared by all gates")
    exclusivity: float = _f(0.5, lo=0.0, hi=1.0,
                            doc="mmoeex: fraction of tasks each expert is masked out of")
    rank: int = _f(32, lo=1, doc="ours: rank of the voltage readout (basis vectors)")
    basis: str = _f("pca", choices=("pca", "laplacian", "random"),
                    doc="ours: initial basis; pca is completed by cable (Laplacian) modes")
    basis_imem_weight: float = _f(1.0, lo=0.0,
                                  doc="ours: weight of the imem = M v error in the PCA metric")
    local_features: int = _f(8, lo=0, doc="ours: shared causal filters of each segment's "
                             "own synaptic input (0: no local pathway)")
    train_basis: bool = _f(True, doc="ours: learn the basis after initialisation")
    n_bumps: int = _f(6, lo=0, doc="linear/spiking: raised-cosine input filters besides the "
                      "delta (log-time axis)")
    input_modes: int = _f(64, lo=1, doc="linear/spiking: smooth input patterns per synapse "
                          "kind that the linear pathway filters (see nn/linear.py)")
    max_lag_ms: float = _f(120.0, lo=1.0, doc="linear/spiking: longest lag of the input "
                           "filters, ms")
    spike_history_ms: float = _f(30.0, lo=1.0, doc="spiking: length of the spike history "
                                 "(refractoriness, bursts) filter, ms")
    waveform_ms: float = _f(30.0, lo=1.0, doc="spiking: length of each segment's "
                            "spike-triggered voltage waveform, ms")
    seed: int = _f(0, lo=0, doc="seed of initialisation and the mmoeex mask")


@dataclass
class DataConfig:
    """Where the training data live (read by the CLI that builds the Datasets)."""

    train: list = _f([], doc="zarr store path(s) for training windows")
    val: list = _f([], doc="zarr store path(s) for validation (default: the val split of train)")
    window_ms: float = _f(256.0, lo=1e-9, doc="length of a training window, ms")
    n_windows: int = _f(0, lo=0, doc="windows per epoch (0: as many as fit)")
    num_workers: int = _f(0, lo=0)


@dataclass
class LossConfig:
    """Weights of the loss terms (0 switches a term off) and spike balancing."""

    v: float = _f(1.0, lo=0.0, doc="MSE of v, per segment divided by the variance of v")
    spike: float = _f(0.1, lo=0.0, doc="BCE of the somatic spike logit")
    imem: float = _f(0.0, lo=0.0, doc="MSE of M v_hat vs M v over the imem variance")
    dipole: float = _f(0.0, lo=0.0, doc="MSE of the current dipole P M v over its variance")
    lfp: float = _f(0.0, lo=0.0, doc="MSE of K M v (needs an LFP matrix K)")
    soma: float = _f(0.0, lo=0.0, doc="MSE of the soma voltage with action potentials clipped "
                     "at soma_clip_mv, over its variance: the subthreshold trajectory that "
                     "times the spikes (needs the cell's geometry)")
    soma_clip_mv: float = _f(-55.0, doc="soma term: voltages above this (the spikes) are "
                             "clipped to it, in target and prediction, mV")
    spike_pos_weight: Any = _f("auto", doc="BCE pos_weight: a number or 'auto' (neg/pos)")
    spike_window_ms: float = _f(10.0, lo=0.0, doc="bins within this of a spike are boosted")
    spike_boost: float = _f(4.0, lo=0.0, doc="extra weight of bins near a somatic spike")


@dataclass
class OptimConfig:
    """AdamW."""

    lr: float = _f(1e-3, lo=1e-12, hi=10.0)
    weight_decay: float = _f(1e-4, lo=0.0)
    grad_clip: float = _f(1.0, lo=0.0, doc="max gradient norm (0: off)")
    schedule: str = _f("constant", choices=("constant", "cosine"),
                       doc="learning rate over epochs: constant, or cosine decay from lr to "
                       "min_lr_ratio * lr at the last epoch")
    min_lr_ratio: float = _f(0.05, lo=0.0, hi=1.0)


@dataclass
class TrainConfig:
    """Loop settings."""

    epochs: int = _f(50, lo=1)
    patience: int = _f(10, lo=1, doc="epochs without a better val loss before stopping")
    batch_size: int = _f(16, lo=1)
    precision: str = _f("auto", choices=("auto", "fp32", "bf16", "fp16"),
                        doc="autocast dtype on GPU; CPU always runs fp32")
    stats_windows: int = _f(64, lo=1, doc="training windows used for normalisation statistics")
    scheduled_sampling: float = _f(0.0, lo=0.0, hi=1.0, doc="spiking: probability of feeding "
                                   "the model's own spikes back instead of the true ones, "
                                   "ramped linearly from 0 at the first epoch to this")
    closed_form_samples: int = _f(0, lo=0, doc="linear/spiking: whole training samples for "
                                  "the closed-form fit (0: all), read from the store on each pass; validation: a "
                                  "quarter as many, at least 4")
    closed_form_stride: int = _f(4, lo=1, doc="linear/spiking: use every n-th bin in the "
                                 "closed-form normal equations")
    init_from: str = _f("", doc="fine-tuning: a checkpoint (stem, .json) or model folder whose "
                         "weights start the run, instead of the normalisation and closed-form "
                         "fit from the data; its model section and cell must match")
    seed: int = _f(0, lo=0)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "loss": LossConfig,
            "optim": OptimConfig, "train": TrainConfig}


@dataclass
class SurrogateConfig:
    """The whole configuration: one dataclass per YAML section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        """Plain dict (JSON/YAML serialisable)."""
        return asdict(self)


def _unknown(key: str, allowed, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {sorted(allowed)}"
    return ConfigError(f"{where}{key}: unknown key{hint}")


def _check_value(name: str, f, value: Any) -> Any:
    """Coerce and validate one value against its field's type and metadata."""
    kind = type(f.default) if f.default is not MISSING else list
    meta = f.metadata
    if name.endswith("spike_pos_weight"):
        if value == "auto":
            return value
        kind = float
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
    elif kind is list:
        if isinstance(value, (str, Path)):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
            raise ConfigError(f"{name}: expected a path or a list of paths, got {value!r}")
        value = [str(v) for v in value]
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{name}: {value!r} is not one of {list(meta['choices'])}")
    if meta.get("lo") is not None and value < meta["lo"]:
        raise ConfigError(f"{name}: {value!r} is below the minimum {meta['lo']}")
    if meta.get("hi") is not None and value > meta["hi"]:
        raise ConfigError(f"{name}: {value!r} is above the maximum {meta['hi']}")
    if name.endswith("spike_pos_weight") and value <= 0:
        raise ConfigError(f"{name}: must be 'auto' or a positive number, got {value!r}")
    return value


def _section(cls, raw: Any, where: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where.rstrip('.')}: expected a mapping of keys, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in known:
            raise _unknown(str(key), known, where)
        kwargs[key] = _check_value(where + key, known[key], value)
    return cls(**kwargs)


def load_config(source: str | Path | dict | SurrogateConfig | None = None) -> SurrogateConfig:
    """Read and validate a configuration from a YAML file path, a dict or a SurrogateConfig.

    Missing keys take their defaults; unknown keys and bad values raise ConfigError.
    """
    if isinstance(source, SurrogateConfig):
        source = source.to_dict()
    if source is None:
        source = {}
    if isinstance(source, (str, Path)):
        import yaml

        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist.")
        try:
            source = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(source, dict):
        raise ConfigError(f"a config must be a mapping of sections {list(SECTIONS)}, "
                          f"got {type(source).__name__}")
    for key in source:
        if key not in SECTIONS:
            raise _unknown(str(key), SECTIONS, "")
    return SurrogateConfig(**{name: _section(cls, source.get(name), name + ".")
                              for name, cls in SECTIONS.items()})


def model_config(source: dict | ModelConfig | None = None) -> ModelConfig:
    """Validate only a ``model`` section (dict or ModelConfig)."""
    if isinstance(source, ModelConfig):
        source = asdict(source)
    return _section(ModelConfig, source or {}, "model.")
