"""``spiking``: the linear kernel model, a nonlinear causal residual, and a spike generator
whose spikes feed back into the voltages and into itself.

Why: somatic action potentials carry a large part of every extracellular signal (given the
true spike train, a linear model's MEG r rose from 0.51 to 0.89), but a smooth seq2seq
network regresses to the mean and never produces one. So spikes are made explicitly, as in
spike-response / GLM models of neurons (Gerstner & Kistler 2002; Pillow et al. 2008):

    drive(t)  = linear spike score of the inputs + g(t)            g: TCN residual head
    logit(t)  = drive(t) + sum_{k=1..H} h_k s(t-k) - theta          h: spike history filter
    s(t)      = 1 where logit crosses 0 upwards (free-running), else 0
    vn_s(t)   = [U (z(t) + dz(t))]_s + l_s(t) + sum_{k=0..L-1} W_s,k s(t-k)

z and l are the linear pathway of ``linear`` (initialised from its closed-form fit, with
the true spike lags as extra regressors, which also gives the initial spike-triggered
waveform W of every segment: the action potential at the soma and axon, and its
back-propagation into the dendrites); dz and g come from a causal TCN on the inputs
(dendritic nonlinearity: NMDA, Ca2+, Ih), initialised at zero. History h gives
refractoriness and bursts. Training feeds the true spikes back (teacher forcing), or with
probability ``train.scheduled_sampling`` (ramped over the epochs) the model's own; the
forward pass without ``spikes`` runs free, as evaluation and prediction do.
"""
from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import TCN, CausalConv1d
from .linear import InputEvents, LinearSurrogate, fit_ridge_readout, pointwise_events


def spike_lags_after(spikes: torch.Tensor, n_lags: int) -> torch.Tensor:
    """(batch, T) -> (batch, n_lags, T): the train delayed by 1..n_lags bins."""
    t = spikes.shape[-1]
    padded = F.pad(spikes, (n_lags, 0))
    return torch.stack([padded[:, n_lags - k: n_lags - k + t] for k in range(1, n_lags + 1)], 1)


def free_run(drive: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """drive (batch, T) -> (logit, spikes), both (batch, T): logit(t) = drive(t) +
    sum_k history[k-1] s(t-k); s(t) = 1 where logit crosses 0 upwards (>= 0 after < 0; the
    bin before t = 0 counts as below).

    Event-driven: a spike changes the logit only in the next H bins, so each row jumps from
    one upward crossing to the next (a handful per second) instead of stepping through every
    bin; the result is the bin-by-bin rule's. No gradients (spikes are thresholded)."""
    with torch.no_grad():
        logit = drive.detach().to("cpu", torch.float32).numpy().copy()
        spikes = np.zeros_like(logit)
        hist = history.detach().to("cpu", torch.float32).numpy()
        h, t_len = hist.shape[0], logit.shape[1]
        for i in range(logit.shape[0]):  # numpy per row: a few small steps per spike
            row, t, prev_below = logit[i], 0, True
            while t < t_len:
                above = row[t:] >= 0
                hits = above & np.concatenate(([prev_below], ~above[:-1]))
                j = int(hits.argmax())
                if not hits[j]:
                    break
                u = t + j
                spikes[i, u] = 1.0
                n = min(h, t_len - u - 1)
                row[u + 1: u + 1 + n] += hist[:n]
                t, prev_below = u + 1, False
        logit = torch.from_numpy(logit).to(drive.device, drive.dtype)
        spikes = torch.from_numpy(spikes).to(drive.device, drive.dtype)
    return logit, spikes


@contextlib.contextmanager
def waveforms_off(model):
    """Within the block, a free-running ``spiking`` model does not add its spikes' waveforms
    to v (``waveform_gain`` 0; restored on exit). Other models are left as they are."""
    gain = getattr(model, "waveform_gain", None)
    if gain is None:
        yield model
        return
    old = gain.detach().clone()
    gain.fill_(0.0)
    try:
        yield model
    finally:
        gain.copy_(old)


class SpikingSurrogate(LinearSurrogate):
    """Linear pathway + TCN residual + spike generator with feedback (module docstring)."""

    architecture = "spiking"
    closed_form = False
    uses_spike_feedback = True

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig, geometry=None) -> None:
        super().__init__(n_channels, n_segments, cfg, geometry)
        self.trunk = TCN(n_channels, cfg.hidden, cfg.layers, cfg.first_kernel, cfg.kernel_size,
                         cfg.dilation_base, cfg.dropout, in_proj=cfg.input_proj)
        self.head_z = CausalConv1d(cfg.hidden, self.rank, 1)
        self.head_drive = CausalConv1d(cfg.hidden, 1, 1)
        for conv in (self.head_z, self.head_drive):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        hist = int(round(cfg.spike_history_ms))
        lags = torch.arange(1, hist + 1, dtype=torch.float32)
        # start refractory: strongly negative for a few bins, relaxing over ~5 ms
        self.history = nn.Parameter(-12.0 * torch.exp(-(lags - 1) / 4.0))
        self.waveform = nn.Parameter(torch.zeros(n_segments, int(round(cfg.waveform_ms))))
        self.register_buffer("spike_threshold", torch.zeros(()))
        # 1: free-running spikes add their waveforms to v; 0: they are reported but not
        # added (chosen on validation data by calibrate_threshold; teacher forcing always adds)
        self.register_buffer("waveform_gain", torch.ones(()))
        self.soma_gain = nn.Parameter(torch.zeros(2))
        # where the soma is (buffers, so that a checkpoint loaded without geometry keeps it)
        soma = int(geometry.soma_index) if geometry is not None else 0
        where = (self.input_segments == soma).nonzero()
        self.register_buffer("soma_segment", torch.tensor(soma))
        self.register_buffer("soma_input_slot", torch.tensor(int(where[0, 0]) if len(where) else -1))

    @property
    def receptive_field(self) -> int:
        return max(int(self.filters.shape[1]), self.trunk.receptive_field)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before waveform_gain existed add every waveform (gain 1)
        state_dict.setdefault(prefix + "waveform_gain", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def drive_and_latents(self, xn: torch.Tensor | None,
                          events: InputEvents | None = None) -> dict[str, torch.Tensor]:
        """Latents z (with the TCN residual), local terms, the predicted subthreshold soma
        voltage (standardised, no spike waveform) and the spike drive (logit units)
        = soma_gain . [vsub(t), vsub(t) - vsub(t-1)] + linear score + TCN head - threshold."""
        p = self.linear_parts(xn, events)
        h = self.trunk_hidden(xn, events)
        z = p["z"] + self.head_z(h)
        k, slot = int(self.soma_segment), int(self.soma_input_slot)
        vsub = torch.einsum("r,brt->bt", self.basis[k], z) + self.b_segment[k]
        if slot >= 0:
            vsub = vsub + p["local"][:, slot]
        drive = self.spike_drive(vsub, p["spike_logit"], h)
        return {"z": z, "local": p["local"], "vsub": vsub, "drive": drive}

    def trunk_hidden(self, xn: torch.Tensor | None, events: InputEvents | None = None) -> torch.Tensor:
        """The TCN's hidden state from the normalised inputs, or from the input events (its
        1x1 input projection summed event by event)."""
        if events is None:
            return self.trunk(xn)
        if self.trunk.proj is None:  # the trunk's first conv needs the dense inputs
            return self.trunk(self.normalised_dense(events))
        w = self.trunk.proj
        projected = (pointwise_events(events, w.weight[:, :, 0], self.in_mean, self.in_scale)
                     + w.bias[None, :, None])
        return self.trunk(None, projected)

    def spike_drive(self, vsub: torch.Tensor, score: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """(batch, T) logits: soma_gain . [vsub(t), vsub(t) - vsub(t-1)] + linear score + TCN
        head - threshold (vsub: standardised subthreshold soma voltage)."""
        dv = vsub - F.pad(vsub, (1, 0))[:, :-1]
        return (self.soma_gain[0] * vsub + self.soma_gain[1] * dv + score
                + self.head_drive(h)[:, 0] - self.spike_threshold)

    def normalised_dense(self, ev: InputEvents) -> torch.Tensor:
        """Dense normalised inputs rebuilt from the events."""
        x = ev.dense(self.in_mean.dtype)
        return (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]

    def history_term(self, spikes: torch.Tensor) -> torch.Tensor:
        """(batch, T): sum_k history[k-1] spikes(t-k), k >= 1."""
        h = self.history.shape[0]
        sp = F.pad(spikes, (h, 0))[:, None, :-1]
        return F.conv1d(sp, self.history.flip(0)[None, None])[:, 0]

    def waveform_term(self, spikes: torch.Tensor) -> torch.Tensor:
        """(batch, segment, T): sum_k waveform[s, k] spikes(t-k), k >= 0."""
        ln = self.waveform.shape[1]
        sp = F.pad(spikes, (ln - 1, 0))[:, None]
        return F.conv1d(sp, self.waveform.flip(-1)[:, None])

    def forward(self, x: torch.Tensor, spikes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x (batch, channel, T) counts -> v (mV), spike_logit, spikes (batch, T).
        spikes: the somatic spike train to feed back (teacher forcing); None runs free."""
        from ..errors import InputError

        if x.dim() != 3 or x.shape[1] != self.n_channels:
            raise InputError(f"surrogate input must be (batch, {self.n_channels} channels, time); "
                             f"got shape {tuple(x.shape)}.")
        p = self.drive_and_latents(*self.normalised(x))
        gain = 1.0
        if spikes is None:
            logit, s = free_run(p["drive"], self.history.detach())
            logit = p["drive"] + self.history_term(s)  # same values, with gradients
            gain = self.waveform_gain
        else:
            s = (spikes > 0).to(p["drive"].dtype)
            logit = p["drive"] + self.history_term(s)
        vn = self.readout(p["z"], p["local"]) + gain * self.waveform_term(s)
        v = self.v_mean[None, :, None] + self.v_std[None, :, None] * vn
        return {"v": v, "spike_logit": logit, "spikes": s}

    def core(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("SpikingSurrogate overrides forward()")

    @property
    def readout_parts(self):
        """predict_lfp folds linear readouts into its forward matrices. With waveform_gain 0
        the voltages do not depend on the spikes, and v = v_mean + v_std (U z + b + local)
        is such a readout: return the function giving its parts; else None (no folding)."""
        return self._readout_parts if float(self.waveform_gain) == 0 else None

    def _readout_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.drive_and_latents(*self.normalised(x))
        _, s = free_run(p["drive"], self.history.detach())
        return {"z": p["z"], "local": p["local"],
                "spike_logit": p["drive"] + self.history_term(s)}

    @torch.no_grad()
    def fit_closed_form(self, train_samples, val_samples, *, burn_in=None, stride: int = 4,
                        alphas=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), progress: bool = False) -> dict:
        """Initialise the linear pathway and the spike-triggered waveform by the streamed
        ridge fit with the true spike lags as regressors; put the linear spike score on a
        logit scale (std 3, mean -6). The TCN residual starts at zero."""
        rep = fit_ridge_readout(self, train_samples, val_samples, burn_in=burn_in,
                                stride=stride, alphas=alphas, progress=progress,
                                spike_lag_bins=self.waveform.shape[1])
        samples = list(itertools.islice(train_samples, 16))
        rep["drive_glm"] = self.fit_drive(samples)
        rep["drive_offset"] = self.match_firing_rate(samples)
        return rep

    @torch.no_grad()
    def fit_drive(self, samples, iterations: int = 25) -> dict:
        """Logistic regression (Newton-Raphson) of the true spike train on the drive's
        inputs: [vsub(t), vsub(t) - vsub(t-1), linear score, 1] plus the true spike history
        (lags 1..H), on whole ``samples``. Sets soma_gain, rescales the linear score, sets
        the history filter and the offset. Returns the fitted coefficients."""
        x = torch.stack([torch.as_tensor(s["inputs"], dtype=torch.float32) for s in samples])
        y = torch.stack([torch.as_tensor(s["spikes"], dtype=torch.float32) for s in samples]) > 0
        xn = (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]
        self.soma_gain.zero_()
        self.b_spike.zero_()
        p = self.drive_and_latents(xn)
        score = p["drive"] + self.spike_threshold                       # linear score alone
        vsub = p["vsub"]
        dv = vsub - F.pad(vsub, (1, 0))[:, :-1]
        hist = spike_lags_after(y.to(torch.float32), self.history.shape[0])   # (b, H, T)
        burn = self.receptive_field
        feats = torch.cat([vsub[:, None], dv[:, None], score[:, None], hist,
                           torch.ones_like(vsub)[:, None]], 1)[..., burn:]
        a = feats.permute(0, 2, 1).reshape(-1, feats.shape[1]).double()
        t = y[:, burn:].reshape(-1).double()
        beta = torch.zeros(a.shape[1], dtype=torch.float64)
        beta[-1] = math.log(max(float(t.mean()), 1e-6))
        ridge = 1e-3 * torch.eye(a.shape[1], dtype=torch.float64)
        for _ in range(iterations):
            mu = torch.sigmoid(a @ beta)
            w = (mu * (1 - mu)).clamp_min(1e-9)
            step = torch.linalg.solve(a.T @ (a * w[:, None]) + ridge, a.T @ (t - mu) - ridge @ beta)
            beta = beta + step
            if float(step.abs().max()) < 1e-6:
                break
        h = self.history.shape[0]
        self.soma_gain.copy_(beta[:2].float())
        self.w_spike.mul_(float(beta[2]))
        self.history.copy_(beta[3:3 + h].float().clamp(-30.0, 10.0))
        self.b_spike.fill_(float(beta[-1]))
        return {"soma_gain": beta[:2].tolist(), "score_gain": float(beta[2]),
                "offset": float(beta[-1])}

    @torch.no_grad()
    def match_firing_rate(self, samples, grid=None) -> float:
        """Shift the spike drive so that the free-running model fires as often as the true
        cell on ``samples`` (whole samples); returns the shift (logit units)."""
        x = torch.stack([torch.as_tensor(s["inputs"], dtype=torch.float32) for s in samples])
        n_true = float(sum(float((torch.as_tensor(s["spikes"]) > 0).sum()) for s in samples))
        xn = (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]
        drive = self.drive_and_latents(xn)["drive"]
        grid = torch.arange(-20.0, 20.01, 0.25) if grid is None else grid
        best = min(grid.tolist(), key=lambda c: abs(
            float(free_run(drive + c, self.history)[1].sum()) - n_true))
        self.b_spike.add_(best)
        return float(best)

    @torch.no_grad()
    def calibrate_threshold(self, samples, grid=None, burn_in: int | None = None,
                            tolerance_bins: int = 2, batch: int = 8) -> dict:
        """Set ``spike_threshold`` by its free-running spike F1 (+-2 bins, evaluate's
        definition) and firing rate on whole ``samples`` (validation data, never test):
        among thresholds firing within 10 % of the true rate, those within 0.01 of the best
        F1, and of them the closest rate (``calibrate.choose_threshold``),
        searched over a fixed grid and the drive's quantiles (``calibrate.threshold_grid``).
        The drive is computed once:
        the threshold only shifts it. Returns {threshold, f1, rate ratio, grid scores}."""
        from ..evaluate import spike_counts, spike_f1

        burn = self.receptive_field if burn_in is None else int(burn_in)
        drives, trues = [], []
        old = float(self.spike_threshold)
        self.spike_threshold.zero_()
        for k in range(0, len(samples), batch):
            part = samples[k:k + batch]
            x = torch.stack([torch.as_tensor(np.asarray(s["inputs"]), dtype=torch.float32)
                             for s in part])
            xn = (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]
            drives.append(self.drive_and_latents(xn)["drive"])
            trues += [np.flatnonzero(np.asarray(s["spikes"]) > 0) for s in part]
        drive = torch.cat(drives)
        if grid is None:  # a fixed grid, and the drive's own quantiles (its scale varies)
            from ..calibrate import threshold_grid

            grid = np.union1d(np.arange(-4.0, 8.01, 0.25), threshold_grid(
                list(drive[:, burn:].numpy()), [t[t >= burn] for t in trues]))
        grid = np.asarray(grid, float)
        n_true = sum(int((t >= burn).sum()) for t in trues)
        scores = {}
        for thr in grid:
            logit = free_run(drive - float(thr), self.history)[0].numpy()
            tp = fp = fn = 0
            for row, true in zip(logit, trues):
                a, b, c = spike_counts(row, true, burn, tolerance_bins)
                tp, fp, fn = tp + a, fp + b, fn + c
            scores[float(thr)] = (spike_f1(tp, fp, fn), (tp + fp) / max(n_true, 1))
        from ..calibrate import choose_threshold

        best = choose_threshold(scores)
        if best is None:
            self.spike_threshold.fill_(old)
            return {"threshold": old, "scores": scores}
        ok = scores
        self.spike_threshold.fill_(best)
        # add the spike waveforms to v only where that makes the free-running voltages and
        # currents better on validation data: spikes at wrong times add whole action
        # potentials of error
        from .linear import _val_error

        errors = {}
        for gain in (1.0, 0.0):
            self.waveform_gain.fill_(gain)
            errors[gain] = _val_error(self, samples[:24], burn, self._m, feed_true_spikes=False)
        gain = min(errors, key=lambda g: errors[g]["total"])
        self.waveform_gain.fill_(gain)
        return {"threshold": best, "f1": ok[best][0], "rate_ratio": ok[best][1],
                "waveform_gain": gain, "val_error_by_waveform_gain": errors,
                "scores": {str(k): v for k, v in scores.items()}}

    @torch.no_grad()
    def free_spikes(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own spike train (batch, T) for inputs x, running free."""
        xn = (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None]
        return free_run(self.drive_and_latents(xn)["drive"], self.history)[1]
