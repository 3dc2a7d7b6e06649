"""Export a synthetic cohort from the command line (what ``python -m ldm.sample`` runs).

    ldm sample --profile demo --n 1000 --out runs/demo/export
    ldm sample --profile demo --n 1000 --out runs/demo/export --covariates my_covariates.tsv
    torchrun --nproc_per_node 4 -m ldm.sample --profile paper --weights /models/bundle --n 100000 --out /data/synth

Sample i has seed ``seed + i`` and covariates row i (drawn with replacement from the run's training
split, or read from ``--covariates``: columns sex, age, ventricular_volume, brain_volume in natural
units, one row per sample). Rank r of a torchrun job makes the samples i = r, r + W, r + 2W, ...: disjoint
seeds, no coordination. Each sample is written atomically as ``sub-<i>_T1w.nii.gz`` with a one-row JSON
sidecar; a rerun skips samples whose two files exist, so a killed export resumes with no gap and no
duplicate. At the end rank 0 gathers the sidecars into ``participants.tsv`` (``ldm.sampling.export``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from ..checkpoints import resolve_weights
from ..config import load_profile
from ..data.covariates import cohort_draw
from ..run import Run
from .export import export, gather, parse_tile, read_covariates
from .pipeline import load_pipeline
from .solvers import SAMPLERS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--overrides", default="{}")
    ap.add_argument("--weights", default="auto", help="auto (shipped checkpoints), or a folder of checkpoints")
    ap.add_argument("--run-dir", default="", help="run folder whose training split gives the covariates")
    ap.add_argument("--covariates", default="", help="TSV/CSV of covariates in natural units, one row per sample")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", default=None, choices=list(SAMPLERS), help="default: the profile's sampling.sampler")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--decode-tile", default="",
                    help="decode in tiles of N or AxBxC voxels of the grid before the decoder's last upsampling "
                         "(paper: 80x112x80; e.g. 20x28x80): the same images in a fraction of the memory "
                         "(ldm.tiled_decode). Default: whole")
    args = ap.parse_args(argv)
    profile = load_profile(args.profile, json.loads(args.overrides))
    run = Run.of(profile, args.run_dir)
    folder = resolve_weights(args.weights, profile) or run.models
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    pipe = load_pipeline(profile, folder)  # this rank's GPU when there is one
    if args.covariates:
        covs = read_covariates(args.covariates, profile, args.n)
    else:
        train = run.split("train")
        covs = cohort_draw(train, args.n, seed=args.seed)
    export(pipe, covs, args.out, seed=args.seed, rank=rank, world=world, batch_size=args.batch_size or None,
           sampler=args.sampler, decode_tile=parse_tile(args.decode_tile))
    if world > 1:  # the gather waits for every rank's files
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        dist.barrier()
    if rank == 0:
        table = gather(args.out, args.n)
        print(f"{len(table)} samples in {args.out} (participants.tsv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
