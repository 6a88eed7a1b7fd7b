"""Accuracy of a surrogate against held-out ground truth: voltages, spikes, currents, dipole,
LFP, EEG and MEG.

Protocol (``lfpsurrogate evaluate``):

- **Free-running.** Each stored held-out sample (split ``test`` or ``shift``) goes through
  the model whole, in one causal pass from its first bin; nothing of the truth is fed back.
- **Burn-in.** The first ``max(receptive_field, 50 ms)`` bins of each sample lack input
  history (zero padding) and are excluded from every metric. ``evaluated_ms`` counts what
  is left.
- **Pooling.** For each channel (segment, dipole axis, contact, electrode, sensor
  component) the post-burn-in bins of all evaluated samples are pooled into one series;
  r, RMSE and explained variance are computed over that pooled series (from streaming
  sums, so memory does not grow with the number of samples).

Definitions (x = truth, y = prediction, per channel over pooled bins):

- ``soma_rmse_mv``: RMSE of the soma voltage with both x and y clipped from above at
  -55 mV (``min(v, -55)``), as in the ELM neuron paper (Spieler et al. 2024).
- ``spike_auc``: ROC AUC of the per-bin spike logit against per-bin labels (bin holds a
  somatic spike), Mann–Whitney rank statistic with tied scores given their mean rank.
- ``spike_f1``: predicted spikes are the bins where the logit crosses the model's
  ``spike_logit_threshold`` upwards (0, i.e. p = 0.5, unless the model folder sets one,
  calibrated on the validation split by F1 and firing rate, ``calibrate.choose_threshold``);
  they are matched one-to-one to the true spikes when the two bins
  differ by at most 2 ms (times on the bin grid: a spike in bin k is at k·bin_ms).
  F1 = 2 TP / (2 TP + FP + FN); undefined (null) when there are no true and no predicted
  spikes. A prediction matched to a true spike inside the burn-in counts neither way.
- ``firing_rate_true_hz``, ``firing_rate_predicted_hz``: somatic spikes per second of
  evaluated (post-burn-in) time, true and predicted (the spikes counted for F1);
  ``firing_rate_rel_error`` = predicted / true - 1.
- ``v_rmse_mv_median``, ``v_explained_variance_median``: medians over segments of the
  per-segment RMSE and of 1 - var(y - x) / var(x).
- ``v_explained_variance_by_region``: the same median within each region (see
  :func:`segment_regions` for the tuft rule); regions absent in the cell are omitted.
- ``imem_r_median``: median over segments of Pearson r between M y and M x, where
  M = ``geometry.vmem_to_imem``. Stores keep v only, so the *true* imem is M applied to the
  stored v (exact for bin averages; see CONTEXT.md).
- ``dipole_r``: the mean of the three axes' r weighted by the true variance of each axis
  (so it follows the axes that carry the dipole; for an upright pyramidal cell that is
  mostly z). ``dipole_r_by_axis`` gives x, y, z.
- ``lfp_r_median``: 16-contact laminar probe (``probes/laminar-16.yaml``), soma at
  (50, 0, 0) µm, median over contacts. ``eeg_r_median``: 10-20 montage
  (``probes/eeg-10-20.yaml``), four-sphere head, default placement, median over electrodes.
- ``meg_r_median``: radial MEG array (``probes/meg-radial.yaml``), spherically symmetric
  conductor, default (radial) placement; median over every sensor's B components (x, y, z).
  A radial dipole gives no field outside a spherical conductor, so only the tangential
  dipole components (x, y) reach the sensors, and some components vanish by symmetry
  (e.g. the radial component at the sensor straight above the cell). Channels whose true
  variance is at most 1e-12 of the largest channel variance of that signal carry no signal
  and are excluded from the r medians (of every signal; ``*_channels_used`` says how many
  were kept). A prediction with zero variance on a channel that has signal gets r = 0.
- ``<signal>_rel_rmse`` = ||y - x||_F / ||x - mean_t(x)||_F over the whole post-burn-in
  array (mean over time per channel): 0 is perfect, 1 is what predicting each channel's
  mean scores.

Every signal is linear in v: signal = (K M) v. The composed matrices come from
:func:`lfpsurrogate.forward.forward_model` (``matrices(of="voltages")``, cached); EEG and
MEG matrices act on the dipole, so they are composed once more with the dipole matrix, and
all signals are stacked into one (channel, segment) matrix: one GEMM per sample for the
prediction and one for the truth.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import LfpsurrogateError
from .geometry import CellGeometry

BURN_IN_MIN_MS = 50.0
SOMA_CLIP_MV = -55.0
SPIKE_TOLERANCE_MS = 2.0
TUFT_FRACTION = 0.6
CELL_POSITION = (50.0, 0.0, 0.0)
DEFAULT_PROBES = {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"}
ZERO_VARIANCE_REL = 1e-12
REGION_ORDER = ("soma", "axon", "basal", "apical_trunk_oblique", "tuft")
SIGNALS = ("dipole", "lfp", "eeg", "meg")

__all__ = [
    "EvaluationError", "Evaluator", "evaluate", "evaluate_model", "match_spikes",
    "pearson_r", "relative_rmse", "roc_auc", "segment_regions", "signal_matrices",
    "soma_rmse_clipped", "spike_counts", "spike_f1", "spike_onsets",
]


class EvaluationError(LfpsurrogateError, ValueError):
    """An evaluation that cannot be run as asked (no samples, wrong cell, bad model)."""


# ---- plain metric functions (numpy) ------------------------------------------------------
def pearson_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (NaN where x has no variance; 0 where only y has none)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sxx, syy, sxy = (xc * xc).sum(-1), (yc * yc).sum(-1), (xc * yc).sum(-1)
    return _r_from(sxx, syy, sxy)


def _r_from(sxx, syy, sxy) -> np.ndarray:
    sxx, syy, sxy = (np.asarray(a, dtype=float) for a in (sxx, syy, sxy))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r = np.where(syy > 0, r, 0.0)
    r = np.where(sxx > 0, r, np.nan)
    return np.clip(r, -1.0, 1.0)


def relative_rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """||pred - true||_F / ||true - mean_t(true)||_F (time = last axis)."""
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    den = np.sqrt(((true - true.mean(axis=-1, keepdims=True)) ** 2).sum())
    return float(np.sqrt(((pred - true) ** 2).sum()) / den) if den > 0 else math.nan


def soma_rmse_clipped(v_hat: np.ndarray, v_true: np.ndarray, clip_mv: float = SOMA_CLIP_MV) -> float:
    """RMSE (mV) with prediction and truth both clipped from above at ``clip_mv``."""
    a = np.minimum(np.asarray(v_hat, dtype=float), clip_mv)
    b = np.minimum(np.asarray(v_true, dtype=float), clip_mv)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with tied values given the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(values)]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC = P(score of a positive > score of a negative) + 0.5 P(tie), from ranks
    (Mann–Whitney U). NaN when there are no positives or no negatives."""
    scores = np.asarray(scores, dtype=float).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(scores)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def spike_onsets(logit: np.ndarray, start: int = 0) -> np.ndarray:
    """Bins t >= start (t >= 1) where sigmoid(logit) crosses 0.5 upwards:
    p[t] >= 0.5 and p[t-1] < 0.5 (i.e. logit[t] >= 0 > logit[t-1])."""
    above = np.asarray(logit, dtype=float) >= 0.0
    t = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    return t[t >= start]


def match_spikes(pred_bins: Sequence[int], true_bins: Sequence[int],
                 tolerance_bins: int) -> list[tuple[int, int]]:
    """One-to-one matching of predicted to true spike bins with |pred - true| <= tolerance.

    Returns the matched (pred index, true index) pairs. Both lists are sorted first; the
    two-pointer sweep gives a maximum matching for equal-width windows on a line.
    """
    p = np.sort(np.asarray(pred_bins, dtype=np.int64))
    t = np.sort(np.asarray(true_bins, dtype=np.int64))
    pairs, i, j = [], 0, 0
    while i < len(t) and j < len(p):
        if abs(int(p[j]) - int(t[i])) <= tolerance_bins:
            pairs.append((j, i))
            i += 1
            j += 1
        elif p[j] < t[i]:
            j += 1
        else:
            i += 1
    return pairs


def _tolerance_bins(tolerance_ms: float, bin_ms: float) -> int:
    return int(math.floor(tolerance_ms / bin_ms + 1e-9))


def spike_counts(logit: np.ndarray, true_bins: Sequence[int], burn_in: int,
                 tolerance_bins: int) -> tuple[int, int, int]:
    """(TP, FP, FN) of one sample after burn-in (see the module docstring)."""
    return match_counts(spike_onsets(logit, start=max(burn_in, 1)), true_bins, burn_in,
                        tolerance_bins)


def match_counts(pred_bins: Sequence[int], true_bins: Sequence[int], burn_in: int,
                 tolerance_bins: int) -> tuple[int, int, int]:
    """(TP, FP, FN) of predicted against true spike bins after burn-in, matched one-to-one
    within +-tolerance_bins (what :func:`spike_counts` counts for a logit's onsets)."""
    pred = np.asarray(pred_bins, dtype=np.int64)
    pred = pred[pred >= burn_in]
    true = np.sort(np.asarray(true_bins, dtype=np.int64))
    true = true[true >= burn_in - tolerance_bins]  # earlier ones cannot match anything counted
    pairs = match_spikes(pred, true, tolerance_bins)
    counted = true >= burn_in
    tp = sum(1 for _, ti in pairs if counted[ti])
    fp = len(pred) - len(pairs)  # a prediction matched to a burn-in spike is neither
    fn = int(counted.sum()) - tp
    return tp, fp, fn


def spike_f1(tp: int, fp: int, fn: int) -> float:
    """2 TP / (2 TP + FP + FN); NaN when there is nothing to count."""
    den = 2 * tp + fp + fn
    return 2 * tp / den if den else math.nan


# ---- regions -----------------------------------------------------------------------------
def segment_regions(geometry: CellGeometry, tuft_fraction: float = TUFT_FRACTION) -> dict[str, np.ndarray]:
    """Segment indices per evaluation region: soma, axon, basal, apical_trunk_oblique, tuft.

    Rule for the tuft: apical segments whose midpoint z (canonical frame: soma at the
    origin, apical axis +z) exceeds ``tuft_fraction`` (0.6) × the largest apical midpoint z.
    The other apical segments are trunk/oblique. For l5_ttpc1 the boundary falls near the
    main bifurcation (~620 µm). Regions without segments are left out.
    """
    reg = geometry.region
    z = geometry.midpoints[:, 2]
    apical = np.flatnonzero(reg == "apical")
    zmax = z[apical].max() if apical.size else 0.0
    tuft_mask = (reg == "apical") & (z > tuft_fraction * zmax) if zmax > 0 else np.zeros(len(reg), bool)
    out = {
        "soma": np.flatnonzero(reg == "soma"),
        "axon": np.flatnonzero(reg == "axon"),
        "basal": np.flatnonzero(reg == "basal"),
        "apical_trunk_oblique": np.flatnonzero((reg == "apical") & ~tuft_mask),
        "tuft": np.flatnonzero(tuft_mask),
    }
    return {k: v for k, v in out.items() if v.size}


# ---- signal matrices ---------------------------------------------------------------------
@dataclass
class SignalMatrices:
    """All signals stacked: ``matrix`` (channel, segment) per mV; ``slices[name]`` rows of
    each signal; ``labels[name]`` channel names."""

    matrix: np.ndarray
    slices: dict[str, slice]
    labels: dict[str, list[str]]
    units: dict[str, str]
    settings: dict = field(default_factory=dict)


def signal_matrices(geometry: CellGeometry, probes: dict | None = None,
                    position=CELL_POSITION) -> SignalMatrices:
    """(K M) of the dipole, LFP, EEG and MEG, each as a (channel, segment) matrix, stacked.

    probes: {"lfp": ..., "eeg": ..., "meg": ...} (names, paths or Probes; default
    laminar-16, eeg-10-20, meg-radial). The cell is placed at ``position`` with the default
    rotation and head position (apical axis radial). EEG (n_eeg, 3) and MEG (n_sensors, 3, 3)
    act on the dipole and are composed with the dipole matrix here; MEG rows are
    (sensor, component) pairs, components x, y, z of B.
    """
    from .forward import forward_model

    probes = dict(DEFAULT_PROBES if probes is None else probes)
    fwd = forward_model(geometry, probes, signals=SIGNALS, position=position)
    mats = fwd.matrices(of="voltages")
    k_p = np.asarray(mats["dipole"][0])  # (3, S) nA·µm per mV
    parts = {
        "dipole": k_p,
        "lfp": np.asarray(mats["lfp"][0]),  # (E, S) mV per mV
        "eeg": np.asarray(mats["eeg"][0]) @ k_p,  # (n_eeg, S)
        "meg": np.einsum("saj,jk->sak", np.asarray(mats["meg"][0]), k_p).reshape(-1, k_p.shape[1]),
    }
    meg_probe = fwd.probes["meg"]
    labels = {
        "dipole": ["x", "y", "z"],
        "lfp": [str(n) for n in (fwd.probes["lfp"].labels or range(parts["lfp"].shape[0]))],
        "eeg": [str(n) for n in fwd.probes["eeg"].labels],
        "meg": [f"{n}:{a}" for n in meg_probe.labels for a in "xyz"],
    }
    slices, start = {}, 0
    for name in SIGNALS:
        slices[name] = slice(start, start + parts[name].shape[0])
        start += parts[name].shape[0]
    settings = {
        "position_um": [float(p) for p in np.ravel(position)],
        "probes": {k: fwd.probes[k].name for k in ("lfp", "eeg", "meg")},
        "head_position_um": [float(p) for p in fwd.head_position],
        "sigma_S_per_m": fwd.sigma, "lfp_method": fwd.method,
    }
    return SignalMatrices(
        matrix=np.ascontiguousarray(np.concatenate([parts[n] for n in SIGNALS], axis=0)),
        slices=slices, labels=labels,
        units={"dipole": "nA*um", "lfp": "mV", "eeg": "mV", "meg": "fT"}, settings=settings,
    )


# ---- streaming per-channel statistics ----------------------------------------------------
class _Moments:
    """Per-channel sums of truth x, prediction y and error e = y - x over pooled bins,
    shifted by the first batch's truth mean (keeps the sums well conditioned)."""

    def __init__(self) -> None:
        self.n = 0
        self.shift = None
        self.s = {}

    def add(self, y: np.ndarray, x: np.ndarray) -> None:
        if self.shift is None:
            self.shift = x.mean(axis=1, keepdims=True)
            self.s = {k: np.zeros(x.shape[0]) for k in ("x", "y", "xx", "yy", "xy", "e", "ee")}
        xs, ys = x - self.shift, y - self.shift
        e = y - x
        s = self.s
        s["x"] += xs.sum(1)
        s["y"] += ys.sum(1)
        s["xx"] += np.einsum("ct,ct->c", xs, xs)
        s["yy"] += np.einsum("ct,ct->c", ys, ys)
        s["xy"] += np.einsum("ct,ct->c", xs, ys)
        s["e"] += e.sum(1)
        s["ee"] += np.einsum("ct,ct->c", e, e)
        self.n += x.shape[1]

    def centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(Sxx, Syy, Sxy, See) about the means: n × (var x, var y, cov, var e)."""
        s, n = self.s, self.n
        sxx = np.maximum(s["xx"] - s["x"] ** 2 / n, 0.0)
        syy = np.maximum(s["yy"] - s["y"] ** 2 / n, 0.0)
        sxy = s["xy"] - s["x"] * s["y"] / n
        see = np.maximum(s["ee"] - s["e"] ** 2 / n, 0.0)
        return sxx, syy, sxy, see

    def r(self) -> np.ndarray:
        sxx, syy, sxy, _ = self.centred()
        return _r_from(sxx, syy, sxy)

    def rmse(self) -> np.ndarray:
        return np.sqrt(self.s["ee"] / self.n)

    def explained_variance(self) -> np.ndarray:
        sxx, _, _, see = self.centred()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sxx > 0, 1.0 - see / sxx, np.nan)

    def rel_rmse(self) -> float:
        sxx = self.centred()[0].sum()
        return float(np.sqrt(self.s["ee"].sum() / sxx)) if sxx > 0 else math.nan

    def has_signal(self) -> np.ndarray:
        var = self.centred()[0]
        top = var.max() if var.size else 0.0
        return var > ZERO_VARIANCE_REL * top if top > 0 else np.zeros(var.shape, bool)


def _median(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


class Evaluator:
    """Accumulates metrics sample by sample; :meth:`result` returns the metric dict.

    geometry: the cell. burn_in: bins excluded at the start of every sample.
    signals: :class:`SignalMatrices` (None: only voltage, current and spike metrics).
    """

    def __init__(self, geometry: CellGeometry, burn_in: int, bin_ms: float = 1.0,
                 signals: SignalMatrices | None = None, *,
                 tolerance_ms: float = SPIKE_TOLERANCE_MS, keep_example: bool = True,
                 spike_threshold: float = 0.0) -> None:
        self.geometry = geometry
        self.spike_threshold = float(spike_threshold)  # logit at which a spike is called
        self.burn_in = int(burn_in)
        self.bin_ms = float(bin_ms)
        self.signals = signals
        self.tolerance_bins = _tolerance_bins(tolerance_ms, bin_ms)
        self.m = geometry.vmem_to_imem.tocsr()
        self.soma = geometry.soma_index
        self.regions = segment_regions(geometry)
        self.v, self.imem = _Moments(), _Moments()
        self.sig = {name: _Moments() for name in (signals.slices if signals else ())}
        self.soma_sq, self.n_bins, self.n_samples = 0.0, 0, 0
        self.logits: list[np.ndarray] = []
        self.spike_bins: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.tp = self.fp = self.fn = 0
        self.keep_example = keep_example
        self.example: dict | None = None
        self.forward_wall_s = 0.0

    def add(self, v_hat: np.ndarray, v_true: np.ndarray, spike_logit: np.ndarray | None = None,
            true_spike_bins: Sequence[int] | None = None) -> None:
        """One whole sample: v_hat, v_true (segment, time) mV; spike_logit (time,);
        true_spike_bins: bins holding a somatic spike (repeated for several in one bin)."""
        v_hat = np.asarray(v_hat, dtype=np.float64)
        v_true = np.asarray(v_true, dtype=np.float64)
        if v_hat.shape != v_true.shape or v_hat.ndim != 2 or v_hat.shape[0] != self.geometry.n_segments:
            raise EvaluationError(f"v_hat {v_hat.shape} and v_true {v_true.shape} must both be "
                                  f"({self.geometry.n_segments} segments, time).")
        n_time = v_true.shape[1]
        b = self.burn_in
        if n_time <= b + 1:
            raise EvaluationError(f"samples of {n_time} bins are too short for a burn-in of {b} bins.")
        t0 = time.perf_counter()
        yh, yt = v_hat[:, b:], v_true[:, b:]
        self.v.add(yh, yt)
        self.imem.add(np.asarray(self.m @ yh), np.asarray(self.m @ yt))
        sig_hat = sig_true = None
        if self.signals is not None:
            sig_hat = self.signals.matrix @ v_hat
            sig_true = self.signals.matrix @ v_true
            for name, sl in self.signals.slices.items():
                self.sig[name].add(sig_hat[sl, b:], sig_true[sl, b:])
        self.forward_wall_s += time.perf_counter() - t0
        d = np.minimum(yh[self.soma], SOMA_CLIP_MV) - np.minimum(yt[self.soma], SOMA_CLIP_MV)
        self.soma_sq += float(d @ d)
        self.n_bins += n_time - b
        if spike_logit is not None and true_spike_bins is not None:
            logit = np.asarray(spike_logit, dtype=np.float64).ravel()
            bins = np.asarray(true_spike_bins, dtype=np.int64).ravel()
            labels = np.zeros(n_time, bool)
            labels[bins[(bins >= 0) & (bins < n_time)]] = True
            self.logits.append(logit[b:])
            self.labels.append(labels[b:])
            tp, fp, fn = spike_counts(logit - self.spike_threshold, bins, b, self.tolerance_bins)
            self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
            self.spike_bins.append(bins[bins >= b] - b)
        if self.keep_example and self.example is None:
            self.example = {"v_hat": v_hat, "v_true": v_true, "burn_in": b, "bin_ms": self.bin_ms,
                            "spike_logit": None if spike_logit is None else np.asarray(spike_logit, float)}
            if sig_hat is not None:
                self.example.update(signals_hat=sig_hat, signals_true=sig_true)
        self.n_samples += 1

    def best_spike_threshold(self, grid: np.ndarray | None = None) -> float:
        """The logit threshold of :func:`lfpsurrogate.calibrate.best_threshold` over the
        samples added so far: the best spike F1 (ties within 0.01: the closer rate) with the
        firing rate within 10 % of the truth where possible (the BCE pos_weight leaves the
        logit biased towards spikes, so 0 over-calls them)."""
        from .calibrate import best_threshold

        grid = None if grid is None else np.asarray(grid, float)
        return best_threshold(self.logits, self.spike_bins, grid,
                              tolerance_ms=self.tolerance_bins * self.bin_ms, bin_ms=self.bin_ms)[0]

    def per_segment_rmse(self) -> np.ndarray:
        return self.v.rmse()

    def result(self) -> dict[str, Any]:
        if self.n_samples == 0:
            raise EvaluationError("no samples were evaluated.")
        ev = self.v.explained_variance()
        rmse = self.v.rmse()
        out: dict[str, Any] = {
            "n_samples": self.n_samples,
            "evaluated_ms": self.n_bins * self.bin_ms,
            "burn_in_ms": self.burn_in * self.bin_ms,
            "soma_rmse_mv": math.sqrt(self.soma_sq / self.n_bins),
        }
        if self.logits:
            logits, labels = np.concatenate(self.logits), np.concatenate(self.labels)
            out["spike_auc"] = roc_auc(logits, labels)
            out["spike_f1"] = spike_f1(self.tp, self.fp, self.fn)
            out["spike_precision"] = self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan
            out["spike_recall"] = self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan
            out["n_true_spikes"] = self.tp + self.fn
            out["n_predicted_spikes"] = self.tp + self.fp
            out["spike_logit_threshold"] = self.spike_threshold
            seconds = self.n_bins * self.bin_ms / 1000.0
            out["firing_rate_true_hz"] = (self.tp + self.fn) / seconds
            out["firing_rate_predicted_hz"] = (self.tp + self.fp) / seconds
            out["firing_rate_rel_error"] = ((self.fp - self.fn) / (self.tp + self.fn)
                                            if self.tp + self.fn else math.nan)
        out.update({
            "v_rmse_mv_median": _median(rmse),
            "v_r_median": _median(self.v.r()),
            "v_explained_variance_median": _median(ev),
            "v_explained_variance_by_region": {k: _median(ev[idx]) for k, idx in self.regions.items()},
            "v_rmse_mv_by_region": {k: _median(rmse[idx]) for k, idx in self.regions.items()},
            "imem_r_median": _median(self.imem.r()[self.imem.has_signal()]),
            "v_rel_rmse": self.v.rel_rmse(),
            "imem_rel_rmse": self.imem.rel_rmse(),
        })
        if self.signals is not None:
            dip = self.sig["dipole"]
            r_axis = dip.r()
            var_axis = dip.centred()[0]
            ok = np.isfinite(r_axis)
            out["dipole_r"] = (float((var_axis[ok] * r_axis[ok]).sum() / var_axis[ok].sum())
                               if ok.any() and var_axis[ok].sum() > 0 else math.nan)
            out["dipole_r_by_axis"] = {a: float(r) for a, r in zip("xyz", r_axis)}
            for name in ("lfp", "eeg", "meg"):
                mom = self.sig[name]
                keep = mom.has_signal()
                out[f"{name}_r_median"] = _median(mom.r()[keep])
                out[f"{name}_channels_used"] = int(keep.sum())
            for name in SIGNALS:
                out[f"{name}_rel_rmse"] = self.sig[name].rel_rmse()
        return out


# ---- running a model over a store --------------------------------------------------------
def _burn_in_bins(model, bin_ms: float, burn_in_ms: float | None) -> int:
    rf = int(getattr(model, "receptive_field", 0) or 0)
    if burn_in_ms is None:
        return max(rf, int(math.ceil(BURN_IN_MIN_MS / bin_ms - 1e-9)))
    return int(math.ceil(burn_in_ms / bin_ms - 1e-9))


def _true_spike_bins(spikes_row: np.ndarray) -> np.ndarray:
    s = np.asarray(spikes_row).astype(np.int64)
    nz = np.flatnonzero(s > 0)
    return np.repeat(nz, s[nz])


def _clean(obj: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def evaluate_model(model, geometry: CellGeometry, store: str | Path, split: str = "test", *,
                   n_samples: int | None = None, batch_size: int = 4, device: str = "cpu",
                   burn_in_ms: float | None = None, out_dir: str | Path | None = None,
                   probes: dict | None = None, position=CELL_POSITION,
                   cell_fingerprint: str | None = None, spike_threshold: float = 0.0,
                   calibrate_spikes: bool = False) -> dict[str, Any]:
    """Run ``model`` free over the held-out samples of ``store`` and score it.

    model: a torch Module, ``forward(x (batch, channel, T) float32) -> {"v": (batch, segment,
    T) mV, "spike_logit": (batch, T)}``, with ``receptive_field`` (bins; 0 if absent).
    geometry: the model's cell; the store must hold the same cell (fingerprint), as must
    ``cell_fingerprint`` (the model sidecar's) when given.
    split: "test", "shift" (or "val"). n_samples: the first K done samples of the split
    (store order; default all). burn_in_ms: default max(receptive field, 50 ms).
    out_dir: when given, figures are written there (see :mod:`lfpsurrogate.figures.evaluation`).
    Returns the metric dict (JSON-ready: NaN becomes None).
    """
    import torch
    import zarr

    from .data import check_fingerprint, data_fingerprint, split_samples, store_params

    t_start = time.perf_counter()
    store = Path(store)
    if not store.exists():
        raise EvaluationError(f"dataset store {store} does not exist; generate one with "
                              "`lfpsurrogate dataset generate --out ...` or fix the path.")
    if cell_fingerprint and cell_fingerprint != geometry.fingerprint:
        raise EvaluationError(f"the model was trained for cell fingerprint {cell_fingerprint}, "
                              f"but the geometry given has {geometry.fingerprint} ({geometry.name}).")
    attrs = check_fingerprint(store, geometry, "the model")
    params = store_params(store)
    n_ch, n_seg = getattr(model, "n_channels", None), getattr(model, "n_segments", None)
    if ((n_ch is not None and n_ch != geometry.n_channels)
            or (n_seg is not None and n_seg != geometry.n_segments)):
        raise EvaluationError(f"the model has {n_ch} channels / {n_seg} segments, the cell "
                              f"{geometry.name!r} {geometry.n_channels} / {geometry.n_segments}.")
    samples = split_samples(store, split)
    if samples.size == 0:
        raise EvaluationError(
            f"store {store} has no finished samples in split {split!r}; generate them (e.g. "
            f"--n-shift for 'shift') or finish generation by re-running it, or pick another split.")
    if n_samples is not None:
        if n_samples < 1:
            raise EvaluationError(f"n_samples={n_samples}: must be at least 1.")
        samples = samples[: int(n_samples)]
    bin_ms = float(params.bin_ms)
    burn_in = _burn_in_bins(model, bin_ms, burn_in_ms)
    if params.n_time <= burn_in + 1:
        raise EvaluationError(f"samples of {params.duration_ms} ms are too short for the burn-in "
                              f"of {burn_in * bin_ms} ms (receptive field "
                              f"{getattr(model, 'receptive_field', 0)} bins).")
    signals = signal_matrices(geometry, probes, position)
    ev = Evaluator(geometry, burn_in, bin_ms, signals, spike_threshold=spike_threshold)

    g = zarr.open_group(str(store), mode="r")
    arr_in, arr_v, arr_s = g["inputs"], g["v"], g["spikes"]
    model = model.to(device).eval()
    surrogate_s = 0.0
    read_s = 0.0
    for k in range(0, len(samples), max(1, int(batch_size))):
        idx = [int(i) for i in samples[k: k + batch_size]]
        t0 = time.perf_counter()
        x = np.stack([np.asarray(arr_in[i], dtype=np.float32) for i in idx])
        v_true = [np.asarray(arr_v[i], dtype=np.float64) for i in idx]
        spikes = [np.asarray(arr_s[i]) for i in idx]
        read_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model(torch.from_numpy(x).to(device))
            v_hat = out["v"].float().cpu().numpy()
            logit = out["spike_logit"].float().cpu().numpy()
        surrogate_s += time.perf_counter() - t0
        for j in range(len(idx)):
            ev.add(v_hat[j], v_true[j], logit[j], _true_spike_bins(spikes[j]))

    res = ev.result()
    if calibrate_spikes and ev.logits:
        res["spike_logit_threshold_best"] = ev.best_spike_threshold()
    n_total = len(samples)
    res.update({
        "split": split, "store": str(store),
        "data_fingerprint": data_fingerprint(store),
        "cell": attrs.get("cell", geometry.name), "cell_fingerprint": geometry.fingerprint,
        "n_segments": geometry.n_segments,
        "sample_ms": params.duration_ms, "bin_ms": bin_ms,
        "receptive_field_ms": int(getattr(model, "receptive_field", 0) or 0) * bin_ms,
        "surrogate_wall_s": surrogate_s,
        "surrogate_s_per_simulated_s": surrogate_s / (n_total * params.duration_ms / 1000.0),
        "forward_wall_s": ev.forward_wall_s, "read_wall_s": read_s,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "signal_settings": signals.settings,
    })
    if hasattr(model, "n_parameters"):
        res["n_parameters"] = int(model.n_parameters())
    if out_dir is not None:
        from .figures.evaluation import write_figures

        res["figures"] = [str(p) for p in write_figures(ev, out_dir, signals, title=_title(res))]
    res["total_wall_s"] = time.perf_counter() - t_start
    res["definitions"] = DEFINITIONS
    return _clean(res)


def _title(res: dict) -> str:
    return f"{res.get('cell')} · {res.get('split')} split · {res.get('n_samples')} samples"


DEFINITIONS = {
    "burn_in": "first max(receptive field, 50 ms) bins of each sample excluded everywhere",
    "pooling": "per channel, post-burn-in bins of all samples pooled into one series",
    "soma_rmse_mv": "RMSE of soma v, prediction and truth clipped from above at -55 mV",
    "spike_f1": "upward crossings of the spike logit threshold (spike_logit_threshold) matched one-to-one within +-2 ms",
    "firing_rate_true_hz": "true somatic spikes per second of evaluated (post-burn-in) time",
    "firing_rate_predicted_hz": "predicted somatic spikes (those counted for spike_f1) per second of evaluated time",
    "firing_rate_rel_error": "predicted / true firing rate - 1",
    "imem": "true imem = vmem_to_imem @ stored v (stores keep v only)",
    "dipole_r": "mean of per-axis r weighted by true per-axis variance",
    "tuft": "apical segments with midpoint z > 0.6 x max apical midpoint z (canonical frame)",
    "lfp": "laminar-16, soma at (50, 0, 0) um",
    "meg_r_median": "median r over sensor B components (x, y, z) with true variance > 1e-12 "
                    "x the largest; a radial dipole gives no field in a spherical conductor",
    "rel_rmse": "||pred - true||_F / ||true - mean_t(true)||_F after burn-in",
}


def evaluate(model: str | Path, store: str | Path, split: str = "test", *,
             n_samples: int | None = None, out_dir: str | Path | None = None,
             batch_size: int = 4, device: str = "cpu", spike_threshold: float | None = None,
             calibrate_spikes: bool = False) -> dict[str, Any]:
    """Load a surrogate (model folder, shipped name or training checkpoint) and evaluate it
    on ``store`` (see :func:`evaluate_model`). Adds the model's fingerprint (sha256 of the
    weights file, 16 hex), architecture and parameter count. The spike logit threshold is
    ``spike_threshold``, else the model sidecar's ``spike_logit_threshold``, else 0."""
    from .data import store_geometry
    from .data.store import read_attrs
    from .modelfolder import load_surrogate

    store = Path(store)
    if not store.exists():
        raise EvaluationError(f"dataset store {store} does not exist; generate one with "
                              "`lfpsurrogate dataset generate --out ...` or fix the path.")
    read_attrs(store)  # a clear error for a folder that is not a dataset store
    geometry = store_geometry(store)
    loaded = load_surrogate(model, geometry=geometry, device=device)
    res = evaluate_model(loaded.model, loaded.geometry, store, split, n_samples=n_samples,
                         out_dir=out_dir, batch_size=batch_size, device=device,
                         cell_fingerprint=loaded.sidecar.get("cell_fingerprint"),
                         spike_threshold=(spike_threshold if spike_threshold is not None else
                                          float(loaded.sidecar.get("spike_logit_threshold", 0.0))),
                         calibrate_spikes=calibrate_spikes)
    res.update({
        "model": str(loaded.path),
        "model_fingerprint": loaded.fingerprint,
        "architecture": loaded.sidecar.get("architecture"),
        "n_parameters": int(loaded.sidecar.get("n_parameters") or res.get("n_parameters") or 0),
    })
    return res
