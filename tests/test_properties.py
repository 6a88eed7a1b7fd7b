"""Property-based tests (hypothesis): malformed probe files, input arrays, rate
specifications, model folders and geometry bundles get a clear lfpsurrogate error (or
work); nothing a user loads runs code; non-finite surrogate outputs raise.

Every suite runs with a fixed seed (``derandomize=True``) and a bounded budget
(``max_examples``), so CI sees the same cases each run. The number of cases each suite
tried is printed at the end of the module (``pytest -s``) and written to the JSON file named
by ``$LFPS_PROPERTY_REPORT`` when set; docs/reliability.md records the figures.
"""
from __future__ import annotations

import collections
import copy
import json
import math
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lfpsurrogate as lfps
from lfpsurrogate.errors import GeometryError, InputError, LfpsurrogateError, ModelFolderError
from lfpsurrogate.geometry import CellGeometry
from lfpsurrogate.inputs import MAX_COUNT, validate_counts
from lfpsurrogate.modelfolder import load_surrogate, write_manifest
from lfpsurrogate.predict import inputs_from_rates, predict_lfp
from lfpsurrogate.probes import HeadModel, Probe, load_probe

from conftest import make_tiny_model_folder

torch.set_num_threads(1)

TRIED: collections.Counter = collections.Counter()  # cases tried per suite
OUTCOMES: collections.Counter = collections.Counter()  # (suite, outcome)


def budget(n: int):
    """Fixed seed, bounded budget, no per-example deadline (the machine is shared)."""
    return settings(derandomize=True, max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def tally(suite: str, outcome: str) -> None:
    TRIED[suite] += 1
    OUTCOMES[f"{suite}:{outcome}"] += 1


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    summary = {"tried": dict(TRIED), "outcomes": dict(sorted(OUTCOMES.items()))}
    print("\nproperty suites:", json.dumps(summary, indent=1))
    if os.environ.get("LFPS_PROPERTY_REPORT"):
        Path(os.environ["LFPS_PROPERTY_REPORT"]).write_text(json.dumps(summary, indent=1))


# ---- shared fixtures ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(pyramid, tmp_path_factory):
    """A tiny (untrained, normalised) low-rank surrogate of pyramid_hh as a model folder."""
    return make_tiny_model_folder(pyramid.geometry, tmp_path_factory.mktemp("props"),
                                  metrics={"n": 0}, card="# tiny\n")


@pytest.fixture(scope="module")
def n_channels(model_dir):
    return load_surrogate(model_dir).geometry.n_channels


# ---- strategies: junk of every YAML type ---------------------------------------------------
numbers = st.one_of(
    st.floats(-2e5, 2e5, allow_nan=False),
    st.floats(),                                          # nan, inf, 1e308, subnormals
    st.integers(-10**6, 10**6),
    st.integers(1, 9).map(lambda k: k * 10**400),         # beyond the float range
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6))
junk = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                    | st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 3)), c,
                                      max_size=4), max_leaves=12)


@st.composite
def directions(draw, n):
    out = []
    for _ in range(n):
        v = np.array(draw(st.lists(st.floats(-1, 1), min_size=3, max_size=3)))
        out.append(v / np.linalg.norm(v) if np.linalg.norm(v) > 0.1 else np.array([0, 0, 1.0]))
    return out


@st.composite
def head_section(draw):
    radii = list(HeadModel().radii)
    choice = draw(st.sampled_from(["default", "default", "shuffled", "negative", "short", "junk"]))
    if choice == "shuffled":
        radii = radii[::-1]
    elif choice == "negative":
        radii[0] = -radii[0]
    elif choice == "short":
        radii = radii[:3]
    elif choice == "junk":
        return draw(junk)
    return {"radii": radii, "conductivities": list(HeadModel().conductivities)}


@st.composite
def sensor_document(draw):
    """An EEG or MEG sensor file, mostly well-formed, with wrong units, electrodes off the
    scalp, MEG sensors inside the head, empty lists and junk fields mixed in."""
    kind = draw(st.sampled_from(["eeg", "meg"]))
    units = draw(st.sampled_from(["um", "mm", "cm", "m", "µm", "inch", "", None, 3]))
    # µm per unit, written out here (not the code's table): a wrong factor in the code
    # makes a well-formed file land off the scalp or inside the head
    scale_of = {"um": 1.0, "µm": 1.0, "mm": 1000.0, "cm": 10000.0, "m": 1000000.0}
    scale = scale_of.get(units, 1.0) if isinstance(units, str) else 1.0
    n = draw(st.integers(0, 4))
    scalp = HeadModel().scalp_radius
    if kind == "eeg":
        factor = draw(st.sampled_from([1.0, 1.0, 1.0, 1.0 + 1e-5, 0.5, 1.01, 0.0, 1e3]))
    else:
        factor = draw(st.sampled_from([1.2, 1.2, 1.5, 1.0, 0.9, 0.0, 1e300]))
    dirs = draw(directions(n))
    pos = [[float(c) * scalp * factor / scale for c in d] for d in dirs]
    names = [f"S{i}" for i in range(n)]
    if draw(st.booleans()) and n > 1:
        names[-1] = names[0]  # duplicate name
    doc: dict = {"kind": kind, "units": units}
    group = {"names": names, "positions": pos}
    if kind == "eeg":
        doc["electrodes"] = group
    else:
        group["orientations"] = [[float(c) for c in d] for d in dirs]
        doc["sensors"] = group
        doc["conductor"] = draw(st.sampled_from(["spherical", "infinite", "magic"]))
    if draw(st.booleans()):
        doc["head"] = draw(head_section())
    before = copy.deepcopy(doc)
    doc = mutate(draw, doc)
    # a well-formed file must load, at the positions the factors above give (EEG electrodes
    # within 1e-5 of the scalp are projected onto it)
    well_formed = (doc == before and isinstance(units, str) and units in scale_of and n >= 1
                   and len(set(names)) == n and "head" not in doc
                   and (factor in (1.0, 1.0 + 1e-5) if kind == "eeg" else
                        factor in (1.2, 1.5) and doc["conductor"] != "magic"))
    expected = None
    if well_formed:
        expected = (kind, np.array(dirs, dtype=float) * scalp * (1.0 if kind == "eeg" else factor))
    return doc, expected


@st.composite
def mea_document(draw):
    """A MEAutility probe file: 'pos' lists or a 'dim'/'pitch' grid, with junk mixed in."""
    doc: dict = {"electrode_name": draw(st.text(max_size=6))}
    if draw(st.booleans()):
        dim = draw(st.sampled_from([2, 3, 3, 0, 1, 4]))
        coord = st.one_of(*[st.floats(-200, 200)] * 6, numbers)
        doc["pos"] = draw(st.lists(st.lists(coord, min_size=dim, max_size=dim), max_size=5))
    else:
        doc["dim"] = draw(st.one_of(st.integers(-1, 6), st.lists(st.integers(0, 5), max_size=3),
                                    st.just([100000, 100000]), junk))
        doc["pitch"] = draw(st.one_of(st.floats(-10, 50), junk))
    for key in ("size", "shape", "plane", "type", "stagger", "units", "sortlist"):
        if draw(st.integers(0, 3)) == 0:
            doc[key] = draw(st.one_of(st.sampled_from(
                {"shape": ["square", "circle", "rect", "hex"], "plane": ["yz", "xy", "ab"],
                 "type": ["mea", "wire"], "units": ["um", "mm"]}.get(key, [5, 0])), junk))
    return mutate(draw, doc)


def mutate(draw, doc: dict) -> dict:
    """Sometimes drop a key, add an unknown one, or replace a value by junk (one level down)."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        op = draw(st.sampled_from(["drop", "extra", "junk"]))
        target = doc
        subs = [k for k, v in doc.items() if isinstance(v, dict)]
        if subs and draw(st.booleans()):
            target = doc[draw(st.sampled_from(sorted(subs)))]
        keys = sorted(target, key=str)
        if op == "drop" and keys:
            del target[draw(st.sampled_from(keys))]
        elif op == "extra":
            target[draw(st.one_of(st.text(max_size=6), st.integers(0, 9)))] = draw(junk)
        elif keys:
            target[draw(st.sampled_from(keys))] = draw(junk)
    return doc


def probe_file_content(draw_from):
    return st.one_of(
        sensor_document().map(lambda d: ("yaml", *d)),
        mea_document().map(lambda d: ("yaml", d, None)),
        junk.map(lambda d: ("yaml", d, None)),
        st.text(max_size=80).map(lambda t: ("text", t, None)),
        st.binary(max_size=80).map(lambda b: ("bytes", b, None)),
        st.sampled_from(["[" * 3000, "a: &x [1]\nb: *x\nc: *y\n", "{{{", "- - - -\n  - a",
                         "kind: eeg\nunits: um\n\x00"]).map(lambda t: ("text", t, None)),
    )


def check_probe(probe: Probe) -> None:
    """What a Probe that load_probe returned must satisfy."""
    assert isinstance(probe, Probe) and probe.kind in ("mea", "eeg", "meg")
    assert probe.positions.ndim == 2 and probe.positions.shape[1] == 3 and probe.n >= 1
    assert np.all(np.isfinite(probe.positions)) and len(probe.labels) == probe.n
    if probe.kind in ("eeg", "meg"):
        assert len(set(probe.labels)) == probe.n
        r = np.linalg.norm(probe.positions, axis=1)
        scalp = probe.head.scalp_radius
        assert np.all(np.isfinite(probe.head.radii)) and np.all(np.diff(probe.head.radii) > 0)
        if probe.kind == "eeg":
            assert np.allclose(r, scalp, rtol=1e-9)
        else:
            assert np.all(r > scalp)
            assert np.allclose(np.linalg.norm(probe.orientations, axis=1), 1.0)


# ---- suite 1: probe files -------------------------------------------------------------------
@budget(250)
@given(content=probe_file_content(None), suffix=st.sampled_from([".yaml", ".yml"]))
def test_probe_files_load_or_fail_clearly(content, suffix):
    kind, value, expected = content
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"probe{suffix}"
        if kind == "yaml":
            path.write_text(yaml.safe_dump(value, allow_unicode=True), encoding="utf-8")
        elif kind == "text":
            path.write_text(value, encoding="utf-8", errors="surrogateescape")
        else:
            path.write_bytes(value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe = load_probe(path)
        except LfpsurrogateError as exc:
            assert str(path) in str(exc), f"the message does not name the file: {exc}"
            assert expected is None, f"a well-formed file was refused: {exc}"
            tally("probe_files", "refused")
            return
        check_probe(probe)
        tally("probe_files", f"loaded_{probe.kind}")
        if expected is not None:
            assert probe.kind == expected[0]
            # atol: subnormal direction components (hypothesis draws them) round to 0
            np.testing.assert_allclose(probe.positions, expected[1], rtol=1e-9,
                                       atol=1e-12 * np.abs(expected[1]).max())
            tally("probe_files", "well_formed_positions_checked")


UM_PER_UNIT = {"um": 1.0, "µm": 1.0, "micrometer": 1.0, "mm": 1000.0, "cm": 10000.0,
               "m": 1000000.0}  # written out here, not the code's table


@budget(60)
@given(kind=st.sampled_from(["eeg", "meg"]), units=st.sampled_from(sorted(UM_PER_UNIT)),
       dirs=st.integers(1, 4).flatmap(directions), lift=st.sampled_from([1.05, 1.2, 2.0]))
def test_well_formed_sensor_files_load_at_their_positions(kind, units, dirs, lift):
    """Well-formed EEG/MEG files in every length unit load at the positions the hand-written
    factors give (the mixed suite above rarely draws a well-formed file per unit)."""
    scalp = HeadModel().scalp_radius
    r = scalp if kind == "eeg" else scalp * lift
    want = np.array(dirs) * r
    group = {"names": [f"S{i}" for i in range(len(dirs))],
             "positions": (want / UM_PER_UNIT[units]).tolist()}
    doc: dict = {"kind": kind, "units": units}
    if kind == "eeg":
        doc["electrodes"] = group
    else:
        group["orientations"] = np.array(dirs).tolist()
        doc["sensors"] = group
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sensors.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        probe = load_probe(path)
    assert probe.kind == kind and list(probe.labels) == group["names"]
    # atol: subnormal direction components (hypothesis draws them) round to 0
    np.testing.assert_allclose(probe.positions, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
    tally("well_formed_sensor_files", units)


# ---- suite 2: input arrays -> validate_counts ------------------------------------------------
any_dtype = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
                      hnp.boolean_dtypes(), hnp.complex_number_dtypes(),
                      hnp.datetime64_dtypes(), hnp.timedelta64_dtypes(),
                      hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3))
arrays = hnp.arrays(any_dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
nested = st.recursive(st.one_of(st.integers(-2, 300), st.floats(), st.text(max_size=2)),
                      lambda c: st.lists(c, max_size=3), max_leaves=10)


plausible = hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float32, np.float64]),
                       st.tuples(st.integers(1, 4), st.integers(1, 5)),
                       elements=st.integers(0, 3))


@budget(300)
@given(value=st.one_of(arrays, plausible, nested), n=st.integers(1, 5), wrap=st.booleans())
def test_validate_counts_returns_counts_or_input_error(value, n, wrap):
    arr = value
    if wrap and isinstance(value, np.ndarray) and value.ndim == 2:
        arr = xr.DataArray(value, dims=("channel", "time")[:: (-1 if n % 2 else 1)])
        n = value.shape[1 if n % 2 else 0]
    elif isinstance(value, np.ndarray) and value.ndim == 2 and n == 5:
        n = value.shape[0]  # give matching channel counts often enough
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a silent cast (complex, overflow) is a failure
            out = validate_counts(arr, n)
    except InputError as exc:
        assert str(exc)
        tally("input_arrays", "refused")
        return
    assert out.dtype == np.int64 and out.ndim == 2 and out.shape[0] == n and out.shape[1] > 0
    assert out.min() >= 0 and out.max() <= MAX_COUNT
    ref = value.values if isinstance(value, xr.DataArray) else np.asarray(value)
    ref = np.asarray(arr.transpose("channel", "time").values) if isinstance(arr, xr.DataArray) else ref
    assert np.array_equal(out, ref.astype(np.float64))
    tally("input_arrays", "accepted")


# ---- suite 3: input arrays -> predict_lfp ----------------------------------------------------
@st.composite
def count_arrays(draw, n_ch):
    dtype = draw(st.sampled_from(["uint8", "int16", "int64", "float16", "float32", "float64", "bool"]))
    ndim = draw(st.sampled_from([1, 2, 2, 2, 3, 3, 3, 4]))
    n_time = draw(st.sampled_from([0, 1, 5, 24, 24]))
    channels = draw(st.sampled_from([n_ch, n_ch, n_ch, n_ch, n_ch - 1, 3]))
    shape = {1: (n_time,), 2: (channels, n_time), 3: (draw(st.integers(0, 3)), channels, n_time),
             4: (1, 1, channels, n_time)}[ndim]
    arr = np.random.default_rng(draw(st.integers(0, 99))).poisson(0.02, shape).astype(np.float64)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        if arr.size:
            flat = arr.reshape(-1)
            flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from(
                [np.nan, np.inf, -1.0, 0.5, 256.0, 1e9, 3.0]))
    with np.errstate(invalid="ignore", over="ignore"):
        return arr.astype(dtype) if dtype.startswith("float") or np.isfinite(arr).all() else arr


@budget(80)
@given(data=st.data())
def test_predict_from_arrays_gives_signals_or_input_error(model_dir, n_channels, data):
    arr = data.draw(count_arrays(n_channels))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = predict_lfp(arr, model=model_dir, device="cpu")
    except InputError as exc:
        assert str(exc)
        tally("predict_arrays", "refused")
        return
    assert ds["lfp"].dims == ("electrode", "time") and ds["lfp"].shape[1] == arr.shape[-1]
    assert np.all(np.isfinite(ds["lfp"].values))
    tally("predict_arrays", "predicted")


# ---- suite 4: rate specifications -----------------------------------------------------------
def mostly(good, bad):
    """good three times in four."""
    return st.one_of(good, good, good, bad)


rate_values = {
    "duration_ms": mostly(st.sampled_from([1, 10, 24.0, 30]), st.sampled_from(
        [0, -5, 10.5, math.nan, math.inf, "20", None, True, [10]])),
    "n_cells": mostly(st.integers(1, 3), st.sampled_from([0, -1, 2.0, True, "2", None, [1]])),
    "rate_exc_hz": mostly(st.floats(0, 50), st.sampled_from(
        [300.0, 1e5, 1e6, 1e300, -1.0, math.nan, math.inf, "5", None, True])),
    "rate_inh_hz": mostly(st.floats(0, 50), st.sampled_from([-1.0, math.nan, "2", 1e7])),
    "protocol": mostly(st.sampled_from(lfps.inputs.PROTOCOLS),
                       st.sampled_from(["bogus", None, 3, ["constant"], ""])),
    "bin_ms": mostly(st.sampled_from([1.0, 1, 0.5]), st.sampled_from([0, -1.0, math.nan, "1", 7.0])),
}


@st.composite
def rate_specs(draw):
    spec = {"duration_ms": draw(rate_values["duration_ms"])}
    for key in ("n_cells", "rate_exc_hz", "rate_inh_hz", "protocol", "bin_ms"):
        if draw(st.integers(0, 2)) == 0:
            spec[key] = draw(rate_values[key])
    if draw(st.integers(0, 11)) == 0:
        del spec["duration_ms"]
    if draw(st.integers(0, 11)) == 0:
        spec[draw(st.one_of(st.text(max_size=5), st.integers(0, 3)))] = draw(scalars)
    return spec


@budget(100)
@given(spec=st.one_of(rate_specs(), rate_specs(), rate_specs(), junk),
       seed=mostly(st.integers(0, 2**40), st.sampled_from([-1, 2.5, "0", None])))
def test_rate_specifications_give_signals_or_input_error(model_dir, spec, seed):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = predict_lfp(rates=spec, model=model_dir, seed=seed, device="cpu", batch_size=2)
    except InputError as exc:
        assert str(exc)
        tally("rate_specs", "refused")
        return
    n_bins = round(spec["duration_ms"] / spec.get("bin_ms", 1.0))
    assert ds["lfp"].shape == (16, n_bins) and np.all(np.isfinite(ds["lfp"].values))
    tally("rate_specs", "predicted")


def test_rates_are_drawn_per_batch_like_inputs_from_rates(model_dir):
    """predict_lfp(rates=...) draws inputs batch by batch; same numbers as drawing them all."""
    g = load_surrogate(model_dir).geometry
    spec = {"duration_ms": 40, "n_cells": 5, "rate_exc_hz": 8.0, "protocol": "modulated"}
    streamed = predict_lfp(rates=spec, model=model_dir, seed=11, batch_size=2, device="cpu",
                           signals=("lfp", "dipole"))
    whole = predict_lfp(inputs_from_rates(g, spec, seed=11), model=model_dir, seed=11,
                        batch_size=5, device="cpu", signals=("lfp", "dipole"))
    for key in ("lfp", "dipole"):
        scale = np.abs(whole[key].values).max()
        assert np.allclose(streamed[key].values, whole[key].values, atol=1e-5 * scale), key


# ---- suite 5: model folders -------------------------------------------------------------------
FOLDER_FILES = ["model.safetensors", "model.json", "geometry.npz", "metrics.json", "README.md",
                "MANIFEST.json"]
bad_names = st.sampled_from(["../x", "../../etc/passwd", "/etc/passwd", "..", ".", "",
                             "sub/model.json", "model.json/..", "a\x00b", "C:\\x", "~/x",
                             "model.json ", "evil.py"])
manifest_edits = st.one_of(
    st.tuples(st.just("add"), bad_names, st.one_of(junk, st.just({"sha256": "0", "bytes": 1}))),
    st.tuples(st.just("drop"), st.sampled_from(FOLDER_FILES[:-1])),
    st.tuples(st.just("entry"), st.sampled_from(FOLDER_FILES[:-1]), junk),
    st.tuples(st.just("files"), junk),
    st.tuples(st.just("root"), junk),
)
damage_ops = st.one_of(
    st.tuples(st.just("flip"), st.sampled_from(FOLDER_FILES), st.floats(0, 1, exclude_max=True),
              st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.sampled_from(FOLDER_FILES), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("delete"), st.sampled_from(FOLDER_FILES)),
    st.tuples(st.just("append"), st.sampled_from(FOLDER_FILES), st.binary(min_size=1, max_size=9)),
    st.tuples(st.just("manifest"), manifest_edits),
    st.tuples(st.just("plant"), st.sampled_from(["evil.py", "model.pkl", "__init__.py"])),
)


def apply_damage(folder: Path, op: tuple) -> None:
    kind, *args = op
    if kind == "plant":  # an extra file: never listed, never read, never run
        (folder / args[0]).write_text("raise SystemExit('executed!')\n")
        return
    if kind == "manifest":
        path = folder / "MANIFEST.json"
        if not path.is_file():
            return
        try:
            man = json.loads(path.read_text())
        except ValueError:
            return
        edit = args[0]
        files = man.get("files") if isinstance(man, dict) else None
        if edit[0] == "root":
            man = edit[1]
        elif edit[0] == "files" and isinstance(man, dict):
            man["files"] = edit[1]
        elif isinstance(files, dict):
            if edit[0] == "add":
                files[edit[1]] = edit[2]
            elif edit[0] == "drop":
                files.pop(edit[1], None)
            else:
                files[edit[1]] = edit[2]
        path.write_text(json.dumps(man))
        return
    path = folder / args[0]
    if not path.is_file():
        return
    data = bytearray(path.read_bytes())
    if kind == "delete":
        path.unlink()
    elif kind == "flip" and data:
        data[int(args[1] * len(data))] ^= args[2]
        path.write_bytes(bytes(data))
    elif kind == "truncate":
        path.write_bytes(bytes(data[: int(args[1] * len(data))]))
    elif kind == "append":
        path.write_bytes(bytes(data) + args[1])


@budget(120)
@given(ops=st.lists(damage_ops, min_size=1, max_size=3), rewrite=st.integers(0, 3))
def test_damaged_model_folders_are_refused(model_dir, ops, rewrite):
    """Without a rewritten manifest, any change to a listed file is refused. With one (an
    edit made consistent again, rewrite == 0), loading still fails only with
    ModelFolderError, and a model that loads runs."""
    original = {p.name: p.read_bytes() for p in Path(model_dir).iterdir()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        shutil.copytree(model_dir, folder)
        for op in ops:
            apply_damage(folder, op)
        rewritten = rewrite == 0
        if rewritten:
            write_manifest(folder)
        try:
            loaded = load_surrogate(folder)
        except ModelFolderError as exc:
            assert str(folder) in str(exc) or "MANIFEST" in str(exc), str(exc)
            tally("model_folders", "refused")
            return
        if not rewritten:  # verified: what was loaded is byte for byte what was exported
            for name in json.loads((folder / "MANIFEST.json").read_text())["files"]:
                assert (folder / name).read_bytes() == original[name], name
            tally("model_folders", "loaded_verified")
        else:
            with torch.no_grad():
                out = loaded.model(torch.zeros(1, loaded.geometry.n_channels, 8))
            assert out["v"].shape == (1, loaded.geometry.n_segments, 8)
            tally("model_folders", "loaded_after_consistent_edit")


# ---- suite 6: geometry bundles ---------------------------------------------------------------
@pytest.fixture(scope="module")
def geometry_file(pyramid, tmp_path_factory):
    return pyramid.geometry.save(tmp_path_factory.mktemp("geom") / "g.npz")


def crafted_npz(path: Path, variant: str, geometry_file: Path) -> None:
    """A well-formed zip with the wrong content."""
    with np.load(geometry_file, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if variant == "object_array":
        arrays["x"] = np.array([{"a": 1}], dtype=object)
    elif variant.startswith("drop:"):
        arrays.pop(variant[5:])
    elif variant == "header_not_json":
        arrays["header"] = np.array("{not json")
    elif variant == "header_list":
        arrays["header"] = np.array("[1, 2]")
    elif variant == "shape":
        arrays["m_shape"] = np.array([3, 3])
    elif variant == "nan":
        arrays["d"] = arrays["d"] * np.nan
    elif variant == "index":
        arrays["input_segments"] = arrays["input_segments"] + 10**6
    elif variant == "moved":  # plausible content, stale fingerprint
        arrays["x"] = arrays["x"] + 1.0
    if variant == "object_array":
        np.savez(path, allow_pickle=True, **arrays)
    else:
        np.savez(path, **arrays)


@budget(80)
@given(op=st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("craft"), st.sampled_from(
        ["object_array", "drop:x", "drop:header", "drop:m_data", "header_not_json",
         "header_list", "shape", "nan", "index", "moved"]))))
def test_damaged_geometry_bundles_are_refused(geometry_file, op):
    reference = CellGeometry.load(geometry_file)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.npz"
        data = bytearray(Path(geometry_file).read_bytes())
        if op[0] == "flip":
            data[int(op[1] * len(data))] ^= op[2]
            path.write_bytes(bytes(data))
        elif op[0] == "truncate":
            path.write_bytes(bytes(data[: int(op[1] * len(data))]))
        elif op[0] == "append":
            path.write_bytes(bytes(data) + op[1])
        else:
            crafted_npz(path, op[1], geometry_file)
        try:
            geom = CellGeometry.load(path)
        except GeometryError as exc:
            assert str(path) in str(exc) or "CellGeometry" in str(exc), str(exc)
            tally("geometry_bundles", "refused")
            return
        # a change that leaves the content intact (zip metadata, trailing bytes) may load;
        # one that changed any number must not
        for key in ("x", "y", "z", "d"):
            assert np.array_equal(getattr(geom, key), getattr(reference, key)), key
        assert (geom.vmem_to_imem != reference.vmem_to_imem).nnz == 0
        assert geom.fingerprint == reference.fingerprint
        tally("geometry_bundles", "loaded_intact")


# ---- nothing a user loads runs code ----------------------------------------------------------
PACKAGE = Path(lfps.__file__).parent
FORBIDDEN = {
    "pickle module": re.compile(r"\bimport\s+(c?pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
                                r"|\b(c?pickle|dill|cloudpickle|joblib|marshal)\.loads?\("),
    "torch.load": re.compile(r"\btorch\.load\("),
    "np.load with pickle": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load without SafeLoader": re.compile(r"\byaml\.(unsafe_)?load(_all)?\((?![^)]*SafeLoader)"),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\("),
    "np.load without allow_pickle=False": re.compile(r"\bnp\.load\((?![^)]*allow_pickle=False)"),
}


def test_no_pickle_or_code_execution_where_users_load():
    """Static check over the package source. There is no allow-list: no use is legitimate."""
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for what, pattern in FORBIDDEN.items():
                if pattern.search(code):
                    hits.append(f"{path.relative_to(PACKAGE)}:{lineno}: {what}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_pickle_codec_in_a_dataset_store_is_not_run(tmp_path):
    """A dataset store is zarr: a crafted array whose codec is pickle must not be decoded."""
    import numcodecs

    from lfpsurrogate.data.store import done_mask

    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    store = tmp_path / "evil.zarr"
    (store / "done").mkdir(parents=True)
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    (store / "done" / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [1], "chunks": [1], "dtype": "|O", "compressor": None,
        "fill_value": None, "order": "C", "filters": [{"id": "pickle", "protocol": 5}]}))
    payload = np.empty(1, dtype=object)
    payload[0] = Payload()
    (store / "done" / "0").write_bytes(numcodecs.Pickle().encode(payload))
    with pytest.raises(Exception):
        done_mask(store)
    assert not marker.exists()


def test_model_folder_loading_reads_only_safetensors_and_json(model_dir, tmp_path):
    """A model folder whose weights file is a pickle (torch.save) is refused, not unpickled."""
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Payload()}, folder / "model.safetensors")
    write_manifest(folder)  # consistent: the manifest alone would accept it
    with pytest.raises(ModelFolderError, match="safetensors"):
        load_surrogate(folder)
    assert not marker.exists()


# ---- numerical guards -------------------------------------------------------------------------
def nan_weight_folder(model_dir: Path, dest: Path, name: str = "basis") -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, dest)
    weights = load_file(str(dest / "model.safetensors"))
    key = next(k for k in weights if name in k)
    weights[key] = torch.full_like(weights[key], float("nan"))
    save_file(weights, str(dest / "model.safetensors"))
    write_manifest(dest)
    return dest


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("tensor", ["basis", "spike"])
def test_non_finite_surrogate_output_raises(model_dir, tmp_path, fold, tensor):
    from safetensors.torch import load_file

    names = list(load_file(str(Path(model_dir) / "model.safetensors")))
    pick = next((k for k in names if tensor in k), None)
    if pick is None:
        pytest.skip(f"no tensor named like {tensor!r}: {names}")
    folder = nan_weight_folder(model_dir, tmp_path / f"nan_{tensor}_{fold}", pick)
    with pytest.raises(FloatingPointError, match="non-finite|not finite"):
        predict_lfp(rates={"duration_ms": 20, "n_cells": 2}, model=folder, device="cpu",
                    signals=("lfp", "spikes"), fold_readout=fold)


@pytest.mark.parametrize("rates, measure", [
    ({"duration_ms": 30, "rate_exc_hz": 400.0, "rate_inh_hz": 400.0}, r"mean input rate \d+"),
    ({"duration_ms": 30, "rate_exc_hz": 0.0, "rate_inh_hz": 0.0}, r"mean input rate 0\.00 Hz"),
])
def test_out_of_distribution_inputs_warn_with_the_measure(model_dir, rates, measure):
    with pytest.warns(UserWarning, match=measure + r".*training range 0\.50-20\.00 Hz"):
        predict_lfp(rates=rates, model=model_dir, device="cpu")


def test_one_out_of_distribution_cell_in_a_population_warns(model_dir, n_channels):
    x = np.random.default_rng(0).poisson(0.005, (3, n_channels, 30))
    x[2] = np.random.default_rng(1).poisson(1.0, (n_channels, 30))  # ~1000 Hz
    with pytest.warns(UserWarning, match=r"\(cell 2;"):
        predict_lfp(x, model=model_dir, device="cpu", batch_size=2)


def test_counts_above_the_supported_maximum_are_refused(model_dir, n_channels, pyramid):
    x = np.zeros((n_channels, 10), np.int64)
    x[0, 0] = 10**9  # one event per spike: NEURON would queue a billion events
    with pytest.raises(InputError, match="at most 255"):
        predict_lfp(x, model=model_dir, device="cpu")
    with pytest.raises(InputError, match="at most 255"):
        lfps.simulate(pyramid, x)
