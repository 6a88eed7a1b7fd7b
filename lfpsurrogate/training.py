"""Train a surrogate on dataset stores from a YAML config (what `lfpsurrogate train` runs)."""
from __future__ import annotations

import time
from pathlib import Path


def run_training(config_path: str | Path, out_dir: str | Path, *, resume: bool = False,
                 device: str | None = None, progress: bool = True,
                 data: list[str | Path] | None = None) -> dict:
    """Build the window datasets the config names, train, and return a summary dict.

    data: store path(s) that replace the config's data.train (and data.val). The cell
    geometry and the data fingerprint come from the first training store; every other
    store must hold the same cell (fingerprint check, by name).
    """
    from .data import WindowDataset, data_fingerprint, store_geometry
    from .nn import load_config, train

    cfg = load_config(config_path)
    if data:
        cfg.data.train = [str(d) for d in data]
        cfg.data.val = []
    if not cfg.data.train:
        from .nn import ConfigError

        raise ConfigError(f"{config_path}: data.train lists no dataset store.")
    stores = [Path(s) for s in cfg.data.train]
    geometry = store_geometry(stores[0])
    n_windows = cfg.data.n_windows or None
    train_ds = WindowDataset(stores, split="train", window_ms=cfg.data.window_ms,
                             n_windows=n_windows, seed=cfg.train.seed,
                             expected_fingerprint=geometry)
    val_stores = [Path(s) for s in (cfg.data.val or cfg.data.train)]
    val_ds = WindowDataset(val_stores, split="val", window_ms=cfg.data.window_ms,
                           n_windows=max(8, (n_windows or 64) // 8), seed=cfg.train.seed + 1,
                           expected_fingerprint=geometry)
    lfp_matrix = None
    if cfg.loss.lfp > 0:
        from .forward import forward_model

        lfp_matrix = forward_model(geometry, "laminar-16",
                                   position=(50.0, 0.0, 0.0)).matrices()["lfp"][0]  # (electrode, segment)
    fingerprint = "+".join(data_fingerprint(s) for s in stores)
    t0 = time.perf_counter()
    result = train(cfg, train_ds, val_ds, out_dir, geometry, resume=resume,
                   data_fingerprint=fingerprint, lfp_matrix=lfp_matrix, progress=progress,
                   device=device)
    wall = time.perf_counter() - t0
    return {
        "out_dir": str(out_dir),
        "architecture": cfg.model.architecture,
        "n_parameters": int(result.model.n_parameters()),
        "epochs_run": len(result.history),
        "stopped_early": bool(result.stopped_early),
        "train_wall_s": round(wall, 1),
        "best_checkpoint": str(result.best_path),
        "best_metrics": result.best_metrics,
        "cell_fingerprint": geometry.fingerprint,
        "data_fingerprint": fingerprint,
    }


__all__ = ["run_training"]
