"""Exceptions raised by lfpsurrogate. Each names the problem and how to fix it."""


class LfpsurrogateError(Exception):
    """Base class of every error raised on purpose by lfpsurrogate."""


class InputError(LfpsurrogateError, ValueError):
    """Synaptic input, rates or arrays that cannot be used as given."""


class CellLoadError(LfpsurrogateError, ValueError):
    """A cell model (morphology, template, biophysics) that cannot be loaded."""


class MechanismCompileError(LfpsurrogateError, RuntimeError):
    """nrnivmodl failed on a set of .mod files; the message holds the compiler output."""


class MechanismConflictError(LfpsurrogateError, RuntimeError):
    """A mechanism of the same name but different source is already loaded in this process."""


class GeometryError(LfpsurrogateError, ValueError):
    """A CellGeometry bundle that is missing, malformed or does not match."""


class ModelFolderError(LfpsurrogateError, ValueError):
    """A surrogate model folder that is missing files, altered, or for another cell."""
