"""Training loop: ``train(config, train_data, val_data, out_dir, geometry)``.

Datasets yield dicts ``{"inputs": (channel, T) counts, "v": (segment, T) mV, "spikes": (T,)}``
(``lfpsurrogate.data.WindowDataset`` or any map-style Dataset). Features: burn-in (the first
``receptive_field`` bins of each window carry no loss), per-epoch validation metrics,
best/last checkpoints (safetensors + JSON), exact resume, early stopping, cuda when available,
bf16/fp16 autocast on GPU only, DDP when launched by torchrun (WORLD_SIZE > 1), seeds.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from ..errors import InputError
from .base import Surrogate, fit_normalisation
from .checkpoint import (CheckpointError, load_model, load_training_state, recover_checkpoint,
                         save_checkpoint)
from .config import ConfigError, SurrogateConfig, load_config
from .losses import SurrogateLoss, apply_segment_matrix
from .models import build_model


@dataclass
class TrainResult:
    """What ``train`` returns. model: the best model (eval mode, on the training device)."""

    model: Surrogate
    history: list[dict] = field(default_factory=list)
    best_metrics: dict = field(default_factory=dict)
    best_path: Path | None = None
    last_path: Path | None = None
    stopped_early: bool = False
    initial_metrics: dict = field(default_factory=dict)


# ---- environment -------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _device(env: _Dist, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


def _autocast(device: torch.device, precision: str):
    """(autocast context factory, GradScaler or None). CPU: always fp32."""
    if device.type != "cuda" or precision == "fp32":
        if precision in ("bf16", "fp16") and device.type != "cuda":
            warnings.warn(f"train.precision={precision} needs a GPU; training in fp32 on {device}.")
        return contextlib.nullcontext, None
    bf16 = precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported())
    dtype = torch.bfloat16 if bf16 else torch.float16
    scaler = None if bf16 else torch.amp.GradScaler("cuda")
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---- data --------------------------------------------------------------------------------
def _first_item(data: Dataset) -> dict:
    if len(data) == 0:
        raise InputError("the training dataset is empty.")
    item = data[0]
    for key in ("inputs", "v", "spikes"):
        if key not in item:
            raise InputError(f"dataset items must be dicts with 'inputs', 'v', 'spikes'; "
                             f"missing {key!r}.")
    return item


def _stats_sample(data: Dataset, n: int, seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), size=min(n, len(data)), replace=False)
    items = [data[int(i)] for i in sorted(idx)]
    return {k: torch.stack([torch.as_tensor(it[k], dtype=torch.float32) for it in items])
            for k in ("inputs", "v", "spikes")}


def _loader(data: Dataset, batch: int, shuffle: bool, env: _Dist, seed: int, workers: int):
    sampler = DistributedSampler(data, env.world, env.rank, shuffle=shuffle, seed=seed) \
        if env.world > 1 else None
    gen = torch.Generator()
    loader = DataLoader(data, batch_size=batch, shuffle=shuffle and sampler is None,
                        sampler=sampler, generator=gen, num_workers=workers,
                        drop_last=False, persistent_workers=False)
    return loader, sampler, gen


def _set_epoch(data: Dataset, sampler, gen: torch.Generator, seed: int, epoch: int) -> None:
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    if sampler is not None:
        sampler.set_epoch(epoch)
    gen.manual_seed(seed * 1_000_003 + epoch)


class WholeSamples:
    """Whole samples of a store-backed dataset, read again on every pass (a closed-form fit
    makes two), so memory holds one at a time: 1505 samples of 2 s of l5_ttpc1 are 20 GB
    as float32 arrays. ``len`` and iteration only."""

    def __init__(self, data, limit: int = 0, seed: int = 0) -> None:
        self._data, self._seed = data, int(seed)
        self._limit = min(limit, data.n_samples) if limit else data.n_samples

    def __len__(self) -> int:
        return self._limit

    def __iter__(self):
        return iter(self._data.whole_samples(self._limit, self._seed))


def whole_samples(data: Dataset, limit: int = 0, seed: int = 0):
    """Whole samples of a dataset for closed-form fits, at most ``limit`` (0: all): a
    :class:`WholeSamples` where the dataset has ``whole_samples`` (WindowDataset), else a
    list of its items (each window taken as a sample)."""
    if hasattr(data, "whole_samples"):
        return WholeSamples(data, limit, seed)
    n = len(data) if not limit else min(limit, len(data))
    return [data[i] for i in range(n)]


def _to(batch: dict, device: torch.device) -> dict:
    return {k: batch[k].to(device, non_blocking=True).float() for k in ("inputs", "v", "spikes")}


# ---- metrics -----------------------------------------------------------------------------
class _Pearson:
    """Streaming Pearson correlation per row over (batch, time) of (batch, row, time) pairs."""

    def __init__(self) -> None:
        self.s: torch.Tensor | None = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.double(), y.double()
        s = torch.stack([x.new_full(x.shape[1:2], x.shape[0] * x.shape[2]),
                         x.sum((0, 2)), y.sum((0, 2)), (x * x).sum((0, 2)),
                         (y * y).sum((0, 2)), (x * y).sum((0, 2))])
        self.s = s if self.s is None else self.s + s

    def value(self) -> float:
        n, sx, sy, sxx, syy, sxy = self.s
        cov = sxy / n - sx * sy / n**2
        var = (sxx / n - (sx / n) ** 2).clamp_min(0) * (syy / n - (sy / n) ** 2).clamp_min(0)
        r = cov / var.sqrt().clamp_min(1e-30)
        ok = var > 0
        return float(r[ok].mean()) if ok.any() else float("nan")


def _auc(hist_pos: torch.Tensor, hist_neg: torch.Tensor) -> float:
    """ROC AUC from histograms of scores (ascending bins) of positive and negative bins."""
    p, n = hist_pos.double(), hist_neg.double()
    if p.sum() == 0 or n.sum() == 0:
        return float("nan")
    below = torch.cumsum(n, 0) - n  # negatives strictly below each bin
    return float(((below + 0.5 * n) * p).sum() / (p.sum() * n.sum()))


@torch.no_grad()
def evaluate_batches(model: Surrogate, loader, loss_fn: SurrogateLoss, burn_in: int,
                     device: torch.device, env: _Dist | None = None, autocast=contextlib.nullcontext
                     ) -> dict[str, float]:
    """Validation metrics over a loader: loss (and its terms), v_rmse_mv, v_corr, imem_corr,
    dipole_corr (mean Pearson r over segments / axes), spike_auc. All after burn-in.

    Free-running. A ``spiking`` model is scored with its spike waveforms off: its threshold
    is only calibrated after training, and the calibration has switched the waveforms off
    for every model so far (spikes at wrong times add whole action potentials of error), so
    the voltages scored here, and the `best` checkpoint chosen on them, are those an
    exported model gives, whatever the uncalibrated spike timing of this epoch."""
    from .spiking import waveforms_off

    with waveforms_off(model):
        return _evaluate_batches(model, loader, loss_fn, burn_in, device, env, autocast)


def _evaluate_batches(model, loader, loss_fn, burn_in, device, env, autocast) -> dict[str, float]:
    env = env or _Dist()
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss*n, n, sq err, count
    parts: dict[str, float] = {}
    corr = {"v_corr": _Pearson(), "imem_corr": _Pearson(), "dipole_corr": _Pearson()}
    bins = torch.linspace(-20, 20, 2001, device=device)
    hpos = torch.zeros(2002, dtype=torch.float64, device=device)
    hneg = torch.zeros_like(hpos)
    for batch in loader:
        batch = _to(batch, device)
        with autocast():
            out = model(batch["inputs"])
        out = {k: v.float() for k, v in out.items()}
        loss, p = loss_fn(out, batch, burn_in)
        b = batch["v"].shape[0]
        for k, val in p.items():
            parts[k] = parts.get(k, 0.0) + val * b
        vh, vt = out["v"][..., burn_in:], batch["v"][..., burn_in:]
        sums += torch.tensor([float(loss) * b, b, float((vh - vt).pow(2).sum()), vt.numel()],
                             dtype=torch.float64, device=device)
        corr["v_corr"].add(vh, vt)
        if loss_fn.m is not None:
            corr["imem_corr"].add(apply_segment_matrix(loss_fn.m, vh),
                                  apply_segment_matrix(loss_fn.m, vt))
        if loss_fn.pm is not None:
            corr["dipole_corr"].add(apply_segment_matrix(loss_fn.pm, vh),
                                    apply_segment_matrix(loss_fn.pm, vt))
        idx = torch.bucketize(out["spike_logit"][:, burn_in:].clamp(-20, 20), bins).flatten()
        pos = (batch["spikes"][:, burn_in:] > 0).flatten()
        hpos += torch.bincount(idx[pos], minlength=2002).double()
        hneg += torch.bincount(idx[~pos], minlength=2002).double()
    stats = [sums, hpos, hneg] + [c.s for c in corr.values() if c.s is not None]
    if env.world > 1:
        for t in stats:
            dist.all_reduce(t)
    metrics = {"loss": float(sums[0] / sums[1]),
               **{f"loss_{k}": v / float(sums[1]) for k, v in parts.items()},
               "v_rmse_mv": float((sums[2] / sums[3]).sqrt())}
    for name, c in corr.items():
        if c.s is not None:
            metrics[name] = c.value()
    metrics["spike_auc"] = _auc(hpos, hneg)
    return metrics


# ---- the loop ----------------------------------------------------------------------------
def _state_tensors(loss_fn: SurrogateLoss, device: torch.device) -> dict[str, torch.Tensor]:
    t = {f"loss.{k}": v for k, v in loss_fn.state_dict().items()}
    t["rng.torch"] = torch.get_rng_state()
    if device.type == "cuda":
        t["rng.cuda"] = torch.cuda.get_rng_state(device)
    return t


def epoch_lr(optim, epoch: int, epochs: int) -> float:
    """Learning rate of ``epoch`` (0-based) out of ``epochs`` under ``optim.schedule``."""
    if optim.schedule == "constant" or epochs <= 1:
        return optim.lr
    low = optim.lr * optim.min_lr_ratio
    return low + 0.5 * (optim.lr - low) * (1 + math.cos(math.pi * epoch / (epochs - 1)))


def _saved_section(saved: dict | None, now) -> dict:
    """A config section as a checkpoint recorded it, with the options added since then at
    their defaults (a checkpoint of an older version names only the options it knew)."""
    return {**asdict(type(now)()), **(saved or {})}


def _check_resume(meta: dict, cfg: SurrogateConfig, geometry, data_fingerprint) -> None:
    saved = meta.get("config", {})
    if _saved_section(saved.get("model"), cfg.model) != asdict(cfg.model):
        raise CheckpointError("resume: the checkpoint was trained with a different `model` "
                              "section; use the same architecture and sizes or a new out_dir.")
    if _saved_section(saved.get("loss"), cfg.loss) != asdict(cfg.loss):
        raise CheckpointError("resume: the `loss` section differs from the checkpoint's.")
    fp = geometry.fingerprint if geometry is not None else None
    if fp and meta.get("cell_fingerprint") not in (None, fp):
        raise CheckpointError(f"resume: checkpoint cell {meta['cell_fingerprint']} != {fp}.")
    if data_fingerprint and meta.get("data_fingerprint") not in (None, data_fingerprint):
        raise CheckpointError("resume: the data fingerprint differs from the checkpoint's.")


# model options a fine-tune may lengthen, and the post-spike kernel each sizes: the saved
# kernel is zero-padded at its far end (lags the checkpoint never had), so the run starts
# from the saved model's output
_LENGTHENABLE = {"spike_history_ms": "history", "waveform_ms": "waveform"}


def _start_from(model: Surrogate, cfg: SurrogateConfig, fingerprint: str | None) -> None:
    """Load the weights named by ``train.init_from`` (fine-tuning) into a freshly built model.
    The model section must match, except that ``spike_history_ms`` and ``waveform_ms`` may
    grow (the saved kernels are zero-padded)."""
    path = Path(cfg.train.init_from).expanduser()
    stem = path / "model" if path.is_dir() else path
    start, meta = load_model(stem, expected_fingerprint=fingerprint)
    was, now = _saved_section(meta.get("model"), cfg.model), asdict(cfg.model)
    differ = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k)
                    and not (k in _LENGTHENABLE and now.get(k, 0) > was.get(k, 0)))
    if differ:
        raise ConfigError(f"train.init_from: {path} was trained with another `model` section "
                          f"(differs in {differ}); fine-tuning needs the same architecture "
                          f"(only {', '.join(_LENGTHENABLE)} may be longer). "
                          "Copy its model section into this config.")
    saved, own = start.state_dict(), model.state_dict()
    for option, name in _LENGTHENABLE.items():
        if now.get(option) != was.get(option):
            extra = own[name].shape[-1] - saved[name].shape[-1]
            saved[name] = torch.nn.functional.pad(saved[name], (0, extra))
    model.load_state_dict(saved)


def train(config: str | Path | dict | SurrogateConfig, train_data: Dataset, val_data: Dataset,
          out_dir: str | Path, geometry=None, *, resume: bool = False,
          data_fingerprint: str | None = None, lfp_matrix: Any = None,
          segment_weights: Any = None, bin_ms: float = 1.0, progress: bool = True,
          device: str | torch.device | None = None) -> TrainResult:
    """Train a surrogate; write ``out_dir/{best,last}.{safetensors,json}`` and
    ``last.state.safetensors``.

    config: YAML path, dict or SurrogateConfig. geometry: the cell's CellGeometry (gives M for
    the imem/dipole/lfp terms and the cell fingerprint). resume: continue from
    ``out_dir/last`` (train.epochs may be raised); without it an existing ``last``
    checkpoint is an error. lfp_matrix: (electrode, segment) K for loss.lfp.
    Returns a TrainResult with the best model.
    """
    cfg = load_config(config)
    env = _init_distributed()
    dev = _device(env, device)
    out_dir = Path(out_dir)
    last, best = out_dir / "last", out_dir / "best"
    if resume:  # a checkpoint write cut short by a kill: finish or discard it first
        recover_checkpoint(last)
        recover_checkpoint(best)
    has_last = (out_dir / "last.json").is_file()
    if has_last and not resume:
        raise CheckpointError(f"{out_dir} already holds a checkpoint; pass resume=True to "
                              "continue it, or choose another out_dir.")
    seed_everything(cfg.train.seed)
    item = _first_item(train_data)
    n_channels, n_time = item["inputs"].shape
    n_segments = item["v"].shape[0]
    fp = geometry.fingerprint if geometry is not None else None
    if geometry is not None and (geometry.n_segments, geometry.n_channels) != (n_segments, n_channels):
        raise InputError(f"data have {n_segments} segments and {n_channels} channels; the cell "
                         f"has {geometry.n_segments} and {geometry.n_channels}.")
    ds_fp = getattr(train_data, "cell_fingerprint", None)
    if fp and ds_fp and ds_fp != fp:
        raise InputError(f"training data are of cell {ds_fp}, geometry is {fp}.")

    model = build_model(cfg.model, n_channels, n_segments, geometry)
    burn_in = model.receptive_field
    if n_time <= burn_in:
        raise ConfigError(f"data.window_ms: windows of {n_time} bins are not longer than the "
                          f"receptive field ({burn_in} bins); use longer windows or a smaller "
                          "model (layers, kernel_size, dilation_base, first_kernel).")
    loss_fn = SurrogateLoss(
        cfg.loss, n_segments,
        vmem_to_imem=geometry.vmem_to_imem if geometry is not None else None,
        midpoints=geometry.midpoints if geometry is not None else None,
        lfp_matrix=lfp_matrix, segment_weights=segment_weights,
        soma_index=geometry.soma_index if geometry is not None else None, bin_ms=bin_ms)
    opt_state, history, start_epoch, best_loss, bad_epochs, stopped = None, [], 0, math.inf, 0, False
    if resume and has_last:
        opt_state, tensors, meta = load_training_state(last)
        _check_resume(meta, cfg, geometry, data_fingerprint)
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(last) + ".safetensors"))
        loss_fn.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")},
                                strict=False)
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and dev.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], dev)
        start_epoch, history = meta["epoch"], meta.get("history", [])
        best_loss, bad_epochs = meta.get("best_val_loss", math.inf), meta.get("bad_epochs", 0)
        stopped = meta.get("stopped_early", False)
        initial = meta.get("initial_metrics", {})
    else:
        stats = _stats_sample(train_data, cfg.train.stats_windows, cfg.train.seed)
        loss_fn.fit(stats["v"], stats["spikes"])
        if cfg.train.init_from:  # fine-tuning: normalisation and readout come with the weights
            _start_from(model, cfg, fp)
        else:
            fit_normalisation(model, stats["inputs"], stats["v"])
        if hasattr(model, "fit_closed_form") and not cfg.train.init_from:  # linear / spiking: ridge fit
            fit_train = whole_samples(train_data, cfg.train.closed_form_samples, cfg.train.seed)
            model.fit_closed_form(
                fit_train, whole_samples(val_data, max(4, len(fit_train) // 4), cfg.train.seed),
                stride=cfg.train.closed_form_stride, progress=progress and env.main)
    model.to(dev)
    loss_fn.to(dev)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    net = model
    if env.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    autocast, scaler = _autocast(dev, cfg.train.precision)
    tl, tsampler, tgen = _loader(train_data, cfg.train.batch_size, True, env, cfg.train.seed,
                                 cfg.data.num_workers)
    vl, vsampler, vgen = _loader(val_data, cfg.train.batch_size, False, env, cfg.train.seed,
                                 cfg.data.num_workers)
    common = dict(config=cfg.to_dict(), cell_fingerprint=fp, data_fingerprint=data_fingerprint)
    # how many samples of each store this run saw (stores can grow while they are generated)
    counted = getattr(train_data, "samples_per_store", None)
    provenance = {"train_samples": counted()} if counted else {}
    show = progress and env.main
    if not (resume and has_last):  # metrics of the untrained (normalised) model
        initial = {f"val_{k}": v for k, v in
                   evaluate_batches(model, vl, loss_fn, burn_in, dev, env, autocast).items()}
    if getattr(model, "closed_form", False):  # nothing to learn by gradient: one "epoch"
        metrics = {"epoch": 1, "train_loss": float("nan"), **{
            f"val_{k}": v for k, v in
            evaluate_batches(model, vl, loss_fn, burn_in, dev, env, autocast).items()}}
        history = [metrics]
        if env.main:
            extra = {"history": history, "initial_metrics": initial, "closed_form": True,
                     **provenance, "best_val_loss": metrics["val_loss"], "bad_epochs": 0,
                     "stopped_early": False}
            save_checkpoint(best, model, epoch=1, metrics=metrics, **common, extra=extra)
            save_checkpoint(last, model, epoch=1, metrics=metrics, optimizer=opt,
                            training_state=_state_tensors(loss_fn, dev), **common, extra=extra)
        return TrainResult(model=model.eval(), history=history, best_metrics=metrics,
                           best_path=out_dir / "best.json", last_path=out_dir / "last.json",
                           initial_metrics=initial)
    feedback = getattr(model, "uses_spike_feedback", False)
    epochs = tqdm(range(start_epoch, cfg.train.epochs), desc="epochs", disable=not show,
                  initial=start_epoch, total=cfg.train.epochs)
    for epoch in epochs:
        if stopped:
            break
        _set_epoch(train_data, tsampler, tgen, cfg.train.seed, epoch)
        _set_epoch(val_data, vsampler, vgen, cfg.train.seed, 0)  # same val windows each epoch
        for group in opt.param_groups:  # a function of the epoch alone: resume stays exact
            group["lr"] = epoch_lr(cfg.optim, epoch, cfg.train.epochs)
        net.train()
        run, n = 0.0, 0
        own = cfg.train.scheduled_sampling * (epoch / max(cfg.train.epochs - 1, 1))
        own_gen = torch.Generator().manual_seed(cfg.train.seed * 7919 + epoch)
        for batch in tqdm(tl, desc=f"epoch {epoch + 1}", leave=False, disable=not show):
            batch = _to(batch, dev)
            with autocast():
                if feedback:  # teacher forcing, or (scheduled sampling) the model's own spikes
                    fed = (model.free_spikes(batch["inputs"]) if own > 0 and
                           float(torch.rand((), generator=own_gen)) < own else batch["spikes"])
                    out = net(batch["inputs"], spikes=fed)
                else:
                    out = net(batch["inputs"])
            loss, _ = loss_fn(out, batch, burn_in)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            run, n = run + float(loss.detach()), n + 1
        if not math.isfinite(run):
            raise FloatingPointError(f"training loss became {run} in epoch {epoch + 1}; lower "
                                     "optim.lr or check the data for NaN.")
        metrics = evaluate_batches(model, vl, loss_fn, burn_in, dev, env, autocast)
        metrics = {"epoch": epoch + 1, "train_loss": run / max(n, 1),
                   **{f"val_{k}": v for k, v in metrics.items()}}
        history.append(metrics)
        improved = metrics["val_loss"] < best_loss
        if improved:
            best_loss, bad_epochs = metrics["val_loss"], 0
        else:
            bad_epochs += 1
        stopped = bad_epochs >= cfg.train.patience
        if env.main:
            extra = {"history": history, "initial_metrics": initial, **provenance,
                     "best_val_loss": best_loss, "bad_epochs": bad_epochs,
                     "stopped_early": stopped}
            if improved:
                save_checkpoint(best, model, epoch=epoch + 1, metrics=metrics, **common,
                                extra=extra)
            save_checkpoint(last, model, epoch=epoch + 1, metrics=metrics, optimizer=opt,
                            training_state=_state_tensors(loss_fn, dev), **common, extra=extra)
        if env.world > 1:
            dist.barrier()
        epochs.set_postfix(val_loss=f"{metrics['val_loss']:.4g}",
                           v_rmse=f"{metrics['val_v_rmse_mv']:.3g}",
                           imem_r=f"{metrics.get('val_imem_corr', float('nan')):.3f}")
        if show:
            tqdm.write("epoch {epoch}: train {train_loss:.4g}  val {val_loss:.4g}  "
                       "v_rmse {val_v_rmse_mv:.3g} mV  v_r {val_v_corr:.3f}  ".format(**metrics)
                       + "  ".join(f"{k[4:]} {metrics[k]:.3f}" for k in
                                   ("val_imem_corr", "val_dipole_corr", "val_spike_auc")
                                   if k in metrics))
    epochs.close()
    from .checkpoint import load_model

    best_model, best_meta = (load_model(best, device=dev) if (out_dir / "best.json").is_file()
                             else (model.eval(), {"metrics": {}}))
    return TrainResult(model=best_model, history=history, best_metrics=best_meta["metrics"],
                       best_path=out_dir / "best.json", last_path=out_dir / "last.json",
                       stopped_early=stopped, initial_metrics=initial)
