"""Training the autoencoder (paper 2.2), one process or many.

    python -m ldm.train autoencoder --profile smoke --run-dir runs/smoke
    torchrun --nproc_per_node 2 -m ldm.train autoencoder --profile smoke --run-dir runs/smoke

The global batch of step k and each sample's reparameterisation noise are functions of (seed, k, position
in the global batch) alone (``ldm.runtime``): a resumed run and a run split over N ranks follow the same
trajectory as one uninterrupted process.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from ..config import Profile
from ..models.networks import build_autoencoder, build_patch_discriminator
from ..runtime import CHANNELS_LAST, barrier, global_batch, sample_generator, setup_distributed, split_batch, unwrap
from .state import resume, save_progress
from .steps import AutoencoderPass, autoencoder_step


def train_autoencoder(profile: Profile, images: torch.Tensor, out_dir: str | Path, steps: int | None = None,
                      progress: bool = True) -> Path:
    """L1 + KL (+ perceptual when weights are given) + patch adversarial after a warm-up. Returns the
    checkpoint path. Resumes from ``out_dir/autoencoder.pt`` when it holds fewer steps.

    Steps from ``training.autoencoder_steps`` on (``training.decoder_finetune_steps`` of them) train the
    decoder alone: the encoder, and so every latent a diffusion model learns from, stays bit for bit
    what it was, while the decoder (with the adversarial term, if it has joined) learns sharper images."""
    cfg = profile.training
    steps = cfg.autoencoder_steps + cfg.decoder_finetune_steps if steps is None else steps
    rank, world, device = setup_distributed()
    out = Path(out_dir)
    ckpt_path = out / "autoencoder.pt"
    torch.manual_seed(cfg.seed)  # initial weights: identical on every rank
    ae = build_autoencoder(profile.autoencoder).to(device, memory_format=CHANNELS_LAST)
    disc = build_patch_discriminator(cfg.discriminator_channels, cfg.discriminator_layers).to(device)
    opt_g = torch.optim.Adam(ae.parameters(), lr=cfg.autoencoder_lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.autoencoder_lr)
    start, history = resume(ckpt_path, profile, "autoencoder", {
        "model": ae, "discriminator": disc, "optimizer": opt_g, "optimizer_discriminator": opt_d})
    perceptual = None
    if cfg.perceptual_weights:
        from ..models.perceptual import MedicalNetPerceptualLoss

        perceptual = MedicalNetPerceptualLoss(cfg.perceptual_weights).to(device)
    model = AutoencoderPass(ae)
    if world > 1:  # the encoder gets no gradient while the decoder is fine-tuned
        model, disc = DDP(model, find_unused_parameters=cfg.decoder_finetune_steps > 0), DDP(disc)
    per_rank = split_batch(cfg.autoencoder_batch_size, world)
    t0 = time.perf_counter()
    for step in tqdm(range(start, steps), desc="autoencoder", disable=not progress or rank > 0,
                     initial=start, total=steps):
        idx = global_batch(step, len(images), cfg.autoencoder_batch_size, cfg.seed)[rank::world]
        x = images[idx].to(device, memory_format=CHANNELS_LAST)
        latent_shape = (profile.autoencoder.latent_channels, *profile.latent_shape)
        eps = torch.stack([torch.randn(latent_shape, generator=sample_generator(cfg.seed, step, rank + world * j))
                           for j in range(per_rank)]).to(device)
        history.append({"step": step + 1, **autoencoder_step(model, disc, opt_g, opt_d, x, eps, step, cfg, device,
                                                             perceptual)})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
            if rank == 0:
                save_progress(out, "autoencoder", step + 1, history, profile, t0, model=ae.state_dict(),
                              discriminator=unwrap(disc).state_dict(), optimizer=opt_g.state_dict(),
                              optimizer_discriminator=opt_d.state_dict(),
                              perceptual=cfg.perceptual_weights or "none", world_size=world)
            barrier(world)
    return ckpt_path
