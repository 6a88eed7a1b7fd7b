"""Networks of surrogate cells driving each other, with their LFP, EEG and MEG.

``Network`` (``network.py``) is the public entry; the spec and its checks (``spec.py``),
cells, placement and connectivity (``build.py``), external drives as events (``drives.py``),
the streaming form of the spiking surrogate (``stream.py``), the network's signals
(``signals.py``), the two engines (``engine_surrogate.py``, ``engine_neuron.py``), spike
statistics (``stats.py``) and the command line (``cli.py``) each own one idea.
"""
from .network import Network  # noqa: F401
from .spec import load_spec, to_yaml  # noqa: F401

EXAMPLE_SPEC = __import__("pathlib").Path(__file__).parent / "examples" / "l5_recurrent.yaml"
