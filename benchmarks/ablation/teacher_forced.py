"""Score a spiking surrogate with the true somatic spikes fed back (teacher forcing): the
ceiling its voltages and signals would reach if its spike generator were perfect.

    python benchmarks/ablation/teacher_forced.py MODEL STORE.zarr [--split test]
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    import torch
    import zarr

    from lfpsurrogate.data import split_samples, store_geometry
    from lfpsurrogate.evaluate import CELL_POSITION, Evaluator, signal_matrices
    from lfpsurrogate.modelfolder import load_surrogate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("store")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    geom = store_geometry(args.store)
    model = load_surrogate(args.model, geometry=geom).model
    g = zarr.open_group(args.store, mode="r")
    ev = Evaluator(geom, model.receptive_field, 1.0, signal_matrices(geom, None, CELL_POSITION))
    for i in split_samples(args.store, args.split):
        x = torch.from_numpy(np.asarray(g["inputs"][int(i)], dtype=np.float32))[None]
        s = torch.from_numpy(np.asarray(g["spikes"][int(i)], dtype=np.float32))[None]
        with torch.no_grad():
            v = model(x, spikes=s)["v"][0].numpy()
        ev.add(v, np.asarray(g["v"][int(i)], dtype=np.float64))
    r = ev.result()
    keys = ["soma_rmse_mv", "v_explained_variance_median", "imem_r_median", "dipole_r",
            "lfp_r_median", "eeg_r_median", "meg_r_median"]
    print(json.dumps({k: r[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
