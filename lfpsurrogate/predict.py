"""predict_lfp: extracellular signals of one cell or a population from synaptic input,
through a trained surrogate instead of NEURON.

The network gives every segment's voltage; everything after it is linear (imem = M v,
LFP = K M v, dipole = P M v, EEG/MEG from dipoles), applied with the forward model's
composed matrices on the same device as the network, batch by batch, so voltages of a
population are never held in memory unless asked for. For the low-rank architecture
("ours") and no voltage output, the network's linear readout is folded into the forward
matrices: signals are computed from its rank-r latents and its local synaptic terms
without forming the voltage of every segment.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from .errors import InputError
from .geometry import CellGeometry
from .inputs import as_array, check_count_values, check_numeric

SIGNALS = ("v", "imem", "lfp", "dipole", "eeg", "meg", "spikes")
DEFAULT_DEVICES = {"lfp": "laminar-16", "eeg": "eeg-10-20", "meg": "meg-radial"}


def _device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"device={device!r} is not a torch device ({exc}).") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r}, but this torch ({torch.__version__}) sees no CUDA "
                         "GPU; use device='cpu' or 'auto' (--device cpu / auto).")
    return dev


@lru_cache(maxsize=4)
def _load_cached(path: str, device: str):
    from .modelfolder import load_surrogate

    return load_surrogate(path, device=device)


def load_model(model: str | Path = "l5_ttpc1", device: str = "auto"):
    """A shipped or trained surrogate (``LoadedSurrogate``), verified, cached per process."""
    from .modelfolder import resolve_model_path

    return _load_cached(str(resolve_model_path(model).resolve()), str(_device(device)))


def _as_counts(inputs: Any, n_channels: int) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(cell, channel, time) counts (validated, dtype as given: batches are converted to
    float32 one at a time), time coordinate or None, bin width (ms)."""
    time, bin_ms = None, 1.0
    if isinstance(inputs, xr.DataArray):
        bin_ms = float(inputs.attrs.get("bin_ms", 1.0))
        dims = inputs.dims
        if set(dims) not in ({"channel", "time"}, {"cell", "channel", "time"}):
            raise InputError(f"inputs have dims {dims}; expected (channel, time) or "
                             "(cell, channel, time).")
        if "time" in inputs.coords:
            time = np.asarray(inputs["time"].values)
        order = (("cell",) if "cell" in dims else ()) + ("channel", "time")
        inputs = inputs.transpose(*order).values
    arr = as_array(inputs)
    check_numeric(arr)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"inputs must be (channel, time) or (cell, channel, time); got shape {arr.shape}.")
    if arr.shape[1] != n_channels:
        raise InputError(
            f"inputs have {arr.shape[1]} channels but the model expects {n_channels} "
            f"(one excitatory and one inhibitory slot per input segment of its cell). Draw "
            "inputs for the model's cell, e.g. predict_lfp(rates={...}) or "
            "poisson_inputs(load_model(...).geometry, ...)."
        )
    if arr.shape[2] == 0 or arr.shape[0] == 0:
        raise InputError(f"inputs are empty (shape {arr.shape}).")
    check_count_values(arr)
    return arr, time, bin_ms


class _RateSource:
    """The Poisson inputs of a rate specification, drawn cell by cell on demand (cell i
    uses seed + i), so a population's inputs are never held in memory all at once."""

    def __init__(self, geometry: CellGeometry, rates: dict, seed: int) -> None:
        from .inputs import poisson_inputs

        if not isinstance(rates, dict):
            raise InputError("rates must be a dict such as {'duration_ms': 1000, 'rate_exc_hz': 5}.")
        allowed = {"duration_ms", "n_cells", "rate_exc_hz", "rate_inh_hz", "protocol", "bin_ms"}
        unknown = set(rates) - allowed
        if unknown:
            raise InputError(f"unknown rate keys {sorted(unknown, key=str)}; allowed: "
                             f"{sorted(allowed)}.")
        if "duration_ms" not in rates:
            raise InputError("rates needs 'duration_ms' (ms of input to draw).")
        n_cells = rates.get("n_cells", 1)
        if (not isinstance(n_cells, (int, np.integer)) or isinstance(n_cells, (bool, np.bool_))
                or n_cells < 1):
            raise InputError(f"rates['n_cells']={n_cells!r} must be a positive integer.")
        kwargs = {k: rates[k] for k in ("rate_exc_hz", "rate_inh_hz", "bin_ms") if k in rates}
        protocol = rates.get("protocol", "constant")
        self.n_cells, self.seed = int(n_cells), seed

        def draw(i: int) -> xr.DataArray:
            return poisson_inputs(geometry, rates["duration_ms"], seed + i, protocol=protocol,
                                  **kwargs)

        self.draw = draw
        self.first = draw(0)  # validates the specification before any work
        self.n_bins = self.first.shape[1]
        self.time = np.asarray(self.first["time"].values)
        self.bin_ms = float(self.first.attrs["bin_ms"])

    def cell(self, i: int) -> xr.DataArray:
        return self.first if i == 0 else self.draw(i)

    def counts(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, channel, time) uint8 counts of cells start..stop-1."""
        return np.stack([self.cell(i).values for i in range(start, stop)])

    def batch(self, start: int, stop: int):
        import torch

        return torch.from_numpy(self.counts(start, stop))


def inputs_from_rates(geometry: CellGeometry, rates: dict, seed: int = 0) -> xr.DataArray:
    """Poisson inputs (cell, channel, time) from a rate specification.

    rates: ``{"duration_ms": float, "n_cells": int (default 1), "rate_exc_hz": float,
    "rate_inh_hz": float, "protocol": str (default "constant")}``; cell i uses seed + i.
    (``predict_lfp(rates=...)`` draws the same inputs batch by batch instead.)
    """
    source = _RateSource(geometry, rates, seed)
    cells = [source.cell(i) for i in range(source.n_cells)]
    out = xr.concat(cells, dim="cell")
    out.attrs = dict(cells[0].attrs, seed=seed, n_cells=source.n_cells)
    return out


def default_placement(n_cells: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One cell: soma 50 µm lateral to the probe axis (x = 50). A population: somata
    uniform in an annulus of 20–200 µm around the probe axis in the z = 0 plane, each
    rotated by a random angle about its apical (z) axis. Seeded."""
    if n_cells == 1:
        return np.array([[50.0, 0.0, 0.0]]), np.zeros((1, 3))
    rng = np.random.default_rng([seed, 7])
    r = np.sqrt(rng.uniform(20.0**2, 200.0**2, n_cells))
    phi = rng.uniform(0, 2 * np.pi, n_cells)
    pos = np.stack([r * np.cos(phi), r * np.sin(phi), np.zeros(n_cells)], axis=1)
    rot = np.zeros((n_cells, 3))
    rot[:, 2] = rng.uniform(0, 2 * np.pi, n_cells)
    return pos, rot


def _probes_for(signals: Sequence[str], probe: Any, eeg: Any, meg: Any) -> dict:
    probes = {}
    if "lfp" in signals:
        if probe is None:
            probe = DEFAULT_DEVICES["lfp"]
        probes["lfp"] = probe
    if "eeg" in signals:
        probes["eeg"] = eeg if eeg is not None else DEFAULT_DEVICES["eeg"]
    if "meg" in signals:
        probes["meg"] = meg if meg is not None else DEFAULT_DEVICES["meg"]
    return probes


class _CountSource:
    """Dense counts (cell, channel, time), numpy or a torch tensor, handed out batch by
    batch in their own dtype (uint8 counts stay uint8 until the model reads them)."""

    def __init__(self, counts, time, bin_ms: float) -> None:
        self.counts, self.time, self.bin_ms = counts, time, bin_ms
        self.n_cells, _, self.n_bins = counts.shape

    def batch(self, start: int, stop: int):
        import torch

        part = self.counts[start:stop]
        return part if isinstance(part, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(part))


class _EventSource:
    """Presynaptic events (n, 3): (cell, channel, time_ms), binned on the model's grid and
    merged per (cell, channel, bin); each batch of cells becomes ``InputEvents``."""

    def __init__(self, events: Any, n_channels: int, duration_ms: Any, n_cells: Any,
                 bin_ms: float = 1.0) -> None:
        arr = as_array(events)
        check_numeric(arr)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise InputError(f"events must be an (n, 3) array of (cell, channel, time_ms); got "
                             f"shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise InputError("events hold non-finite values (NaN or inf).")
        if duration_ms is None:
            raise InputError("events need duration_ms= (the length of the simulated window, ms).")
        try:
            duration_ms = float(duration_ms)
        except (TypeError, ValueError) as exc:
            raise InputError(f"duration_ms={duration_ms!r} must be a number of ms.") from exc
        if not math.isfinite(duration_ms) or duration_ms < bin_ms:
            raise InputError(f"duration_ms={duration_ms!r} must be a finite number of ms, at "
                             f"least one bin ({bin_ms:g} ms).")
        cell, channel, t_ms = arr[:, 0], arr[:, 1], arr[:, 2]
        for label, col in (("cell", cell), ("channel", channel)):
            if np.any(col != np.round(col)) or np.any(col < 0):
                raise InputError(f"events' {label} column must hold non-negative integers.")
        if n_cells is None:
            n_cells = int(cell.max()) + 1 if len(arr) else 1
        if not isinstance(n_cells, (int, np.integer)) or isinstance(n_cells, bool) or n_cells < 1:
            raise InputError(f"n_cells={n_cells!r} must be a positive integer.")
        if len(arr) and cell.max() >= n_cells:
            raise InputError(f"events name cell {int(cell.max())}, but n_cells={n_cells}.")
        if len(arr) and channel.max() >= n_channels:
            raise InputError(f"events name channel {int(channel.max())}, but the model has "
                             f"{n_channels} input channels (0..{n_channels - 1}).")
        if len(arr) and (t_ms.min() < 0 or t_ms.max() >= duration_ms):
            raise InputError(f"event times must lie in [0, duration_ms={duration_ms:g}) ms; got "
                             f"{t_ms.min():g}..{t_ms.max():g} ms.")
        self.n_cells, self.n_channels, self.bin_ms = int(n_cells), n_channels, bin_ms
        self.n_bins = int(math.ceil(duration_ms / bin_ms - 1e-9))
        self.time = np.arange(self.n_bins) * bin_ms
        b = np.minimum(np.floor(t_ms / bin_ms).astype(np.int64), self.n_bins - 1)
        key = (cell.astype(np.int64) * self.n_bins + b) * n_channels + channel.astype(np.int64)
        key, count = np.unique(key, return_counts=True)   # sorted by cell, then bin
        self.cell = key // (n_channels * self.n_bins)
        self.bin = (key // n_channels) % self.n_bins
        self.channel = key % n_channels
        self.count = count.astype(np.float32)

    def batch(self, start: int, stop: int):
        import torch

        from .nn.linear import InputEvents

        lo, hi = np.searchsorted(self.cell, [start, stop])
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a[lo:hi]))  # noqa: E731
        return InputEvents.from_arrays((stop - start, self.n_channels, self.n_bins),
                                       t(self.cell - start), t(self.channel), t(self.bin),
                                       t(self.count), ordered=True)


def predict_lfp(
    inputs: Any = None,
    probe: Any = None,
    model: str | Path = "l5_ttpc1",
    positions: Any = None,
    rotations: Any = None,
    signals: Sequence[str] = ("lfp",),
    device: str = "auto",
    batch_size: int = 64,
    *,
    rates: dict | None = None,
    events: Any = None,
    duration_ms: float | None = None,
    n_cells: int | None = None,
    seed: int = 0,
    cell: Any = None,
    eeg: Any = None,
    meg: Any = None,
    return_tensors: bool = False,
    fold_readout: bool = True,
    progress: bool | None = False,
) -> xr.Dataset | dict:
    """Extracellular signals from synaptic input, through a surrogate (no NEURON).

    inputs: spike counts (channel, time) for one cell or (cell, channel, time) for a
        population (numpy, DataArray, or a torch tensor when ``return_tensors``); or None
        with ``rates`` (see :func:`inputs_from_rates`) or ``events``.
    events: presynaptic spikes as an (n, 3) array of (cell, channel, time_ms), as network
        simulators (NEST, Brian2) record them; with ``duration_ms`` (ms) and optionally
        ``n_cells`` (default: the largest cell index + 1). Binned at 1 ms; equal to the
        binned counts given as ``inputs``, and for ``linear``/``spiking`` models never
        turned into a dense channel x time matrix.
    probe: the LFP probe (name, YAML path, Probe or MEAutility MEA; default laminar-16).
        ``eeg``/``meg``: sensor sets (default: the shipped 10-20 montage, radial MEG array).
    model: a shipped model name or a model folder / training checkpoint.
    positions, rotations: (3,) or (n_cells, 3), µm and rad (LFPy's set_rotation order);
        default :func:`default_placement`.
    signals: any of "v", "imem", "lfp", "dipole", "eeg", "meg", "spikes" (a sequence, or
        one name or a comma list as a string: "lfp", "lfp,eeg").
    cell: optional Cell or CellGeometry the caller means; refused if the model was trained
        for another cell (fingerprint).
    return_tensors: return a dict of torch tensors that carry gradients with respect to
        the inputs (pass a float tensor with requires_grad=True), e.g. to fit inputs to a
        recorded LFP.
    progress: a progress bar over the batches of cells (None: only on a terminal).

    Returns an xarray.Dataset (dims as in ``ForwardModel``; ``v``/``imem`` (cell, segment,
    time); ``spikes`` (cell, time) 0/1 predicted somatic spikes, and ``spike_probability``).
    """
    signals = _requested_signals(signals, batch_size, seed)
    loaded = load_model(model, device)
    _check_cell(cell, loaded)
    source = _input_source(inputs, rates, events, duration_ms, n_cells, seed, loaded.geometry,
                           return_tensors)
    probes = _probes_for(signals, probe, eeg, meg)
    _check_population_memory(source.n_cells, source.n_bins, loaded.geometry, probes)
    positions, rotations = _placement(positions, rotations, source.n_cells, seed)
    fwd, mats = _forward_matrices(loaded, probes, signals, positions, rotations)
    result, p_cell, logit = _run_batches(loaded, source, mats, fwd, signals, batch_size,
                                         return_tensors, fold_readout, progress)
    if return_tensors:
        return _tensor_result(result, p_cell, logit, signals, loaded.geometry)
    return _to_dataset(fwd, result, p_cell, logit, signals, loaded.geometry, loaded,
                       source.n_bins, source.time, source.bin_ms)


def _requested_signals(signals, batch_size, seed) -> tuple[str, ...]:
    """The signal names (a sequence, one name or a comma list), after checking the knobs."""
    if isinstance(signals, str):  # "lfp" is one signal, not the letters l, f, p
        signals = tuple(s.strip() for s in signals.split(",") if s.strip())
    signals = tuple(signals)
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown or not signals:
        raise InputError(f"unknown signals {unknown}; choose from {SIGNALS}.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r} must be a positive integer.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_)) or seed < 0:
        raise InputError(f"seed={seed!r} must be a non-negative integer.")
    return signals


def _check_cell(cell, loaded) -> None:
    """Refuse a cell the model was not trained for (fingerprints differ)."""
    if cell is None:
        return
    geometry = loaded.geometry
    given = getattr(cell, "geometry", cell)
    if not isinstance(given, CellGeometry):
        raise InputError(f"cell must be a Cell or CellGeometry, got {type(cell).__name__}.")
    if given.fingerprint != geometry.fingerprint:
        raise InputError(
            f"model {loaded.name!r} was trained for cell {geometry.name!r} (fingerprint "
            f"{geometry.fingerprint}); the cell given is {given.name!r} (fingerprint "
            f"{given.fingerprint}). Use a model of this cell or train one."
        )


def _input_source(inputs, rates, events, duration_ms, n_cells, seed, geometry, return_tensors):
    """Where the batches of input come from: counts, a rate specification or events."""
    import torch

    given = [k for k, v in (("inputs", inputs), ("rates", rates), ("events", events)) if v is not None]
    if len(given) > 1:
        raise InputError(f"give one of inputs, rates or events, not {' and '.join(given)}.")
    if not given:
        raise InputError("give inputs (spike counts), rates={...} to draw them, or events "
                         "(an (n, 3) array of cell, channel, time_ms).")
    if (duration_ms is not None or n_cells is not None) and events is None:
        raise InputError("duration_ms and n_cells go with events=; with inputs they come from "
                         "the array's shape, with rates from the rate specification.")
    if rates is not None:
        return _RateSource(geometry, rates, seed)  # drawn batch by batch
    if events is not None:
        return _EventSource(events, geometry.n_channels, duration_ms, n_cells)
    if isinstance(inputs, torch.Tensor) and return_tensors:
        x_all = inputs if inputs.dim() == 3 else inputs[None]
        if x_all.shape[1] != geometry.n_channels:
            raise InputError(f"inputs have {x_all.shape[1]} channels; the model expects "
                             f"{geometry.n_channels}.")
        if not torch.isfinite(x_all).all():
            raise InputError("inputs hold non-finite values (NaN or inf).")
        return _CountSource(x_all, None, 1.0)
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    counts, time, bin_ms = _as_counts(inputs, geometry.n_channels)
    return _CountSource(counts, time, bin_ms)


def _placement(positions, rotations, n_cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, rotations), each (1, 3) or (n_cells, 3), checked; default_placement
    when positions are not given (rotations alone keep the default positions)."""
    if positions is None:
        positions, default_rot = default_placement(n_cells, seed)
        rotations = default_rot if rotations is None else rotations
    try:
        positions = np.zeros((n_cells, 3)) if positions is None else np.asarray(positions, float)
        rotations = np.zeros((n_cells, 3)) if rotations is None else np.asarray(rotations, float)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"positions and rotations must be numbers, (3,) or (n_cells, 3) "
                         f"({exc}).") from exc
    positions = positions.reshape(-1, 3) if positions.size in (3 * n_cells, 3) else positions
    rotations = rotations.reshape(-1, 3) if rotations.size in (3 * n_cells, 3) else rotations
    for label, arr in (("positions", positions), ("rotations", rotations)):
        if arr.shape not in ((1, 3), (n_cells, 3)):
            raise InputError(f"{label} must be (3,) or ({n_cells}, 3); got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{label} hold non-finite values.")
    if n_cells > 1:
        positions = np.broadcast_to(positions, (n_cells, 3)).copy()
        rotations = np.broadcast_to(rotations, (n_cells, 3)).copy()
    return positions, rotations


def _forward_matrices(loaded, probes: dict, signals, positions, rotations):
    """The forward model of the placement (cached per placement by forward_model) and its
    matrices on the model's device, applied to voltages."""
    import torch

    from .forward import forward_model

    n_cells = positions.shape[0]
    fwd = forward_model(loaded.geometry, probes or None, signals=tuple(
        s for s in signals if s in ("lfp", "dipole", "eeg", "meg")) or ("dipole",),
        position=positions if n_cells > 1 else positions[0],
        rotation=rotations if n_cells > 1 else rotations[0])
    if any(p is not None and getattr(p, "n", 1) == 0 for p in fwd.probes.values()):
        raise InputError("the probe has no electrodes.")
    dev = next(loaded.model.parameters()).device
    mats = {k: torch.tensor(np.array(a), dtype=torch.float32, device=dev)
            for k, a in fwd.matrices(of="voltages").items()}
    return fwd, mats


def _dense(x):
    """A batch as dense float32 counts (the models' plain forward takes those)."""
    from .nn.linear import InputEvents

    return x.dense() if isinstance(x, InputEvents) else x.float()


def _run_batches(loaded, source, mats, fwd, signals, batch_size, return_tensors, fold_readout,
                 progress):
    """The network over batches of cells -> (summed LFP / EEG / MEG / dipole, per-cell
    dipoles, spike logits). Voltages are formed only when asked for: otherwise the linear
    readout is folded into the forward matrices (``nn.folded`` for linear/spiking models)."""
    import torch
    from tqdm.auto import tqdm

    from .nn.folded import foldable, folded_signals
    from .nn.linear import InputEvents

    model = loaded.model
    dev = next(model.parameters()).device
    # K M annihilates constant voltages (M 1 = 0), so subtracting a reference potential
    # first changes nothing but the float32 cancellation error around -65 mV
    v_ref = float(model.v_mean.mean())
    want_v = "v" in signals or "imem" in signals
    fold_rows = fold_readout and not want_v and foldable(model)
    fold = (fold_readout and not want_v and not fold_rows
            and callable(getattr(model, "readout_parts", None)))
    has_lfp = "lfp" in mats
    grad = torch.enable_grad() if return_tensors else torch.no_grad()
    outs: dict[str, list] = {"lfp": [], "p_cell": [], "v": [], "logit": []}
    warned = False
    with grad:
        folded = _folded_matrices(model, mats, v_ref) if fold else None
        starts = range(0, source.n_cells, batch_size)
        for b in tqdm(starts, desc="predict_lfp", unit="batch", disable=(
                None if progress is None else not progress or len(starts) < 2)):
            x = _to_device(source.batch(b, min(b + batch_size, source.n_cells)), dev)
            if fold_rows and not return_tensors and not isinstance(x, InputEvents):
                x = InputEvents(x)  # found once: the folded path and the rate check use them
            n = x.shape[0]
            warned = warned or _warn_out_of_distribution(x, loaded, source.bin_ms, first_cell=b)
            sl = slice(b, b + n)
            if fold_rows:
                k_dip = mats["dipole"][sl]
                k_lfp = mats["lfp"][sl] if has_lfp else k_dip[:, :0]
                out = folded_signals(model, x, k_lfp, k_dip, v_ref)
                lfp_b = out["summed"] if has_lfp else None
                p_b, logit = out["rows"], out["spike_logit"]
            elif fold:
                parts = model.readout_parts(_dense(x))
                lfp_b, p_b = _apply_folded(folded, parts, sl, has_lfp)
                logit = parts["spike_logit"]
            else:
                out = model(_dense(x))
                v, logit = out["v"], out["spike_logit"]
                if not return_tensors and not all_finite(v):
                    raise FloatingPointError(
                        f"the surrogate produced non-finite voltages for cells {b}..{b + n - 1}; "
                        "the inputs are probably far outside its training range.")
                dv = v - v_ref
                p_b = torch.einsum("cas,cst->cat", mats["dipole"][sl], dv)
                lfp_b = torch.einsum("ces,cst->et", mats["lfp"][sl], dv) if has_lfp else None
                if want_v:
                    outs["v"].append(v if return_tensors else v.detach().cpu())
            if lfp_b is not None:
                outs["lfp"].append(lfp_b)
            outs["p_cell"].append(p_b)
            outs["logit"].append(logit)
        result, p_cell = _sensor_signals(outs, mats, fwd)
        logit = torch.cat(outs["logit"])
        if want_v:
            result["v"] = torch.cat(outs["v"])
    for key, val in list(result.items()) + [("spike logit", logit)]:
        if not all_finite(val):
            raise FloatingPointError(f"the surrogate's {key} is not finite; the inputs are "
                                     "probably far outside its training range, or the model's "
                                     "weights are not finite.")
    return result, p_cell, logit


def all_finite(t) -> bool:
    """True when a tensor holds no NaN or inf. One reduction: a finite sum proves it (a NaN
    or inf makes the sum non-finite); only a non-finite sum (or a finite-value overflow)
    needs the element-wise check, which costs about six times as much on large outputs."""
    import torch

    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _to_device(x, dev):
    from .nn.linear import InputEvents

    if isinstance(x, InputEvents):
        for name in ("batch", "channel", "time", "count"):
            setattr(x, name, getattr(x, name).to(dev))
        return x
    return x.to(dev)


def _sensor_signals(outs: dict, mats: dict, fwd) -> tuple[dict, Any]:
    """Summed LFP, dipole, and EEG / MEG from the cells' dipoles (or their sum, when the
    forward model places one summed dipole)."""
    import torch

    p_cell = torch.cat(outs["p_cell"])
    result: dict[str, Any] = {}
    if "lfp" in mats:
        result["lfp"] = torch.stack(outs["lfp"]).sum(0)
    p = p_cell.sum(0)
    src = p[None] if fwd.eeg_dipoles == "summed" else p_cell
    if "eeg" in mats:
        result["eeg"] = torch.einsum("cea,cat->et", mats["eeg"], src)
    if "meg" in mats:
        result["meg"] = torch.einsum("cnij,cjt->nit", mats["meg"], src)
    result["dipole"] = p
    return result, p_cell


def _tensor_result(result: dict, p_cell, logit, signals, geometry) -> dict:
    """``return_tensors``: the signals as torch tensors (with gradients), plus per-cell
    dipoles, spike logits and imem when asked for."""
    import torch

    result["cell_dipole"] = p_cell
    result["spike_logit"] = logit
    if "imem" in signals:
        m = torch.as_tensor(geometry.vmem_to_imem.toarray(), dtype=result["v"].dtype,
                            device=result["v"].device)
        result["imem"] = torch.einsum("ks,cst->ckt", m, result["v"])
    return result


def _check_population_memory(n_cells: int, n_bins: int, geometry, probes: dict) -> None:
    """Refuse a population whose forward matrices and dipoles cannot fit in memory, before
    the minutes it takes to build them (see resources.population_bytes)."""
    from .probes import as_probe
    from .resources import check_fits, population_bytes

    sizes = {}
    for key, default in (("lfp", 16), ("eeg", 19), ("meg", 300)):
        if key in probes:
            try:
                sizes[key] = as_probe(probes[key]).n
            except Exception:  # noqa: BLE001  the forward model reports a bad probe itself
                sizes[key] = default
    need = population_bytes(n_cells, geometry.n_segments, n_bins, sizes.get("lfp", 0),
                            sizes.get("eeg", 0), sizes.get("meg", 0))
    check_fits(need, f"predicting {n_cells} cells x {n_bins} bins",
               "use fewer cells, or call predict_lfp on groups of cells and add their "
               "signals (every signal is linear in the cells: the sum over groups is exact).")


def _folded_matrices(model, mats: dict, v_ref: float) -> dict:
    """Forward matrices composed with the low-rank readout v = v_mean + D (U z + scatter(local)):
    per cell, K D U (rank columns), K D[:, input segments] and K (v_mean - v_ref)."""
    import torch

    d = model.v_std
    mean = model.v_mean - v_ref
    if getattr(model, "b_segment", None) is not None:  # linear: a per-segment offset in vn
        mean = mean + d * model.b_segment
    has_local = hasattr(model, "input_segments")
    out = {}
    for key in ("lfp", "dipole"):
        if key not in mats:
            continue
        kd = mats[key] * d[None, None, :]                       # (C, rows, S)
        out[key] = {
            "basis": torch.einsum("crs,sk->crk", kd, model.basis),          # (C, rows, rank)
            "local": kd[:, :, model.input_segments] if has_local else None,
            "offset": torch.einsum("crs,s->cr", mats[key], mean),           # (C, rows)
        }
    return out


def _apply_folded(folded: dict, parts: dict, sl: slice, has_lfp: bool):
    import torch

    def signal(key):
        f = folded[key]
        y = torch.einsum("crk,ckt->crt", f["basis"][sl], parts["z"]) + f["offset"][sl][..., None]
        if f["local"] is not None and parts.get("local") is not None:
            y = y + torch.einsum("crn,cnt->crt", f["local"][sl], parts["local"])
        return y

    p_b = signal("dipole")
    lfp_b = signal("lfp").sum(0) if has_lfp else None
    return lfp_b, p_b


def _warn_out_of_distribution(x, loaded, bin_ms: float = 1.0, first_cell: int = 0) -> bool:
    """Warn when a cell's mean input rate (x: a batch (cell, channel, time) of counts) is far
    outside what the model saw in training. Returns True when it warned."""
    try:
        seen = loaded.sidecar.get("input_rate_hz")
        lo, hi = (float(seen[0]), float(seen[1])) if seen else (None, None)
    except (TypeError, ValueError, IndexError, KeyError):
        return False  # no usable training range recorded
    if lo is None:
        return False
    import torch

    from .nn.linear import InputEvents

    if isinstance(x, InputEvents):  # total count per cell / (channels x bins)
        b, c, t = x.shape
        totals = torch.zeros(b, dtype=torch.float32, device=x.count.device)
        totals.index_add_(0, x.batch, x.count.float())
        rates = totals / (c * t) * (1000.0 / bin_ms)
    else:
        rates = x.detach().float().mean(dim=(-2, -1)).reshape(-1) * (1000.0 / bin_ms)  # Hz
    out = (rates > 3 * hi) | (rates < lo / 3)
    if not bool(out.any()):
        return False
    i = int(out.nonzero()[0, 0])
    warnings.warn(
        f"mean input rate {float(rates[i]):.2f} Hz per channel (cell {first_cell + i}; "
        f"{int(out.sum())} of {len(rates)} cells in this batch) is outside the training range "
        f"{lo:.2f}-{hi:.2f} Hz of model {loaded.name!r}; predictions may be unreliable.",
        stacklevel=4)  # caller -> predict_lfp -> _run_batches -> here
    return True


def _to_dataset(fwd, result, p_cell, logit, signals, geometry, loaded, n_bins, time, bin_ms):
    import torch

    if time is None:
        time = np.arange(n_bins) * bin_ms
    def f64(t):  # numpy's float64 cast of the float32 array: ~3x faster than torch's .double()
        return t.detach().cpu().numpy().astype(np.float64)

    data = {k: f64(result[k]) for k in ("lfp", "eeg", "meg", "dipole") if k in result and k in signals}
    ds = fwd._dataset(data, f64(p_cell) if p_cell.shape[0] > 1 else None, time, "v")
    if "v" in signals or "imem" in signals:
        v = result["v"].detach().cpu().numpy()
        if "v" in signals:
            ds["v"] = (("cell", "segment", "time"), v, {"units": "mV", "long_name": "predicted membrane potential"})
        if "imem" in signals:
            m = geometry.vmem_to_imem
            imem = np.stack([(m @ vc.astype(np.float64)) for vc in v])
            ds["imem"] = (("cell", "segment", "time"), imem, {"units": "nA", "long_name": "predicted transmembrane current"})
        ds = ds.assign_coords(segment=np.arange(geometry.n_segments), region=("segment", geometry.region))
    if "spikes" in signals:
        prob = torch.sigmoid(logit).detach().cpu().numpy()
        threshold = float(loaded.sidecar.get("spike_logit_threshold", 0.0))
        above = logit.detach().cpu().numpy() >= threshold  # calibrated per model (validation F1)
        onset = above & ~np.concatenate([np.zeros((above.shape[0], 1), bool), above[:, :-1]], axis=1)
        ds["spikes"] = (("cell", "time"), onset.astype(np.int8), {"units": "spikes per bin", "long_name": "predicted somatic spikes (upward crossings of the model's calibrated logit threshold)"})
        ds["spike_probability"] = (("cell", "time"), prob, {"units": "1"})
    ds.attrs.update(source="surrogate", model=loaded.name, model_fingerprint=loaded.fingerprint,
                    architecture=str(loaded.sidecar.get("architecture")), bin_ms=bin_ms,
                    cell_licence=str(geometry.meta.get("licence", "")))
    return ds
