"""Evaluate several trained models on the same store's test and shift splits (free-running)
and print one markdown table per split; results go to a JSON file.

    python benchmarks/ablation/accuracy_table.py --data STORE.zarr \\
        --model linear=runs/linear/best --model spiking=models/l5_ttpc1 --out results.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lfpsurrogate.evaluate import evaluate

COLUMNS = [("soma_rmse_mv", "soma RMSE (mV)"), ("spike_auc", "spike AUC"), ("spike_f1", "spike F1"),
           ("firing_rate_true_hz", "rate true (Hz)"), ("firing_rate_predicted_hz", "rate pred (Hz)"),
           ("v_explained_variance_median", "v EV med"), ("imem_r_median", "imem r med"),
           ("dipole_r", "dipole r"), ("lfp_r_median", "LFP r med"), ("eeg_r_median", "EEG r med"),
           ("meg_r_median", "MEG r med")]


def table(results: dict, split: str) -> str:
    lines = ["| model | params | " + " | ".join(c for _, c in COLUMNS) + " |",
             "|---" * (2 + len(COLUMNS)) + "|"]
    for name, res in results.items():
        m = res[split]
        cells = [f"{m.get(k):.3f}" if isinstance(m.get(k), (int, float)) else "n/a" for k, _ in COLUMNS]
        lines.append(f"| {name} | {int(m.get('n_parameters') or 0):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", action="append", required=True, help="NAME=checkpoint or model folder")
    ap.add_argument("--out", required=True, help="JSON file for every metric")
    ap.add_argument("--splits", default="test,shift")
    ap.add_argument("--calibrate", action="append", default=[],
                    help="NAME of a model whose spike logit threshold is set on the val split "
                    "(calibrate.choose_threshold: F1 and rate) before scoring; others use their "
                    "folder's threshold or 0")
    args = ap.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        threshold = None
        if name in args.calibrate:  # post-hoc logit threshold with the best val F1
            threshold = float(evaluate(path, args.data, "val", calibrate_spikes=True)
                              ["spike_logit_threshold_best"])
        results[name] = {split: evaluate(path, args.data, split, spike_threshold=threshold)
                         for split in args.splits.split(",")}
        out.write_text(json.dumps(results, indent=1, default=str))
    for split in args.splits.split(","):
        print(f"\n{split} split\n\n" + table({k: v for k, v in results.items() if split in v}, split))


if __name__ == "__main__":
    main()
