"""LFP, current dipole, EEG and MEG of a network: the sum over cells of each cell's signal
through its own placed geometry.

For cell i with composed forward rows K_i (LFP electrodes and the three dipole components,
per mV: ``ForwardModel.matrices(of="voltages")``, so K_i = K_lfp,i M and P_i M) and the
surrogate's readout v_i = v_mean + D (U z_i + b + scatter(local_i)) + D W * s_i:

    signal(t) = sum_i K_i D U dz_i(t)                       (TCN residual, rank per cell)
              + sum_f phi_f * [ sum_events c K_i D U Wlat_f[ch] ](t)  (latents' linear part)
              + sum_f phi_f * [ sum_events c K_i D[:, seg] A_f ](t)   (local terms)
              + sum_i K_i (v_mean - v_ref + D (b + U b_latent))        (a constant)
              + sum_i sum_k K_i D W[:, k] s_i(t - k)       (spike waveforms, if added)

The latents' linear part and the local terms are causal FIRs (basis phi_f) of each cell's
own inputs; since everything is linear, an input event adds its (rows x F) coefficients to
one network-wide Y(t) and one FIR of Y gives both parts of every signal: no per-segment
state and no per-cell FIR state is kept (the spiking cells filter only the two rows their
spikes need, ``stream.py``). The matrices come from ``forward_model``
(lfpykit line sources, ``CurrentDipoleMoment``) in batches of cells. EEG and MEG are
``FourSphereVolumeConductor`` / the MEG model of the sensor set applied to the network's
summed dipole placed at the mean soma position (``eeg_dipoles="summed"``), as
``predict_lfp`` does for populations.
"""
from __future__ import annotations

import numpy as np
import torch

from ..nn.folded import latent_input_weights
from ..nn.linear import InputEvents
from .future import FutureSum

BATCH = 256  # cells per forward_model call (bounds the float64 matrices held at once)


def cell_rows(geometry, probe, positions, rotations) -> np.ndarray:
    """(cells, electrodes + 3, segments) forward rows per mV (LFP rows, then dipole x, y, z)."""
    from .. import forward as fwdmod

    out = []
    for b in range(0, len(positions), BATCH):
        sl = slice(b, b + BATCH)
        fwd = fwdmod.forward_model(geometry, {"lfp": probe} if probe is not None else None,
                                   signals=("lfp", "dipole") if probe is not None else ("dipole",),
                                   position=positions[sl], rotation=rotations[sl])
        mats = fwd.matrices(of="voltages")
        parts = ([mats["lfp"]] if probe is not None else []) + [mats["dipole"]]
        out.append(np.concatenate(parts, axis=1).astype(np.float32))
        fwdmod._CACHE.data.pop(fwd._key, None)  # one-off matrices: do not keep them cached
    return np.concatenate(out)


class StreamingSignals:
    """The signals of one group of cells (one model), chunk by chunk (module docstring)."""

    def __init__(self, model, geometry, probe, positions, rotations, keep_rows: bool = False):
        m = model
        dev = m.filters.device
        self.device = dev
        rows = torch.from_numpy(cell_rows(geometry, probe, positions, rotations)).to(dev)
        self.n_rows = rows.shape[1]
        with torch.no_grad():
            d = m.v_std.float()
            v_ref = float(m.v_mean.mean())
            rd = rows * d[None, None]                                    # (N, rows, S)
            self.lz = torch.einsum("nes,sr->ner", rd, m.basis)          # (N, rows, rank)
            seg = m.input_segments
            lloc = rd[:, :, seg]                                         # (N, rows, n_in)
            # one row per (cell, input slot): what an event of that slot adds, per signal row
            self.lloc_rows = lloc.transpose(1, 2).reshape(-1, lloc.shape[1]).contiguous()
            self.n_in = lloc.shape[2]
            mean = m.v_mean - v_ref + d * m.b_segment
            self.offset = torch.einsum("nes,s->e", rows, mean)           # (rows,)
            gain = float(getattr(m, "waveform_gain", 0.0))
            self.lw = (torch.einsum("nes,sk->nek", rd, m.waveform) * gain
                       if gain != 0 else None)                          # (N, rows, Lw)
            n_in = seg.numel()
            nf = m.filters.shape[0]
            a = m.w_local.reshape(n_in, 2, nf)
            coef = torch.cat([a[:, 0], a[:, 1]]) * m.in_scale[:, None]  # (C, F)
            self.coef = coef
            self.slot = torch.arange(2 * n_in, device=dev) % n_in
            lsum = lloc.sum(0)                                           # (rows, n_in)
            self.y_mean = -(lsum[:, self.slot] @ (m.in_mean[:, None] * coef))  # (rows, F)
            # the latents' linear part: each input count adds its channel's (rank x F)
            # weights to its cell's Y; the network-wide Y is sum over cells of lz Y
            w_lat = latent_input_weights(m).permute(2, 0, 1)            # (C, rank, F)
            self.kern_lat = (w_lat * m.in_scale[:, None, None]).reshape(w_lat.shape[0], -1)
            lz_sum = self.lz.sum(0)                                      # (rows, rank)
            lat_mean = -(m.in_mean[:, None] * self.kern_lat).sum(0).reshape(m.rank, nf)
            self.y_mean = self.y_mean + lz_sum @ lat_mean
            self.offset = self.offset + lz_sum @ m.b_latent
            self.rank, self.nf = m.rank, nf
            self.filt = m.filters.float()
        self.k = self.filt.shape[1]
        self.future = FutureSum((self.n_rows,), self.k + 1, device=dev)
        lw = 0 if self.lw is None else self.lw.shape[-1]
        self.wfuture = FutureSum((self.n_rows,), lw + 1, device=dev)
        self.rows = rows if keep_rows else None
        self.v_ref = v_ref

    @torch.no_grad()
    def step(self, dz, spikes, events: InputEvents) -> torch.Tensor:
        """(rows, bins) signal of this chunk: dz (cells, rank, L) the TCN's latent residual,
        spikes (cells, L), the chunk's input events (``StreamingSpiking.step``'s, time in
        chunk; ordered by cell and bin)."""
        dev = self.device
        n, _, L = dz.shape
        out = torch.einsum("ner,nrt->et", self.lz, dz) + self.offset[:, None]
        # linear parts, network-wide Y (L, rows, F) -> FIR with the basis: the local terms
        # (each event adds its slot's rows x F) and the latents (each cell's own Y, mixed
        # into the rows by its lz)
        y = self.y_mean.expand(L, -1, -1).clone()
        if events.count.numel():
            cell, channel, time = events.batch.to(dev), events.channel.to(dev), events.time.to(dev)
            cnt = events.count.to(dev, torch.float32)
            w = self.lloc_rows.index_select(0, cell * self.n_in + self.slot[channel])  # (ev, rows)
            c = self.coef.index_select(0, channel) * cnt[:, None]                        # (ev, F)
            for t in range(L):  # each bin's events: one (rows x events) @ (events x F) product
                at = (time == t).nonzero()[:, 0]
                y[t] += w.index_select(0, at).T @ c.index_select(0, at)
            y_cell = events.bin_sums(self.kern_lat)                       # (cell * L, rank*F)
            y += torch.einsum("nsq,nlqf->lsf", self.lz, y_cell.view(n, L, self.rank, self.nf))
        g = y @ self.filt                                                  # (L, rows, K)
        self.future.reserve(L + self.k - 1)
        for t in range(L):
            self.future.add(t, g[t])
        out = out + self.future.pop(L)
        if self.lw is not None:
            self.wfuture.reserve(L + self.lw.shape[-1] - 1)
            for t in range(L):
                on = spikes[:, t].nonzero()[:, 0]
                if on.numel():
                    self.wfuture.add(t, self.lw[on].sum(0))
            out = out + self.wfuture.pop(L)
        return out

    def from_voltages(self, v: np.ndarray) -> np.ndarray:
        """(rows, T) signal of voltages v (cells, segments, T) in mV (needs keep_rows)."""
        rows = self.rows.cpu().double().numpy()
        return np.einsum("nes,nst->et", rows, np.asarray(v, float) - self.v_ref)


def sensor_matrices(geometry, signals, positions, eeg=None, meg=None) -> dict:
    """EEG (sensors, 3) and MEG (sensors, 3, 3) matrices for a dipole at the mean soma
    position, and the forward model that carries their coordinates."""
    from ..forward import forward_model

    probes = {}
    if "eeg" in signals:
        probes["eeg"] = eeg if eeg is not None else "eeg-10-20"
    if "meg" in signals:
        probes["meg"] = meg if meg is not None else "meg-radial"
    fwd = forward_model(geometry, probes or None, signals=("dipole",) + tuple(probes),
                        position=np.asarray(positions).mean(0))
    mats = fwd.matrices()
    return {k: mats[k][0] for k in probes}, fwd
