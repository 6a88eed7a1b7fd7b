#!/usr/bin/env bash
# Wheels of what lfpsurrogate needs and the GPU machine's image lacks (NEURON, LFPy,
# LFPykit, MEAutility, MEArec's cell files, zarr, dask.distributed and their own needs),
# for that machine's Python (3.12, x86-64), into .whl/ in the repository root. Run it here,
# where pip reaches PyPI; the device machine has no registries. About 34 MB.
#
#   bash benchmarks/device/fetch_wheels.sh            # cp312 wheels for the GPU machine
#   PYVER=3.11 WHEELS=.whl311 bash benchmarks/device/fetch_wheels.sh   # a local rehearsal
# LFPy is published as source only; it is built here by a Python of version PYVER (found
# with pyenv when it is not on PATH).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PYVER=${PYVER:-3.12}
WHEELS=${WHEELS:-.whl}
# .gitignore keeps /.whl*/ out of git; the device tool carries such ignored folders by name
mkdir -p "$WHEELS"
# versions: those this project's CI installs (pip list of its .venv, 2026-11-29)
BINARY="neuron==9.0.2 LFPykit==0.6.2 MEAutility==1.5.3 zarr==3.1.6 numcodecs==0.16.6
donfig==0.8.1.post1 google-crc32c==1.9.0 dask==2026.8.0 distributed==2026.8.0 partd==1.4.2
locket==1.0.0 tblib==3.2.2 zict==3.0.0 tornado==6.6.1 h5netcdf==1.8.2 MEArec==1.11.0 find-libpython==0.5.1"
# dask needs importlib_metadata below Python 3.12 (the GPU image has 3.12; a rehearsal may not)
case "$PYVER" in 3.1[01]|3.[0-9]) BINARY="$BINARY importlib-metadata==10.2.0 zipp==4.1.2 lazy-importer==0.1.0";; esac
for p in $BINARY; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$WHEELS" "$p"
done
# (MEArec: only its cell_models folder is read, never imported: no need for its own needs)
PY=""
for c in "python$PYVER" "$HOME"/.pyenv/versions/"$PYVER"*/bin/python"$PYVER"; do
  if "$c" --version >/dev/null 2>&1; then PY=$c; break; fi
done
[ -n "$PY" ] || { echo "fetch_wheels: no python$PYVER here to build LFPy's wheel with" >&2; exit 1; }
"$PY" -m pip wheel -q --no-deps -w "$WHEELS" "LFPy==2.3.7"
ls -la "$WHEELS"
du -sh "$WHEELS"
