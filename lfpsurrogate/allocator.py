"""Keep freed memory in the process, so that repeated surrogate calls stop page-faulting.

A ``predict_lfp`` call on CPU allocates and frees tensors of tens of MB (a batch's
activations, FFT buffers, per-cell input tables). glibc's malloc returns such memory to the
operating system when it is freed (``munmap``, or trimming the heap), so the next tensor of
the same size is faulted in again page by page. PyTorch's CPU performance guide recommends
another allocator (jemalloc, tcmalloc) for this; with glibc the same effect comes from two
``mallopt`` settings, which this module applies on request. Measured on a 2-core CPU
(docs/performance.md): 100 cells x 1 s from events 0.97-1.43x over four alternating pairs
(three of them >= 1.2x), one cell x 10 s 0.97-1.33x; the process keeps up to ``max_mb`` of
freed memory for later allocations.
"""
from __future__ import annotations

import ctypes
import operator

M_TRIM_THRESHOLD = -1   # glibc malloc.h: free memory at the top of the heap kept up to this
M_MMAP_THRESHOLD = -3   # glibc malloc.h: allocations from this size get their own mmap
MMAP_THRESHOLD_MAX = 32 * 2**20  # the largest value glibc accepts on 64-bit systems

_applied: dict | None = None


def retain_freed_memory(max_mb: int = 1024) -> dict | None:
    """Make glibc's malloc serve allocations up to 32 MB from the heap and keep up to
    ``max_mb`` MB of freed heap memory instead of returning it to the operating system.

    Process-wide and not undone (glibc has no call to restore its adaptive defaults): call it
    once, in a process that runs the surrogate repeatedly (the ``lfpsurrogate`` command does).
    Returns the settings applied, or None where the C library is not glibc (nothing changed)
    or glibc refused a value (then the allocation threshold alone may be in effect).
    """
    global _applied
    given = max_mb
    try:
        if isinstance(max_mb, bool):
            raise TypeError
        max_mb = operator.index(max_mb)  # int or numpy integer
    except TypeError:
        max_mb = None
    if max_mb is None or not 64 <= max_mb <= 2047:
        from .errors import InputError
        raise InputError(f"max_mb={given!r}: give a whole number of MB from 64 to 2047 "
                         "(glibc takes the threshold as a C int of bytes).")
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's name (find_library would run ldconfig)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl and others have other knobs
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = max_mb * 2**20
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD, trim)):
        return None
    _applied = {"mmap_threshold_bytes": MMAP_THRESHOLD_MAX, "trim_threshold_bytes": trim}
    return dict(_applied)


def allocator_settings() -> dict | None:
    """The settings ``retain_freed_memory`` applied in this process (None: glibc's defaults)."""
    return None if _applied is None else dict(_applied)
