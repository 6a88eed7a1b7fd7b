"""data/store.py without NEURON: split arithmetic by hand, seeds from the documented
SeedSequence recipe, parameter validation at its bounds, and a store written in the test
with the layout of docs/datasets.md (split, done, generation attrs, geometry subgroup)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import xarray as xr

from lfpsurrogate.data.store import (
    FORMAT_VERSION, STORE_FORMAT, DatasetError, GenerationParams, check_fingerprint,
    data_fingerprint, directory_bytes, done_mask, geometry_dataset, open_store, parse_splits,
    read_attrs, sample_plan, sample_seed, split_counts, split_samples, store_geometry,
    store_info, store_params)

from conftest import make_stick_geometry


@pytest.mark.parametrize("n, splits, want", [
    (10, (("train", 0.8), ("val", 0.1), ("test", 0.1)), {"train": 8, "val": 1, "test": 1}),
    # raw 5.6, 1.4, 0.0 + remainders .6 .4: train gets the one left over
    (7, (("train", 0.8), ("val", 0.2)), {"train": 6, "val": 1}),
    # raw 1.5, 1.5: floors 1, 1, one left, ties go to the first (stable order)
    (3, (("train", 0.5), ("test", 0.5)), {"train": 2, "test": 1}),
    # raw 2.85, 0.15: val would get 0; it takes one from the largest
    (3, (("train", 0.95), ("val", 0.05)), {"train": 2, "val": 1}),
    (1, (("train", 0.9), ("val", 0.1)), {"train": 1, "val": 0}),  # not enough to share
    (4, (("train", 1.0), ("val", 0.0)), {"train": 4, "val": 0}),
])
def test_split_counts_by_hand(n, splits, want):
    assert split_counts(n, splits) == want


@pytest.mark.parametrize("splits", [(("train", 0.5), ("val", 0.4)), (("train", 1.2), ("val", -0.2)),
                                    (("train", 0.5), ("train", 0.5)), (("shift", 1.0),), ()])
def test_split_counts_refuses(splits):
    with pytest.raises(DatasetError):
        split_counts(10, splits)


def test_parse_splits():
    assert parse_splits("train=0.8, val=0.1,test=0.1,") == (("train", 0.8), ("val", 0.1), ("test", 0.1))
    for bad in ("train", "train=x", "train:0.8"):
        with pytest.raises(DatasetError, match="cannot read split"):
            parse_splits(bad)


def test_sample_seeds_follow_the_documented_seed_sequence():
    """Seed of sample j of split s: SeedSequence(seed, spawn_key=(code of s, j)), first 64-bit
    word shifted right by one (split codes train 0, val 1, test 2, shift 3)."""
    for split, code in (("train", 0), ("val", 1), ("test", 2), ("shift", 3)):
        for j in (0, 5):
            word = np.random.SeedSequence(11, spawn_key=(code, j)).generate_state(2, np.uint32)
            want = (int(word[0]) | (int(word[1]) << 32)) >> 1
            assert sample_seed(11, split, j) == want
    assert 0 <= sample_seed(0, "test", 0) < 2**63


def test_sample_plan_order_protocols_and_shift():
    p = GenerationParams(cell="c", n_samples=5, duration_ms=10.0, seed=3, n_shift=2,
                         protocols=("constant", "modulated"), splits=(("train", 0.6), ("val", 0.2), ("test", 0.2)))
    names, seeds, protocols = sample_plan(p)
    assert names.tolist() == ["train"] * 3 + ["val", "test"] + ["shift"] * 2
    assert seeds.tolist() == [sample_seed(3, s, j) for s, j in
                              zip(names, [0, 1, 2, 0, 0, 0, 1])]
    assert protocols[-2:].tolist() == ["clustered", "clustered"]
    for s, prot in zip(seeds[:5], protocols[:5]):  # own stream [seed, 7] picks the protocol
        assert prot == ("constant", "modulated")[int(np.random.default_rng([int(s), 7]).integers(2))]
    assert set(protocols[:5]) == {"constant", "modulated"} or len(protocols) < 5
    one = GenerationParams(cell="c", n_samples=2, duration_ms=10.0, seed=3, protocols=("piecewise",),
                           splits=(("train", 1.0),))
    assert sample_plan(one)[2].tolist() == ["piecewise", "piecewise"]


def test_generation_params_bounds_and_json():
    base = dict(cell="c", n_samples=4, duration_ms=10.0, seed=1)
    p = GenerationParams(**base)
    assert (p.n_time, p.n_total) == (10, 4)
    assert GenerationParams(**base, n_shift=2, bin_ms=2.0).n_total == 6
    assert GenerationParams(**base, bin_ms=2.5).n_time == 4
    assert GenerationParams(**{**base, "duration_ms": 1.0}).n_time == 1
    assert GenerationParams.from_json(p.to_json()) == p
    with pytest.raises(AttributeError):  # frozen: a store's parameters cannot drift
        p.seed = 2
    q = GenerationParams(**{**base, "seed": 2}, dtype="float16")
    assert p.differences(q) == {"seed": (1, 2), "dtype": ("float32", "float16")}
    assert p.differences(p) == {}
    # defaults of docs/datasets.md: 5 Hz / 2 Hz, 1 ms bins, 1 s chunks, train/val/test 0.8/0.1/0.1
    assert (p.rate_exc_hz, p.rate_inh_hz, p.bin_ms, p.chunk_ms, p.dtype) == (5.0, 2.0, 1.0, 1000.0, "float32")
    assert p.splits == (("train", 0.8), ("val", 0.1), ("test", 0.1)) and p.format_version == FORMAT_VERSION
    for bad in (dict(n_samples=0), dict(n_samples=1.5), dict(n_shift=-1), dict(duration_ms=0.5),
                dict(duration_ms=10.5), dict(dtype="float64"), dict(protocols=()),
                dict(protocols=("nope",)), dict(n_shift=1, protocols=("mixed",)),
                dict(n_shift=1, protocols=("clustered",)), dict(chunk_ms=0.0),
                dict(duration_ms=float("inf"))):
        with pytest.raises(DatasetError):
            GenerationParams(**{**base, **bad})
    GenerationParams(**base, n_shift=0, protocols=("clustered",))  # no shift samples: allowed
    assert GenerationParams(**{**base, "n_samples": 1}, splits=(("train", 1.0),)).n_total == 1
    assert GenerationParams(**base, chunk_ms=0.5).chunk_ms == 0.5
    GenerationParams(**base, n_shift=1, protocols=("constant",))


@pytest.fixture
def hand_store(tmp_path):
    """A store as docs/datasets.md lays it out, written here with xarray (no generator)."""
    geom = make_stick_geometry(n=4)
    p = GenerationParams(cell="stick", n_samples=4, duration_ms=20.0, seed=1, n_shift=1,
                         splits=(("train", 0.5), ("val", 0.25), ("test", 0.25)))
    path = tmp_path / "s.zarr"
    ds = xr.Dataset({"split": ("sample", np.array(["train", "train", "val", "test", "shift"], object)),
                     "done": ("sample", np.array([1, 0, 1, 1, 0], np.uint8)),
                     "seed": ("sample", np.arange(5, dtype=np.int64))},
                    attrs={"format": STORE_FORMAT, "format_version": FORMAT_VERSION,
                           "generation": p.to_json(), "cell": "stick",
                           "cell_fingerprint": geom.fingerprint,
                           "versions": json.dumps({"numpy": np.__version__})})
    ds.to_zarr(path, consolidated=False)
    geometry_dataset(geom).to_zarr(path, group="geometry", consolidated=False, mode="a")
    return path, geom, p


def test_a_hand_written_store_reads_back(hand_store):
    path, geom, p = hand_store
    assert done_mask(path).tolist() == [True, False, True, True, False]
    assert split_samples(path, "train").tolist() == [0]
    assert split_samples(path, "train", done_only=False).tolist() == [0, 1]
    assert split_samples(path, "shift").tolist() == []
    with pytest.raises(DatasetError, match="unknown split"):
        split_samples(path, "holdout")
    assert store_params(path) == p
    g = store_geometry(path)
    assert g.fingerprint == geom.fingerprint and g.name == geom.name
    assert np.array_equal(g.vmem_to_imem.toarray(), geom.vmem_to_imem.toarray())
    assert np.array_equal(g.z, geom.z) and list(g.region) == list(geom.region)
    info = store_info(path)
    assert info["samples"] == 5 and info["done"] == 3
    assert info["splits"] == {"train": {"samples": 2, "done": 1}, "val": {"samples": 1, "done": 1},
                              "test": {"samples": 1, "done": 1}, "shift": {"samples": 1, "done": 0}}
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert info["bytes"] == size == directory_bytes(path)
    assert info["bytes_per_simulated_s"] == round(size / (3 * 20.0 / 1000))
    assert info["versions"] == {"numpy": np.__version__} and info["cell"] == "stick"
    text = p.to_json() + geom.fingerprint
    assert data_fingerprint(path) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert check_fingerprint(path, geom)["cell"] == "stick"
    assert check_fingerprint(path, geom.fingerprint)["cell"] == "stick"
    assert check_fingerprint(path, None)["cell"] == "stick"
    other = make_stick_geometry(n=5, name="other")
    with pytest.raises(DatasetError, match="cell 'other' fingerprint"):
        check_fingerprint(path, other, expected_from="the model")
    with pytest.raises(DatasetError, match="fingerprint"):
        open_store(path, "0" * 16)
    assert open_store(path, geom)["done"].values.tolist() == [1, 0, 1, 1, 0]


def test_stores_that_are_not_ours_are_refused(hand_store, tmp_path):
    import zarr

    path, geom, _ = hand_store
    with pytest.raises(DatasetError, match="does not exist"):
        read_attrs(tmp_path / "missing.zarr")
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(DatasetError):
        read_attrs(tmp_path / "junk.zarr")
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(DatasetError, match="store format version"):
        read_attrs(path)
    group.attrs["format_version"] = FORMAT_VERSION
    group.attrs["format"] = "something-else"
    with pytest.raises(DatasetError, match="not an lfpsurrogate dataset store"):
        read_attrs(path)
    group.attrs["format"] = STORE_FORMAT
    g = zarr.open_group(str(path / "geometry"), mode="r+")
    g.attrs["fingerprint"] = "0" * 16
    with pytest.raises(DatasetError, match="does not match its fingerprint"):
        store_geometry(path)
