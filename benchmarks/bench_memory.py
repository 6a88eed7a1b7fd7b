"""Peak memory of predict_lfp against the number of cells (not a test).

Each measurement runs in a fresh Python process: import, load the model, then one
``predict_lfp(rates={"duration_ms": D, "n_cells": N}, signals=("lfp",))``. Reported per
cell count: the process's peak resident set size (``resource.getrusage`` ru_maxrss) before
the call (imports + model) and after it, their difference, the size of the returned
Dataset, and the wall time. ``--eager`` also measures, for the smaller counts, the old way:
drawing every cell's inputs up front (``inputs_from_rates``) and passing them as an array.

The model defaults to the shipped ``l5_ttpc1`` (567 segments, 1130 input channels); point
``LFPSURROGATE_MODELS`` at another models folder (e.g. /work/standin/models) if the repository
has none. Writes benchmarks/results/memory.json.

    python benchmarks/bench_memory.py [--cells 1 100 1000 10000] [--duration-ms 200]
                                      [--batch-size 64] [--eager 1 100 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, resource, sys, time, warnings
    import numpy as np
    import torch
    torch.set_num_threads(1)
    import lfpsurrogate as lfps
    from lfpsurrogate.predict import inputs_from_rates, load_model

    model, n_cells, duration, batch, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    loaded = load_model(model, device="cpu")
    g = loaded.geometry
    before = kib()
    t0 = time.perf_counter()
    spec = {"duration_ms": duration, "n_cells": n_cells}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "rates":
            ds = lfps.predict_lfp(rates=spec, model=model, signals=("lfp",), device="cpu",
                                  batch_size=batch)
        else:
            x = inputs_from_rates(g, spec)
            ds = lfps.predict_lfp(x, model=model, signals=("lfp",), device="cpu", batch_size=batch)
    wall = time.perf_counter() - t0
    assert np.isfinite(ds["lfp"].values).all()
    print(json.dumps({"cells": n_cells, "mode": mode, "duration_ms": duration, "batch_size": batch,
                      "n_segments": g.n_segments, "n_channels": g.n_channels,
                      "rss_before_mib": round(before / 1024, 1), "peak_rss_mib": round(kib() / 1024, 1),
                      "growth_mib": round((kib() - before) / 1024, 1),
                      "output_mib": round(ds.nbytes / 2**20, 2),
                      "inputs_if_held_mib": round(n_cells * g.n_channels * ds.sizes["time"] / 2**20, 1),
                      "wall_s": round(wall, 2)}))
""")


def measure(model: str, cells: int, duration: float, batch: int, mode: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(cells), str(duration), str(batch),
                          mode], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        return {"cells": cells, "mode": mode, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="l5_ttpc1")
    ap.add_argument("--cells", type=int, nargs="+", default=[1, 100, 1000, 10000])
    ap.add_argument("--duration-ms", type=float, default=200.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eager", type=int, nargs="*", default=[1, 100, 1000],
                    help="cell counts to also measure with all inputs drawn up front")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "memory.json"))
    args = ap.parse_args()
    rows = []
    for mode, counts in (("rates", args.cells), ("eager", args.eager)):
        for n in counts:
            row = measure(args.model, n, args.duration_ms, args.batch_size, mode)
            print(json.dumps(row), flush=True)
            rows.append(row)
    import lfpsurrogate

    result = {"benchmark": "predict_lfp peak memory vs cell count", "model": args.model,
              "models_root": os.environ.get("LFPSURROGATE_MODELS", "repository models/"),
              "signals": ["lfp"], "machine": platform.platform(), "cpu_threads": 1,
              "lfpsurrogate": lfpsurrogate.__version__, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
