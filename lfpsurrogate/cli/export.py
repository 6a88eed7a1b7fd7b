"""`lfpsurrogate export`: a training run -> a model folder (calibrated spike threshold,
held-out metrics, model card)."""
from __future__ import annotations

from .common import add_json_option


def run(args) -> dict:
    from ..export import export_run

    return export_run(args.run, args.data, args.out, checkpoint=args.checkpoint, name=args.name,
                      overwrite=args.overwrite, device=args.device, n_samples=args.n_samples)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="a training run -> a model folder: spike threshold calibrated on the val "
                       "split, held-out metrics, model card")
    p.add_argument("--run", required=True, help="the --out folder of `lfpsurrogate train`")
    p.add_argument("--data", required=True, help="the dataset store (.zarr) the run was trained on")
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--checkpoint", default="best", help="which checkpoint of the run: best or last")
    p.add_argument("--name", default=None, help="model name in the card; none given: the --out folder's name")
    p.add_argument("--n-samples", type=int, default=None,
                   help="evaluate only the first K samples of each held-out split; none given: all")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_json_option(p)
    p.set_defaults(func=run)
    return p


__all__ = ["add_parser", "run"]
