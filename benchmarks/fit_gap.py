"""Does a `spiking` model fit the data it was trained on better than held-out data?

Scores a model with the true somatic spikes fed back (teacher forcing: the voltages then do
not depend on its spike generator) on the first samples of several splits of one store, with
`evaluate`'s Evaluator, so the keys are `evaluate`'s. Equal scores on the training split and
on held-out splits mean the model underfits (more data alone will not help); a higher
training score means it overfits. Run it on a store whose train split the model was trained
on, e.g. the shipped model on `l5_a` (session 7: train v EV 0.873, val 0.883, test 0.866).

    python benchmarks/fit_gap.py --model l5_ttpc1 --data data/l5_a.zarr --n-samples 60
    python benchmarks/fit_gap.py --model runs/x/last --data data/l5_a.zarr   # a checkpoint
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

KEYS = ("v_explained_variance_median", "soma_rmse_mv", "imem_r_median", "lfp_r_median",
        "dipole_r")


def teacher_forced_scores(model, geometry, store: str, splits=("train", "val", "test"),
                          n_samples: int = 60) -> dict[str, dict]:
    """{split: metric dict} of the model with the true spikes fed back, first n samples."""
    import zarr

    from lfpsurrogate.data import split_samples
    from lfpsurrogate.evaluate import Evaluator, signal_matrices

    if not getattr(model, "uses_spike_feedback", False):
        raise SystemExit("fit_gap needs a `spiking` model (one that takes the true spikes).")
    g = zarr.open_group(store, mode="r")
    burn = max(int(model.receptive_field), 50)
    out = {}
    for split in splits:
        ev = Evaluator(geometry, burn, 1.0, signal_matrices(geometry), keep_example=False)
        idx = [int(i) for i in split_samples(store, split)[:n_samples]]
        for i in idx:
            x = torch.as_tensor(np.asarray(g["inputs"][i], dtype=np.float32))[None]
            spikes = torch.as_tensor(np.asarray(g["spikes"][i], dtype=np.float32))[None]
            with torch.no_grad():
                v_hat = model(x, spikes)["v"][0].numpy()
            ev.add(v_hat, np.asarray(g["v"][i]))
        r = ev.result()
        out[split] = {"n_samples": len(idx), **{k: round(float(r[k]), 4) for k in KEYS}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="l5_ttpc1",
                    help="model folder, shipped name, or training checkpoint stem (runs/x/last)")
    ap.add_argument("--data", required=True, help="zarr store of the model's cell")
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    ap.add_argument("--n-samples", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from lfpsurrogate.data import store_geometry
    from lfpsurrogate.modelfolder import load_surrogate

    torch.set_num_threads(args.threads)
    geometry = store_geometry(args.data)
    model = load_surrogate(args.model, geometry=geometry).model  # folder, name or checkpoint
    scores = teacher_forced_scores(model.eval(), geometry, args.data, args.splits, args.n_samples)
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
