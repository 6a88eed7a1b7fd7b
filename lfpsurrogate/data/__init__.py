"""Training data: generation on dask into zarr stores, and streaming them into torch.

``generate_dataset`` (and ``lfpsurrogate dataset generate``) writes a store;
``open_store``/``store_info``/``store_geometry`` read it; ``WindowDataset`` streams random
(sample, time window) pieces of it into PyTorch. See docs/datasets.md.
"""
from __future__ import annotations

from .store import (  # noqa: F401
    DatasetError,
    GenerationParams,
    check_fingerprint,
    data_fingerprint,
    done_mask,
    open_store,
    parse_splits,
    sample_plan,
    split_samples,
    store_geometry,
    store_info,
    store_params,
)


def __getattr__(name):  # lazy: dask and torch are imported only when used
    if name in ("generate_dataset", "GenerationInterrupted"):
        from . import generate

        return getattr(generate, name)
    if name == "WindowDataset":
        from .streaming import WindowDataset

        return WindowDataset
    raise AttributeError(f"module 'lfpsurrogate.data' has no attribute {name!r}")
