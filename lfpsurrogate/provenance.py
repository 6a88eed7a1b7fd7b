"""Versions of the packages a result depends on, for provenance attributes."""
from __future__ import annotations

from importlib import metadata

PACKAGES = ("lfpsurrogate", "neuron", "LFPy", "lfpykit", "numpy", "xarray", "torch")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package, or "not installed"."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
