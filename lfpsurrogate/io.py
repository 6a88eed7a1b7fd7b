"""Atomic writes of result files: a crash never leaves a half-written file in place."""
from __future__ import annotations

import os
from pathlib import Path

import xarray as xr


NETCDF_SUFFIXES = (".nc", ".nc4", ".h5", ".hdf5")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_suffix(path: str | Path, suffixes: tuple[str, ...], what: str, option: str) -> Path:
    """Refuse an output path whose suffix does not match what is written there (before
    any work is done): e.g. ``--out x.csv`` for a netCDF file."""
    from .errors import InputError

    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"{option} {path}: {what} is written there, but the name ends in "
            f"{path.suffix or 'no suffix'!r}; use one of {', '.join(suffixes)} "
            f"(e.g. {path.with_suffix(suffixes[0]).name}).")
    return path


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` (netCDF4 via h5netcdf) through a temporary file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    return path
