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
    d_lambda: float | None = None,
    lambda_f: float | None = None,
    nsegs_method: str | None = None,
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
    hoc_files: list | None = None,
    biophysics_template: str | None = None,
) -> Cell:
    """Load a detailed cell model.

    name_or_path: "l5_ttpc1" (Blue Brain L5 TTPC1 from MEArec, the default),
        "pyramid_hh" (NEURON's demo pyramid, pas + hh, fast), the name of any other BBP
        cell MEArec ships (e.g. "L5_MC_bAC217_1"), a BBP-format cell folder, a
        morphology file (.swc/.asc/.hoc) with ``biophysics`` or ``template_file``, or a
        cell file (.yaml) naming those files, so that a user cell is one path that
        ``lfpsurrogate dataset generate --cell`` and the dataset workers can load (keys:
        see :func:`lfpsurrogate.cells.sources.spec_from_yaml`).
    d_lambda, lambda_f: d_lambda rule (fraction of the AC length constant at lambda_f Hz);
        default 0.3 at 100 Hz, or the cell file's ``discretization``.
    nsegs_method: "lambda_f" (the d_lambda rule, default), "fixed_length" (with
        max_nsegs_length µm) or "native" (keep the template's own nseg). Arguments given
        here override the cell file's ``discretization``.
    synapses: overrides of the synapse parameters (see ``spec.DEFAULT_SYNAPSES``).
    mod_dir: folder of .mod files for a user cell (compiled and cached automatically).
    template_file, template_name, template_args: a hoc template that builds the cell, and
        the arguments of its ``init`` (a string, number or list of them, e.g. the
        morphology path).
    hoc_files: hoc files loaded in this order before the template.
    biophysics_template: template (in ``hoc_files``) whose ``biophys(cell)`` sets the
        densities; re-run after LFPy re-cuts the sections (default: found by name).
    """
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
                region_of=region_of, hoc_files=hoc_files,
                biophysics_template=biophysics_template,
            )
        else:
            try:
                spec = bbp_spec(mearec_bbp_folder(name))
            except CellLoadError as exc:
                raise CellLoadError(
                    f"unknown cell {name!r}: not a built-in {BUILTIN_CELLS}, not a file or "
                    f"folder, and {exc}"
                ) from None
    disc = _discretization(spec.discretization, d_lambda, lambda_f, nsegs_method, max_nsegs_length)
    if v_init is not None:
        spec.v_init = float(v_init)
    if celsius is not None:
        spec.celsius = float(celsius)
    return Cell(spec, disc, synapses)


def _discretization(from_file: dict, d_lambda, lambda_f, nsegs_method, max_nsegs_length):
    """Discretization from the arguments, else the cell file, else d_lambda 0.3 at 100 Hz."""
    given = {"method": nsegs_method, "d_lambda": d_lambda, "lambda_f": lambda_f,
             "max_nsegs_length": max_nsegs_length}
    merged = {"method": "lambda_f", "d_lambda": 0.3, "lambda_f": 100.0, "max_nsegs_length": None,
              **from_file, **{k: v for k, v in given.items() if v is not None}}
    method = merged["method"]
    if method not in ("lambda_f", "fixed_length", "native"):
        raise CellLoadError(
            f"nsegs_method={method!r}; use 'lambda_f', 'fixed_length' or 'native'."
        )
    if method == "fixed_length" and not merged["max_nsegs_length"]:
        raise CellLoadError("nsegs_method='fixed_length' needs max_nsegs_length (µm).")
    if not merged["d_lambda"] > 0 or not merged["lambda_f"] > 0:
        raise CellLoadError("d_lambda and lambda_f must be positive numbers.")
    return Discretization(method, float(merged["lambda_f"]), float(merged["d_lambda"]),
                          merged["max_nsegs_length"])
