"""What would predict the soma's subthreshold voltage better than a `spiking` model does?

The spike generator is bounded by the predicted subthreshold soma voltage (docs/ablation.md),
so this fits, in closed form, the soma voltage clipped at ``--clip-mv`` on a store's
training samples from several feature sets and scores each on its validation samples:

- ``vsub``: the model's own subthreshold soma prediction;
- ``linear64/128/256``: causally filtered inputs (the model's delta + raised cosines)
  projected on 64, 128 or 256 smooth input modes per synapse kind (the model's own pathway
  uses ``input_modes``);
- ``relu``: random ReLU features of the model's linear features (a generic static
  nonlinearity, fitted in closed form);
- ``true_history``: the true somatic spike train's history (raised cosines to 150 ms): what
  the after-hyperpolarisation would add if the spikes were known;
- ``true_plateaus``: per region (basal, apical trunk, tuft) the fraction of segments above
  -40 and -30 mV in the true voltages, causally filtered: what dendritic NMDA/Ca plateaus
  would add if they were known.

Ridge regressions on standardised features, the penalty (a grid from 0.1 to 1e7) chosen for
the least squared error on the validation samples (the figures are therefore optimistic for
each feature set, alike for all).

    python benchmarks/soma_ceiling.py --model l5_ttpc1 --data data/l5_a.zarr \\
        --n-train 165 --n-val 60 --out benchmarks/results/soma_ceiling.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

ALPHAS = tuple(10.0 ** k for k in range(-1, 8))  # 0.1 .. 1e7: the best is inside
SETS = {
    "vsub": ("vsub",),
    "vsub + true_history": ("vsub", "true_history"),
    "vsub + true_plateaus": ("vsub", "true_plateaus"),
    "vsub + true_history + true_plateaus": ("vsub", "true_history", "true_plateaus"),
    "linear64": ("linear64",),
    "linear128": ("linear128",),
    "linear256": ("linear256",),
    "linear64 + relu": ("linear64", "relu"),
    "vsub + linear64 + relu": ("vsub", "linear64", "relu"),
}


def region_groups(geometry) -> dict[str, np.ndarray]:
    """Boolean masks of basal, apical trunk/oblique and tuft segments (tuft: apical midpoint z
    above 0.6 x the highest apical midpoint, as `evaluate` defines it)."""
    reg, z = geometry.region, geometry.midpoints[:, 2]
    apical = reg == "apical"
    tuft = apical & (z > 0.6 * z[apical].max())
    return {"basal": reg == "basal", "trunk": apical & ~tuft, "tuft": tuft}


def feature_rows(model, geometry, store: str, split: str, n: int, stride: int,
                 skip_ms: int, n_relu: int, relu_stats=None) -> dict[str, torch.Tensor]:
    """{feature set: (rows, features) float32} and ``y`` (rows,) for a split's samples.
    ``relu_stats``: (mean, sd) of the training split's linear64 features, used to standardise
    them before the random ReLU features (None: this split is the training split; its own
    statistics are returned under ``relu_stats``)."""
    from lfpsurrogate.data import WindowDataset
    from lfpsurrogate.nn.linear import causal_filter, input_modes, raised_cosine_basis

    soma = int(model.soma_segment)
    groups = region_groups(geometry)
    n_in = model.n_channels // 2
    projections = {}
    for k in (64, 128, 256):
        q = torch.as_tensor(input_modes(geometry, n_in, k), dtype=torch.float32)
        p = torch.zeros(2 * n_in, 2 * k)
        p[:n_in, :k], p[n_in:, k:] = q, q
        projections[f"linear{k}"] = p
    history = torch.as_tensor(raised_cosine_basis(6, 150.0), dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    relu_w = torch.randn(2 * 64 * model.filters.shape[0], n_relu, generator=g)
    relu_b = 0.5 * torch.randn(n_relu, generator=g)
    samples = list(WindowDataset(store, split, 1.0, expected_fingerprint=geometry)
                   .whole_samples())[:n]
    out: dict[str, list] = {}
    for s in samples:
        x = torch.as_tensor(np.asarray(s["inputs"]), dtype=torch.float32)[None]
        v = torch.as_tensor(np.asarray(s["v"]), dtype=torch.float32)
        spikes = torch.as_tensor(np.asarray(s["spikes"]), dtype=torch.float32).gt(0).float()
        xn = (x - model.in_mean[None, :, None]) * model.in_scale[None, :, None]
        with torch.no_grad():
            vsub = model.drive_and_latents(xn)["vsub"][0]
        rows = slice(skip_ms, None, stride)
        blocks = {"vsub": vsub[None]}
        for name, p in projections.items():
            f = causal_filter(torch.einsum("bct,cp->bpt", xn, p), model.filters.float())[0]
            blocks[name] = f.reshape(-1, f.shape[-1])
        before = torch.nn.functional.pad(spikes, (1, 0))[:-1]        # lags >= 1 bin
        blocks["true_history"] = causal_filter(before[None, None], history)[0, 0]
        frac = torch.stack([(v[m] > th).float().mean(0) for m in groups.values()
                            for th in (-40.0, -30.0)])
        blocks["true_plateaus"] = causal_filter(frac[None], model.filters.float())[0].reshape(
            -1, frac.shape[-1])
        for name, b in blocks.items():
            out.setdefault(name, []).append(b[:, rows].T)
        out.setdefault("y", []).append(v[soma, rows])
    res = {k: torch.cat(out.pop(k)) for k in list(out)}  # one key's pieces at a time
    lin = res["linear64"]
    mu, sd = relu_stats if relu_stats is not None else (lin.mean(0), lin.std(0).clamp_min(1e-6))
    res["relu"] = torch.relu(((lin - mu) / sd) @ relu_w / np.sqrt(lin.shape[1]) + relu_b)
    res["relu_stats"] = (mu, sd)
    return res


def _chunks(n: int, size: int = 8192):
    return (slice(i, min(n, i + size)) for i in range(0, n, size))


def ridge_scores(train: dict, val: dict, keys: tuple[str, ...], clip_mv: float) -> dict:
    """Validation r and RMSE (mV) of a ridge on standardised features, at the penalty of
    ``ALPHAS`` with the least validation RMSE.
    The normal equations are summed over chunks of rows (in float64): no copy of the design."""
    def design(d, sl):
        return torch.cat([d[k][sl] for k in keys], 1).double()

    n = train["y"].shape[0]
    y = train["y"].double().clamp(max=clip_mv)
    total = sum(design(train, sl).sum(0) for sl in _chunks(n))
    mu, my = total / n, y.mean()
    gram = 0.0
    rhs = 0.0
    for sl in _chunks(n):
        a = design(train, sl) - mu
        gram = gram + a.T @ a
        rhs = rhs + a.T @ (y[sl] - my)
    sd = (gram.diagonal() / n).sqrt().clamp_min(1e-9)
    gram, rhs = gram / torch.outer(sd, sd), rhs / sd
    yv = val["y"].double().clamp(max=clip_mv)
    best = None
    for alpha in ALPHAS:
        w = torch.linalg.solve(gram + alpha * torch.eye(gram.shape[0], dtype=gram.dtype), rhs) / sd
        p = torch.cat([(design(val, sl) - mu) @ w + my for sl in _chunks(yv.shape[0])])
        rmse = float(((p - yv) ** 2).mean().sqrt())
        if best is None or rmse < best["rmse_mv"]:  # the penalty of the least squared error
            best = {"r": float(np.corrcoef(p.numpy(), yv.numpy())[0, 1]), "rmse_mv": rmse,
                    "alpha": alpha, "features": int(gram.shape[0])}
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="l5_ttpc1")
    ap.add_argument("--data", default="data/l5_a.zarr")
    ap.add_argument("--n-train", type=int, default=165)
    ap.add_argument("--n-val", type=int, default=60)
    ap.add_argument("--stride-train", type=int, default=4, help="every n-th bin of training samples")
    ap.add_argument("--stride-val", type=int, default=3)
    ap.add_argument("--skip-ms", type=int, default=300, help="bins dropped at each sample's start")
    ap.add_argument("--relu", type=int, default=4000, help="random ReLU features")
    ap.add_argument("--clip-mv", type=float, default=-55.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lfpsurrogate.data import store_geometry
    from lfpsurrogate.modelfolder import load_surrogate

    geometry = store_geometry(args.data)
    model = load_surrogate(args.model, geometry=geometry).model.eval()
    train = feature_rows(model, geometry, args.data, "train", args.n_train, args.stride_train,
                         args.skip_ms, args.relu)
    val = feature_rows(model, geometry, args.data, "val", args.n_val, args.stride_val,
                       args.skip_ms, args.relu, relu_stats=train["relu_stats"])
    results = {"model": args.model, "store": args.data, "clip_mv": args.clip_mv,
               "n_train": args.n_train, "n_val": args.n_val, "stride_train": args.stride_train,
               "stride_val": args.stride_val, "skip_ms": args.skip_ms, "relu": args.relu,
               "alphas": list(ALPHAS),
               "train_rows": int(train["y"].shape[0]), "val_rows": int(val["y"].shape[0]),
               "val_soma_sd_mv": float(val["y"].clamp(max=args.clip_mv).std()), "sets": {}}
    for name, keys in SETS.items():
        results["sets"][name] = ridge_scores(train, val, keys, args.clip_mv)
        print(f"{name:38s} r {results['sets'][name]['r']:.3f}  RMSE "
              f"{results['sets'][name]['rmse_mv']:.2f} mV", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
