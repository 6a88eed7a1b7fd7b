"""lfpsurrogate: fast LFP, EEG and MEG from neural-network surrogates of detailed neurons."""
from __future__ import annotations

__version__ = "0.1.0"

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


def __getattr__(name):  # lazy: keeps `import lfpsurrogate` light
    if name == "load_probe":
        from .probes import load_probe

        return load_probe
    if name in ("predict_lfp", "load_model"):
        from . import predict

        return getattr(predict, name)
    if name == "forward_model":
        from .forward import forward_model

        return forward_model
    raise AttributeError(f"module 'lfpsurrogate' has no attribute {name!r}")
