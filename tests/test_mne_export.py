"""to_mne: EEG and MEG of a result as MNE-Python objects, values, units, names and sensor
geometry preserved."""
from __future__ import annotations

import numpy as np
import pytest

mne = pytest.importorskip("mne")

import lfpsurrogate as lfps  # noqa: E402
from lfpsurrogate.errors import InputError  # noqa: E402
from lfpsurrogate.probes import EEG_10_20_NAMES  # noqa: E402

from conftest import make_stick_geometry  # noqa: E402


@pytest.fixture(scope="module")
def result():
    g = make_stick_geometry(n=20)
    t = np.arange(40)
    v = -65 + 4 * np.sin(t / 4.0)[None] * np.linspace(-1, 1, g.n_segments)[:, None]
    fwd = lfps.forward_model(g, {"eeg": "eeg-10-20", "meg": "meg-radial"},
                             position=(0, 0, 0), rotation=(0.0, 0.7, 0.0))
    return fwd.from_voltages(v, dt=0.5)  # 2 kHz


def test_raw_round_trip_values_units_names_positions(result):
    raw = lfps.to_mne(result)
    assert isinstance(raw, mne.io.BaseRaw)
    assert raw.info["sfreq"] == pytest.approx(2000.0)
    eeg_names = [str(n) for n in result["eeg_electrode"].values]
    assert eeg_names == list(EEG_10_20_NAMES)
    assert raw.copy().pick("eeg").ch_names == eeg_names
    # EEG: mV -> V
    np.testing.assert_allclose(raw.get_data(picks="eeg"), result["eeg"].values * 1e-3, rtol=1e-12)
    # MEG: the field along each sensor's normal, fT -> T
    bn = np.einsum("sat,sa->st", result["meg"].values, result["sensor_orientation"].values)
    np.testing.assert_allclose(raw.get_data(picks="mag"), bn * 1e-15, rtol=1e-12)
    assert np.abs(bn).max() > 0
    fiff = mne.io.constants.FIFF
    for ch in raw.info["chs"]:
        if ch["kind"] == fiff.FIFFV_EEG_CH:
            assert ch["unit"] == fiff.FIFF_UNIT_V
        else:
            assert ch["unit"] == fiff.FIFF_UNIT_T
            assert ch["coil_type"] == fiff.FIFFV_COIL_POINT_MAGNETOMETER
    # sensor geometry: positions in metres, the coil's z axis is the sensor normal
    mags = [ch for ch in raw.info["chs"] if ch["kind"] == fiff.FIFFV_MEG_CH]
    locs = np.array([ch["loc"] for ch in mags])
    np.testing.assert_allclose(locs[:, :3] * 1e6, result["sensor_position"].values, rtol=1e-9)
    np.testing.assert_allclose(locs[:, 9:12], result["sensor_orientation"].values, atol=1e-12)
    for loc in locs:  # an orthonormal coil frame
        frame = loc[3:12].reshape(3, 3)
        np.testing.assert_allclose(frame @ frame.T, np.eye(3), atol=1e-12)
    # EEG montage: the positions the signals were computed at
    pos = raw.get_montage().get_positions()
    assert pos["coord_frame"] == "head"
    got = np.array([pos["ch_pos"][n] for n in eeg_names]) * 1e6
    np.testing.assert_allclose(got, result["eeg_position"].values, rtol=1e-9)


def test_evoked_and_topomap(result):
    evoked = lfps.to_mne(result, kind="evoked")
    assert isinstance(evoked, mne.Evoked)
    assert evoked.times[1] - evoked.times[0] == pytest.approx(0.5e-3)
    fig = evoked.plot_topomap(times=[evoked.times[10]], ch_type="eeg", show=False)
    assert fig is not None
    fig = evoked.plot_topomap(times=[evoked.times[10]], ch_type="mag", show=False)
    assert fig is not None
    std = lfps.to_mne(result, kind="evoked", signals="eeg", montage="standard_1020")
    assert std.ch_names == list(EEG_10_20_NAMES)
    from lfpsurrogate.mne_export import standard_1020_name

    ref = mne.create_info(list(EEG_10_20_NAMES), 1000.0, "eeg")
    ref.set_montage(mne.channels.make_standard_montage(standard_1020_name(mne)))
    got, want = std.get_montage().get_positions(), ref.get_montage().get_positions()
    for name in EEG_10_20_NAMES:
        np.testing.assert_allclose(got["ch_pos"][name], want["ch_pos"][name])


def test_refusals(result):
    with pytest.raises(InputError, match="none of"):
        lfps.to_mne(result.drop_vars(["eeg", "meg"]))
    with pytest.raises(InputError, match="kind="):
        lfps.to_mne(result, kind="epochs")
    with pytest.raises(InputError, match="exports 'eeg' and 'meg'"):
        lfps.to_mne(result, signals=("lfp",))
    with pytest.raises(InputError, match="Dataset"):
        lfps.to_mne(result["eeg"])
