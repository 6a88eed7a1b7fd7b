"""Memory estimates made before long runs, so that a run too large for the machine is
refused at once with the numbers, instead of failing with a MemoryError minutes later."""
from __future__ import annotations

import os

from .errors import InputError


def available_memory_bytes() -> int | None:
    """Memory this process can still allocate without swapping (Linux ``MemAvailable``,
    else physical pages available), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def population_bytes(n_cells: int, n_segments: int, n_bins: int, n_lfp: int, n_eeg: int,
                     n_meg: int) -> int:
    """A lower bound of the memory ``predict_lfp`` needs for a population: per cell, its
    forward matrices (LFP rows and the dipole's 3 rows over every segment, float64 on the
    host plus float32 on the device; EEG 3 and MEG 9 values per sensor) and its dipole time
    course (3 x n_bins float32)."""
    rows = n_lfp + 3
    per_cell = rows * n_segments * (8 + 8 + 4) + (3 * n_eeg + 9 * n_meg) * (8 + 4) + 3 * n_bins * 4
    return int(n_cells) * per_cell


def check_fits(needed: int, what: str, fix: str, fraction: float = 0.8) -> None:
    """Refuse when ``needed`` bytes exceed ``fraction`` of the available memory."""
    free = available_memory_bytes()
    if free is not None and needed > fraction * free:
        raise InputError(
            f"{what} needs at least {needed / 2**30:.1f} GiB of memory, but {free / 2**30:.1f} "
            f"GiB are available; {fix}")
