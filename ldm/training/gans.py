"""Training the GAN baselines of Table 1 (``ldm.models.baselines``): one discriminator step, then one
generator (and encoder) step, per batch.

    python -m ldm.train lsgan  --profile demo --run-dir runs/demo
    python -m ldm.train vaegan --profile demo --run-dir runs/demo

The batch of step k and each sample's noise are functions of (seed, k, position) alone, checkpoints are
atomic and resume; one process (no DDP: they are small).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import BaselinesConfig, Profile
from ..models.baselines import KINDS, build_encoder, build_gan_discriminator, build_generator
from ..runtime import global_batch, sample_generator, setup_distributed
from .state import resume, save_progress
from .steps import kl_divergence, least_squares


def _noise(cfg: BaselinesConfig, step: int, n: int, offset: int = 0) -> torch.Tensor:
    return torch.stack([torch.randn(cfg.latent_dim, generator=sample_generator(cfg.seed, step, offset + j))
                        for j in range(n)])


def train_gan(kind: str, profile: Profile, images: torch.Tensor, out_dir: str | Path, steps: int | None = None,
              progress: bool = True) -> Path:
    """Train the ``lsgan`` or ``vaegan`` baseline on ``images`` (N, 1, D, H, W); resumes from
    ``out_dir/<kind>.pt``. One discriminator step, then one generator (and encoder) step, per batch."""
    if kind not in KINDS:
        raise ValueError(f"unknown baseline {kind!r}: expected one of {KINDS}")
    cfg = profile.baselines
    steps = cfg.steps if steps is None else steps
    out = Path(out_dir)
    path = out / f"{kind}.pt"
    shape = profile.data.shape
    _, _, device = setup_distributed()  # one process; on a GPU when there is one
    torch.manual_seed(cfg.seed)
    gen, disc = build_generator(cfg, shape).to(device), build_gan_discriminator(cfg, shape).to(device)
    enc = build_encoder(cfg, shape).to(device) if kind == "vaegan" else None
    g_params = list(gen.parameters()) + (list(enc.parameters()) if enc is not None else [])
    opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=(0.5, 0.999))  # the usual GAN betas (Radford et al.)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    parts = {"model": gen, "discriminator": disc, "optimizer": opt_g, "optimizer_discriminator": opt_d}
    if enc is not None:
        parts["encoder"] = enc
    start, history = resume(path, profile, kind, parts)
    t0 = time.perf_counter()
    for step in tqdm(range(start, steps), desc=kind, disable=not progress, initial=start, total=steps):
        x = images[global_batch(step, len(images), cfg.batch_size, cfg.seed)].to(device)
        b = len(x)
        z_p = _noise(cfg, step, b).to(device)  # drawn on the host: the same on any device
        row = {"step": step + 1}
        if enc is not None:
            mu, log_var = enc(x).chunk(2, dim=1)
            sigma = (0.5 * log_var).exp()
            z_x = mu + sigma * _noise(cfg, step, b, offset=b).to(device)
            fakes = gen(torch.cat([z_x, z_p]))
            recon = fakes[:b]
        else:
            fakes = gen(z_p)
        # discriminator: real -> 1, every fake -> 0
        d_real, d_fake = disc(x), disc(fakes.detach())
        d_loss = least_squares(d_real, 1.0) + least_squares(d_fake, 0.0)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator (and encoder): fakes -> 1, plus the VAE terms
        g_adv = least_squares(disc(fakes), 1.0)
        g_loss = g_adv
        if enc is not None:
            l1 = (recon - x).abs().mean()
            kl = kl_divergence(mu, sigma) / cfg.latent_dim  # per latent dimension
            g_loss = g_loss + cfg.reconstruction_weight * l1 + cfg.kl_weight * kl
            row.update(l1=l1.item(), kl=kl.item())
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        row.update(generator_adversarial=g_adv.item(), discriminator=d_loss.item(),
                   d_real=d_real.mean().item(), d_fake=d_fake.mean().item())
        history.append(row)
        if (step + 1) % profile.training.checkpoint_every == 0 or step + 1 == steps:
            save_progress(out, kind, step + 1, history, profile, t0, **{k: v.state_dict() for k, v in parts.items()})
    return path
