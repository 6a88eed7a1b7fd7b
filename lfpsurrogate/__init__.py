"""lfpsurrogate: fast LFP, EEG and MEG from neural-network surrogates of detailed neurons."""
from __future__ import annotations

__version__ = "0.2.0"

from .errors import (  # noqa: F401
    CellLoadError,
    GeometryError,
    InputError,
    LfpsurrogateError,
    MechanismCompileError,
    MechanismConflictError,
)
from .geometry import CellGeometry  # noqa: F401
from .cells import Cell, load_cell  # noqa: F401  (NEURON is imported only when a cell is built)
from .inputs import poisson_inputs  # noqa: F401
from .simulate import simulate  # noqa: F401
from .allocator import retain_freed_memory  # noqa: F401  (ctypes only: light)


_LAZY = ("load_probe", "predict_lfp", "load_model", "forward_model", "to_mne", "Network")


def __dir__():  # the lazy names too, so that tab completion finds them
    return sorted(set(globals()) | set(_LAZY))


def __getattr__(name):  # lazy: keeps `import lfpsurrogate` light
    if name == "load_probe":
        from .probes import load_probe

        return load_probe
    if name in ("predict_lfp", "load_model"):
        from . import predict

        return getattr(predict, name)
    if name == "to_mne":
        from .mne_export import to_mne

        return to_mne
    if name == "Network":
        from .network import Network

        return Network
    if name == "forward_model":
        from .forward import forward_model

        return forward_model
    raise AttributeError(f"module 'lfpsurrogate' has no attribute {name!r}")
