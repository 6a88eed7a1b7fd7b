"""`lfpsurrogate train --config FILE.yaml --out DIR`: train a surrogate on dataset stores."""
from __future__ import annotations

from .common import add_json_option


def run(args) -> dict:
    from ..training import run_training

    return run_training(args.config, args.out, resume=args.resume, device=args.device,
                        progress=not args.json, data=args.data)


def add_parser(subparsers):
    p = subparsers.add_parser("train", help="train a surrogate from a YAML config")
    p.add_argument("--config", required=True, help="training config (YAML), see docs/surrogates.md")
    p.add_argument("--out", required=True, help="output folder for best/last checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--data", action="append", help="dataset store(s) replacing the config's data.train")
    add_json_option(p)
    p.set_defaults(func=run)
    return p


__all__ = ["add_parser", "run"]
