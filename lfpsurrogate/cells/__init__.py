"""Detailed NEURON cells: built-in models, Blue Brain folders and users' own cells."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import CellLoadError
from .cell import Cell
from .sources import bbp_spec, mearec_bbp_folder, pyramid_hh_spec, spec_from_yaml, user_spec
from .spec import Discretization

BUILTIN_CELLS = ("l5_ttpc1", "pyramid_hh")

__all__ = ["Cell", "load_cell", "BUILTIN_CELLS", "Discretization"]


def load_cell(
    name_or_path: str | Path = "l5_ttpc1",
    *,
    d_lambda: float = 0.3,
    lambda_f: float = 100.0,
    nsegs_method: str = "lambda_f",
    max_nsegs_length: float | None = None,
    synapses: dict | None = None,
    mod_dir: str | Path | None = None,
    biophysics: Callable | str | Path | None = None,
    template_file: str | Path | None = None,
    template_name: str | None = None,
    template_args: object = None,
    v_init: float | None = None,
    celsius: float | None = None,
    region_of: dict[str, str] | None = None,
) -> Cell:
    """Load a detailed cell model.

    name_or_path: "l5_ttpc1" (Blue Brain L5 TTPC1 from MEArec, the default),
        "pyramid_hh" (NEURON's demo pyramid, pas + hh, fast), the name of any other BBP
        cell MEArec ships (e.g. "L5_MC_bAC217_1"), a BBP-format cell folder, a
        morphology file (.swc/.asc/.hoc) with ``biophysics`` or ``template_file``, or a
        cell file (.yaml) naming those files, so that a user cell is one path that
        ``lfpsurrogate dataset generate --cell`` and the dataset workers can load.
    d_lambda, lambda_f: d_lambda rule (fraction of the AC length constant at lambda_f Hz).
    nsegs_method: "lambda_f", "fixed_length" (with max_nsegs_length µm) or "native".
    synapses: overrides of the synapse parameters (see ``spec.DEFAULT_SYNAPSES``).
    mod_dir: folder of .mod files for a user cell (compiled and cached automatically).
    """
    if nsegs_method not in ("lambda_f", "fixed_length", "native"):
        raise CellLoadError(
            f"nsegs_method={nsegs_method!r}; use 'lambda_f', 'fixed_length' or 'native'."
        )
    if nsegs_method == "fixed_length" and not max_nsegs_length:
        raise CellLoadError("nsegs_method='fixed_length' needs max_nsegs_length (µm).")
    if not d_lambda > 0 or not lambda_f > 0:
        raise CellLoadError("d_lambda and lambda_f must be positive numbers.")
    disc = Discretization(nsegs_method, lambda_f, d_lambda, max_nsegs_length)
    name = str(name_or_path)
    if name == "l5_ttpc1":
        spec = bbp_spec(mearec_bbp_folder("L5_TTPC1_cADpyr232_1"), name="l5_ttpc1")
    elif name == "pyramid_hh":
        spec = pyramid_hh_spec()
    else:
        path = Path(name_or_path).expanduser()
        if path.suffix.lower() in (".yaml", ".yml"):
            spec = spec_from_yaml(path)
        elif path.is_dir():
            spec = bbp_spec(path)
        elif path.exists() or path.suffix:
            spec = user_spec(
                path, mod_dir=mod_dir, biophysics=biophysics, template_name=template_name,
                template_file=template_file, template_args=template_args,
                region_of=region_of,
            )
        else:
            try:
                spec = bbp_spec(mearec_bbp_folder(name))
            except CellLoadError as exc:
                raise CellLoadError(
                    f"unknown cell {name!r}: not a built-in {BUILTIN_CELLS}, not a file or "
                    f"folder, and {exc}"
                ) from None
    if v_init is not None:
        spec.v_init = float(v_init)
    if celsius is not None:
        spec.celsius = float(celsius)
    return Cell(spec, disc, synapses)
