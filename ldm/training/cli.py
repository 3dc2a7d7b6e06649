"""Train one network of a run folder from the command line (what ``python -m ldm.train`` runs).

    ldm train autoencoder --profile smoke --run-dir runs/smoke
    ldm train diffusion   --profile smoke --run-dir runs/smoke
    ldm train brain_age|lsgan|vaegan --profile smoke --run-dir runs/smoke
    torchrun --nproc_per_node 2 -m ldm.train diffusion --profile smoke --run-dir runs/smoke

The diffusion model trains on the latents of the run's training split (``models/latents.pt``, encoded
first when missing or made by another autoencoder) or on ``--latents``. Reproducibility is designed in:
the global batch of step k, each sample's noise and timestep are functions of (seed, k, position in the
global batch) alone, so a run killed and resumed from its last checkpoint, and a run split over N ranks,
follow the same trajectory as one uninterrupted process.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch.distributed as dist

from ..config import load_profile
from ..run import Run
from .diffusion import train_on_run
from .obtain import train_on_images


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["autoencoder", "diffusion", "brain_age", "lsgan", "vaegan"])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--overrides", default="{}")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--latents", default="", help="diffusion: a .pt of {'latents', 'covariates'} to train on")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    profile = load_profile(args.profile, json.loads(args.overrides))
    run = Run(Path(args.run_dir))
    if args.what != "diffusion":
        train_on_images(args.what, profile, run, steps=args.steps)
    else:
        train_on_run(profile, run, steps=args.steps, latents=Path(args.latents) if args.latents else None)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
