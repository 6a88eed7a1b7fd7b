"""Where a ``predict_lfp`` call spends its time: torch operators (self CPU time) and the
package's Python functions (cumulative time), for the bench's population work.

    python benchmarks/profile_predict.py --cells 100 --duration-ms 1000 --input events
"""
from __future__ import annotations

import argparse
import cProfile
import pstats

import torch

from lfpsurrogate.bench import PROBES, draw_inputs, events_of
from lfpsurrogate.modelfolder import load_surrogate
from lfpsurrogate.predict import default_placement, predict_lfp
from lfpsurrogate.probes import load_probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="l5_ttpc1")
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--input", choices=("events", "counts"), default="events")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    geom = load_surrogate(args.model).geometry
    counts = draw_inputs(geom, args.cells, args.duration_ms, seed=0)
    pos, rot = default_placement(args.cells, 0)
    probes = {k: load_probe(v) for k, v in PROBES.items()}
    kwargs = dict(model=args.model, signals=("lfp", "eeg", "meg"), probe=probes["lfp"],
                  eeg=probes["eeg"], meg=probes["meg"], positions=pos, rotations=rot,
                  device="cpu", batch_size=max(1, min(64, 64000 // counts.shape[-1])))
    if args.input == "events":
        kwargs.update(events=events_of(counts), duration_ms=float(counts.shape[-1]),
                      n_cells=args.cells)
    else:
        kwargs["inputs"] = counts
    predict_lfp(**kwargs)  # warm: forward matrices, caches
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        predict_lfp(**kwargs)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    pr = cProfile.Profile()
    pr.enable()
    predict_lfp(**kwargs)
    pr.disable()
    stats = pstats.Stats(pr)
    stats.sort_stats("cumulative").print_stats(r"lfpsurrogate", args.top)


if __name__ == "__main__":
    main()
