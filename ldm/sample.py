"""Export a synthetic cohort: N brains as NIfTI + one covariates TSV, resumable and shardable.

    python -m ldm.sample --profile demo --n 1000 --out runs/demo/export
    python -m ldm.sample --profile demo --n 1000 --out runs/demo/export --covariates my_covariates.tsv
    torchrun --nproc_per_node 4 -m ldm.sample --profile paper --weights /models/bundle --n 100000 --out /data/synth

Sample i has seed ``seed + i`` and covariates row i (drawn with replacement from the run's training
split, or read from ``--covariates``: columns sex, age, ventricular_volume, brain_volume in natural
units, one row per sample). Rank r of a torchrun job makes the samples i = r, r + W, r + 2W, ...: disjoint
seeds, no coordination. Each sample is written atomically as ``sub-<i>_T1w.nii.gz`` with a one-row JSON
sidecar; a rerun skips samples whose two files exist, so a killed export resumes with no gap and no
duplicate. At the end rank 0 gathers the sidecars into ``participants.tsv``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .checkpoints import resolve_weights
from .conditioning import cohort_draw
from .config import load_profile
from .generate import SAMPLERS, Pipeline, covariate_matrix, default_steps, generate, load_pipeline, sample_row
from .grid import target_grid
from .io import atomic_write_table, atomic_write_text, write_nifti
from .preprocess import load_preprocessed


def sample_name(i: int) -> str:
    return f"sub-{i:06d}_T1w.nii.gz"


def done(out: Path, i: int) -> bool:
    return (out / sample_name(i)).is_file() and (out / f"sub-{i:06d}.json").is_file()


def export(pipe: Pipeline, covariates: torch.Tensor, out: str | Path, seed: int = 0, rank: int = 0,
           world: int = 1, batch_size: int | None = None, sampler: str | None = None, progress: bool = True,
           decode_tile: int | tuple[int, ...] | None = None) -> list[int]:
    """Make this rank's missing samples of ``covariates`` (N, 4, normalised); returns the indices made."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = pipe.profile
    affine, _ = target_grid(p.data)
    todo = [i for i in range(rank, len(covariates), world) if not done(out, i)]
    for i in todo:  # a kill mid-write leaves a hidden temporary file of this rank's sample: remove it
        for stale in out.glob(f".sub-{i:06d}*tmp*"):
            stale.unlink()
    batch_size = batch_size or p.sampling.batch_size
    sampler, _ = default_steps(p, sampler)
    bar = tqdm(total=len(todo), desc=f"export rank {rank}", disable=not progress)
    for k in range(0, len(todo), batch_size):
        idx = todo[k:k + batch_size]
        vols = generate(pipe, covariates[idx], [seed + i for i in idx], sampler=sampler, batch_size=batch_size,
                        decode_tile=decode_tile)
        for i, vol in zip(idx, vols):
            write_nifti(out / sample_name(i), vol, affine, dtype=np.float32)
            row = {"participant_id": f"sub-{i:06d}", "file": sample_name(i),
                   **sample_row(covariates[i].numpy(), seed + i, p, sampler, p.sampling.guidance_scale, pipe.weights)}
            atomic_write_text(out / f"sub-{i:06d}.json", json.dumps(row))  # after the image: marks it done
        bar.update(len(idx))
    bar.close()
    return todo


def gather(out: str | Path, n: int) -> pd.DataFrame:
    """participants.tsv from the sidecars; an error names the first missing sample."""
    out = Path(out)
    missing = [i for i in range(n) if not done(out, i)]
    if missing:
        raise RuntimeError(f"{out}: {len(missing)} of {n} samples missing (first: {sample_name(missing[0])}); "
                           "rerun the same command to finish them")
    table = pd.DataFrame([json.loads((out / f"sub-{i:06d}.json").read_text()) for i in range(n)])
    atomic_write_table(table, out / "participants.tsv")
    return table


def read_covariates(path: str | Path, profile, n: int) -> torch.Tensor:
    table = pd.read_csv(path, sep=None, engine="python")
    need = [c.name for c in profile.data.covariates]
    absent = [c for c in need if c not in table.columns]
    if absent:
        raise ValueError(f"{path}: missing column {absent[0]!r} (need {need}, natural units)")
    if len(table) < n:
        raise ValueError(f"{path}: {len(table)} rows for --n {n}")
    return covariate_matrix(table.head(n).to_dict("records"), profile)


def parse_tile(text: str) -> int | tuple[int, ...] | None:
    """"" -> None (whole decode), "20" -> 20, "20x28x80" -> (20, 28, 80)."""
    if not text:
        return None
    sizes = tuple(int(v) for v in text.lower().split("x"))
    if any(v < 1 for v in sizes) or len(sizes) not in (1, 3):
        raise ValueError(f"--decode-tile {text!r}: N or AxBxC, positive voxel counts")
    return sizes[0] if len(sizes) == 1 else sizes


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
    run = Path(args.run_dir or f"runs/{profile.name}")
    folder = resolve_weights(args.weights, profile) or run / "models"
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else "cpu"
    pipe = load_pipeline(profile, folder, device=device)
    if args.covariates:
        covs = read_covariates(args.covariates, profile, args.n)
    else:
        train = load_preprocessed(run / "preprocessed").query("split == 'train'")
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
