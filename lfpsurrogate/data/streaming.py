"""Stream random (sample, time window) pieces of dataset stores into PyTorch.

Nothing is loaded up front: ``__init__`` reads only attributes and the ``done``/``split``
flags; every item reads its window straight from the zarr chunks. Each process opens its
own handles on first use, so DataLoader workers (fork or spawn) never share one.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..geometry import CellGeometry
from .store import DatasetError, check_fingerprint, split_samples, store_params


class WindowDataset(torch.utils.data.Dataset):
    """Random windows of the done samples of one split of one or more stores.

    stores: a store path or a list of them; all must hold the same cell (fingerprint).
    split: "train", "val", "test" or "shift". window_ms: window length (ms).
    n_windows: items per epoch (default: as many as non-overlapping windows fit).
    seed: item ``i`` is always the same window for the same seed (call ``set_epoch`` to
    draw other windows). expected_fingerprint: fingerprint or CellGeometry the model
    expects; stores of any other cell are refused by name.

    Items are dicts of tensors: ``inputs`` float32 (channel, window) spike counts,
    ``v`` float32 (segment, window) mV, ``spikes`` float32 (window) somatic spikes per bin,
    and int64 ``store``, ``sample``, ``start`` (first bin of the window).
    """

    def __init__(
        self,
        stores: str | Path | list[str | Path],
        split: str = "train",
        window_ms: float = 100.0,
        *,
        n_windows: int | None = None,
        seed: int = 0,
        expected_fingerprint: str | CellGeometry | None = None,
    ) -> None:
        paths = [Path(stores)] if isinstance(stores, (str, Path)) else [Path(s) for s in stores]
        if not paths:
            raise DatasetError("WindowDataset needs at least one store.")
        expected, source = expected_fingerprint, "the model"
        if expected is None:
            expected = check_fingerprint(paths[0], None)["cell_fingerprint"]
            source = f"store {paths[0]} (the first one given)"
        self.paths = paths
        self.cell_fingerprint = check_fingerprint(paths[0], expected, source)["cell_fingerprint"]
        bins, rows = [], []
        for k, p in enumerate(paths):
            check_fingerprint(p, expected, source)
            params = store_params(p)
            bins.append(params.bin_ms)
            w = int(round(window_ms / params.bin_ms))
            if not 1 <= w <= params.n_time:
                raise DatasetError(f"window_ms={window_ms} does not fit the {params.duration_ms} ms "
                                   f"samples of {p}; choose 1 bin to {params.duration_ms} ms.")
            for s in split_samples(p, split):
                rows.append((k, int(s), params.n_time))
        if len(set(bins)) > 1:
            raise DatasetError(f"the stores have different time bins {sorted(set(bins))} ms.")
        if not rows:
            raise DatasetError(f"no finished samples of split {split!r} in {[str(p) for p in paths]}; "
                               "generate them first (or finish generation by re-running it).")
        self.split = split
        self.bin_ms = bins[0]
        self.window = int(round(window_ms / self.bin_ms))
        self._rows = np.array(rows, dtype=np.int64)  # (store, sample, n_time)
        self.n_windows = int(n_windows) if n_windows is not None else int(
            (self._rows[:, 2] // self.window).sum())
        self.seed = int(seed)
        self.epoch = 0
        self._handles: list | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.n_windows

    @property
    def n_samples(self) -> int:
        """Finished samples of this split, over all stores."""
        return len(self._rows)

    def samples_per_store(self) -> dict[str, int]:
        """{store path: number of finished samples of this split used}, as counted when the
        dataset was built (a store still being generated may hold more later)."""
        counts = np.bincount(self._rows[:, 0], minlength=len(self.paths))
        return {str(p): int(c) for p, c in zip(self.paths, counts)}

    def set_epoch(self, epoch: int) -> None:
        """Draw another set of windows (same for every process given the same epoch)."""
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[int, int, int]:
        """(store, sample, first bin) of item ``index``: a function of (seed, epoch, index)."""
        if not 0 <= index < self.n_windows:
            raise IndexError(f"index {index} out of range for {self.n_windows} windows")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        store, sample, n_time = self._rows[rng.integers(len(self._rows))]
        start = int(rng.integers(0, n_time - self.window + 1))
        return int(store), int(sample), start

    def _arrays(self, store: int) -> dict:
        if self._handles is None or self._pid != os.getpid():  # first use in this process
            self._handles = [None] * len(self.paths)
            self._pid = os.getpid()
        if self._handles[store] is None:
            import zarr

            g = zarr.open_group(str(self.paths[store]), mode="r")
            self._handles[store] = {k: g[k] for k in ("inputs", "v", "spikes")}
        return self._handles[store]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        store, sample, start = self.locate(index)
        a = self._arrays(store)
        t = slice(start, start + self.window)
        return {
            "inputs": torch.from_numpy(np.asarray(a["inputs"][sample, :, t], dtype=np.float32)),
            "v": torch.from_numpy(np.asarray(a["v"][sample, :, t], dtype=np.float32)),
            "spikes": torch.from_numpy(np.asarray(a["spikes"][sample, t], dtype=np.float32)),
            "store": torch.tensor(store), "sample": torch.tensor(sample),
            "start": torch.tensor(start),
        }

    def whole_samples(self, limit: int | None = None, seed: int = 0):
        """Yield whole samples of this split (dicts of numpy ``inputs`` (channel, T),
        ``v`` (segment, T), ``spikes`` (T,)), at most ``limit`` of them, drawn at random
        (seeded) when there are more; for closed-form fits that need every lag."""
        rows = self._rows
        if limit and limit < len(rows):
            pick = np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
            rows = rows[np.sort(pick)]
        for store, sample, _ in rows:
            a = self._arrays(int(store))
            yield {"inputs": np.asarray(a["inputs"][int(sample)], dtype=np.float32),
                   "v": np.asarray(a["v"][int(sample)], dtype=np.float32),
                   "spikes": np.asarray(a["spikes"][int(sample)], dtype=np.float32)}

    def __getstate__(self) -> dict:  # handles are per process: never pickled
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = None, None
        return state
