"""`lfpsurrogate bench`: the measurements run end to end on tiny sizes (a small untrained
surrogate of pyramid_hh), the JSON has the spec's keys, the doc renders. No timing checks."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from lfpsurrogate.bench import BenchError, make_context, run_bench, write_performance_doc
from lfpsurrogate.cli import build_parser
from lfpsurrogate.figures import plot_scaling

from conftest import make_tiny_model_folder, make_stick_geometry

TINY = dict(single_ms=200.0, pop_cells=3, pop_ms=150.0, neuron_cells=1, sweep_cells=(1, 2),
            sweep_durations_ms=(200.0,), sweep_long_population=None, repeats=1)


@pytest.fixture(scope="module")
def model_dir(pyramid, tmp_path_factory):
    return make_tiny_model_folder(pyramid.geometry, tmp_path_factory.mktemp("bench_model"),
                                  "tiny_pyramid")


@pytest.fixture(scope="module")
def result(model_dir, pyramid, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    return run_bench(model_dir, quick=True, device="cpu", cell=pyramid, out_dir=out, **TINY)


def test_result_has_spec_keys_and_sane_values(result):
    for key in ("speedup_single", "speedup_population", "surrogate_cell_seconds_per_second",
                "neuron_cell_seconds_per_second", "torch_threads", "device", "machine",
                "accuracy", "single", "population", "sweep", "targets"):
        assert key in result, key
    for key in ("speedup_single", "speedup_population", "surrogate_cell_seconds_per_second",
                "neuron_cell_seconds_per_second"):
        assert result[key] > 0 and math.isfinite(result[key]), key
    assert result["device"] == "cpu" and result["torch_threads"] >= 1
    assert result["model_trained"] is False and "warning" in result
    m = result["machine"]
    assert m["cpu_model"] and m["logical_cores"] >= 1 and "torch" in m["versions"]
    s = result["single"]
    assert s["cells"] == 1 and s["duration_ms"] == 200.0
    assert s["neuron_wall_s"] == pytest.approx(s["neuron_simulate_s"] + s["neuron_forward_s"])
    assert s["surrogate_first_call_s"] > 0 and s["surrogate_memory"]["rss_peak_mb"] > 0
    # the figures are what their definitions say, from the measured walls
    assert result["speedup_single"] == pytest.approx(s["neuron_wall_s"] / s["surrogate_wall_s"])
    assert result["neuron_cell_seconds_per_second"] == pytest.approx(0.2 / s["neuron_wall_s"])
    assert result["surrogate_cell_seconds_per_second_single"] == pytest.approx(
        0.2 / s["surrogate_wall_s"])
    assert s["surrogate_wall_s"] == min(s["surrogate_walls_s"])  # the best of the repeats
    # the evaluate keys, computed on this very run
    for key in ("soma_rmse_mv", "lfp_r_median", "eeg_r_median", "meg_r_median", "dipole_r",
                "n_true_spikes", "n_predicted_spikes", "lfp_rel_rmse"):
        assert key in result["accuracy"], key
    assert result["accuracy"]["soma_rmse_mv"] >= 0
    for key in ("lfp_r_median", "eeg_r_median", "meg_r_median"):
        r = s["signals_direct"][key]
        assert r is None or -1 <= r <= 1
    # the timed predict_lfp output and the Evaluator (from voltages) agree on the LFP r
    assert s["signals_direct"]["lfp_r_median"] == pytest.approx(result["accuracy"]["lfp_r_median"],
                                                                abs=1e-3)


def test_population_scaling_is_declared(result):
    p = result["population"]
    assert p["cells"] == 3 and p["neuron_cells_simulated"] == 1 and p["neuron_time_scaled_from"] == 1
    # NEURON runs on as many parallel processes as the surrogate has cores; its wall scaled
    from lfpsurrogate.data.generate import available_cores

    assert p["neuron_processes"] == available_cores() == result["cores"]["usable"]
    assert "parallel processes" in p["neuron_scaling"]
    assert p["neuron_simulate_s"] == pytest.approx(p["neuron_parallel_wall_s"] * 3)
    assert p["neuron_parallel_wall_s"] >= max(p["neuron_simulate_walls_s"])
    # the events path: the same signals as the counts path, and its own speed-up
    for part in (p, result["single"]):
        assert part["events_vs_counts_max_rel_diff"] < 1e-4
        assert part["speedup_events"] == pytest.approx(part["neuron_wall_s"]
                                                       / part["surrogate_events_wall_s"])
        assert part["n_events"] > 0
    acc = p["accuracy_subset"]
    assert acc["cells"] == 1 and {"lfp_r_median", "eeg_r_median", "meg_r_median"} <= set(acc)


def test_sweep_rows_and_files(result, tmp_path):
    pts = {(r["cells"], r["duration_ms"]) for r in result["sweep"]}
    assert pts == {(1, 1000.0), (2, 1000.0), (1, 200.0)}
    per_cell_second = (result["single"]["neuron_simulate_s_per_cell_second"]
                       + result["population"]["neuron_forward_s_per_cell_second"])
    for r in result["sweep"]:
        assert r["cell_seconds"] == pytest.approx(r["cells"] * r["duration_ms"] / 1000)
        assert r["neuron_wall_s_estimated"] == pytest.approx(r["cell_seconds"] * per_cell_second)
        assert r["speedup_estimated"] == pytest.approx(r["neuron_wall_s_estimated"] / r["surrogate_wall_s"])
    saved = json.loads(open(result["results_file"]).read())
    assert saved["speedup_single"] == result["speedup_single"]
    assert result["results_file"].endswith("-quick.json") and result["plot"].endswith(".png")
    plot_scaling(saved)  # builds without pyplot
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nmethod text\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\ntail\n")
    write_performance_doc(result["results_file"], doc, tmp_path / "figures" / "scaling.png")
    text = doc.read_text()
    assert "method text" in text and "tail" in text and "old" not in text
    assert "UNTRAINED" in text and "(b) 3 cells" in text and "figures/scaling.png" in text
    # the process's malloc settings are recorded and named (the CLI keeps freed memory)
    kept = saved["machine"]["allocator"]
    assert ("malloc: freed memory kept (up to 1024 MB" in text) if kept else ("malloc: glibc's defaults" in text)
    assert (tmp_path / "figures" / "scaling.png").stat().st_size > 0


def test_machine_info_records_the_malloc_settings(monkeypatch):
    """What retain_freed_memory applied, and glibc's variables from the environment, are in
    the bench JSON's machine info and in the rendered line."""
    from lfpsurrogate import allocator
    from lfpsurrogate.bench import _allocator_phrase, machine_info

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000000")
    info = machine_info("cpu")
    assert info["allocator"] is None
    assert info["malloc_environment"]["MALLOC_TRIM_THRESHOLD_"] == "1000000000"
    assert _allocator_phrase(info) == ("malloc: glibc's defaults (environment: "
                                       "MALLOC_TRIM_THRESHOLD_=1000000000)")
    kept = {"mmap_threshold_bytes": 32 * 2**20, "trim_threshold_bytes": 512 * 2**20}
    monkeypatch.setattr(allocator, "_applied", kept)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    info = machine_info("cpu")
    assert info["allocator"] == kept
    assert _allocator_phrase(info) == ("malloc: freed memory kept (up to 512 MB; heap for "
                                       "allocations under 32 MB)")


def test_refuses_a_cell_of_another_fingerprint(model_dir):
    with pytest.raises(BenchError, match="fingerprint"):
        make_context(model_dir, device="cpu", cell=SimpleNamespace(geometry=make_stick_geometry()))


def test_refuses_too_short_runs_and_unknown_sizes(model_dir, pyramid):
    with pytest.raises(BenchError, match="unknown bench sizes"):
        run_bench(model_dir, quick=True, device="cpu", cell=pyramid, out_dir=None, pop_size=3)
    with pytest.raises(BenchError, match="too short"):
        run_bench(model_dir, quick=True, device="cpu", cell=pyramid, out_dir=None,
                  **dict(TINY, single_ms=10.0))


def test_cli_registers_bench():
    args = build_parser().parse_args(["bench", "--quick", "--json", "--sweep-cells", "1", "5"])
    assert args.quick and args.json and args.sweep_cells == [1, 5] and callable(args.func)
