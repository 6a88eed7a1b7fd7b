"""Surrogate speed of two or more models, side by side in one process, timed as
``lfpsurrogate bench`` times them (same inputs, placements, probes and calls).

The work: (a) 1 cell x 10 s and (b) 100 cells x 1 s, LFP + EEG + MEG, from binned counts
and from input events. The calls alternate between the models, one warm call each per
round, and the best of ``--rounds`` is kept, so a noisy shared machine affects every model
alike. Prints one JSON line per (model, work, input) with the ratio to the first model.

    python benchmarks/bench_models_speed.py --model base=l5_ttpc1 --model w32=PATH
"""
from __future__ import annotations

import argparse
import json

import torch

from lfpsurrogate.bench import (_time_surrogate, _time_surrogate_events, draw_inputs,
                                make_context)
from lfpsurrogate.predict import default_placement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True,
                    help="NAME=model folder or shipped name")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    contexts = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        contexts[name] = make_context(path, device="cpu", repeats=1,
                                      cell=next(iter(contexts.values())).cell if contexts else None)
    geom = next(iter(contexts.values())).geometry
    work = {"1 cell x 10 s": (1, 10_000.0), "100 cells x 1 s": (100, 1000.0)}
    best: dict[tuple[str, str, str], float] = {}
    for _ in range(max(1, args.rounds)):
        for label, (n, dur) in work.items():
            inputs = draw_inputs(geom, n, dur, seed=0)
            pos, rot = default_placement(n, 0)
            for name, ctx in contexts.items():
                for how, timer in (("counts", _time_surrogate), ("events", _time_surrogate_events)):
                    wall = timer(ctx, inputs, pos, rot, repeats=1)["wall_s"]
                    key = (name, label, how)
                    best[key] = min(best.get(key, float("inf")), wall)
    first = next(iter(contexts))
    for (name, label, how), wall in best.items():
        print(json.dumps({"model": name, "work": label, "input": how, "best_wall_s": round(wall, 4),
                          f"speed_vs_{first}": round(best[(first, label, how)] / wall, 3),
                          "threads": args.threads, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
