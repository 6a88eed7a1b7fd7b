"""Synaptic input: spike counts per (channel, time bin), and Poisson protocols that draw them.

Channels follow the layout of Beniaguev et al. (2021): ``[excitatory slot of input segment
0..N-1, inhibitory slot of input segment 0..N-1]`` (see ``CellGeometry.input_segments``).
Rates are per slot, in Hz. A slot's rate scales with its segment's lateral membrane area
pi * d * L (a uniform density of synapses per µm² of dendritic membrane), normalised so that
the mean over slots equals the requested rate. Area rather than length because spine
(synapse) density per µm grows with dendritic diameter (Konur et al. 2003, J Neurosci
23:8103): thick trunks receive more input per µm than thin terminal branches. With a
uniform density per µm, reconstructed branches as thin as 0.07 µm (artefacts of the
tracing) received as much input per µm as the trunk and sat in NMDA plateaus above -30 mV for
most of the time. Area scaling alone still left one such branch (0.07 µm, high input
impedance) in self-sustained NMDA plateaus, so slots on segments thinner than
MIN_SYNAPSE_DIAMETER_UM receive no input: real dendrites are rarely thinner than ~0.2 µm and
light-microscopy reconstructions cannot resolve less (``docs/inputs.md`` has the figures).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputError
from .geometry import CellGeometry

PROTOCOLS = ("constant", "modulated", "piecewise", "clustered", "mixed")
MAX_COUNT = 255  # counts are stored as uint8
MAX_RATE_HZ = 1e5  # per synapse slot: far above any physiological rate
# variety of the drive, per sample (docs/inputs.md). Widened in 0.2.0 (was sigma 0.5,
# depth U(0.3, 0.9), tau 5-300 ms) for a wider range of rates and synchrony.
DRIVE_SIGMA = 0.6  # log-normal sigma of the overall excitatory drive
DEPTH_RANGE = (0.3, 1.2)  # modulated: depth of the log-rate modulation
TAU_RANGE_MS = (3.0, 300.0)  # modulated: correlation time, log-uniform
MIN_SYNAPSE_DIAMETER_UM = 0.2  # thinner segments are tracing artefacts: their slots get no input


def _geometry(cell_or_geometry) -> CellGeometry:
    geom = getattr(cell_or_geometry, "geometry", cell_or_geometry)
    if not isinstance(geom, CellGeometry):
        raise InputError(
            f"expected a Cell or CellGeometry, got {type(cell_or_geometry).__name__}."
        )
    return geom


def validate_counts(inputs: Any, n_channels: int, name: str = "inputs") -> np.ndarray:
    """Check an input-count array (channel, time) and return it as int64.

    Raises InputError for a wrong shape or channel count, non-finite, negative or
    non-integer values.
    """
    arr = inputs.values if isinstance(inputs, xr.DataArray) else as_array(inputs, name)
    if isinstance(inputs, xr.DataArray) and inputs.dims != ("channel", "time"):
        if set(inputs.dims) == {"channel", "time"}:
            arr = inputs.transpose("channel", "time").values
        else:
            raise InputError(f"{name} has dims {inputs.dims}; expected ('channel', 'time').")
    check_numeric(arr, name)
    if arr.ndim != 2:
        raise InputError(f"{name} must be 2-D (channel, time); got shape {arr.shape}.")
    if arr.shape[0] != n_channels:
        raise InputError(
            f"{name} has {arr.shape[0]} channels but the cell has {n_channels} "
            f"(one excitatory and one inhibitory slot per input segment: "
            f"2 x {n_channels // 2}). Draw inputs for this cell with poisson_inputs(cell, ...)."
        )
    if arr.shape[1] == 0:
        raise InputError(f"{name} has no time bins.")
    check_count_values(arr, name)
    return arr.astype(np.int64)


def as_array(inputs: Any, name: str = "inputs") -> np.ndarray:
    """``np.asarray(inputs)``, with InputError for ragged nested lists and the like."""
    try:
        return np.asarray(inputs)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{name} cannot be read as an array of spike counts ({exc}).") from exc


def check_numeric(arr: np.ndarray, name: str = "inputs") -> None:
    """InputError unless ``arr`` has a real numeric (or boolean) dtype: no complex, dates,
    strings or objects."""
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must be a numeric array of spike counts, got dtype {arr.dtype}.")


def check_count_values(arr: np.ndarray, name: str = "inputs") -> None:
    """InputError unless every value is a finite, non-negative whole number <= MAX_COUNT
    (larger counts are refused: NEURON gets one event per spike, and nothing is trained on
    more than MAX_COUNT spikes per channel per bin)."""
    if arr.dtype.kind != "u":  # unsigned integers are finite, whole and >= 0 by their type
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} holds non-finite values (NaN or inf); counts must be finite.")
        if np.any(arr < 0):
            raise InputError(f"{name} holds negative counts (min {arr.min()}); counts must be >= 0.")
        if np.issubdtype(arr.dtype, np.floating) and np.any(arr != np.round(arr)):
            raise InputError(f"{name} holds non-integer counts; spike counts must be whole numbers.")
    if arr.size and arr.max() > MAX_COUNT:
        raise InputError(f"{name} holds a count of {arr.max()} spikes in one bin of one channel; "
                         f"at most {MAX_COUNT} are supported (counts per bin per synapse slot).")


def slot_weights(geom: CellGeometry) -> np.ndarray:
    """Relative rate of each input slot (mean 1): its segment's lateral membrane area
    pi * d * L (µm²) over the mean area of all input segments; 0 for segments thinner than
    MIN_SYNAPSE_DIAMETER_UM (unless every segment is that thin)."""
    seg = geom.input_segments
    d = geom.d[seg]
    area = np.pi * np.maximum(d, 1e-3) * np.maximum(geom.length[seg], 1e-3)
    thin = d < MIN_SYNAPSE_DIAMETER_UM
    if not thin.all():
        area = np.where(thin, 0.0, area)
    return area / area.mean()


def _smooth_series(rng: np.random.Generator, n_bins: int, bin_ms: float, tau_ms: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth noise (Ornstein-Uhlenbeck) of correlation time tau_ms."""
    a = np.exp(-bin_ms / tau_ms)
    noise = rng.standard_normal(n_bins) * np.sqrt(1 - a * a)
    out = np.empty(n_bins)
    x = rng.standard_normal()
    for i in range(n_bins):  # n_bins is at most ~1e6: cheap
        x = a * x + noise[i]
        out[i] = x
    return out


def _spatial_gain(rng: np.random.Generator, geom: CellGeometry, n_bumps: int, width_um: float) -> np.ndarray:
    """Smooth positive gain over input segments (mean 1): sum of Gaussian bumps in space."""
    pts = geom.midpoints[geom.input_segments]
    centres = pts[rng.integers(0, len(pts), n_bumps)]
    d2 = ((pts[:, None, :] - centres[None]) ** 2).sum(-1)
    g = 0.3 + np.exp(-d2 / (2 * width_um**2)).sum(1) * rng.uniform(0.5, 2.0, n_bumps).mean()
    return g / g.mean()


def poisson_rates(
    cell_or_geometry,
    duration_ms: float,
    seed: int = 0,
    *,
    protocol: str = "mixed",
    rate_exc_hz: float = 5.0,
    rate_inh_hz: float = 2.0,
    bin_ms: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rates (Hz) of every (excitatory, inhibitory) slot in every bin, and the protocol
    parameters that were drawn. Returns (rate_exc (slot, time), rate_inh (slot, time), params).
    """
    geom = _geometry(cell_or_geometry)
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}.")
    for label, value in (("duration_ms", duration_ms), ("bin_ms", bin_ms),
                         ("rate_exc_hz", rate_exc_hz), ("rate_inh_hz", rate_inh_hz)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InputError(f"{label}={value!r}: must be a number, got {type(value).__name__}.")
        if not np.isfinite(value) or value < 0 or (label in ("duration_ms", "bin_ms") and value == 0):
            raise InputError(f"{label}={value!r}: must be a finite positive number.")
        if label.startswith("rate") and value > MAX_RATE_HZ:
            raise InputError(f"{label}={value!r}: above {MAX_RATE_HZ:g} Hz per synapse slot "
                             f"(counts saturate at {MAX_COUNT} per bin).")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_)) or seed < 0:
        raise InputError(f"seed={seed!r}: must be a non-negative integer.")
    n_bins = int(round(duration_ms / bin_ms))
    if n_bins < 1 or abs(n_bins * bin_ms - duration_ms) > 1e-9 * duration_ms:
        raise InputError(f"duration_ms={duration_ms} must be a whole number of bins of {bin_ms} ms.")
    rng = np.random.default_rng(seed)
    if protocol == "mixed":
        protocol = str(rng.choice(["constant", "modulated", "piecewise", "clustered"]))
    w = slot_weights(geom)
    n = len(w)
    params: dict[str, Any] = {"protocol": protocol, "seed": int(seed), "bin_ms": bin_ms,
                              "rate_exc_hz": rate_exc_hz, "rate_inh_hz": rate_inh_hz}
    # overall drive and E/I balance: drawn around the requested rates for variety
    exc_scale = rng.lognormal(0.0, DRIVE_SIGMA)
    ei_ratio = rng.uniform(0.6, 1.6)
    params.update(exc_scale=float(exc_scale), inh_over_exc_scale=float(ei_ratio))
    base_e = rate_exc_hz * exc_scale * w[:, None]
    base_i = rate_inh_hz * exc_scale * ei_ratio * w[:, None]
    time_e = np.ones(n_bins)
    time_i = np.ones(n_bins)
    space_e = np.ones(n)
    space_i = np.ones(n)
    if protocol == "modulated":
        tau = float(np.exp(rng.uniform(np.log(TAU_RANGE_MS[0]), np.log(TAU_RANGE_MS[1]))))  # fast: synchrony
        depth = float(rng.uniform(*DEPTH_RANGE))
        s = _smooth_series(rng, n_bins, bin_ms, tau)
        time_e = np.exp(depth * s - depth**2 / 2)
        # inhibition follows excitation with correlation 0.7/sqrt(0.58) = 0.92; the mix is
        # rescaled to unit variance so that exp(depth s_i - depth²/2) has mean 1 as well
        s_i = (0.7 * s + 0.3 * _smooth_series(rng, n_bins, bin_ms, tau)) / np.sqrt(0.58)
        time_i = np.exp(depth * s_i - depth**2 / 2)
        space_e = _spatial_gain(rng, geom, int(rng.integers(2, 6)), float(rng.uniform(100, 400)))
        space_i = _spatial_gain(rng, geom, int(rng.integers(2, 6)), float(rng.uniform(100, 400)))
        params.update(tau_ms=tau, depth=depth)
    elif protocol == "piecewise":
        mean_len = float(rng.uniform(100, 600))
        edges = [0]
        while edges[-1] < n_bins:
            edges.append(edges[-1] + max(1, int(rng.exponential(mean_len / bin_ms))))
        for a, b in zip(edges[:-1], edges[1:]):
            time_e[a:b] = rng.lognormal(0, 0.6)
            time_i[a:b] = time_e[a] * rng.uniform(0.5, 1.8)
        time_e /= time_e.mean()
        time_i /= time_i.mean()
        params.update(mean_segment_ms=mean_len, n_pieces=len(edges) - 1)
    rate_e = base_e * space_e[:, None] * time_e[None, :]
    rate_i = base_i * space_i[:, None] * time_i[None, :]
    if protocol == "clustered":
        # bursts of strong excitation onto spatial clusters of nearby segments: the drive
        # that evokes dendritic NMDA and Ca2+ events
        pts = geom.midpoints[geom.input_segments]
        n_bursts = int(rng.poisson(duration_ms / 1000 * rng.uniform(2, 10))) + 1
        radius = float(rng.uniform(30, 120))
        burst_rate = float(rng.uniform(20, 80))
        for _ in range(n_bursts):
            centre = pts[rng.integers(0, n)]
            members = np.linalg.norm(pts - centre, axis=1) < radius
            start = int(rng.integers(0, n_bins))
            stop = min(n_bins, start + int(rng.uniform(20, 100) / bin_ms))
            rate_e[members, start:stop] += burst_rate * w[members, None]
        params.update(n_bursts=n_bursts, cluster_radius_um=radius, burst_rate_hz=burst_rate)
    return rate_e, rate_i, params


def poisson_inputs(
    cell_or_geometry,
    duration_ms: float = 1000.0,
    seed: int = 0,
    *,
    protocol: str = "mixed",
    rate_exc_hz: float = 5.0,
    rate_inh_hz: float = 2.0,
    bin_ms: float = 1.0,
) -> xr.DataArray:
    """Draw Poisson spike counts (channel, time) for a cell.

    protocol: "constant" (rates fixed in time), "modulated" (smooth Ornstein-Uhlenbeck
    modulation in time and Gaussian hot spots in space), "piecewise" (rates that jump at
    random times), "clustered" (bursts onto spatial clusters of segments), or "mixed"
    (one of these, chosen by the seed). Each draws its overall drive and E/I balance
    around rate_exc_hz / rate_inh_hz (mean rate per slot, Hz). Same seed, same counts.
    """
    geom = _geometry(cell_or_geometry)
    rate_e, rate_i, params = poisson_rates(
        geom, duration_ms, seed, protocol=protocol, rate_exc_hz=rate_exc_hz,
        rate_inh_hz=rate_inh_hz, bin_ms=bin_ms,
    )
    rng = np.random.default_rng([int(seed), 1])
    lam = np.concatenate([rate_e, rate_i]) * (bin_ms / 1000.0)
    counts = np.minimum(rng.poisson(lam), MAX_COUNT).astype(np.uint8)
    return counts_to_dataarray(counts, geom, bin_ms, params)


def counts_to_dataarray(counts: np.ndarray, geom: CellGeometry, bin_ms: float = 1.0,
                        params: dict | None = None) -> xr.DataArray:
    """Wrap a (channel, time) count array with coordinates and provenance."""
    n = len(geom.input_segments)
    seg = np.concatenate([geom.input_segments, geom.input_segments])
    kind = np.array(["exc"] * n + ["inh"] * n)
    return xr.DataArray(
        counts,
        dims=("channel", "time"),
        coords={
            "channel": np.arange(2 * n),
            "time": np.arange(counts.shape[1]) * bin_ms,
            "channel_segment": ("channel", seg),
            "channel_kind": ("channel", kind),
        },
        name="inputs",
        attrs={
            "units": "spikes per bin",
            "bin_ms": bin_ms,
            "cell_fingerprint": geom.fingerprint,
            "protocol": json.dumps(params or {}),
            "seed": (params or {}).get("seed", -1),
        },
    )
