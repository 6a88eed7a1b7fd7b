"""`lfpsurrogate dataset generate | info`: training-data stores from the command line."""
from __future__ import annotations

from ..data.store import DEFAULT_PROTOCOLS, DEFAULT_SHIFT_PROTOCOL, DTYPES, parse_splits
from .common import add_json_option, add_rate_options


def _protocols(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def run_generate(args) -> dict:
    from ..data.generate import generate_dataset
    from ..data.store import GenerationParams

    d_lambda = args.d_lambda
    if d_lambda is None and not str(args.cell).lower().endswith((".yaml", ".yml")):
        d_lambda = 0.3  # what built-in cells and folders have always been generated with
    params = GenerationParams(
        cell=args.cell, n_samples=args.n_samples, duration_ms=args.duration_ms, seed=args.seed,
        protocols=_protocols(args.protocol), n_shift=args.n_shift,
        shift_protocol=args.shift_protocol, splits=parse_splits(args.splits), dtype=args.dtype,
        rate_exc_hz=args.rate_exc, rate_inh_hz=args.rate_inh, d_lambda=d_lambda,
        chunk_ms=args.chunk_ms,
    )
    return generate_dataset(args.out, params, workers=args.workers, scheduler=args.scheduler,
                            progress=not args.no_progress)


def run_info(args) -> dict:
    from ..data.store import store_info

    return store_info(args.store)


def add_parser(subparsers):
    """The ``dataset`` command and its own subcommands ``generate`` and ``info``."""
    p = subparsers.add_parser("dataset", help="training-data stores (zarr) from NEURON runs on dask")
    sub = p.add_subparsers(dest="dataset_command", required=True)

    g = sub.add_parser(
        "generate", help="generate or finish a store; re-running the same command resumes it")
    g.add_argument("--cell", default="l5_ttpc1",
                   help="l5_ttpc1, pyramid_hh, another MEArec BBP cell name, a BBP cell folder, or "
                        "a cell file (.yaml) describing your own cell (see docs/cells.md)")
    g.add_argument("--n-samples", type=int, required=True, help="train + val + test samples")
    g.add_argument("--duration-ms", type=float, required=True, help="simulated time per sample (ms)")
    g.add_argument("--seed", type=int, default=0, help="master seed: every sample's input seed derives from it")
    g.add_argument("--out", required=True, help="the store (a .zarr folder)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local dask worker processes (default: one per core)")
    where.add_argument("--scheduler", help="address of a running dask scheduler, e.g. tcp://host:8786")
    g.add_argument("--protocol", default=",".join(DEFAULT_PROTOCOLS),
                   help="input protocol of train/val/test; a comma list draws one per sample")
    g.add_argument("--n-shift", type=int, default=0, help="extra 'shift' test samples")
    g.add_argument("--shift-protocol", default=DEFAULT_SHIFT_PROTOCOL,
                   help="input protocol of the shift samples")
    g.add_argument("--splits", default="train=0.8,val=0.1,test=0.1",
                   help="fractions of train/val/test among --n-samples")
    g.add_argument("--dtype", choices=DTYPES, default="float32", help="storage type of v")
    add_rate_options(g)
    g.add_argument("--d-lambda", type=float, default=None,
                   help="d_lambda rule fraction (segment length / AC length constant at 100 Hz); "
                        "default: a cell file's own discretization, else 0.3")
    g.add_argument("--chunk-ms", type=float, default=1000.0, help="zarr chunk length along time (ms)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_option(g)
    g.set_defaults(func=run_generate)

    i = sub.add_parser("info", help="what a store holds and how much of it is done")
    i.add_argument("store", help="the store (a .zarr folder)")
    add_json_option(i)
    i.set_defaults(func=run_info)
    return p


__all__ = ["add_parser", "run_generate", "run_info"]
