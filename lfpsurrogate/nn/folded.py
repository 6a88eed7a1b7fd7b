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
the spikes are two more rows of the same kind. Rows wanted only as a sum over the cells (a
population's LFP) are summed before they are filtered, so the FFTs of those rows are done
once, not once per cell. Equal to K (v - v_ref) of the model's own forward pass up to float
rounding (tested).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .fftsize import fast_fft_length
from .linear import InputEvents


def foldable(model) -> bool:
    """True for models whose linear pathway this module can fold (``linear``, ``spiking``)."""
    return hasattr(model, "w_local") and hasattr(model, "filters") and hasattr(model, "proj")


def latent_input_weights(model) -> torch.Tensor:
    """(rank, F, C): the latents' weight on filter f of normalised channel c (W_f Q')."""
    nf = model.filters.shape[0]
    w = model.w_latent.reshape(model.rank, -1, nf)                  # (rank, P, F)
    return torch.einsum("qpf,cp->qfc", w, model.proj)


def spike_input_weights(model) -> torch.Tensor:
    """(F, C): the linear spike score's weight on filter f of normalised channel c."""
    nf = model.filters.shape[0]
    return torch.einsum("pf,cp->fc", model.w_spike.reshape(-1, nf), model.proj)


def input_table(model, g: torch.Tensor, scaled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """g (cells, R, S): rows' weights on the standardised voltages -> (table (cells, C, F, R+1),
    G U (cells, R, rank)). table[cell, c, f, r] is the weight of filter f of input channel c
    on row r: the latents' G U W_f Q' plus the local term of channel c's input segment; the
    last row is the linear spike score (the same for every cell). ``scaled``: the weights
    apply to raw counts (each channel's in_scale folded in, for events), else to the
    normalised inputs. Laid out so that one (cell, channel) row of the table is what one
    input event adds, and built by one matrix product and one in-place product (no copies
    of the table)."""
    nf, n_in = model.filters.shape[0], model.w_local.shape[0]
    cells, r, _ = g.shape
    gu = torch.einsum("crs,sq->crq", g, model.basis)
    latent = latent_input_weights(model)                             # (rank, F, C)
    local = model.w_local.reshape(n_in, 2, nf).transpose(0, 1)         # (kind, slot, F)
    spike = spike_input_weights(model)                                # (F, C)
    if scaled:
        latent, spike = latent * model.in_scale, spike * model.in_scale
        local = local * model.in_scale.reshape(2, n_in, 1)
    w = latent.permute(2, 1, 0).reshape(-1, model.rank)                # (C * F, rank)
    gu_ext = F.pad(gu, (0, 0, 0, 1))                                   # spike row: no latents
    table = torch.matmul(w, gu_ext.transpose(1, 2))                    # (cells, C * F, R + 1)
    g_in = F.pad(g[:, :, model.input_segments], (0, 0, 0, 1)).transpose(1, 2)  # (cells, slot, R+1)
    table.view(cells, 2, n_in, nf, r + 1).addcmul_(local[None, :, :, :, None],
                                                     g_in[:, None, :, None, :])
    table = table.view(cells, -1, nf, r + 1)
    table[..., r] = spike.T
    return table, gu


def filter_rows(xp: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """xp (..., T, F, R), filters (F, K) -> (..., R, T) = sum_f phi_f * xp[..., f, :] (causal,
    zeros before t = 0), by FFT along time, summing over f before the inverse transform."""
    t, k = xp.shape[-3], filters.shape[-1]
    if xp.shape[-1] == 0:  # no rows (e.g. no LFP asked for): MKL refuses empty transforms
        return xp.new_zeros(*xp.shape[:-3], 0, t)
    n = fast_fft_length(t + k - 1)
    xf = torch.fft.rfft(xp, n=n, dim=-3)                               # (..., freq, F, R)
    bf = torch.fft.rfft(filters.to(xp.dtype), n=n).T                   # (freq, F)
    y = (xf * bf[:, :, None]).sum(-2)                                  # (..., freq, R)
    return torch.fft.irfft(y, n=n, dim=-2)[..., :t, :].transpose(-1, -2)


def _project(ev: InputEvents | None, xn: torch.Tensor | None, table: torch.Tensor,
             in_mean: torch.Tensor) -> torch.Tensor:
    """table (cells, C, F, R) of ``input_table`` -> (cells, T, F, R): the inputs' weighted
    sum at every bin, event by event from ``ev`` (the counts' nonzeros, table scaled; the
    channel means a constant), else from the dense normalised xn (table not scaled)."""
    cells, c, nf, r = table.shape
    flat = table.reshape(cells, c, nf * r)
    if ev is None:
        return torch.bmm(xn.transpose(1, 2), flat).view(cells, -1, nf, r)
    t = ev.shape[2]
    # each (cell, bin)'s events summed by embedding_bag: no (events x F R) tensor is formed
    out = ev.bin_sums(flat.reshape(cells * c, -1), ev.batch * c + ev.channel)
    out = out.view(cells, t, nf * r) - torch.matmul(in_mean, flat)[:, None, :]
    return out.view(cells, t, nf, r)


def folded_signals(model, x: torch.Tensor | InputEvents, k_summed: torch.Tensor,
                   k_cell: torch.Tensor, v_ref: float = 0.0) -> dict[str, torch.Tensor]:
    """Rows of K (v - v_ref) of the model's voltages for inputs x (counts (cells, C, T), or
    their ``InputEvents``), without forming v: k_summed (cells, Rs, segment) rows summed over
    the cells (a population's LFP), k_cell (cells, Rc, segment) rows of each cell (its
    dipole). Rows that are summed are summed before they are filtered: one set of FFTs for
    the population instead of one per cell.

    Returns ``summed`` (Rs, T), ``rows`` (cells, Rc, T) and ``spike_logit`` (cells, T) as the
    model's forward gives them, and for ``spiking`` its free-running ``spikes``. Gradients
    flow when x is a dense tensor and gradients are enabled (the dense projection is used)."""
    xn, ev = (None, x) if isinstance(x, InputEvents) else model.normalised(x)
    cells, n_sum, n_cell = k_cell.shape[0], k_summed.shape[1], k_cell.shape[1]
    k_rows = torch.cat([k_summed, k_cell], 1)
    g = k_rows * model.v_std[None, None, :]
    spiking = getattr(model, "trunk", None) is not None
    if spiking:  # one more row: the soma's standardised voltage (g = e_soma)
        e = torch.zeros(cells, 1, model.n_segments, dtype=g.dtype, device=g.device)
        e[:, 0, int(model.soma_segment)] = 1.0
        g = torch.cat([g, e], 1)
    table, gu = input_table(model, g, scaled=ev is not None)
    xp = _project(ev, xn, table, model.in_mean)                        # (cells, T, F, R + 1)
    n_all = n_sum + n_cell
    offset = (torch.einsum("crq,q->cr", gu, model.b_latent) + g @ model.b_segment)[:, :n_all]
    offset = offset + k_rows @ (model.v_mean - v_ref)
    summed = filter_rows(xp[..., :n_sum].sum(0), model.filters) + offset[:, :n_sum].sum(0)[:, None]
    rows = filter_rows(xp[..., n_sum:], model.filters)                 # (cells, Rc [+ 1] + 1, T)
    out = rows[:, :n_cell] + offset[:, n_sum:, None]
    score = rows[:, -1] + model.b_spike
    if not spiking:
        return {"summed": summed, "rows": out, "spike_logit": score}
    # the TCN residual (latents dz, spike drive) and the spikes, as SpikingSurrogate does
    h = model.trunk_hidden(xn, ev)
    dz = model.head_z(h)
    summed = summed + torch.einsum("crq,cqt->rt", gu[:, :n_sum], dz)
    out = out + torch.einsum("crq,cqt->crt", gu[:, n_sum:n_all], dz)
    soma_u = gu[0, n_all]                                              # the soma row's U
    vsub = (rows[:, n_cell] + torch.einsum("q,cqt->ct", soma_u, dz + model.b_latent[None, :, None])
            + model.b_segment[int(model.soma_segment)])
    drive = model.spike_drive(vsub, score, h)
    from .spiking import free_run

    _, s = free_run(drive, model.history.detach())
    logit = drive + model.history_term(s)
    gain = float(model.waveform_gain)
    if gain != 0.0:  # free-running spikes add their spike-triggered waveforms (G W)
        gw = torch.einsum("crs,sl->crl", g[:, :n_all], model.waveform).flip(-1)
        lags = F.pad(s, (gw.shape[-1] - 1, 0)).unfold(1, gw.shape[-1], 1)   # (cells, T, L)
        summed = summed + gain * torch.einsum("crl,ctl->rt", gw[:, :n_sum], lags)
        out = out + gain * torch.einsum("crl,ctl->crt", gw[:, n_sum:], lags)
    return {"summed": summed, "rows": out, "spike_logit": logit, "spikes": s}
