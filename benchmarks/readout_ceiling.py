"""What the low-rank + local readout of a `linear` or `spiking` model could reach at best.

The true voltages of each held-out sample, minus the model's own local term (each input
segment's linear response to its own synapses), are projected onto the readout's basis U by
least squares: the latents are then perfect, and `evaluate`'s Evaluator scores the result on
every key. What stays missing is what the readout itself cannot express (rank, local term).
``--pca-rank K`` scores, side by side, a basis of the K leading principal components of the
standardised true voltages instead of U (a readout of higher rank).

    python benchmarks/readout_ceiling.py --model l5_ttpc1 --data data/l5_a.zarr --split val \\
        --n-samples 16 --pca-rank 64 128
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

KEYS = ("lfp_r_median", "eeg_r_median", "meg_r_median", "dipole_r",
        "v_explained_variance_median", "imem_r_median")


def ceilings(model, geometry, store: str, split: str, n_samples: int,
             pca_ranks: tuple[int, ...] = ()) -> dict[str, dict]:
    """{basis name: metric dict} for the model's basis U and PCA bases of the given ranks."""
    import zarr

    from lfpsurrogate.data import split_samples
    from lfpsurrogate.evaluate import Evaluator, signal_matrices

    if not hasattr(model, "basis") or not hasattr(model, "linear_parts"):
        raise SystemExit("readout_ceiling needs a `linear` or `spiking` model (a basis and a "
                         "local term); this one has neither.")
    g = zarr.open_group(store, mode="r")
    idx = [int(i) for i in split_samples(store, split)[:n_samples]]
    vm, vs = model.v_mean.double()[:, None], model.v_std.double()[:, None]
    residuals, locals_, truths = [], [], []
    with torch.no_grad():
        for i in idx:
            x = torch.as_tensor(np.asarray(g["inputs"][i], dtype=np.float32))[None]
            xn = (x - model.in_mean[None, :, None]) * model.in_scale[None, :, None]
            p = model.linear_parts(xn)
            local = model.readout(torch.zeros_like(p["z"]), p["local"])[0].double()
            v = torch.as_tensor(np.asarray(g["v"][i], dtype=np.float64))
            residuals.append((v - vm) / vs - local)
            locals_.append(local)
            truths.append(v.numpy())
    bases = {"model basis U (rank %d)" % model.basis.shape[1]: model.basis.detach().double()}
    if pca_ranks:
        allv = torch.cat([(torch.as_tensor(v) - vm) / vs for v in truths], 1).T
        _, _, vt = torch.linalg.svd(allv - allv.mean(0), full_matrices=False)
        bases.update({f"PCA of true v (rank {k})": vt[:k].T for k in pca_ranks})
    burn = max(int(model.receptive_field), 50)
    out = {}
    for name, basis in bases.items():
        proj = basis @ torch.linalg.pinv(basis)
        ev = Evaluator(geometry, burn, 1.0, signal_matrices(geometry))
        for res, local, v in zip(residuals, locals_, truths):
            ev.add(((proj @ res + local) * vs + vm).numpy(), v)
        r = ev.result()
        out[name] = {k: round(float(r[k]), 4) for k in KEYS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="l5_ttpc1", help="model folder or shipped name")
    ap.add_argument("--data", required=True, help="zarr store of the model's cell")
    ap.add_argument("--split", default="val")
    ap.add_argument("--n-samples", type=int, default=16)
    ap.add_argument("--pca-rank", type=int, nargs="*", default=[])
    args = ap.parse_args()
    from lfpsurrogate.data import store_geometry
    from lfpsurrogate.modelfolder import load_surrogate

    geometry = store_geometry(args.data)
    model = load_surrogate(args.model, geometry=geometry).model.eval()
    print(json.dumps(ceilings(model, geometry, args.data, args.split, args.n_samples,
                              tuple(args.pca_rank)), indent=1))


if __name__ == "__main__":
    main()
