"""Where cell models come from: built-in names, Blue Brain folders, user files."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path
from typing import Callable

from ..errors import CellLoadError
from .mechanisms import cache_dir, mechanism_names
from .spec import DEFAULT_SYNAPSES, CellSpec

BBP_LICENCE = (
    "Blue Brain Project cell model, CC-BY-NC-SA 4.0 "
    "(https://creativecommons.org/licenses/by-nc-sa/4.0/); read from the installed MEArec "
    "package, not redistributed by lfpsurrogate"
)
MORPHOLOGY_SUFFIXES = (".swc", ".asc", ".hoc", ".nrn")


def own_synapse_mod_files() -> list[Path]:
    """lfpsurrogate's own NMODL files (the excitatory AMPA+NMDA synapse)."""
    return sorted((Path(__file__).parent / "mod").glob("*.mod"))


def mearec_bbp_folder(name: str) -> Path:
    """Folder of a Blue Brain cell shipped inside the installed MEArec package. The package
    is located, not imported: only its files are read, and importing MEArec costs about 2 s
    (it loads its recording generators and plotting)."""
    try:
        spec = importlib.util.find_spec("MEArec")
    except (ImportError, ValueError):  # ValueError: a MEArec module without a spec
        spec = None
    if spec is None:
        raise CellLoadError(
            f"cell {name!r} is read from the MEArec package, which is not installed: "
            "pip install MEArec"
        )
    if not spec.submodule_search_locations:
        raise CellLoadError(
            f"cell {name!r} is read from the MEArec package, but 'MEArec' resolves to "
            f"{spec.origin}, a module, not the package: rename that file or reinstall MEArec "
            "(pip install --force-reinstall MEArec)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "cell_models" / "bbp" / name
    if not folder.is_dir():
        available = (sorted(p.name for p in folder.parent.iterdir() if p.is_dir())
                     if folder.parent.is_dir() else [])
        raise CellLoadError(f"MEArec has no BBP cell {name!r}; available: {available}")
    return folder


def pyramid_hh_spec() -> CellSpec:
    """The reconstructed pyramidal cell shipped with NEURON (demo/pyramid.nrn), pas + hh."""
    import neuron

    path = Path(neuron.__file__).parent / ".data" / "share" / "nrn" / "demo" / "pyramid.nrn"
    if not path.is_file():
        hits = list(Path(neuron.__file__).parent.rglob("pyramid.nrn"))
        if not hits:
            raise CellLoadError("pyramid.nrn not found in the installed NEURON wheel.")
        path = hits[0]
    return CellSpec(
        name="pyramid_hh",
        kind="morphology",
        morphology=path,
        biophysics=pyramid_hh_biophysics,
        v_init=-65.0,
        celsius=6.3,
        # dendrite_1 is the apical tree of this reconstruction (it reaches 870 µm), the
        # other seven trees are basal.
        region_of={"dendrite_1": "apical", "dendrite_": "basal"},
        # 123 input slots instead of ~560 and a large soma: 1.2 nS per excitatory event
        # gives 2-30 Hz somatic firing under the default Poisson protocols
        synapse_defaults={"exc_weight_uS": 0.0012},
    )


def pyramid_hh_biophysics(cell) -> None:
    """Passive dendrites and Hodgkin-Huxley soma with textbook parameters.

    Ra 150 Ohm cm, cm 1 µF/cm², g_pas 1/(20 kOhm cm²) with e_pas -65 mV everywhere;
    hh (Hodgkin & Huxley 1952 squid values, NEURON's built-in) in the soma and, at a
    tenth of its density, in the dendrites so that dendrites are weakly active.
    """
    for sec in cell.allseclist:
        sec.Ra = 150.0
        sec.cm = 1.0
        sec.insert("pas")
        sec.insert("hh")
        for seg in sec:
            seg.pas.g = 5e-5
            seg.pas.e = -65.0
            if "soma" in sec.name():
                seg.hh.gnabar, seg.hh.gkbar, seg.hh.gl = 0.12, 0.036, 0.0
            else:
                seg.hh.gnabar, seg.hh.gkbar, seg.hh.gl = 0.012, 0.0036, 0.0


def _template_names(path: Path) -> list[str]:
    return re.findall(r"^\s*begintemplate\s+(\w+)", path.read_text(errors="replace"), re.M)


def bbp_spec(folder: Path, name: str | None = None) -> CellSpec:
    """A Blue Brain cell folder (template.hoc, biophysics.hoc, morphology/, mechanisms/)."""
    folder = Path(folder)
    needed = ["template.hoc", "biophysics.hoc", "morphology.hoc", "morphology", "mechanisms"]
    missing = [n for n in needed if not (folder / n).exists()]
    if missing:
        raise CellLoadError(f"{folder} is not a BBP cell folder: missing {missing}.")
    morph = sorted((folder / "morphology").glob("*.asc")) + sorted(
        (folder / "morphology").glob("*.swc")
    )
    if not morph:
        raise CellLoadError(f"{folder}/morphology holds no .asc or .swc morphology file.")
    # the synapse .mod files (ProbAMPANMDA_EMS, ProbGABAAB_EMS) do not compile on NEURON 9;
    # leave out every .mod whose mechanism is only used by synapses/synapses.hoc
    syn_hoc = folder / "synapses" / "synapses.hoc"
    syn_text = syn_hoc.read_text(errors="replace") if syn_hoc.exists() else ""
    mods = [
        f
        for f in sorted((folder / "mechanisms").glob("*.mod"))
        if not any(re.search(rf"\bnew\s+{n}\s*\(", syn_text) for n in mechanism_names(f))
    ]
    template_names = _template_names(folder / "template.hoc")
    if not template_names:
        raise CellLoadError(f"{folder}/template.hoc defines no template.")
    celsius = 34.0
    constants = folder / "constants.hoc"
    if constants.exists():
        m = re.search(r"^\s*celsius\s*=\s*([0-9.]+)", constants.read_text(), re.M)
        if m:
            celsius = float(m.group(1))
    return CellSpec(
        name=name or folder.name,
        kind="bbp",
        morphology=morph[0],
        mod_files=mods,
        template_file=folder / "template.hoc",
        template_name=template_names[-1],
        template_args=0,
        folder=folder,
        v_init=-70.0,
        celsius=celsius,
        licence=BBP_LICENCE,
    )


def stage_bbp_folder(spec: CellSpec) -> Path:
    """A cache folder that mirrors a BBP cell folder (symlinks) but replaces
    synapses/synapses.hoc by a no-op template of the same name, so that hoc can load the
    template without the synapse mechanisms. Returns the staged folder."""
    folder = Path(spec.folder)
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    stage = cache_dir() / "cells" / f"{folder.name}-{digest}"
    (stage / "synapses").mkdir(parents=True, exist_ok=True)
    for item in ("morphology", "morphology.hoc", "biophysics.hoc", "template.hoc"):
        link = stage / item
        if not link.exists():
            try:
                link.symlink_to(folder / item)
            except FileExistsError:
                pass
    syn = folder / "synapses" / "synapses.hoc"
    names = _template_names(syn) if syn.exists() else []
    body = "".join(
        f"begintemplate {n}\npublic load_synapses\nproc load_synapses() {{ }}\nendtemplate {n}\n"
        for n in names
    )
    target = stage / "synapses" / "synapses.hoc"
    if not target.exists() or target.read_text() != body:
        # a temporary name of this process's own: several processes (dask workers) may
        # stage the same cell at once, and each rename must find its own file
        tmp = target.with_name(f"synapses.{os.getpid()}.tmp")
        tmp.write_text(body)
        tmp.replace(target)
    return stage


def user_spec(
    path: Path,
    mod_dir: str | Path | None = None,
    biophysics: Callable | str | Path | None = None,
    template_name: str | None = None,
    template_file: str | Path | None = None,
    template_args: object = None,
    name: str | None = None,
    v_init: float = -70.0,
    celsius: float = 34.0,
    region_of: dict[str, str] | None = None,
    hoc_files: list | None = None,
    biophysics_template: str | None = None,
) -> CellSpec:
    """A user's cell: morphology file + optional .mod folder + biophysics.

    biophysics: a Python function ``f(lfpy_cell)`` applied to the sections, or a hoc file
    of statements (``forall { insert pas ... }``); or give ``template_file`` and
    ``template_name`` for a hoc template that builds the cell (LFPy.TemplateCell), with
    ``template_args`` (e.g. the morphology path) passed to its ``init``.
    hoc_files: hoc files loaded in this order before the template (e.g. a biophysics file
    that defines a template the cell template instantiates). With a template, a
    ``biophysics`` hoc file that defines templates is loaded before the template too.
    biophysics_template: the hoc template (in ``hoc_files``) whose ``biophys(cell)`` sets
    the channel densities; re-run after LFPy re-cuts the sections so that
    distance-dependent densities are evaluated at the final segments. Default: the one
    template of ``hoc_files`` that declares ``public biophys``.
    """
    path = Path(path)
    if not path.is_file():
        raise CellLoadError(f"morphology file {path} does not exist or is not a file.")
    if path.suffix.lower() not in MORPHOLOGY_SUFFIXES:
        raise CellLoadError(
            f"morphology {path} has suffix {path.suffix!r}; use one of {MORPHOLOGY_SUFFIXES}."
        )
    try:
        path.read_bytes()[:1]
    except OSError as exc:
        raise CellLoadError(f"morphology file {path} is not readable: {exc}") from exc
    mods: list[Path] = []
    if mod_dir is not None:
        mod_dir = Path(mod_dir)
        if not mod_dir.is_dir():
            raise CellLoadError(f"mechanism folder {mod_dir} does not exist.")
        mods = sorted(mod_dir.glob("*.mod"))
        if not mods:
            raise CellLoadError(f"mechanism folder {mod_dir} holds no .mod files.")
    if isinstance(biophysics, (str, Path)):
        biophysics = Path(biophysics)
        if not biophysics.is_file():
            raise CellLoadError(f"biophysics file {biophysics} does not exist.")
    if template_file is not None:
        template_file = Path(template_file)
        if not template_file.is_file():
            raise CellLoadError(f"template file {template_file} does not exist.")
        if template_name is None:
            names = _template_names(template_file)
            if not names:
                raise CellLoadError(f"{template_file} defines no template.")
            template_name = names[-1]
    pre: list[Path] = []
    for f in hoc_files or []:
        f = Path(f)
        if not f.is_file():
            raise CellLoadError(f"hoc file {f} (hoc_files) does not exist.")
        pre.append(f)
    if template_file is None and pre:
        raise CellLoadError(
            f"cell {path.name}: hoc_files are loaded before a hoc template; give "
            "template_file= too, or put hoc statements in biophysics=.")
    if (template_file is not None and isinstance(biophysics, Path)
            and _template_names(biophysics)):
        # a biophysics file that defines templates is what the cell template instantiates:
        # it must exist before the template's init runs
        if biophysics not in pre:
            pre.append(biophysics)
        biophysics = None
    if template_file is not None:
        biophysics_template = _biophysics_template(pre, biophysics_template, path.name)
    elif biophysics_template is not None:
        raise CellLoadError(f"cell {path.name}: biophysics_template needs template_file= too.")
    if biophysics is None and template_file is None:
        raise CellLoadError(
            f"cell {path.name}: give biophysics= (a Python function or a hoc file) or "
            "template_file= (a hoc template); a bare morphology has no membrane mechanisms."
        )
    return CellSpec(
        name=name or path.stem,
        kind="hoc_template" if template_file is not None else "morphology",
        morphology=path,
        mod_files=mods,
        biophysics=biophysics,
        template_file=template_file,
        template_name=template_name,
        template_args=template_args,
        v_init=v_init,
        celsius=celsius,
        region_of=dict(region_of or {}),
        hoc_files=pre,
        biophysics_template=biophysics_template,
    )


def _public_procs(path: Path, template: str) -> set[str]:
    """Names declared ``public`` inside ``begintemplate template ... endtemplate``."""
    text = path.read_text(errors="replace")
    m = re.search(rf"^\s*begintemplate\s+{template}\b(.*?)^\s*endtemplate\s+{template}\b",
                  text, re.M | re.S)
    if not m:
        return set()
    names: set[str] = set()
    for line in re.findall(r"^\s*public\s+(.+)$", m.group(1), re.M):
        names.update(n.strip() for n in line.split("//")[0].split(",") if n.strip())
    return names


def _biophysics_template(hoc_files: list[Path], given: str | None, cell: str) -> str | None:
    """The template of ``hoc_files`` whose public ``biophys(cell)`` sets the densities."""
    found = {n: f for f in hoc_files for n in _template_names(f) if "biophys" in _public_procs(f, n)}
    if given is not None:
        defined = {n for f in hoc_files for n in _template_names(f)}
        if given not in defined:
            raise CellLoadError(
                f"cell {cell}: biophysics_template {given!r} is not defined in the hoc files "
                f"{[str(f) for f in hoc_files]} (they define {sorted(defined)}).")
        if given not in found:
            raise CellLoadError(
                f"cell {cell}: template {given!r} declares no public proc 'biophys'; "
                "lfpsurrogate calls new T().biophys(cell) to set the densities.")
        return given
    if len(found) > 1:
        raise CellLoadError(
            f"cell {cell}: several hoc templates have a public biophys {sorted(found)}; "
            "name the one that sets the densities with biophysics_template.")
    return next(iter(found), None)


CELL_FILE_KEYS = {"name", "morphology", "mod_dir", "biophysics", "template_file", "template_name",
                  "template_args", "hoc_files", "biophysics_template", "discretization",
                  "synapses", "v_init", "celsius", "region_of"}
DISCRETIZATION_METHODS = {"d_lambda": "lambda_f", "lambda_f": "lambda_f",
                          "fixed_length": "fixed_length", "native": "native"}


def spec_from_yaml(path: Path) -> CellSpec:
    """A user cell described by a YAML file (paths relative to the file)::

        name: my_cell
        morphology: cell.swc          # .swc, .asc or .hoc
        mod_dir: mechanisms           # optional folder of .mod files
        biophysics: biophys.hoc       # hoc statements, or give template_file (+ template_name)
        v_init: -65                   # mV
        celsius: 34
        region_of: {dend_11: apical}  # optional section-name prefix -> region

    A cell built by a hoc template::

        morphology: cell.asc
        hoc_files: [biophys.hoc]      # loaded in this order before the template
        template_file: template.hoc
        template_name: MyCell         # default: the last template of template_file
        template_args: [cell.asc]     # passed to init(); strings naming a file here become paths
        biophysics_template: MyBiophys  # default: the hoc_files template with public biophys
        discretization: d_lambda      # or native (the template's own nseg), fixed_length,
                                      # or a mapping {method: d_lambda, d_lambda: 0.1, lambda_f: 100}
        synapses: {exc_weight_uS: 0.001, inh_weight_uS: 0.002}  # any key of DEFAULT_SYNAPSES

    Python biophysics functions cannot be given this way (a cell file never runs Python).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CellLoadError(f"cell file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CellLoadError(f"cell file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CellLoadError(f"cell file {path} must be a mapping of keys {sorted(CELL_FILE_KEYS)}.")
    unknown = set(data) - CELL_FILE_KEYS
    if unknown:
        raise CellLoadError(f"cell file {path}: unknown keys {sorted(unknown)}; allowed: {sorted(CELL_FILE_KEYS)}.")
    if "morphology" not in data:
        raise CellLoadError(f"cell file {path}: the field 'morphology' is missing.")

    def rel(key):
        value = data.get(key)
        return None if value is None else (path.parent / str(value)).resolve()

    try:
        v_init, celsius = float(data.get("v_init", -70.0)), float(data.get("celsius", 34.0))
    except (TypeError, ValueError) as exc:
        raise CellLoadError(f"cell file {path}: v_init and celsius must be numbers ({exc}).") from exc
    region_of = data.get("region_of") or {}
    if not isinstance(region_of, dict):
        raise CellLoadError(f"cell file {path}: 'region_of' must map section-name prefixes to regions.")
    hoc_files = data.get("hoc_files") or []
    if isinstance(hoc_files, str):
        hoc_files = [hoc_files]
    if not isinstance(hoc_files, list):
        raise CellLoadError(f"cell file {path}: 'hoc_files' must be a list of hoc files, loaded in order.")
    spec = user_spec(rel("morphology"), mod_dir=rel("mod_dir"), biophysics=rel("biophysics"),
                     template_file=rel("template_file"), template_name=data.get("template_name"),
                     template_args=_template_args(path, data.get("template_args")),
                     name=str(data.get("name") or path.stem), v_init=v_init, celsius=celsius,
                     region_of={str(k): str(v) for k, v in region_of.items()},
                     hoc_files=[(path.parent / str(f)).resolve() for f in hoc_files],
                     biophysics_template=data.get("biophysics_template"))
    spec.cell_file = path.resolve()
    spec.discretization = _discretization(path, data.get("discretization"))
    spec.synapse_defaults = _synapses(path, data.get("synapses"))
    return spec


def _template_args(path: Path, value) -> list | None:
    """template_args of a cell file: a list of strings and numbers; a string that names an
    existing file relative to the cell file becomes that file's absolute path."""
    if value is None:
        return None
    if not isinstance(value, list):
        value = [value]
    out = []
    for a in value:
        if isinstance(a, bool) or not isinstance(a, (str, int, float)):
            raise CellLoadError(
                f"cell file {path}: template_args must be strings or numbers, got {a!r}.")
        if isinstance(a, str) and (path.parent / a).exists():
            a = str((path.parent / a).resolve())
        out.append(a)
    return out


def _discretization(path: Path, value) -> dict:
    """The cell file's discretization: a method name or a mapping of Discretization fields."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = {"method": value}
    if not isinstance(value, dict):
        raise CellLoadError(f"cell file {path}: 'discretization' must be a method name or a mapping.")
    allowed = {"method", "d_lambda", "lambda_f", "max_nsegs_length"}
    unknown = set(value) - allowed
    if unknown:
        raise CellLoadError(f"cell file {path}: unknown discretization keys {sorted(unknown)}; "
                            f"allowed: {sorted(allowed)}.")
    out = dict(value)
    method = str(out.get("method", "d_lambda"))
    if method not in DISCRETIZATION_METHODS:
        raise CellLoadError(f"cell file {path}: discretization method {method!r}; use one of "
                            f"{sorted(DISCRETIZATION_METHODS)} (native keeps the template's own nseg).")
    out["method"] = DISCRETIZATION_METHODS[method]
    for k in ("d_lambda", "lambda_f", "max_nsegs_length"):
        if k in out:
            try:
                out[k] = float(out[k])
            except (TypeError, ValueError):
                raise CellLoadError(f"cell file {path}: discretization {k} must be a number.") from None
    return out


def _synapses(path: Path, value) -> dict:
    """The cell file's synapse parameters (e.g. exc_weight_uS, inh_weight_uS)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CellLoadError(f"cell file {path}: 'synapses' must map parameter names to numbers.")
    unknown = set(value) - set(DEFAULT_SYNAPSES)
    if unknown:
        raise CellLoadError(f"cell file {path}: unknown synapse parameters {sorted(unknown)}; "
                            f"allowed: {sorted(DEFAULT_SYNAPSES)}.")
    out = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise CellLoadError(f"cell file {path}: synapses {k} must be a number >= 0, got {v!r}.")
        out[k] = float(v)
    return out
