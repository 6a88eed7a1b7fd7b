"""Compile NMODL (.mod) files with nrnivmodl, cache the result, load it once per process.

Compiled libraries live in a per-user cache folder (``$LFPSURROGATE_CACHE`` or
``~/.cache/lfpsurrogate``), under ``mechanisms/<hash>``, where the hash covers the content
of every .mod file. A set is compiled only when no library for that hash exists; the build
happens in a temporary folder that is renamed into place, so concurrent workers never see
half a library.

NEURON can hold one definition of each mechanism name per process. We keep a registry of
the mechanisms loaded so far (name -> hash of its .mod source): asking for a mechanism that
is already loaded from identical source is a no-op, asking for one of the same name but a
different source raises :class:`MechanismConflictError` instead of crashing NEURON.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import MechanismCompileError, MechanismConflictError

# mechanism name -> sha256 of the .mod file that defines it, for this process
_LOADED: dict[str, str] = {}

_NAME_RE = re.compile(r"^\s*(?:SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)", re.MULTILINE)


def cache_dir() -> Path:
    """Root of the per-user cache (compiled mechanisms, staged cell folders)."""
    root = os.environ.get("LFPSURROGATE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "lfpsurrogate"
    )
    return Path(root)


def _strip_comments(text: str) -> str:
    text = re.sub(r"COMMENT.*?ENDCOMMENT", "", text, flags=re.DOTALL)
    return re.sub(r":.*", "", text)


def mechanism_names(mod_file: Path) -> list[str]:
    """Names that a .mod file defines (SUFFIX, POINT_PROCESS or ARTIFICIAL_CELL)."""
    return _NAME_RE.findall(_strip_comments(Path(mod_file).read_text(errors="replace")))


def _file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hash_mod_files(mod_files: list[Path]) -> str:
    """One hash over the names and contents of a set of .mod files."""
    h = hashlib.sha256()
    for f in sorted(mod_files, key=lambda p: Path(p).name):
        h.update(Path(f).name.encode())
        h.update(_file_hash(f).encode())
    return h.hexdigest()


def _nrnivmodl() -> str:
    candidate = Path(sys.executable).parent / "nrnivmodl"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nrnivmodl")
    if not found:
        raise MechanismCompileError(
            "nrnivmodl was not found. Install NEURON (pip install 'neuron>=9') in this "
            "environment so that its nrnivmodl is on PATH."
        )
    return found


def _find_library(folder: Path) -> Path | None:
    for pattern in ("*/libnrnmech.so", "*/.libs/libnrnmech.so", "*/libnrnmech.dylib"):
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def compile_mechanisms(mod_files: list[Path]) -> Path:
    """Compile ``mod_files`` (cached by content hash) and return the shared library path.

    Raises MechanismCompileError with nrnivmodl's output when compilation fails.
    """
    mod_files = [Path(f) for f in mod_files]
    for f in mod_files:
        if not f.is_file():
            raise MechanismCompileError(f"mechanism file {f} does not exist or is not a file.")
    digest = hash_mod_files(mod_files)[:20]
    root = cache_dir() / "mechanisms"
    root.mkdir(parents=True, exist_ok=True)
    target = root / digest
    lib = _find_library(target) if target.exists() else None
    if lib is not None:
        return lib
    with open(root / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            lib = _find_library(target) if target.exists() else None
            if lib is not None:
                return lib
            build = Path(tempfile.mkdtemp(prefix=f"{digest}.build-", dir=root))
            for f in mod_files:
                shutil.copy2(f, build / f.name)
            proc = subprocess.run(
                [_nrnivmodl(), "."], cwd=build, capture_output=True, text=True
            )
            lib = _find_library(build)
            if proc.returncode != 0 or lib is None:
                output = (proc.stdout + proc.stderr)[-4000:]
                shutil.rmtree(build, ignore_errors=True)
                names = ", ".join(f.name for f in mod_files)
                raise MechanismCompileError(
                    f"nrnivmodl failed to compile {names} (exit code {proc.returncode}). "
                    f"Fix the .mod source; compiler output:\n{output}"
                )
            if target.exists():  # a stale, incomplete folder from an earlier crash
                shutil.rmtree(target, ignore_errors=True)
            os.rename(build, target)
            return _find_library(target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_mechanisms(mod_files: list[Path]) -> list[str]:
    """Compile if needed and load ``mod_files`` into this process's NEURON.

    Mechanisms already loaded from identical source are skipped. Returns the names of the
    mechanisms the files define. Raises MechanismConflictError when a name is already
    loaded from different source (NEURON cannot unload or redefine a mechanism).
    """
    mod_files = [Path(f) for f in mod_files]
    wanted: dict[str, tuple[str, Path]] = {}
    for f in mod_files:
        digest = _file_hash(f)
        for name in mechanism_names(f):
            wanted[name] = (digest, f)
    conflicts = [
        f"{name} (from {src})"
        for name, (digest, src) in wanted.items()
        if name in _LOADED and _LOADED[name] != digest
    ]
    if conflicts:
        raise MechanismConflictError(
            "These mechanisms are already loaded in this process from different source: "
            + ", ".join(conflicts)
            + ". NEURON loads one definition per mechanism name per process; run this cell "
            "in a new Python process (e.g. a separate script or dataset worker)."
        )
    new_files = [f for f in mod_files if any(n not in _LOADED for n in mechanism_names(f))]
    if new_files:
        lib = compile_mechanisms(new_files)
        from neuron import h

        h.nrn_load_dll(str(lib))
        for f in new_files:
            digest = _file_hash(f)
            for name in mechanism_names(f):
                _LOADED[name] = digest
    return list(wanted)


def loaded_mechanisms() -> dict[str, str]:
    """Mechanisms loaded by lfpsurrogate in this process: name -> source hash."""
    return dict(_LOADED)
