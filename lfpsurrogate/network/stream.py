"""The spiking surrogate (``nn.spiking``) in streaming form: chunk by chunk, with each
cell's state carried across chunks, batched over all cells of one model.

Why a streaming form: in a network a cell's input at bin t holds the spikes other cells
fired at t - delay, so no cell's input is known in advance beyond the shortest delay. Every
pathway of the model has finite memory, so the state is small and the form exact:

* linear pathway: a causal FIR of the inputs with the K-bin basis phi_f. Each cell needs
  two rows of it: the soma's subthreshold voltage (its latents' share U[soma] z plus its
  own local term) and the spike score. An input count c at bin t adds ``c * Wc[channel]``
  (2 x F) to Y(t); the output is sum_f phi_f * Y_f. Y(t) is pushed through the basis into
  a **future accumulator** of K - 1 bins (the part of the response that falls after the
  chunk; a ring, ``future.FutureSum``). The channel means of the normalisation enter as a
  constant Y at every bin t >= 0, exactly as the one-pass zero-padded filter does. The
  latents' linear part is needed only by the signals, which are sums over cells: it is
  filtered once for the whole network in ``signals.StreamingSignals``, not per cell.
* TCN residual: the 1x1 input projection is evaluated from the events; each causal conv
  keeps the last (kernel - 1) x dilation bins of its input as a **buffer** (zeros before
  t = 0: the one-pass padding), time-major with room for a few chunks (``ConvHistory``).
* spike generator: logit(t) = drive(t) + sum_k h_k s(t - k); the history still owed to the
  next H bins is a **history accumulator**, and the last logit is kept for the upward
  crossing rule of ``free_run`` (the bin before t = 0 counts as below).
* drive's voltage derivative: the last subthreshold soma voltage.

So a chunk costs the same whatever the run's length, and chunked output equals the
one-pass output (``SpikingSurrogate.forward``) up to float rounding (tested for several
chunk sizes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.folded import latent_input_weights, spike_input_weights
from ..nn.linear import InputEvents
from .future import FutureSum


class ConvHistory:
    """One causal conv of the TCN in streaming form, time-major: its input's last
    (kernel - 1) x dilation bins (zeros before t = 0) and the new bins sit in one buffer
    (bins, cells, channels) with room for a few chunks, so a chunk writes only its own
    bins (the kept bins move to the front once the room is used up), and each tap is one
    matrix product on a contiguous slice of the buffer."""

    ROOM = 8  # bins of room beyond the kept ones (grows for longer chunks)

    def __init__(self, conv, n_cells: int, device) -> None:
        self.pad, self.taps, self.dil = conv.left_pad, conv.kernel_size[0], conv.dilation[0]
        self.weight_t = [conv.weight[:, :, j].T.contiguous() for j in range(self.taps)]
        self.bias = conv.bias
        self.buf = torch.zeros(self.pad + self.ROOM, n_cells, conv.in_channels, device=device)
        self.w = self.pad                                    # where the next bin goes

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """x (L, cells, in) -> (L * cells, out): the conv's output at the chunk's bins."""
        L = x.shape[0]
        if self.w + L > self.buf.shape[0]:
            kept = self.buf[self.w - self.pad:self.w].clone()
            if self.pad + L > self.buf.shape[0]:
                self.buf = self.buf.new_zeros(self.pad + max(L, self.ROOM), *self.buf.shape[1:])
            self.buf[:self.pad] = kept
            self.w = self.pad
        self.buf[self.w:self.w + L] = x
        start = self.w - self.pad
        out = None
        for j, wt in enumerate(self.weight_t):
            a = self.buf[start + j * self.dil:start + j * self.dil + L].reshape(-1, wt.shape[0])
            out = torch.addmm(self.bias, a, wt) if out is None else out.addmm_(a, wt)
        self.w += L
        return out


class StreamingSpiking:
    """Streaming state of ``n_cells`` copies of one ``SpikingSurrogate``.

    ``step(cell, channel, time, count, n_bins)`` advances every cell by ``n_bins`` bins
    given that chunk's input events (``time`` relative to the chunk start) and returns
    {``dz`` (cell, rank, bins) the TCN's latent residual, ``spikes`` (cell, bins) 0/1,
    ``logit`` (cell, bins), ``events`` (the chunk's ``InputEvents``, sorted once, for
    ``StreamingSignals.step``)}; the latents are the linear pathway's plus dz.
    """

    def __init__(self, model, n_cells: int) -> None:
        from ..nn.spiking import SpikingSurrogate

        if not isinstance(model, SpikingSurrogate):
            raise TypeError(f"networks need a spiking surrogate; got architecture "
                            f"{getattr(model, 'architecture', type(model).__name__)!r}.")
        self.model = model
        self.n = int(n_cells)
        m = model
        dev = m.filters.device
        self.device = dev
        with torch.no_grad():
            c = m.n_channels
            n_in = c // 2
            filt = m.filters.float()                                   # (F, K)
            nf, k = filt.shape
            rank = m.rank
            # the linear pathway's per-cell rows: the soma's voltage (its latents' share,
            # U[soma] z_lin, plus its own local term) and the spike score; the latents'
            # linear part reaches the signals through StreamingSignals' network-wide FIR
            w_lat = latent_input_weights(m).permute(2, 0, 1)           # (C, rank, F)
            kk = int(m.soma_segment)
            soma_row = torch.einsum("r,crf->cf", m.basis[kk], w_lat)
            slot = int(m.soma_input_slot)
            if slot >= 0:
                a = m.w_local.reshape(n_in, 2, nf)
                soma_row[slot] += a[slot, 0]
                soma_row[n_in + slot] += a[slot, 1]
            score_row = spike_input_weights(m).T                        # (C, F)
            wc = torch.stack([soma_row, score_row], 1) * m.in_scale[:, None, None]  # (C, 2, F)
            self.rows = 2
            self.kern_in = wc.reshape(c, -1).contiguous()
            self.y_mean = -(m.in_mean[:, None] * self.kern_in).sum(0)  # (rows*F,)
            self.bias_lin = torch.stack([m.basis[kk] @ m.b_latent + m.b_segment[kk],
                                         m.b_spike.reshape(())])
            self.filt = filt
            self.nf, self.k = nf, k
            self.rank = rank
            trunk = m.trunk
            if trunk.proj is not None:
                wp = trunk.proj.weight[:, :, 0] * m.in_scale[None]      # (P', C)
                self.proj_in = wp.T.contiguous()
                self.proj_const = trunk.proj.bias - wp @ m.in_mean
            else:
                self.proj_in = None
            self.soma_basis = m.basis[kk].clone()
            self.soma_gain = m.soma_gain.detach().clone()
            self.threshold = float(m.spike_threshold)
            self.history = m.history.detach().float().clone()
        self.convs = [trunk.first] + list(trunk.blocks)
        self.future = FutureSum((self.n, self.rows), k + 1, device=dev)
        self.histories = [ConvHistory(conv, self.n, dev) for conv in self.convs]
        self.prev_vsub = torch.zeros(self.n, device=dev)
        self.prev_logit = torch.full((self.n,), -1.0, device=dev)
        self.hacc = torch.zeros(self.n, self.history.shape[0], device=dev)
        self.t = 0

    @torch.no_grad()
    def step(self, cell: torch.Tensor, channel: torch.Tensor, time: torch.Tensor,
             count: torch.Tensor, n_bins: int) -> dict[str, torch.Tensor]:
        n, L, dev = self.n, int(n_bins), self.device
        cell, channel, time = cell.to(dev), channel.to(dev), time.to(dev)
        count = count.to(dev, torch.float32)
        row = cell * L + time
        ev = InputEvents.from_arrays((n, self.model.n_channels, L), cell, channel, time, count)
        # linear pathway: Y (cell, bin, rows*F) -> through the basis -> future accumulator
        y = self.y_mean + ev.bin_sums(self.kern_in)
        g = (y.reshape(n, L, self.rows, self.nf) @ self.filt)          # (cell, L, rows, K)
        self.future.reserve(L + self.k - 1)
        for t in range(L):
            self.future.add(t, g[:, t])
        lin = self.future.pop(L) + self.bias_lin[None, :, None]
        # TCN residual: input projection from the events, convs with their buffers
        if self.proj_in is not None:
            x = self.proj_const + ev.bin_sums(self.proj_in)
        else:
            m = self.model
            x = torch.zeros(n * L, m.n_channels, device=dev)
            if count.numel():
                x.index_put_((row, channel), count, accumulate=True)
            x = (x - m.in_mean) * m.in_scale
        x = x.view(n, L, -1).transpose(0, 1)                               # (L, cell, in)
        h = None
        for i, hist in enumerate(self.histories):   # time-major: (L * cells, channels)
            out = F.gelu(hist.step(x if i == 0 else h.view(L, n, -1)))
            h = out if i == 0 else h + out
        m = self.model
        dz = torch.addmm(m.head_z.bias, h, m.head_z.weight[:, :, 0].T)    # (L * cell, rank)
        head_drive = torch.addmm(m.head_drive.bias, h, m.head_drive.weight[:, :, 0].T)
        dz = dz.view(L, n, -1).permute(1, 2, 0)                           # (cell, rank, L)
        vsub = lin[:, 0] + torch.einsum("r,nrt->nt", self.soma_basis, dz)
        dv = vsub - torch.cat([self.prev_vsub[:, None], vsub[:, :-1]], 1)
        self.prev_vsub = vsub[:, -1].clone()
        drive = (self.soma_gain[0] * vsub + self.soma_gain[1] * dv + lin[:, 1]
                 + head_drive.view(L, n).T - self.threshold)
        # spike generator, bin by bin over all cells at once
        logit = torch.empty(n, L, device=dev)
        spikes = torch.zeros(n, L, device=dev)
        hist = self.history
        for t in range(L):
            lt = drive[:, t] + self.hacc[:, 0]
            s = (lt >= 0) & (self.prev_logit < 0)
            logit[:, t] = lt
            spikes[:, t] = s.float()
            self.prev_logit = lt
            self.hacc = torch.cat([self.hacc[:, 1:], torch.zeros(n, 1, device=dev)], 1)
            if bool(s.any()):
                self.hacc[s] += hist[None]
        self.t += L
        return {"dz": dz, "spikes": spikes, "logit": logit, "events": ev}
