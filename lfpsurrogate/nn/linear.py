"""``linear``: the closed-form floor. Causally basis-filtered inputs -> every segment's
voltage (through the low-rank + local readout of ``ours``) and the spike logit.

Why: everything after the voltages is linear (imem = M v, LFP = K M v), and the synaptic
drive of a passive cable is a linear filter of its inputs. So a linear kernel model is the
part of every signal that any surrogate gets for free; a neural model that does not beat it
has not learnt the cell. It is also the pathway the spiking model starts from.

Features: the normalised input channels are first projected onto Q, the ``input_modes``
smoothest patterns over the input segments (eigenvectors of the cable matrix M restricted
to them, separately for excitation and inhibition): a synapse's effect on segments away from
it changes smoothly with its position along the cable, so P = 2 x input_modes projected
channels carry the distant effects of all 2 x n_in channels, and the normal equations shrink
from (2 n_in F)^2 to (P F)^2 (7910 -> 896 features for l5_ttpc1). Each projected channel p
is filtered by F causal kernels phi_f: a delta (lag 0) and ``n_bumps`` raised cosines on a
log-time axis up to ``max_lag_ms`` (the basis of Pillow et al. 2008, Nature 454:995): fine
at short lags where synaptic currents are fast, coarse at long lags (NMDA, Ih). The sharp
response of a segment to its own synapses (what Q smooths away) is the local term l.
Readout, standardised voltage of segment s:

    vn_s(t) = sum_r U[s, r] z_r(t) + [s is an input segment] l_s(t)
    z_r(t)  = b_r + sum_{p,f} W[r, p, f] (phi_f * (Q' x)_p)(t)          (rank-r latents)
    l_s(t)  = a_s + sum_f A[s, f] (phi_f * x_exc(s))(t) + B[s, f] (phi_f * x_inh(s))(t)
    (a_s for every segment; the A, B terms only where s carries input slots)
    logit(t) = c_0 + sum_{p,f} w[p, f] (phi_f * (Q' x)_p)(t)

U is the physics-weighted PCA basis of ``ours`` (fixed here). W, b and w come from one ridge
regression (normal equations streamed over the training samples, rows sub-sampled in time,
penalty chosen on validation samples from the same sums); A, B, a from a second, per-segment
ridge on what the latents leave over. The spike output is a linear score (ridge on the
0/1 spike indicator), so ``spike_auc`` is meaningful; spikes are its threshold crossings.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Sized

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Surrogate
from .config import ModelConfig
from .fftsize import fast_fft_length
from .lowrank import LowRankSurrogate


def raised_cosine_basis(n_bumps: int, max_lag_ms: float, bin_ms: float = 1.0) -> np.ndarray:
    """(1 + n_bumps, K) causal kernels on lags 0..K-1 bins: a delta at lag 0, then raised
    cosine bumps evenly spaced in log(t + 1 bin) covering lags 1..max_lag_ms; each bump has
    unit sum (so features are in units of counts). K = max_lag_ms / bin_ms + 1."""
    k = int(round(max_lag_ms / bin_ms)) + 1
    t = np.arange(k, dtype=float)
    basis = [np.eye(1, k)[0]]
    if n_bumps > 0:
        y = np.log(t + 1.0)
        lo, hi = np.log(2.0), np.log(k)
        centres = np.linspace(lo, hi, n_bumps) if n_bumps > 1 else np.array([0.5 * (lo + hi)])
        width = (centres[1] - centres[0]) if n_bumps > 1 else (hi - lo)
        for c in centres:
            arg = np.clip((y - c) * np.pi / (2 * width), -np.pi, np.pi)
            b = 0.5 * (1 + np.cos(arg))
            b[0] = 0.0  # lag 0 belongs to the delta
            basis.append(b / b.sum())
    return np.stack(basis)


class InputEvents:
    """The nonzero counts of an input batch x (batch, C, T): indices and values, found once
    and shared by every event-driven stage of a forward pass."""

    def __init__(self, x: torch.Tensor) -> None:
        self.shape = tuple(x.shape)
        b, c, t = x.shape
        batch, channel, time = x.nonzero(as_tuple=True)
        count = x[batch, channel, time].float()
        # ordered by (batch, time): each bin's events are contiguous (see bin_offsets)
        order = torch.argsort(batch * t + time, stable=True)
        self.batch, self.channel, self.time = batch[order], channel[order], time[order]
        self.count = count[order]

    @classmethod
    def from_arrays(cls, shape: tuple[int, int, int], batch: torch.Tensor, channel: torch.Tensor,
                    time: torch.Tensor, count: torch.Tensor, ordered: bool = False) -> "InputEvents":
        """Events given directly (e.g. presynaptic spike times binned): indices (long) and
        counts (float), one entry per (batch, channel, time) bin, in any order; ``ordered``:
        the caller guarantees they are already ordered by (batch, time), and no sort is done."""
        ev = cls.__new__(cls)
        ev.shape = tuple(int(n) for n in shape)
        if not ordered:
            order = torch.argsort(batch * ev.shape[2] + time, stable=True)
            batch, channel, time, count = batch[order], channel[order], time[order], count[order]
        ev.batch, ev.channel, ev.time, ev.count = batch, channel, time, count.float()
        return ev

    def dense(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The counts as a dense (batch, C, T) tensor (events in one bin are summed)."""
        x = torch.zeros(self.shape, dtype=dtype, device=self.count.device)
        x.index_put_((self.batch, self.channel, self.time), self.count.to(dtype), accumulate=True)
        return x

    def bin_sums(self, table: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """(batch * T, columns): for every (batch, bin), the sum over its events of count x
        table[index] (index: each event's channel unless given), by ``embedding_bag``: no
        (events x columns) tensor is formed."""
        return F.embedding_bag(self.channel if index is None else index, table,
                               self.bin_offsets(), mode="sum",
                               per_sample_weights=self.count.to(table.dtype))

    def bin_offsets(self) -> torch.Tensor:
        """(batch * T,) start of each (batch, time) bin's events in the event arrays."""
        b, _, t = self.shape
        n = torch.bincount(self.batch * t + self.time, minlength=b * t)
        return torch.cumsum(n, 0) - n


def pointwise_events(ev: InputEvents, weight: torch.Tensor, in_mean: torch.Tensor,
                     in_scale: torch.Tensor) -> torch.Tensor:
    """weight (out, C) applied to normalised inputs, (x - mean) * scale, at every bin, from the
    input events (inputs are ~99 % zeros): the nonzero counts add their scaled weight
    columns, the channel means a constant. -> (batch, out, T)."""
    b, c, t = ev.shape
    w = weight * in_scale[None, :]
    out = ev.bin_sums(w.T.contiguous())
    out = out - (w @ in_mean)[None]
    return out.reshape(b, t, -1).transpose(1, 2)


def causal_filter(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """x (batch, C, T), basis (F, K) -> (batch, C, F, T): y[c, f, t] = sum_k basis[f, k] x[c, t-k]
    (zeros before t = 0), by FFT (C x F direct convolutions would cost K times more)."""
    b, c, t = x.shape
    f, k = basis.shape
    n = fast_fft_length(t + k - 1)  # any length >= t + k - 1 gives the same result
    xf = torch.fft.rfft(x.float(), n=n)
    bf = torch.fft.rfft(basis.float(), n=n)
    return torch.fft.irfft(xf[:, :, None, :] * bf[None, None], n=n)[..., :t]


class LinearSurrogate(LowRankSurrogate):
    """Closed-form linear kernel model (see module docstring). Gradient training is not used:
    ``fit_closed_form`` sets every weight."""

    architecture = "linear"
    closed_form = True

    def __init__(self, n_channels: int, n_segments: int, cfg: ModelConfig, geometry=None) -> None:
        cfg_no_local = ModelConfig(**{**cfg.__dict__, "local_features": 0})
        super().__init__(n_channels, n_segments, cfg_no_local, geometry)
        self.cfg = cfg
        self.trunk = None  # no TCN: the linear map below replaces it
        self.latent = None
        self.spike_head = None
        basis = raised_cosine_basis(cfg.n_bumps, cfg.max_lag_ms)
        self.register_buffer("filters", torch.from_numpy(basis).float())
        nf = basis.shape[0]
        n_in = n_channels // 2
        seg = geometry.input_segments if geometry is not None else np.arange(n_in) % n_segments
        self.register_buffer("input_segments", torch.as_tensor(np.asarray(seg), dtype=torch.long))
        q = input_modes(geometry, n_in, min(cfg.input_modes, n_in), cfg.seed)
        proj = np.zeros((n_channels, 2 * q.shape[1]))
        proj[:n_in, :q.shape[1]] = q
        proj[n_in:2 * n_in, q.shape[1]:] = q
        self.register_buffer("proj", torch.from_numpy(proj).float())
        n_feat = proj.shape[1] * nf
        # small random weights until fit_closed_form sets them (an untrained model is still
        # a valid, input-dependent function, like every other architecture)
        self.w_latent = nn.Parameter(0.01 * torch.randn(self.rank, n_feat))
        self.b_latent = nn.Parameter(torch.zeros(self.rank))
        self.w_spike = nn.Parameter(0.01 * torch.randn(n_feat))
        self.b_spike = nn.Parameter(torch.full((), -5.0))
        self.w_local = nn.Parameter(0.01 * torch.randn(n_in, 2 * nf))
        self.b_segment = nn.Parameter(torch.zeros(n_segments))
        self.basis.requires_grad_(False)

    @property
    def receptive_field(self) -> int:
        return int(self.filters.shape[1])

    def features(self, xn: torch.Tensor | None, events: InputEvents | None = None) -> torch.Tensor:
        """(batch, C, T) normalised inputs -> (batch, P * F, T): the projected channels
        Q' x, each filtered by every basis kernel (the projection event by event from the
        input events when given)."""
        xp = (torch.matmul(self.proj.T, xn) if events is None else
              pointwise_events(events, self.proj.T, self.in_mean, self.in_scale))
        y = causal_filter(xp, self.filters)
        return y.reshape(y.shape[0], -1, y.shape[-1])

    def own_features(self, xn: torch.Tensor) -> torch.Tensor:
        """(batch, n_input_segments, 2F, T): each input segment's own exc and inh channel,
        filtered by every basis kernel (for the closed-form fit of the local term)."""
        b, c, t = xn.shape
        n, nf = c // 2, self.filters.shape[0]
        y = causal_filter(xn, self.filters)                                   # (b, C, F, T)
        return y.reshape(b, 2, n, nf, t).permute(0, 2, 1, 3, 4).reshape(b, n, 2 * nf, t)

    def _local(self, xn: torch.Tensor) -> torch.Tensor:
        """(batch, n_input_segments, T): sum_f A[n, f] (phi_f * x_exc(n)) + B[n, f]
        (phi_f * x_inh(n)), as one causal FFT convolution per channel with the kernel
        sum_f A[n, f] phi_f (no (C, F, T) feature tensor)."""
        b, c, t = xn.shape
        n, nf = c // 2, self.filters.shape[0]
        kern = torch.einsum("nkf,fl->nkl", self.w_local.reshape(n, 2, nf), self.filters)
        size = fast_fft_length(t + kern.shape[-1] - 1)
        xf = torch.fft.rfft(xn.reshape(b, 2, n, t).transpose(1, 2), n=size)   # (b, n, 2, w)
        kf = torch.fft.rfft(kern, n=size)                                     # (n, 2, w)
        return torch.fft.irfft((xf * kf[None]).sum(2), n=size)[..., :t]

    def _local_events(self, ev: "InputEvents | torch.Tensor") -> torch.Tensor:
        """The local term of ``_local`` computed from the raw counts x (batch, C, T) event by
        event: each nonzero count adds count x scale x its segment's kernel to the next K
        bins, minus the (zero-padded) response to the channel means. Inputs are ~99 % zeros,
        so this is several times cheaper than the FFT; equal to it up to rounding (tested).
        Used without gradients (inference)."""
        ev = ev if isinstance(ev, InputEvents) else InputEvents(ev)
        b, c, t = ev.shape
        n, nf = c // 2, self.filters.shape[0]
        kern = torch.einsum("nkf,fl->knl", self.w_local.reshape(n, 2, nf), self.filters)
        k = kern.shape[-1]
        kern = kern.reshape(c, k) * self.in_scale[:, None]                  # per channel
        dev = kern.device
        out = torch.zeros(b * n * (t + k), dtype=kern.dtype, device=dev)
        if ev.count.numel():
            rows = (ev.batch * n + ev.channel % n) * (t + k) + ev.time
            idx = (rows[:, None] + torch.arange(k, device=dev)[None]).reshape(-1)
            out.index_add_(0, idx, (ev.count[:, None] * kern[ev.channel]).reshape(-1))
        out = out.reshape(b, n, t + k)[..., :t]
        ramp = torch.cumsum(kern * self.in_mean[:, None], 1)                # (C, K)
        steady = torch.cat([ramp, ramp[:, -1:].expand(c, max(t - k, 0))], 1)[:, :t]
        return out - (steady[:n] + steady[n:])[None]

    def use_events(self) -> bool:
        """Event-driven inference: no gradients wanted (the dense/FFT path otherwise)."""
        return not (torch.is_grad_enabled() and self.w_local.requires_grad)

    def linear_parts(self, xn: torch.Tensor | None,
                     events: InputEvents | None = None) -> dict[str, torch.Tensor]:
        """Latents, local terms and linear spike score from normalised inputs xn, or from
        the input events (inference; then xn may be None)."""
        phi = self.features(xn, events)
        z = torch.einsum("rk,bkt->brt", self.w_latent, phi) + self.b_latent[None, :, None]
        logit = torch.einsum("k,bkt->bt", self.w_spike, phi) + self.b_spike
        local = self._local_events(events) if events is not None else self._local(xn)
        return {"phi": phi, "z": z, "local": local, "spike_logit": logit}

    def normalised(self, x: torch.Tensor) -> tuple[torch.Tensor | None, InputEvents | None]:
        """(xn, events): the input events when inference can use them (xn is then not
        needed and None), else the normalised inputs."""
        if self.use_events():
            return None, InputEvents(x)
        return (x - self.in_mean[None, :, None]) * self.in_scale[None, :, None], None

    def readout_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        if x.dim() != 3 or x.shape[1] != self.n_channels:
            raise ValueError(f"input must be (batch, {self.n_channels}, time); got {tuple(x.shape)}.")
        p = self.linear_parts(*self.normalised(x))
        return {"z": p["z"], "local": p["local"], "spike_logit": p["spike_logit"]}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from ..errors import InputError

        if x.dim() != 3 or x.shape[1] != self.n_channels:
            raise InputError(f"surrogate input must be (batch, {self.n_channels} channels, time); "
                             f"got shape {tuple(x.shape)}.")
        p = self.linear_parts(*self.normalised(x))
        vn = self.readout(p["z"], p["local"])
        v = self.v_mean[None, :, None] + self.v_std[None, :, None] * vn
        return {"v": v, "spike_logit": p["spike_logit"]}

    def core(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.linear_parts(xn)
        return self.readout(p["z"], p["local"]), p["spike_logit"]

    def readout(self, z: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """Standardised voltages (batch, segment, T) = U z + segment bias + local terms."""
        vn = torch.einsum("sr,brt->bst", self.basis, z) + self.b_segment[None, :, None]
        return vn.index_add(1, self.input_segments, local)

    # ---- closed-form fit ------------------------------------------------------------------
    @torch.no_grad()
    def fit_closed_form(self, train_samples: Iterable[dict], val_samples: Iterable[dict], *,
                        burn_in: int | None = None, stride: int = 4,
                        alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                        progress: bool = False) -> dict:
        """Ridge fit of every weight from whole samples (dicts of ``inputs`` (C, T) counts,
        ``v`` (S, T) mV, ``spikes`` (T,)); normalisation and basis must be set first.

        Rows are the bins t >= burn_in (default: the receptive field) with
        t = offset (mod stride), the offset cycling over samples, so every lag is seen.
        The penalty alpha * mean(diag(G)) is chosen among ``alphas`` by validation MSE of the
        standardised targets, computed exactly from the validation sums. Returns a report."""
        return fit_ridge_readout(self, train_samples, val_samples, burn_in=burn_in,
                                 stride=stride, alphas=alphas, progress=progress)


def input_modes(geometry, n_in: int, k: int, seed: int = 0) -> np.ndarray:
    """(n_in, k) orthonormal smooth patterns over the input segments: the eigenvectors of
    the symmetrised cable matrix M restricted to the input segments with the smallest
    |eigenvalue| (random orthonormal without a geometry)."""
    if geometry is None:
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n_in, k)))
        return q
    m = geometry.vmem_to_imem
    m = m.toarray() if hasattr(m, "toarray") else np.asarray(m)
    seg = np.asarray(geometry.input_segments)
    sub = m[np.ix_(seg, seg)]
    w, vec = np.linalg.eigh(0.5 * (sub + sub.T))
    return vec[:, np.argsort(np.abs(w))[:k]]


# ---- the streamed ridge fit ------------------------------------------------------------------
def _sample_tensors(model: Surrogate, item: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(item["inputs"]), dtype=torch.float32)[None]
    v = torch.as_tensor(np.asarray(item["v"]), dtype=torch.float64)
    s = torch.as_tensor(np.asarray(item["spikes"]), dtype=torch.float64)
    xn = (x - model.in_mean[None, :, None].cpu()) * model.in_scale[None, :, None].cpu()
    vn = (v - model.v_mean[:, None].double().cpu()) / model.v_std[:, None].double().cpu()
    return xn, vn, (s > 0).double()


def spike_lags(spikes: torch.Tensor, n_lags: int) -> torch.Tensor:
    """(..., T) spike train -> (..., n_lags, T): the train delayed by 0..n_lags-1 bins."""
    t = spikes.shape[-1]
    padded = F.pad(spikes, (n_lags - 1, 0))
    return torch.stack([padded[..., n_lags - 1 - k: n_lags - 1 - k + t] for k in range(n_lags)], -2)


class _Normal:
    """Streaming sums for a ridge regression with intercept: G = X'X, B = X'Y, Y'Y, sums."""

    def __init__(self, n_features: int, n_targets: int) -> None:
        self.g = torch.zeros(n_features, n_features, dtype=torch.float64)
        self.b = torch.zeros(n_features, n_targets, dtype=torch.float64)
        self.sx = torch.zeros(n_features, dtype=torch.float64)
        self.sy = torch.zeros(n_targets, dtype=torch.float64)
        self.yy = torch.zeros(n_targets, dtype=torch.float64)
        self.n = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x (rows, features), y (rows, targets)."""
        x32 = x.float()
        self.g += (x32.T @ x32).double()
        self.b += x.double().T @ y.double()
        self.sx += x.double().sum(0)
        self.sy += y.double().sum(0)
        self.yy += (y.double() ** 2).sum(0)
        self.n += x.shape[0]

    def centred(self):
        n = max(self.n, 1)
        mx, my = self.sx / n, self.sy / n
        g = self.g - n * torch.outer(mx, mx)
        b = self.b - n * torch.outer(mx, my)
        yy = self.yy - n * my**2
        return g, b, yy, mx, my

    def solve(self, alpha: float, n_features: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights (features, targets), intercepts (targets,)) of the ridge regression on
        the first ``n_features`` features (default all; the others get weight 0)."""
        g, b, _, mx, my = self.centred()
        k = g.shape[0] if n_features is None else int(n_features)
        gk = g[:k, :k]
        lam = alpha * float(torch.diagonal(gk).mean().clamp_min(1e-12))
        w = torch.zeros_like(b)
        w[:k] = torch.linalg.solve(gk + lam * torch.eye(k, dtype=g.dtype), b[:k])
        return w, my - mx @ w

    def sse(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Sum of squared errors per target of predictions x @ w + c over the added rows."""
        n = self.n
        return (self.yy - 2 * (w * self.b).sum(0) - 2 * c * self.sy
                + (w * (self.g @ w)).sum(0) + 2 * c * (self.sx @ w) + n * c**2)


def _set_local(model, sol, seg, n_own: int, n_lag: int, u, wave_latent) -> None:
    """Write a per-segment solution (segment, own + lags + 1) into the model."""
    model.w_local.copy_(sol[seg, :n_own].float())
    model.b_segment.copy_(sol[:, -1].float())
    if n_lag:  # waveform: latent part through U plus each segment's own correction
        model.waveform.copy_((u @ wave_latent + sol[:, n_own:n_own + n_lag]).float())


@torch.no_grad()
def _val_error(model, samples, burn: int, m_op, feed_true_spikes: bool = True) -> dict:
    """Relative MSE of v (per segment over its variance, mean) and of imem = M v (total
    over total variance) on whole samples; spiking models get the true spikes fed back
    (``feed_true_spikes``) or run free."""
    ev = iv = ei = ii = 0.0
    m = None
    if m_op is not None:
        from .losses import to_torch_matrix
        m = to_torch_matrix(m_op)
    for item in samples:
        x = torch.as_tensor(np.asarray(item["inputs"]), dtype=torch.float32)[None]
        v = torch.as_tensor(np.asarray(item["v"]), dtype=torch.float32)[None]
        kw = {}
        if getattr(model, "uses_spike_feedback", False) and feed_true_spikes:
            kw["spikes"] = torch.as_tensor(np.asarray(item["spikes"]), dtype=torch.float32)[None]
        vh = model(x, **kw)["v"]
        e = (vh - v)[..., burn:]
        vt = v[..., burn:]
        ev += float((e.pow(2).mean(-1) / vt.var(-1).clamp_min(1e-6)).mean())
        iv += 1.0
        if m is not None:
            ie = torch.sparse.mm(m, e[0]) if m.is_sparse else m @ e[0]
            it = torch.sparse.mm(m, vt[0]) if m.is_sparse else m @ vt[0]
            ei += float(ie.pow(2).sum())
            ii += float((it - it.mean(-1, keepdim=True)).pow(2).sum())
    v_rel = ev / max(iv, 1.0)
    imem_rel = ei / ii if ii > 0 else 0.0
    return {"v_rel_mse": v_rel, "imem_rel_mse": imem_rel, "total": v_rel + imem_rel}


def fit_ridge_readout(model: LinearSurrogate, train_samples: Iterable[dict],
                      val_samples: Iterable[dict], *, burn_in: int | None = None, stride: int = 4,
                      alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                      spike_lag_bins: int = 0, progress: bool = False,
                      local_alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)) -> dict:
    """The streamed ridge fit behind ``LinearSurrogate.fit_closed_form`` (and the spiking
    model's initialisation, which adds ``spike_lag_bins`` lags of the *true* spike train as
    regressors of every target: the spike-triggered waveform). Sets the model's weights in
    place and returns the chosen penalties and validation errors."""
    from tqdm.auto import tqdm

    burn = model.receptive_field if burn_in is None else int(burn_in)
    u = model.basis.detach().double().cpu()
    u_pinv = torch.linalg.pinv(u)
    nf = model.filters.shape[0]
    seg = model.input_segments.cpu()
    n_lag = int(spike_lag_bins)

    def rows_of(item, k, local=False):
        xn, vn, s = _sample_tensors(model, item)
        xn = xn.to(model.filters.device)
        phi = model.features(xn).cpu()[0]                                   # (P*F, T)
        t = torch.arange(phi.shape[-1])
        keep = (t >= burn) & ((t - k) % stride == 0)
        feats = [phi[:, keep]]
        if n_lag:
            feats.append(spike_lags(s, n_lag)[:, keep].float())
        x = torch.cat(feats).T                                               # (rows, feat)
        z = (u_pinv @ vn[:, keep]).T                                          # (rows, rank)
        own = (model.own_features(xn).cpu()[0][..., keep] if local else None)  # (n, 2F, rows)
        return x, torch.cat([z, s[keep, None]], 1), own, vn[:, keep], s[keep]

    n_feat = model.w_latent.shape[1] + n_lag
    n_tgt = model.rank + 1
    train_ne, val_ne = _Normal(n_feat, n_tgt), _Normal(n_feat, n_tgt)
    # sized iterables (WholeSamples) are read again on each pass instead of held in memory
    train_list = train_samples if isinstance(train_samples, Sized) else list(train_samples)
    val_list = val_samples if isinstance(val_samples, Sized) else list(val_samples)
    for k, item in enumerate(tqdm(train_list, desc="ridge: train sums", disable=not progress)):
        x, y, *_ = rows_of(item, k)
        train_ne.add(x, y)
    for k, item in enumerate(tqdm(val_list, desc="ridge: val sums", disable=not progress)):
        x, y, *_ = rows_of(item, k)
        val_ne.add(x, y)
    _, _, yy_val, _, _ = val_ne.centred()
    report = {"alphas": list(alphas), "val_rel_mse": {}}
    best = None
    nphi = model.w_latent.shape[1]
    for a in alphas:
        w, c = train_ne.solve(a)
        if n_lag:  # the spike drive sees inputs only: its own lag 0 would give the answer
            ws, cs = train_ne.solve(a, nphi)
            w[:, -1], c[-1] = ws[:, -1], cs[-1]
        rel = (val_ne.sse(w, c) / yy_val.clamp_min(1e-12))
        report["val_rel_mse"][a] = {"latent": float(rel[:-1].mean()), "spike": float(rel[-1])}
        score = float(rel[:-1].mean()) + float(rel[-1])
        if best is None or score < best[0]:
            best = (score, a, w, c)
    _, alpha, w, c = best
    report["alpha"] = alpha
    model.w_latent.copy_(w[:nphi, :-1].T.float())
    model.b_latent.copy_(c[:-1].float())
    model.w_spike.copy_(w[:nphi, -1].float())
    model.b_spike.fill_(float(c[-1]))
    wave_latent = w[nphi:, :-1].T if n_lag else None                         # (rank, lags)
    spike_wave = w[nphi:, -1] if n_lag else None

    # second pass: per-segment ridge of what the latents leave over, on the segment's own
    # features (input segments) and the spike lags (every segment)
    n_own = 2 * nf
    nloc = n_own + n_lag + 1
    gs = torch.zeros(model.n_segments, nloc, nloc, dtype=torch.float64)
    bs = torch.zeros(model.n_segments, nloc, dtype=torch.float64)
    is_input = torch.zeros(model.n_segments, dtype=torch.bool)
    is_input[seg] = True
    for k, item in enumerate(tqdm(train_list, desc="ridge: local sums", disable=not progress)):
        x, y, own_in, vn, s = rows_of(item, k, local=True)
        zhat = x.double() @ w[:, :-1] + c[:-1]
        resid = vn - u @ zhat.T                                              # (S, rows)
        own = torch.zeros(model.n_segments, n_own, resid.shape[1], dtype=torch.float64)
        own[seg] = own_in.double()
        parts = [own]
        if n_lag:
            parts.append(x[:, nphi:].double().T[None].expand(model.n_segments, -1, -1))
        parts.append(torch.ones(model.n_segments, 1, resid.shape[1], dtype=torch.float64))
        xl = torch.cat(parts, 1)                                              # (S, nloc, rows)
        gs += xl @ xl.transpose(1, 2)
        bs += (xl @ resid[:, :, None])[..., 0]
    # the per-segment terms are fitted segment by segment, but imem = M v amplifies errors
    # that differ between neighbours: choose their penalty by the validation error of v
    # *and* imem (both relative to their variance), running the model itself
    eye = torch.eye(nloc, dtype=torch.float64)
    diag = torch.diagonal(gs, dim1=1, dim2=2).mean(1).clamp_min(1e-12)
    m_op = model._m if model._m is not None else None
    check = list(itertools.islice(val_list, 4))
    report["local_val"] = {}
    best_local = None
    for a_loc in local_alphas:
        sol = torch.linalg.solve(gs + (a_loc * diag)[:, None, None] * eye, bs[..., None])[..., 0]
        _set_local(model, sol, seg, n_own, n_lag, u, wave_latent)
        err = _val_error(model, check, burn, m_op)
        report["local_val"][a_loc] = err
        if best_local is None or err["total"] < best_local[0]:
            best_local = (err["total"], a_loc, sol)
    _, report["local_alpha"], sol = best_local
    _set_local(model, sol, seg, n_own, n_lag, u, wave_latent)
    if n_lag:
        report["spike_waveform_drive"] = spike_wave.float()
    report["rows_train"] = train_ne.n
    report["rows_val"] = val_ne.n
    return report
