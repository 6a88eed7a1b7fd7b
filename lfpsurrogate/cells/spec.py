"""What defines a cell model: files, biophysics, discretization, synapse parameters."""
from __future__ import annotations

import hashlib
import inspect
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

# Published synapse parameters used by default (see mod/AmpaNmda.mod for the credits):
# peak AMPA conductance 0.4 nS and NMDA 0.4 nS per event (Beniaguev et al. 2021),
# GABA_A as NEURON's Exp2Syn, rise 0.2 ms, decay 8 ms, reversal -80 mV, 1 nS per event.
DEFAULT_SYNAPSES = {
    "exc_weight_uS": 0.0004,
    "nmda_ratio": 1.0,
    "exc_tau_r_ampa": 0.3,
    "exc_tau_d_ampa": 3.0,
    "exc_tau_r_nmda": 2.0,
    "exc_tau_d_nmda": 70.0,
    "exc_e": 0.0,
    "mg_mM": 1.0,
    "inh_weight_uS": 0.001,
    "inh_tau_r": 0.2,
    "inh_tau_d": 8.0,
    "inh_e": -80.0,
}


@dataclass
class Discretization:
    """How sections are cut into segments (LFPy's nsegs_method).

    method: "lambda_f" (d_lambda rule at frequency lambda_f Hz), "fixed_length"
    (segments no longer than max_nsegs_length µm) or "native" (keep the model's own nseg).
    """

    method: str = "lambda_f"
    lambda_f: float = 100.0
    d_lambda: float = 0.3
    max_nsegs_length: float | None = None

    def lfpy_kwargs(self) -> dict:
        if self.method == "native":
            return {"nsegs_method": None}
        return {
            "nsegs_method": self.method,
            "lambda_f": self.lambda_f,
            "d_lambda": self.d_lambda,
            "max_nsegs_length": self.max_nsegs_length,
        }


@dataclass
class CellSpec:
    """Everything needed to build one cell in NEURON.

    kind: "bbp" (a Blue Brain cell folder, loaded the way MEArec ships them),
    "hoc_template" (user hoc template), or "morphology" (morphology file + biophysics).
    region_of: optional mapping section-name prefix -> region, tried before the default
    name rules.
    """

    name: str
    kind: str
    morphology: Path
    mod_files: list[Path] = field(default_factory=list)
    biophysics: Callable | Path | None = None
    template_file: Path | None = None
    template_name: str | None = None
    template_args: object = None
    folder: Path | None = None
    v_init: float = -70.0
    celsius: float = 34.0
    region_of: dict[str, str] = field(default_factory=dict)
    licence: str | None = None
    synapse_defaults: dict = field(default_factory=dict)  # cell-specific DEFAULT_SYNAPSES overrides
    hoc_files: list[Path] = field(default_factory=list)  # loaded in order before the template
    biophysics_template: str | None = None  # hoc template whose biophys(cell) sets densities
    cell_file: Path | None = None  # the YAML cell file this spec was read from
    discretization: dict = field(default_factory=dict)  # the cell file's discretization keys

    def loaded_files(self) -> list[Path]:
        """Every file that building this cell reads: cell file, morphology, hoc files,
        template, biophysics file, .mod sources, and the files those hoc files load
        themselves (``load_file``/``xopen`` with a literal path), found recursively."""
        files: list[Path] = []
        seen: set[Path] = set()

        def add(f):
            if f is None:
                return
            f = Path(f)
            key = f.resolve() if f.exists() else f
            if key in seen:
                return
            seen.add(key)
            files.append(f)
            # BBP folders: template.hoc loads synapses/synapses.hoc, which lfpsurrogate
            # replaces by a no-op (see stage_bbp_folder); it is never loaded
            if self.kind != "bbp" and f.suffix.lower() in (".hoc", ".ses") and f.is_file():
                for ref in hoc_file_references(f):
                    add(ref)

        add(self.cell_file)
        add(self.morphology)
        for f in self.hoc_files:
            add(f)
        add(self.template_file)
        if isinstance(self.biophysics, (str, Path)):
            add(Path(self.biophysics))
        if self.folder is not None:
            for f in sorted(Path(self.folder).glob("*.hoc")):
                add(f)
        if isinstance(self.template_args, (list, tuple)):
            for a in self.template_args:
                if isinstance(a, (str, Path)) and Path(a).is_file():
                    add(Path(a))
        for f in sorted(self.mod_files, key=lambda p: Path(p).name):
            add(f)
        return files

    def biophysics_hash(self) -> str:
        """Hash of everything that sets the membrane: every file the cell loads (see
        :meth:`loaded_files`), Python biophysics code, v_init, celsius and regions."""
        h = hashlib.sha256()
        # the original sequence first, so that cells whose files it already covered keep
        # their fingerprint (stores and shipped models refer to it) ...
        for f in sorted(self.mod_files, key=lambda p: Path(p).name):
            h.update(Path(f).name.encode() + Path(f).read_bytes())
        files = [self.template_file, self.morphology]
        if isinstance(self.biophysics, (str, Path)):
            files.append(Path(self.biophysics))
        if self.folder is not None:
            files += sorted(Path(self.folder).glob("*.hoc"))
        for f in files:
            if f is not None and Path(f).is_file():
                h.update(Path(f).name.encode() + Path(f).read_bytes())
        # ... then every other file the cell loads (cell file, hoc_files, files loaded by
        # hoc itself)
        covered = {Path(f).resolve() for f in [*self.mod_files, *files] if f is not None}
        for f in self.loaded_files():
            if Path(f).resolve() not in covered and Path(f).is_file():
                h.update(Path(f).name.encode() + Path(f).read_bytes())
        if callable(self.biophysics):
            try:
                h.update(inspect.getsource(self.biophysics).encode())
            except (OSError, TypeError):
                h.update(repr(self.biophysics).encode())
        h.update(json.dumps([self.v_init, self.celsius, self.region_of], sort_keys=True).encode())
        return h.hexdigest()[:16]


_LOAD_RE = re.compile(r'\b(?:load_file|xopen)\s*\(\s*(?:\d+\s*,\s*)?"([^"]+)"')


def hoc_file_references(path: Path) -> list[Path]:
    """Files a hoc file loads with a literal path (``load_file("x.hoc")``, ``xopen(...)``)
    that exist relative to the file's folder; NEURON's library files (stdrun.hoc, ...)
    resolve nowhere there and are left out."""
    text = Path(path).read_text(errors="replace")
    out = []
    for ref in _LOAD_RE.findall(text):
        f = Path(ref) if Path(ref).is_absolute() else Path(path).parent / ref
        if f.is_file():
            out.append(f)
    return out


def describe(discretization: Discretization, synapses: dict) -> dict:
    return {"discretization": asdict(discretization), "synapses": dict(synapses)}
