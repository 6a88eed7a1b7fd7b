"""Ground-truth statistics of a dataset store: per region, the fraction of time spent above
-30 mV (NMDA/Ca2+ plateaus), the segments that spend most of their time there, and the
somatic firing rate per input protocol.

    python benchmarks/ground_truth_stats.py STORE.zarr [--split train] [--json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

PLATEAU_MV = -30.0


def ground_truth_stats(store: str, split: str = "train", burn_in_ms: float = 100.0) -> dict:
    """Per-region plateau fractions and firing rates of the done samples of one split."""
    import zarr

    from lfpsurrogate.data import split_samples, store_geometry, store_params
    from lfpsurrogate.evaluate import segment_regions

    geom = store_geometry(store)
    params = store_params(store)
    g = zarr.open_group(str(store), mode="r")
    regions = segment_regions(geom)
    b = int(round(burn_in_ms / params.bin_ms))
    above = np.zeros(geom.n_segments)
    n_bins = 0
    rates: dict[str, list[float]] = {}
    for i in split_samples(store, split):
        v = np.asarray(g["v"][int(i)], dtype=np.float32)[:, b:]
        above += (v > PLATEAU_MV).sum(1)
        n_bins += v.shape[1]
        proto = str(g["protocol_name"][int(i)])
        spikes = float(np.asarray(g["spikes"][int(i)])[b:].sum())
        rates.setdefault(proto, []).append(spikes / (v.shape[1] * params.bin_ms / 1000.0))
    frac = above / max(n_bins, 1)
    return {
        "store": str(store), "split": split, "seconds": n_bins * params.bin_ms / 1000.0,
        "fraction_above_minus30_by_region": {k: float(frac[idx].mean()) for k, idx in regions.items()},
        "max_segment_fraction_above_minus30": float(frac.max()),
        "segments_above_minus30_most_of_the_time": int((frac > 0.5).sum()),
        "firing_rate_hz_by_protocol": {k: {"mean": float(np.mean(r)), "median": float(np.median(r)),
                                           "p10": float(np.percentile(r, 10)),
                                           "p90": float(np.percentile(r, 90)),
                                           "silent_fraction": float(np.mean(np.asarray(r) == 0)),
                                           "samples": len(r)} for k, r in sorted(rates.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--split", default="train")
    args = ap.parse_args()
    print(json.dumps(ground_truth_stats(args.store, args.split), indent=1))


if __name__ == "__main__":
    main()
