"""`lfpsurrogate evaluate --model DIR_OR_NAME --data STORE`: accuracy on held-out samples."""
from __future__ import annotations

from .common import add_json_option


def run(args) -> dict:
    import torch

    from ..evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    return evaluate(args.model, args.data, args.split, n_samples=args.n_samples,
                    out_dir=args.out_dir, batch_size=args.batch_size, device=args.device)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="free-running accuracy of a surrogate on held-out samples: voltages, spikes, "
             "currents, dipole, LFP, EEG, MEG")
    p.add_argument("--model", required=True,
                   help="model folder, shipped model name, or training checkpoint (out/best)")
    p.add_argument("--data", required=True, help="dataset store (.zarr) of the same cell")
    p.add_argument("--split", choices=("test", "shift", "val"), default="test",
                   help="held-out split (default: test)")
    p.add_argument("--n-samples", type=int, default=None,
                   help="evaluate only the first K done samples of the split")
    p.add_argument("--out-dir", default=None, help="write figures here")
    p.add_argument("--batch-size", type=int, default=4, help="samples per model call")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's own default)")
    add_json_option(p)
    p.set_defaults(func=run)
    return p


__all__ = ["add_parser", "run"]
