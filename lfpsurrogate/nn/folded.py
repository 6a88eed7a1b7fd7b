"""Signals straight from input events: the linear pathway composed with forward matrices.

For ``linear`` and ``spiking`` models everything between the input counts and a signal row
(a probe contact, a dipole component) is linear except the TCN residual and the spikes.
With K (cell, row, segment) the forward matrix applied to voltages (mV) and
vn = U z + b + scatter(l) the standardised voltages (see :mod:`.linear`), a row is

    y_r(t) = sum_f phi_f * (sum_c A[r, f, c] xn_c)(t) + c_r  [+ (G U)_r dz(t)]
             [+ gain (G W)_r * s(t)]
    G = K diag(v_std),  A[r, f] = G U W_f Q' + G[:, input segment of c] A_local[c, f],
    c_r = G (U b_latent + b) + K (v_mean - v_ref)

so one pointwise projection of the input events onto R x F channels and R inverse FFTs give
every row, without forming the latents' F x P features, the local term of every input
segment, or the voltage of any segment. dz is the TCN's latent residual and s the spike
train (``spiking``); the soma's subthreshold voltage and the linear spike score that drive
the spikes are two more rows of the same kind, shared by all cells. Equal to K (v - v_ref)
of the model's own forward pass up to float rounding (tested).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .linear import InputEvents


def foldable(model) -> bool:
    """True for models whose linear pathway this module can fold (``linear``, ``spiking``)."""
    return hasattr(model, "w_local") and hasattr(model, "filters") and hasattr(model, "proj")


def _latent_input_weights(model) -> torch.Tensor:
    """(rank, F, C): the latents' weight on filter f of normalised channel c (W_f Q')."""
    nf = model.filters.shape[0]
    w = model.w_latent.reshape(model.rank, -1, nf)                  # (rank, P, F)
    return torch.einsum("qpf,cp->qfc", w, model.proj)


def _spike_input_weights(model) -> torch.Tensor:
    """(F, C): the linear spike score's weight on filter f of normalised channel c."""
    nf = model.filters.shape[0]
    return torch.einsum("pf,cp->fc", model.w_spike.reshape(-1, nf), model.proj)


def _local_input_weights(model, g_in: torch.Tensor) -> torch.Tensor:
    """g_in (cells, R, n_in): rows' weight on each input segment's standardised voltage ->
    (cells, R, F, C) weights of the local term (channel c = kind * n_in + segment slot)."""
    n, nf = model.w_local.shape[0], model.filters.shape[0]
    a = model.w_local.reshape(n, 2, nf)                              # (slot, kind, F)
    w = torch.einsum("crn,nkf->crfkn", g_in, a)
    return w.reshape(*g_in.shape[:2], nf, 2 * n)


def filter_rows(xp: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """xp (cells, R, F, T), filters (F, K) -> (cells, R, T) = sum_f phi_f * xp[:, :, f]
    (causal, zeros before t = 0), by FFT, summing over f before the inverse transform."""
    t, k = xp.shape[-1], filters.shape[-1]
    n = t + k - 1
    xf = torch.fft.rfft(xp, n=n)
    bf = torch.fft.rfft(filters.to(xp.dtype), n=n)
    return torch.fft.irfft((xf * bf[None, None]).sum(2), n=n)[..., :t]


def _project(ev: InputEvents | None, xn: torch.Tensor | None, w: torch.Tensor, model) -> torch.Tensor:
    """Per-cell weights w (cells, O, C) on the normalised inputs -> (cells, O, T): event by
    event from ``ev`` (the counts' nonzeros; the channel means a constant), else dense xn."""
    if ev is None:
        return torch.einsum("bok,bkt->bot", w, xn)
    b, c, t = ev.shape
    ws = w * model.in_scale[None, None, :]
    table = ws.transpose(1, 2).reshape(b * c, -1)               # one row per (cell, channel)
    # each (cell, bin)'s events summed by embedding_bag: no (events x O) tensor is formed
    out = F.embedding_bag(ev.batch * c + ev.channel, table, ev.bin_offsets(), mode="sum",
                          per_sample_weights=ev.count.to(table.dtype))
    out = out.reshape(b, t, -1).transpose(1, 2)
    return out - torch.einsum("boc,c->bo", ws, model.in_mean)[..., None]


def _input_weights(model, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """g (cells, R, S): rows' weights on the standardised voltages -> (A (cells, R, F, C),
    G U (cells, R, rank)): each filter's weight on each normalised input channel."""
    gu = torch.einsum("crs,sq->crq", g, model.basis)
    a = torch.einsum("crq,qfk->crfk", gu, _latent_input_weights(model))
    return a + _local_input_weights(model, g[:, :, model.input_segments]), gu


def folded_signals(model, x: torch.Tensor | InputEvents, k_rows: torch.Tensor,
                   v_ref: float = 0.0) -> dict[str, torch.Tensor]:
    """Rows k_rows (cells, R, segment) @ (v - v_ref) of the model's voltages for inputs x
    (counts (cells, C, T), or their ``InputEvents``), without forming v.

    Returns ``rows`` (cells, R, T) and ``spike_logit`` (cells, T) as the model's forward
    gives them, and for ``spiking`` its free-running ``spikes``. Gradients flow when x is
    a dense tensor and gradients are enabled (the dense projection is used then)."""
    xn, ev = (None, x) if isinstance(x, InputEvents) else model.normalised(x)
    nf = model.filters.shape[0]
    cells, n_rows = k_rows.shape[0], k_rows.shape[1]
    g = k_rows * model.v_std[None, None, :]
    a, gu = _input_weights(model, g)
    offset = (torch.einsum("crq,q->cr", gu, model.b_latent) + g @ model.b_segment
              + k_rows @ (model.v_mean - v_ref))
    spiking = getattr(model, "trunk", None) is not None
    # rows shared by all cells: the linear spike score, and (spiking) the soma's vsub
    shared = [_spike_input_weights(model)[None, None]]
    if spiking:
        e = torch.zeros(1, 1, model.n_segments, dtype=g.dtype, device=g.device)
        e[0, 0, int(model.soma_segment)] = 1.0
        a_soma, eu = _input_weights(model, e)
        shared.append(a_soma)
    a = torch.cat([a] + [s.expand(cells, -1, -1, -1) for s in shared], 1)
    xp = _project(ev, xn, a.reshape(cells, a.shape[1] * nf, -1), model)
    rows = filter_rows(xp.reshape(cells, a.shape[1], nf, -1), model.filters)
    out = rows[:, :n_rows] + offset[..., None]
    score = rows[:, n_rows] + model.b_spike
    if not spiking:
        return {"rows": out, "spike_logit": score}
    # the TCN residual (latents dz, spike drive) and the spikes, as SpikingSurrogate does
    h = model.trunk_hidden(xn, ev)
    dz = model.head_z(h)
    out = out + torch.einsum("crq,cqt->crt", gu, dz)
    vsub = (rows[:, n_rows + 1] + torch.einsum("q,cqt->ct", eu[0, 0], dz + model.b_latent[None, :, None])
            + model.b_segment[int(model.soma_segment)])
    drive = model.spike_drive(vsub, score, h)
    from .spiking import free_run

    _, s = free_run(drive, model.history.detach())
    logit = drive + model.history_term(s)
    gain = float(model.waveform_gain)
    if gain != 0.0:  # free-running spikes add their spike-triggered waveforms (G W)
        gw = torch.einsum("crs,sl->crl", g, model.waveform)
        lags = F.pad(s, (gw.shape[-1] - 1, 0)).unfold(1, gw.shape[-1], 1)   # (cells, T, L)
        out = out + gain * torch.einsum("crl,ctl->crt", gw.flip(-1), lags)
    return {"rows": out, "spike_logit": logit, "spikes": s}
