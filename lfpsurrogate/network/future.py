"""The future part of causal FIR responses, kept as a ring of bins and added to in place.

A streaming FIR (``stream.py``, ``signals.py``) adds, for every bin t of a chunk, a
response of K bins starting at t; the part that falls after the chunk must be carried to
the next chunk. Kept in a ring of W >= L + K - 1 bins, a chunk costs its own additions and
reading its L bins back, instead of copying the whole carried state (rows x K per cell)
two or three times per chunk.
"""
from __future__ import annotations

import torch


class FutureSum:
    """Sums owed to the coming bins, shape (*lead, bins): ``add(t, x)`` adds x (*lead, K) to
    bins t..t+K-1 (t counted from the current bin); ``pop(L)`` returns the next L bins' sums
    (*lead, L) and moves on by L bins (those bins start again from zero)."""

    def __init__(self, lead: tuple[int, ...], width: int, device=None) -> None:
        self.buf = torch.zeros(*lead, max(int(width), 1), device=device)
        self.pos = 0

    @property
    def width(self) -> int:
        return self.buf.shape[-1]

    def reserve(self, width: int) -> None:
        """Make room for responses ending ``width`` bins from now (the ring grows, in order)."""
        if width <= self.width:
            return
        ordered = torch.cat([self.buf[..., self.pos:], self.buf[..., :self.pos]], -1)
        self.buf = torch.nn.functional.pad(ordered, (0, width - self.width))
        self.pos = 0

    def add(self, t: int, x: torch.Tensor) -> None:
        k = x.shape[-1]
        if t + k > self.width:
            raise ValueError(f"a response of {k} bins from bin {t} needs reserve({t + k}) first")
        start = (self.pos + t) % self.width
        first = min(k, self.width - start)
        self.buf[..., start:start + first] += x[..., :first]
        if first < k:
            self.buf[..., :k - first] += x[..., first:]

    def pop(self, n_bins: int) -> torch.Tensor:
        end = self.pos + n_bins
        if end <= self.width:
            out = self.buf[..., self.pos:end].clone()
            self.buf[..., self.pos:end] = 0.0
        else:
            wrap = end - self.width
            out = torch.cat([self.buf[..., self.pos:], self.buf[..., :wrap]], -1)
            self.buf[..., self.pos:] = 0.0
            self.buf[..., :wrap] = 0.0
        self.pos = end % self.width
        return out
