"""Train a shipped (exported) diffusion model for more steps, on this machine.

An exported checkpoint (``ldm.checkpoints.export_checkpoint``) keeps only the EMA weights, in float16, and
no optimiser state, so ``python -m ldm.train`` cannot resume it as it is. This script turns it into a training
checkpoint that can be resumed: raw weights = EMA weights = the exported ones (in float32), a fresh
Adam state, and the latents' statistics of *this* machine's encoding of the run's training split (the
exported run's were computed on another device and differ in the last digits). Its step count and loss
history are kept, so the curves continue where they stopped. Then it runs ``ldm.train diffusion``
(``ldm.training.cli.main``).

A fresh Adam state is not an exact continuation of the original run (whose moments are lost): its first
steps take full-size updates. With a learning rate this small that is a small kick, which the EMA absorbs.

    python experiments/2026-11-27-demo-retrain/continue_diffusion.py --exported checkpoints/demo/diffusion.pt \\
        --autoencoder checkpoints/demo/autoencoder.pt --run-dir runs/cont --steps 2600
(``run-dir/preprocessed`` must hold the preprocessed cohort, e.g. a link to ``runs/demo/preprocessed``.)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from ldm.checkpoints import check_architecture, load_checkpoint, save_checkpoint
from ldm.config import load_profile
from ldm.models.latents import latent_statistics
from ldm.models.networks import build_unet
from ldm.run import Run
from ldm.training import cli
from ldm.training.diffusion import latents_are_current, write_latents


def resumable(exported: Path, latents: Path, profile, dst: Path) -> Path:
    ck = load_checkpoint(exported)
    check_architecture(ck, profile, "diffusion", exported)
    data = torch.load(latents, weights_only=True)
    mean, std = latent_statistics(data["latents"], profile.diffusion.latent_normalisation)
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels)
    unet.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    opt = torch.optim.Adam(unet.parameters(), lr=profile.training.diffusion_lr)
    state = unet.state_dict()
    out = {k: v for k, v in ck.items() if k not in ("model", "weights")}
    out.update(model=state, ema={k: v.clone() for k, v in state.items()}, optimizer=opt.state_dict(),
               latent_mean=mean, latent_std=std)
    save_checkpoint(dst, out)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exported", required=True, type=Path)
    ap.add_argument("--autoencoder", required=True, type=Path)
    ap.add_argument("--run-dir", required=True, type=Path)
    ap.add_argument("--steps", required=True, type=int, help="total steps, counting those already done")
    ap.add_argument("--profile", default="demo")
    args = ap.parse_args()
    profile = load_profile(args.profile)
    models = args.run_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not (models / "diffusion.pt").exists():
        shutil.copyfile(args.autoencoder, models / "autoencoder.pt")
        latents = models / "latents.pt"
        if not latents_are_current(latents, models / "autoencoder.pt"):
            write_latents(profile, Run.of(profile, args.run_dir), latents)
        resumable(args.exported, latents, profile, models / "diffusion.pt")
    cli.main(["diffusion", "--profile", args.profile, "--run-dir", str(args.run_dir), "--steps", str(args.steps)])


if __name__ == "__main__":
    main()
