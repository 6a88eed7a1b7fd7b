"""A detailed cell in NEURON, built through LFPy, with one excitatory and one inhibitory
input slot on every non-axonal segment."""
from __future__ import annotations

import contextlib
import os
import warnings
import weakref
from pathlib import Path

import numpy as np

from ..errors import CellLoadError
from ..geometry import CellGeometry
from .mechanisms import load_mechanisms
from .sources import own_synapse_mod_files, stage_bbp_folder, _template_names
from .spec import DEFAULT_SYNAPSES, CellSpec, Discretization, describe

# NEURON holds one cell's sections at a time in this design (LFPy and the BBP templates
# delete all sections when a cell is built): this points at the Cell that owns them.
_LIVE: dict[str, weakref.ref | None] = {"cell": None}
# hoc template name -> file it was loaded from, for this process
_TEMPLATES: dict[str, bytes] = {}


@contextlib.contextmanager
def _working_directory(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def _hoc_stdout_silenced():
    """Send C-level stdout to /dev/null while a cell is built: hoc prints the return value
    ("1") of every top-level load_file() in the BBP template files, and users' templates
    print whatever they like, which would corrupt --json output. Errors go to stderr and
    stay visible."""
    import sys

    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout (e.g. captured)
        yield
        return
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _rerun_biophys(lfpy_cell, template_name: str) -> None:
    """Call ``new template_name().biophys(cell)`` with the distance origin at the 0 end of
    the first soma section (where hoc's ``soma distance()`` puts it), so that every
    distance-dependent density is evaluated at the centres of the segments LFPy cut."""
    from neuron import h

    template = lfpy_cell.template
    try:
        soma = template.soma[0]
    except (AttributeError, LookupError, TypeError):
        soma = next(iter(lfpy_cell.somalist), None)
    if soma is None:
        raise CellLoadError(
            f"the cell has no section named soma; {template_name}.biophys needs the soma "
            "as the origin of distances. Name the soma section 'soma'.")
    soma.push()
    h.distance()
    h.pop_section()
    getattr(h, template_name)().biophys(template)


def region_of_section(name: str, overrides: dict[str, str]) -> str:
    """Region ("soma", "axon", "basal", "apical") of a section from its name."""
    short = name.split(".")[-1]
    for prefix, region in overrides.items():
        if short.startswith(prefix):
            return region
    low = short.lower()
    if "soma" in low:
        return "soma"
    if any(k in low for k in ("axon", "myelin", "node", "hill", "ais")):
        return "axon"
    if "apic" in low:
        return "apical"
    return "basal"


def _rotation_to_z(u: np.ndarray) -> np.ndarray:
    """Rotation matrix that turns unit vector u onto +z (Rodrigues' formula)."""
    u = u / np.linalg.norm(u)
    z = np.array([0.0, 0.0, 1.0])
    c = float(u @ z)
    if c > 1 - 1e-12:
        return np.eye(3)
    if c < -1 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])
    k = np.cross(u, z)
    s = np.linalg.norm(k)
    k = k / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def make_synapses(segments: list, input_segments, params: dict) -> tuple[list, list]:
    """(excitatory, inhibitory) point processes, one of each on every input segment: our
    AmpaNmda and NEURON's Exp2Syn with the cell's synapse parameters."""
    from neuron import h

    p = params
    exc, inh = [], []
    for idx in input_segments:
        seg = segments[idx]
        e = h.AmpaNmda(seg)
        e.tau_r_ampa, e.tau_d_ampa = p["exc_tau_r_ampa"], p["exc_tau_d_ampa"]
        e.tau_r_nmda, e.tau_d_nmda = p["exc_tau_r_nmda"], p["exc_tau_d_nmda"]
        e.e, e.mg, e.nmda_ratio = p["exc_e"], p["mg_mM"], p["nmda_ratio"]
        i = h.Exp2Syn(seg)
        i.tau1, i.tau2, i.e = p["inh_tau_r"], p["inh_tau_d"], p["inh_e"]
        exc.append(e)
        inh.append(i)
    return exc, inh


class Cell:
    """A detailed neuron model ready to simulate.

    Build with :func:`lfpsurrogate.load_cell`. ``cell.geometry`` is the NEURON-free
    :class:`CellGeometry`; ``cell.lfpy_cell`` the underlying LFPy cell (rebuilt on demand
    if another cell was loaded in the meantime, since NEURON holds one at a time here).
    """

    def __init__(
        self,
        spec: CellSpec,
        discretization: Discretization | None = None,
        synapses: dict | None = None,
    ) -> None:
        self.spec = spec
        self.discretization = discretization or Discretization()
        unknown = set(synapses or {}) - set(DEFAULT_SYNAPSES)
        if unknown:
            raise CellLoadError(
                f"unknown synapse parameters {sorted(unknown)}; allowed: {sorted(DEFAULT_SYNAPSES)}"
            )
        self.synapse_params = {**DEFAULT_SYNAPSES, **spec.synapse_defaults, **(synapses or {})}
        self._lfpy = None
        self._segments: list = []
        self._synapses: tuple[list, list] | None = None
        self._geometry: CellGeometry | None = None
        self._build()

    # ---- public -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def geometry(self) -> CellGeometry:
        return self._geometry

    @property
    def lfpy_cell(self):
        self.ensure_live()
        return self._lfpy

    @property
    def n_segments(self) -> int:
        return self._geometry.n_segments

    @property
    def n_channels(self) -> int:
        return self._geometry.n_channels

    def __repr__(self) -> str:
        return f"Cell({self.name!r}, {self._geometry!r})"

    # ---- NEURON instance ----------------------------------------------------------
    def ensure_live(self) -> None:
        """Rebuild the NEURON instance if another cell replaced it."""
        live = _LIVE["cell"]() if _LIVE["cell"] is not None else None
        if live is not self or self._lfpy is None:
            old = self._geometry.fingerprint
            self._build()
            if self._geometry.fingerprint != old:
                raise CellLoadError(
                    f"rebuilding cell {self.name!r} gave a different geometry; its files "
                    "changed on disk since it was loaded. Load the cell again."
                )

    def neuron_segments(self) -> list:
        """NEURON segments in LFPy's (and CellGeometry's) order."""
        self.ensure_live()
        return self._segments

    def synapses(self) -> tuple[list, list]:
        """(excitatory, inhibitory) point processes, one per input segment, created once."""
        self.ensure_live()
        if self._synapses is None:
            self._synapses = make_synapses(self._segments, self._geometry.input_segments,
                                           self.synapse_params)
        return self._synapses

    def extra_instance(self) -> tuple[object, list]:
        """Another NEURON instance of this cell beside the live one (for networks of
        detailed cells in one process): (LFPy cell, segments in CellGeometry order). Only
        BBP template cells, whose templates build each instance's own sections."""
        self.ensure_live()
        if self.spec.kind != "bbp":
            raise CellLoadError(
                f"cell {self.name!r} is of kind {self.spec.kind!r}; several instances in one "
                "process are supported for BBP template cells (kind 'bbp') only.")
        with _hoc_stdout_silenced(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*sections detected", category=UserWarning)
            cell = self._build_bbp(delete_sections=False)
        segments = [seg for sec in cell.allseclist for seg in sec]
        if len(segments) != self._geometry.n_segments:
            raise CellLoadError(f"another instance of {self.name!r} has {len(segments)} "
                                f"segments, the cell {self._geometry.n_segments}.")
        return cell, segments

    # ---- building -----------------------------------------------------------------
    def _build(self) -> None:
        previous = _LIVE["cell"]() if _LIVE["cell"] is not None else None
        if previous is not None and previous is not self:
            previous._lfpy, previous._segments, previous._synapses = None, [], None
        self._lfpy, self._segments, self._synapses = None, [], None
        from neuron import h

        load_mechanisms(own_synapse_mod_files() + list(self.spec.mod_files))
        h.load_file("stdrun.hoc")
        h.load_file("import3d.hoc")
        builders = {"bbp": self._build_bbp, "morphology": self._build_morphology,
                    "hoc_template": self._build_template}
        try:
            with _hoc_stdout_silenced():
                cell = builders[self.spec.kind]()
        except CellLoadError:
            raise
        except Exception as exc:
            raise CellLoadError(
                f"NEURON/LFPy could not build cell {self.spec.name!r} from "
                f"{self.spec.morphology}: {type(exc).__name__}: {exc}"
            ) from exc
        if cell.totnsegs == 0:
            raise CellLoadError(f"cell {self.spec.name!r} has no segments.")
        self._lfpy = cell
        self._segments = [seg for sec in cell.allseclist for seg in sec]
        self._geometry = self._collect_geometry(cell)
        _LIVE["cell"] = weakref.ref(self)

    def _lfpy_kwargs(self) -> dict:
        return dict(
            v_init=self.spec.v_init,
            celsius=self.spec.celsius,
            dt=2**-4,
            tstop=1.0,
            **self.discretization.lfpy_kwargs(),
        )

    def _check_templates(self, files: list[Path]) -> bool:
        """True when every template of ``files`` is already loaded from identical source."""
        from neuron import h

        all_loaded = True
        for f in files:
            data = Path(f).read_bytes()
            for name in _template_names(Path(f)):
                if hasattr(h, name):
                    if _TEMPLATES.get(name) not in (None, data):
                        raise CellLoadError(
                            f"hoc template {name} is already defined in this process by a "
                            f"different file than {f}; load this cell in a new Python process."
                        )
                    if name not in _TEMPLATES:
                        _TEMPLATES[name] = data
                else:
                    all_loaded = False
        return all_loaded

    def _build_bbp(self, delete_sections: bool = True):
        import LFPy
        from neuron import h

        stage = stage_bbp_folder(self.spec)
        folder = Path(self.spec.folder)
        hoc_files = [folder / "template.hoc", folder / "biophysics.hoc", folder / "morphology.hoc"]
        self._check_templates(hoc_files)
        with _working_directory(stage):
            cell = LFPy.TemplateCell(
                morphology=str(stage / "morphology" / self.spec.morphology.name),
                templatefile=str(stage / "template.hoc"),
                templatename=self.spec.template_name,
                templateargs=self.spec.template_args,
                delete_sections=delete_sections,
                **self._lfpy_kwargs(),
            )
        for f in hoc_files:
            for name in _template_names(f):
                _TEMPLATES.setdefault(name, f.read_bytes())
        # The template distributed its channels over its own nseg (2 per 40 µm); LFPy has
        # since re-cut the sections. Re-run the biophysics template so that every
        # distance-dependent density is evaluated at the new segment centres.
        biophys_names = _template_names(folder / "biophysics.hoc")
        if biophys_names:
            _rerun_biophys(cell, biophys_names[-1])
        return cell

    def _build_morphology(self):
        import LFPy
        from neuron import h

        spec = self.spec
        morphology = str(spec.morphology)
        if spec.morphology.suffix.lower() == ".nrn":  # hoc syntax, unknown suffix for LFPy
            h("forall delete_section()")
            h.load_file(1, morphology)
            seclist = h.SectionList()
            for sec in h.allsec():
                seclist.append(sec=sec)
            morphology = seclist
        kwargs = self._lfpy_kwargs()
        if callable(spec.biophysics):
            kwargs.update(custom_fun=[spec.biophysics], custom_fun_args=[{}])
        elif spec.biophysics is not None:
            kwargs.update(custom_code=[str(spec.biophysics)])
        cell = LFPy.Cell(morphology=morphology, **kwargs)
        self._reapply_biophysics(cell)
        return cell

    def _build_template(self):
        import LFPy
        from neuron import h

        spec = self.spec
        files = [Path(f) for f in spec.hoc_files] + [Path(spec.template_file)]
        self._check_templates(files)
        # hoc files first, in order (e.g. the biophysics template that init instantiates);
        # a file whose templates are all defined already (same source) is not loaded again
        for f in spec.hoc_files:
            names = _template_names(Path(f))
            if names and all(hasattr(h, n) for n in names):
                continue
            with _working_directory(Path(f).parent):
                if not h.load_file(1, str(f)):
                    raise CellLoadError(f"hoc could not load {f} (see the hoc error above).")
        args = spec.template_args
        if isinstance(args, list):
            args = tuple(args)
        cell = LFPy.TemplateCell(
            morphology=str(spec.morphology),
            templatefile=str(spec.template_file),
            templatename=spec.template_name,
            templateargs=args,
            **self._lfpy_kwargs(),
        )
        for f in files:
            for name in _template_names(f):
                _TEMPLATES.setdefault(name, f.read_bytes())
        recut = self.discretization.method != "native"
        if spec.biophysics_template is not None:
            if recut:  # densities were set on the template's nseg; evaluate them again
                _rerun_biophys(cell, spec.biophysics_template)
        elif recut and spec.biophysics is None:
            warnings.warn(
                f"cell {spec.name!r}: LFPy re-cut the template's sections "
                f"({self.discretization.method}), but no biophysics template is known, so "
                "distance-dependent channel densities keep the values of the template's own "
                "segments. Give hoc_files with a template that has a public biophys(cell) "
                "(or biophysics_template), or use discretization: native.",
                stacklevel=3)
        self._reapply_biophysics(cell)
        return cell

    def _reapply_biophysics(self, cell) -> None:
        """Apply biophysics again after LFPy set nseg, so per-segment values are exact."""
        from neuron import h

        if callable(self.spec.biophysics):
            self.spec.biophysics(cell)
        elif self.spec.biophysics is not None:
            h.xopen(str(self.spec.biophysics))

    def _collect_geometry(self, cell) -> CellGeometry:
        names = [sec.name() for sec in cell.allseclist for _ in sec]
        regions = [region_of_section(n, self.spec.region_of) for n in names]
        x, y, z = np.array(cell.x, float), np.array(cell.y, float), np.array(cell.z, float)
        pts = np.stack([x, y, z], axis=-1)  # (n, 2, 3)
        mid = pts.mean(axis=1)
        regions_a = np.array(regions)
        soma = np.flatnonzero(regions_a == "soma")
        origin = mid[soma].mean(axis=0) if soma.size else mid[0]
        pts = pts - origin
        # canonical frame: apical dendrite (or, without one, the dendrites) along +z
        main = np.flatnonzero(regions_a == "apical")
        if main.size == 0:
            main = np.flatnonzero(regions_a != "axon")
        lengths = np.linalg.norm(pts[:, 1] - pts[:, 0], axis=1)
        direction = ((pts[main].mean(axis=1)) * lengths[main, None]).sum(axis=0)
        if np.linalg.norm(direction) > 0:
            pts = pts @ _rotation_to_z(direction).T
        cell.x, cell.y, cell.z = pts[..., 0], pts[..., 1], pts[..., 2]
        m = cell.get_transformation_matrix_vmem_to_imem()
        input_segments = np.flatnonzero(regions_a != "axon")
        meta = {
            **describe(self.discretization, self.synapse_params),
            "biophysics_hash": self.spec.biophysics_hash(),
            "v_init": self.spec.v_init,
            "celsius": self.spec.celsius,
            "kind": self.spec.kind,
        }
        if self.spec.licence:
            meta["licence"] = self.spec.licence
        return CellGeometry(
            name=self.spec.name, x=pts[..., 0], y=pts[..., 1], z=pts[..., 2],
            d=np.array(cell.d, float), section=names, region=regions,
            vmem_to_imem=m, input_segments=input_segments, meta=meta,
        )
