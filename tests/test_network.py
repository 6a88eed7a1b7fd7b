"""Networks of surrogate cells (lfpsurrogate.network): the streaming form equals the one-pass
model, seeding, the YAML round trip of the builder API, every refusal, the CLI, and a short
run of the NEURON engine."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_stick_geometry, make_tiny_model_folder


@pytest.fixture(scope="module")
def tiny_spiking(tmp_path_factory):
    """An untrained (but normalised) spiking surrogate of a 11-segment stick, its spike
    offset raised so that it fires ~100 Hz under 15 Hz input, so spikes, history and waveforms are all exercised."""
    g = make_stick_geometry()
    return make_tiny_model_folder(g, tmp_path_factory.mktemp("net"), architecture="spiking",
                                  name="spk", tweak=_tweak)


def _tweak(m):
    m.b_spike.fill_(0.0)
    # the TCN heads start at zero: give them weights, so that the TCN state matters
    torch.manual_seed(1)
    m.head_z.weight.normal_(0.0, 0.3)
    m.head_drive.weight.normal_(0.0, 1.0)
    m.soma_gain.copy_(torch.tensor([0.5, 1.0]))  # the drive sees v_soma and its change
    m.waveform.normal_(0.0, 0.5)  # spikes add waveforms to v (waveform_gain is 1)
    m.history.mul_(0.2)  # weak refractoriness: the logit can stay above 0 for several bins
    m.b_latent.normal_(0.0, 0.3)  # biases and local gains non-zero: every term is exercised
    m.b_segment.normal_(0.0, 0.3)
    m.w_local.normal_(0.0, 0.3)


def _spec(model, **over):
    spec = {"seed": 5,
            "populations": {"A": {"model": str(model), "n": 4,
                                  "placement": {"radius_um": 100, "z_um": [-20, 20]}},
                            "B": {"model": str(model), "n": 3}},
            "external": [{"target": "A", "rate_exc_hz": 8, "rate_inh_hz": 2},
                         {"target": "B", "rate_exc_hz": 4, "rate_inh_hz": 1},
                         {"type": "evoked", "target": "B", "time_ms": 30, "jitter_ms": 2,
                          "n_events": 15, "regions": ["apical"]}],
            "connections": [{"source": "A", "target": "B", "kind": "exc", "probability": 0.6,
                             "weight": 2, "delay_ms": [4, 6]},
                            {"source": "B", "target": "A", "kind": "inh", "probability": 0.5,
                             "weight": 1, "delay_ms": 4, "regions": ["soma", "apical"]},
                            {"source": "A", "target": "A", "kind": "exc", "probability": 0.5,
                             "weight": 3, "delay_ms": [4, 8]}]}
    spec.update(over)
    return spec


def _loaded(folder):
    from lfpsurrogate.modelfolder import load_surrogate

    return load_surrogate(folder)


# ---- streaming equals one pass ------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 3, 16, 200])
def test_streaming_equals_one_pass(tiny_spiking, chunk):
    """Chunked StreamingSpiking + StreamingSignals give the one-pass model's spikes, logits,
    latents and signals (LFP + dipole through each cell's placed geometry)."""
    import lfpsurrogate as lfps
    from lfpsurrogate.network.signals import StreamingSignals, cell_rows
    from lfpsurrogate.network.stream import StreamingSpiking
    from lfpsurrogate.nn.linear import InputEvents

    loaded = _loaded(tiny_spiking)
    m, g = loaded.model, loaded.geometry
    n, t_len = 3, 200
    x = torch.from_numpy(np.stack([lfps.poisson_inputs(g, t_len, seed=i, protocol="constant",
                                                       rate_exc_hz=15).values
                                   for i in range(n)]).astype(np.float32))
    pos = np.array([[30.0, 0, 0], [-40, 20, 10], [0, -60, -5]])
    rot = np.array([[0, 0, 0.3], [0, 0, 2.0], [0, 0, 4.0]])
    with torch.inference_mode():
        ref = m(x)
        dz_ref = m.head_z(m.trunk_hidden(*m.normalised(x)))
    assert ref["spikes"].sum() > 10  # the test means something only with spikes
    rows = cell_rows(g, "laminar-16", pos, rot).astype(np.float64)
    v = ref["v"].double().numpy()
    ref_sig = np.einsum("nes,nst->et", rows, v - v.mean())
    st = StreamingSpiking(m, n)
    sig = StreamingSignals(m, g, lfps.load_probe("laminar-16"), pos, rot)
    zs, ss, ls, outs = [], [], [], []
    for b0 in range(0, t_len, chunk):
        b1 = min(t_len, b0 + chunk)
        ev = InputEvents(x[:, :, b0:b1])
        o = st.step(ev.batch, ev.channel, ev.time, ev.count, b1 - b0)
        outs.append(sig.step(o["dz"], o["spikes"], o["events"]))
        zs.append(o["dz"]), ss.append(o["spikes"]), ls.append(o["logit"])
    assert torch.equal(torch.cat(ss, -1), ref["spikes"])
    torch.testing.assert_close(torch.cat(ls, -1), ref["spike_logit"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(torch.cat(zs, -1), dz_ref, atol=1e-4, rtol=1e-5)
    got = torch.cat(outs, -1).double().numpy()
    scale = np.abs(ref_sig).max(axis=1, keepdims=True)
    scale = np.maximum(scale, 1e-3 * scale.max())  # rows that are ~0 (a stick has no p_x)
    np.testing.assert_allclose(got / scale, ref_sig / scale, atol=2e-4)


def _network_inputs(net, res):
    """The (cell, channel, time) counts every cell received in a run: external events plus
    every recorded spike routed through the connectivity."""
    from lfpsurrogate.network.drives import ExternalDrives

    n_bins = res.sizes["time"]
    g = net.populations[0].geometry
    x = np.zeros((net.n_cells, g.n_channels, n_bins), np.float32)
    c, ch, b, cnt = ExternalDrives(net.spec, net.populations, n_bins).all_events()
    np.add.at(x, (c, ch, b), cnt)
    conn = net.connectivity
    cells, bins = np.nonzero(res["spikes"].values)
    idx = conn.outgoing(cells)
    arrive = np.repeat(bins, np.diff(conn.indptr)[cells]) + conn.delay[idx]
    ok = arrive < n_bins
    np.add.at(x, (conn.target[idx][ok], conn.channel[idx][ok], arrive[ok]), conn.weight[idx][ok])
    return x


def test_network_run_is_the_one_pass_model_on_its_own_inputs(tiny_spiking):
    """Every cell's spikes in a recurrent run equal the one-pass model on the inputs that cell
    received; chunk sizes 1..min delay give the same run."""
    import lfpsurrogate as lfps

    net = lfps.Network(_spec(tiny_spiking))
    runs = [net.run(80, signals=("lfp", "eeg"), chunk_bins=c) for c in (1, 2, 4)]
    assert runs[0].attrs["chunk_bins"] == 1 and runs[2].attrs["chunk_bins"] == 4
    assert net.connectivity.n > 5 and int(runs[0]["spikes"].sum()) > 20
    for r in runs[1:]:
        np.testing.assert_array_equal(r["spikes"].values, runs[0]["spikes"].values)
        np.testing.assert_allclose(r["lfp"].values, runs[0]["lfp"].values, rtol=1e-4,
                                   atol=1e-6 * float(np.abs(runs[0]["lfp"]).max()))
    x = _network_inputs(net, runs[0])
    m = _loaded(tiny_spiking).model
    with torch.inference_mode():
        ref = m(torch.from_numpy(x))
    np.testing.assert_array_equal(ref["spikes"].numpy().astype(np.int8), runs[0]["spikes"].values)


def test_result_contents(tiny_spiking):
    import lfpsurrogate as lfps

    net = lfps.Network(_spec(tiny_spiking))
    res = net.run(50, signals=("lfp", "dipole", "eeg", "meg"))
    assert res["spikes"].dims == ("cell", "time") and res["spikes"].shape == (7, 50)
    assert list(res["population"].values) == ["A", "B"]
    assert list(res["cell_population"].values) == ["A"] * 4 + ["B"] * 3
    rate_a = res["spikes"].values[:4].mean(0) * 1000
    np.testing.assert_allclose(res["rate"].sel(population="A").values, rate_a)
    assert res["lfp"].dims == ("electrode", "time") and res["lfp"].attrs["units"] == "mV"
    assert res["eeg"].shape == (19, 50) and res["meg"].dims == ("sensor", "axis", "time")
    stats = json.loads(res.attrs["stats"])
    assert set(stats) == {"A", "B"} and {"rate_hz", "isi_cv", "synchrony"} <= set(stats["A"])
    # the placement is a cylinder around the probe axis, rotations about z only
    r = np.hypot(net.positions[:4, 0], net.positions[:4, 1])
    assert (r <= 100).all() and (np.abs(net.positions[:4, 2]) <= 20).all()
    assert (net.rotations[:, :2] == 0).all() and np.ptp(net.rotations[:, 2]) > 0


# ---- seeding ------------------------------------------------------------------------------
def test_seeding(tiny_spiking):
    import lfpsurrogate as lfps
    from lfpsurrogate.network.drives import ExternalDrives

    def draw(seed):
        net = lfps.Network(_spec(tiny_spiking, seed=seed))
        c = net.connectivity
        ev = ExternalDrives(net.spec, net.populations, 300).all_events()
        return net, (c.source, c.target, c.channel, c.delay, net.positions, net.rotations), ev

    _, a, ev_a = draw(5)
    _, b, ev_b = draw(5)
    _, c, ev_c = draw(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(ev_a, ev_b):
        np.testing.assert_array_equal(x, y)
    def differ(x, y):
        return x.shape != y.shape or not np.array_equal(x, y)

    # every stream depends on the seed: connectivity, placement, Poisson and evoked events
    assert differ(a[1], c[1]) and differ(a[4], c[4]) and differ(a[5], c[5])
    net5, net6 = draw(5)[0], draw(6)[0]
    for kind in ("poisson", "evoked"):
        e5, e6 = ({**net.spec, "external": [e for e in net.spec["external"] if e["type"] == kind]}
                  for net in (net5, net6))
        assert differ(ExternalDrives(e5, net5.populations, 300).all_events()[1],
                      ExternalDrives(e6, net6.populations, 300).all_events()[1]), kind
    # events do not depend on how the run is chunked
    net = draw(5)[0]
    d = ExternalDrives(net.spec, net.populations, 300)
    parts = [d.events(b, min(300, b + 7)) for b in range(0, 300, 7)]
    for i in range(4):
        np.testing.assert_array_equal(np.sort(np.concatenate([p[i] for p in parts])),
                                      np.sort(ev_a[i]))


def test_drive_rates_and_evoked_volley(tiny_spiking):
    import lfpsurrogate as lfps
    from lfpsurrogate.network.drives import ExternalDrives

    net = lfps.Network(_spec(tiny_spiking))
    c, ch, b, cnt = ExternalDrives(net.spec, net.populations, 2000).all_events()
    n_in = net.populations[0].geometry.n_channels // 2
    a = c < 4
    rate_exc = ((ch[a] < n_in).sum()) / (4 * n_in * 2.0)  # per slot, Hz
    assert rate_exc == pytest.approx(8.0, rel=0.1)
    volley = (c >= 4) & (b >= 20) & (b < 40) & (ch < n_in)
    assert volley.sum() >= 3 * 15 * 0.95  # 15 events per B cell near 30 ms


def test_rate_response_drive_is_the_networks_poisson_drive(tiny_spiking):
    """benchmarks/rate_response.py drives a lone cell as a network's Poisson drive does:
    the requested rates per slot (area-weighted), seeded, one cell's channels."""
    import importlib.util
    from pathlib import Path

    from lfpsurrogate.inputs import slot_weights

    path = Path(__file__).parents[1] / "benchmarks" / "rate_response.py"
    spec = importlib.util.spec_from_file_location("rate_response", path)
    rr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rr)
    counts = rr.network_drive_counts(str(tiny_spiking), 12.0, 0.25, 20000, seed=2)
    geom = _loaded(tiny_spiking).geometry
    n_in = geom.n_channels // 2
    assert counts.shape == (geom.n_channels, 20000) and counts.dtype == np.uint8
    w = slot_weights(geom)
    exc, inh = counts[:n_in].sum(1) / 20.0, counts[n_in:].sum(1) / 20.0  # Hz per slot
    assert exc.sum() == pytest.approx(12.0 * w.sum(), rel=0.06)  # 3 sd of 5280 events
    assert inh.sum() == pytest.approx(3.0 * w.sum(), rel=0.12)  # 3 sd of 660
    heavy = w > np.median(w)  # the bigger segments' slots fire more often
    assert exc[heavy].mean() / w[heavy].mean() == pytest.approx(exc[~heavy].mean() / w[~heavy].mean(), rel=0.2)
    np.testing.assert_array_equal(counts, rr.network_drive_counts(str(tiny_spiking), 12.0, 0.25, 20000, seed=2))
    assert not np.array_equal(counts, rr.network_drive_counts(str(tiny_spiking), 12.0, 0.25, 20000, seed=3))


# ---- builder API and YAML ---------------------------------------------------------------------
def test_builder_yaml_round_trip(tiny_spiking, tmp_path):
    import lfpsurrogate as lfps

    net = lfps.Network(seed=5)
    net.add_population("A", model=str(tiny_spiking), n=4, radius_um=100, z_um=(-20, 20))
    net.add_population("B", model=str(tiny_spiking), n=3)
    net.add_poisson_drive("A", rate_exc_hz=8, rate_inh_hz=2)
    net.add_poisson_drive("B", rate_exc_hz=4, rate_inh_hz=1)
    net.add_evoked_drive("B", time_ms=30, jitter_ms=2, n_events=15, regions=["apical"])
    net.add_connection("A", "B", kind="exc", probability=0.6, weight=2, delay_ms=(4, 6))
    net.add_connection("B", "A", kind="inh", probability=0.5, delay_ms=4,
                       regions=["soma", "apical"])
    net.add_connection("A", "A", kind="exc", probability=0.5, weight=3, delay_ms=(4, 8))
    path = tmp_path / "net.yaml"
    text = net.to_yaml(path)
    again = lfps.Network(path)
    assert again.spec == net.spec == lfps.Network(text).spec
    assert again.spec == lfps.Network(_spec(tiny_spiking)).spec
    np.testing.assert_array_equal(again.connectivity.target, net.connectivity.target)


def test_example_spec_is_valid():
    import lfpsurrogate as lfps
    from lfpsurrogate.network import EXAMPLE_SPEC

    net = lfps.Network(EXAMPLE_SPEC)
    assert net.n_cells >= 12 and net.connectivity.n > 0
    assert min(c["delay_ms"][0] for c in net.spec["connections"]) >= 1


# ---- refusals -------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    (lambda s: s["connections"][0].update(target="C"), ["connections[0].target", "'C'",
                                                        "unknown population"]),
    (lambda s: s["external"][0].update(target="L4"), ["external[0].target", "unknown population"]),
    (lambda s: s["connections"][0].update(delay_ms=[0.5, 2]), ["delay_ms", "below one bin",
                                                              "Raise the delay"]),
    (lambda s: s["connections"][1].update(delay_ms=0), ["delay_ms", "below one bin"]),
    (lambda s: s["connections"][0].update(probability=1.5), ["probability", "[0, 1]"]),
    (lambda s: s["connections"][0].update(probability=-0.1), ["probability", "[0, 1]"]),
    (lambda s: s["populations"]["A"].update(model="no_such_model"), ["populations.A.model",
                                                                      "no_such_model",
                                                                      "no model"]),
    (lambda s: s["populations"]["A"].update(n=0), ["populations.A.n", ">= 1"]),
    (lambda s: s["populations"]["A"].update(n=2.5), ["populations.A.n", "whole number"]),
    (lambda s: s["connections"][0].update(weight=0), ["weight", "[1, 255]"]),
    (lambda s: s["connections"][0].update(kind="gaba"), ["kind", "'gaba'", "exc"]),
    (lambda s: s["connections"][0].update(regions=["tuft"]), ["regions", "'tuft'", "basal"]),
    (lambda s: s["connections"][0].update(regions=["basal"]), ["regions", "input slots only",
                                                              "apical"]),
    (lambda s: s["connections"][0].update(delay_ms=[6, 4]), ["delay_ms", "above max"]),
    (lambda s: s["connections"][0].update(strength=3), ["connections[0]", "unknown key",
                                                        "'strength'"]),
    (lambda s: s["external"][0].update(rate_exc_hz=-1), ["rate_exc_hz", "[0, 1000]"]),
    (lambda s: s["external"][0].update(type="burst"), ["external[0].type", "'burst'"]),
    (lambda s: s["external"][2].pop("n_events"), ["external[2]", "missing", "n_events"]),
    (lambda s: s.update(populations={}), ["populations", "at least one population"]),
    (lambda s: s.update(seed=-1), ["seed", ">= 0"]),
])
def test_bad_specs_are_refused_before_any_run(tiny_spiking, change, words):
    import lfpsurrogate as lfps

    spec = _spec(tiny_spiking)
    change(spec)
    with pytest.raises(lfps.InputError) as err:
        lfps.Network(spec)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_refusals_of_the_builder_and_run(tiny_spiking, tmp_path):
    import lfpsurrogate as lfps

    net = lfps.Network(seed=1)
    with pytest.raises(lfps.InputError, match="no population"):
        net.run(10)
    net.add_population("A", model=str(tiny_spiking), n=2)
    with pytest.raises(lfps.InputError, match="exists already"):
        net.add_population("A", model=str(tiny_spiking), n=2)
    with pytest.raises(lfps.InputError, match="unknown population"):
        net.add_connection("A", "Z", probability=0.1, delay_ms=2)
    assert len(net.spec["connections"]) == 0  # a refused change leaves the network as it was
    with pytest.raises(lfps.InputError, match="engine='nest'"):
        net.run(10, engine="nest")
    with pytest.raises(lfps.InputError, match="signals"):
        net.run(10, signals=("lfp", "csd"))
    with pytest.raises(lfps.InputError, match="duration_ms"):
        net.run(0)
    with pytest.raises(lfps.InputError, match="does not exist"):
        lfps.Network(tmp_path / "missing.yaml")
    ours = make_tiny_model_folder(make_stick_geometry(), tmp_path, name="ours")
    with pytest.raises(lfps.InputError, match="'spiking' surrogate"):
        net.add_population("B", model=str(ours), n=2)


# ---- command line -------------------------------------------------------------------------
def test_cli_network_run(tiny_spiking, tmp_path, capsys):
    import xarray as xr

    import lfpsurrogate as lfps
    from lfpsurrogate.cli import main

    spec = tmp_path / "net.yaml"
    lfps.Network(_spec(tiny_spiking)).to_yaml(spec)
    out = tmp_path / "net.nc"
    assert main(["network", "run", str(spec), "--engine", "surrogate", "--duration-ms", "40",
                 "--signals", "lfp,eeg", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_cells"] == 7 and summary["engine"] == "surrogate"
    assert "A" in summary["stats"] and summary["out"] == str(out)
    ds = xr.open_dataset(out)
    assert ds["spikes"].shape == (7, 40) and ds["lfp"].shape == (16, 40)
    ds.close()
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("probability: 0.6", "probability: 2"))
    assert main(["network", "run", str(bad), "--out", str(tmp_path / "x.nc")]) != 0
    assert "probability" in capsys.readouterr().err


# ---- NEURON engine ------------------------------------------------------------------------
@pytest.mark.slow
def test_neuron_engine_short_run(l5):
    """Two detailed L5 cells in one NEURON process: A gets an evoked volley, B no external
    input but a strong connection from A (2 ms): B fires only after A's spike has arrived."""
    import lfpsurrogate as lfps
    from lfpsurrogate.network import engine_neuron

    engine_neuron._CELLS.setdefault("l5_ttpc1", l5)  # the session's cell: no second load
    net = lfps.Network({"seed": 2, "populations": {"A": {"model": "l5_ttpc1", "n": 1},
                                                   "B": {"model": "l5_ttpc1", "n": 1}},
                        "external": [{"type": "evoked", "target": "A", "time_ms": 5,
                                      "n_events": 400, "kind": "exc"}],
                        "connections": [{"source": "A", "target": "B", "probability": 1.0,
                                         "weight": 255, "delay_ms": 2, "regions": ["soma"]}]})
    res = net.run(40, engine="neuron", signals=("lfp", "eeg"))
    assert res.attrs["engine"] == "neuron" and res["spikes"].shape == (2, 40)
    assert res["lfp"].shape == (16, 40) and np.isfinite(res["lfp"].values).all()
    assert np.isfinite(res["eeg"].values).all() and float(np.abs(res["eeg"]).max()) > 0
    spikes_a = np.flatnonzero(res["spikes"].values[0])
    spikes_b = np.flatnonzero(res["spikes"].values[1])
    assert spikes_a.size >= 1 and spikes_b.size >= 1, (spikes_a, spikes_b)
    assert spikes_b[0] >= spikes_a[0] + 2, (spikes_a, spikes_b)  # after the delay, not before
    assert spikes_b[0] <= spikes_a[0] + 8, (spikes_a, spikes_b)
    # NEURON's threads (one per cell here) give the same run to the last bit
    one = net.run(40, engine="neuron", signals=("lfp",), threads=1)
    two = net.run(40, engine="neuron", signals=("lfp",), threads=2)
    np.testing.assert_array_equal(one["spikes"].values, res["spikes"].values)
    np.testing.assert_array_equal(two["spikes"].values, one["spikes"].values)
    np.testing.assert_array_equal(two["lfp"].values, one["lfp"].values)
    assert (one.attrs["neuron_threads"], two.attrs["neuron_threads"]) == (1, 2)
    from neuron import h

    assert h.ParallelContext().nthread() == 1  # restored: simulate's zero-delay NetCons need it
    with pytest.raises(lfps.InputError, match="threads"):
        net.run(40, engine="neuron", threads=0)


def test_future_sum_carries_responses_across_chunks_like_one_full_sum():
    """FutureSum (the streaming FIRs' carried state): responses added chunk by chunk, with
    the ring wrapping and growing, give the same bins as one full-length sum of shifted
    responses."""
    from lfpsurrogate.network.future import FutureSum

    rng = np.random.default_rng(5)
    t_len, k = 97, 11
    resp = rng.normal(size=(t_len, 2, k))           # bin t's response over bins t..t+k-1
    full = np.zeros((2, t_len + k))
    for t in range(t_len):
        full[:, t:t + k] += resp[t]
    fut = FutureSum((2,), 4)                        # too small: must grow as chunks need
    got, b0 = [], 0
    for size in [1, 3, 2, 7, 1, 20, 5] * 10:
        n = min(size, t_len - b0)
        if n <= 0:
            break
        fut.reserve(n + k - 1)
        for t in range(n):
            fut.add(t, torch.from_numpy(resp[b0 + t]))
        got.append(fut.pop(n).numpy())
        b0 += n
    np.testing.assert_allclose(np.concatenate(got, -1), full[:, :t_len], atol=1e-5)  # float32
    with pytest.raises(ValueError, match="reserve"):
        fut.add(fut.width - 1, torch.ones(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("kernel, dilation", [(3, 4), (25, 1), (1, 1)])
def test_conv_history_streams_a_dilated_causal_conv(kernel, dilation):
    """ConvHistory (the streaming TCN's conv, time-major): chunks of varying length, with
    the buffer's room used up and grown, give the one-pass causal (left-padded) conv1d."""
    from lfpsurrogate.network.stream import ConvHistory
    from lfpsurrogate.nn.layers import CausalConv1d

    torch.manual_seed(2)
    conv = CausalConv1d(5, 7, kernel, dilation=dilation)
    n, t_len = 3, 90
    x = torch.randn(n, 5, t_len)
    with torch.no_grad():
        ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (conv.left_pad, 0)),
                                         conv.weight, conv.bias, dilation=dilation)
        hist, outs, b0 = ConvHistory(conv, n, None), [], 0
        for size in [1, 2, 5, 13, 3, 2, 9, 1, 20, 4] * 3:
            b1 = min(t_len, b0 + size)
            if b1 <= b0:
                break
            out = hist.step(x[:, :, b0:b1].permute(2, 0, 1))          # (L * cells, out)
            outs.append(out.view(b1 - b0, n, -1).permute(1, 2, 0))
            b0 = b1
    torch.testing.assert_close(torch.cat(outs, -1), ref, atol=1e-5, rtol=1e-5)
