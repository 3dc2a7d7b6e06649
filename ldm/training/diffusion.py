"""Training the latent diffusion model (paper 2.2) on the autoencoder's latents, one process or many.

    python -m ldm.train diffusion --profile smoke --run-dir runs/smoke      (encodes the training split first)
    torchrun --nproc_per_node 2 -m ldm.train diffusion --profile smoke --run-dir runs/smoke

Each sample's noise, timestep and condition dropout are functions of (seed, step, position in the global
batch) alone (``ldm.runtime``), so a resumed or a multi-rank run follows one process's trajectory. The
latents of the training split are cached with the digest of the autoencoder that encoded them.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from ..checkpoints import file_digest, load_checked
from ..config import Profile
from ..data.loading import volumes_and_covariates
from ..io import atomic_path
from ..models.latents import encode, latent_statistics, normalise_latents
from ..models.networks import build_autoencoder, build_unet
from ..models.schedule import alphas_cumprod, schedule_betas
from ..run import Run
from ..runtime import CHANNELS_LAST, barrier, global_batch, sample_generator, setup_distributed, split_batch
from .state import resume, save_progress
from .steps import diffusion_draws, diffusion_step, ema_update


def train_diffusion(profile: Profile, latents: torch.Tensor, covariates: torch.Tensor, out_dir: str | Path,
                    steps: int | None = None, progress: bool = True) -> Path:
    """Epsilon (or v) prediction on normalised latents with hybrid conditioning; EMA of the weights.

    ``latents`` are raw z_mu; their normalisation (``latent_statistics``) is computed here and stored in
    the checkpoint, so sampling needs nothing else. With ``training.condition_dropout`` > 0, that fraction
    of samples is trained unconditionally (the null token), which classifier-free guidance needs."""
    cfg = profile.training
    steps = cfg.diffusion_steps if steps is None else steps
    rank, world, device = setup_distributed()
    out = Path(out_dir)
    ckpt_path = out / "diffusion.pt"
    latent_mean, latent_std = latent_statistics(latents, profile.diffusion.latent_normalisation)
    z_all = normalise_latents(latents, latent_mean, latent_std)
    torch.manual_seed(cfg.seed)
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels).to(device, memory_format=CHANNELS_LAST)
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.Adam(unet.parameters(), lr=cfg.diffusion_lr)
    # a checkpoint left from other latents (the autoencoder changed) must not resume on these
    start, history = resume(ckpt_path, profile, "diffusion", {"model": unet, "ema": ema, "optimizer": opt},
                            same={"latent_mean": latent_mean, "latent_std": latent_std})
    model = DDP(unet) if world > 1 else unet
    sched = profile.scheduler
    betas = schedule_betas(sched)
    abar = alphas_cumprod(betas)
    per_rank = split_batch(cfg.diffusion_batch_size, world)
    t0 = time.perf_counter()
    for step in tqdm(range(start, steps), desc="diffusion", disable=not progress or rank > 0,
                     initial=start, total=steps):
        idx = global_batch(step, len(z_all), cfg.diffusion_batch_size, cfg.seed)[rank::world]
        z0, c = z_all[idx].to(device), covariates[idx].to(device)
        gens = [sample_generator(cfg.seed, step, rank + world * j) for j in range(per_rank)]
        noise, t, present = (v.to(device) for v in diffusion_draws(gens, z0.shape[1:], sched.num_train_timesteps,
                                                                     cfg.condition_dropout))
        loss = diffusion_step(model, opt, z0, c, noise, t, present, abar, profile, device)
        ema_update(ema, unet, step, cfg.ema_decay)
        history.append({"step": step + 1, "loss": loss.item()})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
            if rank == 0:
                save_progress(out, "diffusion", step + 1, history, profile, t0, model=unet.state_dict(),
                              ema=ema.state_dict(), optimizer=opt.state_dict(), latent_mean=latent_mean,
                              latent_std=latent_std, world_size=world)
            barrier(world)
    return ckpt_path


def write_latents(profile: Profile, run: Run, path: Path) -> Path:
    """Encode the run's training split with its autoencoder: {'latents', 'covariates'} at ``path``."""
    autoencoder = run.models / "autoencoder.pt"
    ae = build_autoencoder(profile.autoencoder)
    ae.load_state_dict(load_checked(autoencoder, profile, "autoencoder")["model"])
    images, covariates = volumes_and_covariates(run.split("train"))
    return save_latents(path, encode(ae, images), covariates, autoencoder)


def save_latents(path: Path, latents: torch.Tensor, covariates: torch.Tensor, autoencoder: Path) -> Path:
    """{'latents', 'covariates', 'autoencoder_sha256'} at ``path``: the digest names the autoencoder
    checkpoint that encoded them, so latents left from an earlier autoencoder are never reused."""
    with atomic_path(path) as tmp:
        torch.save({"latents": latents, "covariates": covariates, "autoencoder_sha256": file_digest(autoencoder)}, tmp)
    return path


def latents_are_current(path: Path, autoencoder: Path) -> bool:
    """Whether ``path`` holds the latents of exactly this autoencoder checkpoint (written by write_latents)."""
    if not path.is_file():
        return False
    # memory-mapped: only the digest is read, not the (paper size: GBs of) latents
    return torch.load(path, weights_only=True, mmap=True).get("autoencoder_sha256") == file_digest(autoencoder)


def train_on_run(profile: Profile, run: Run, steps: int | None = None, progress: bool = True,
                 latents: Path | None = None) -> Path:
    """Train (or resume) the run's diffusion model on its training split's latents, encoding them first
    when ``models/latents.pt`` is missing or was made by another autoencoder; or on ``latents`` (a .pt of
    {'latents', 'covariates'}) when given. Over torchrun's ranks, rank 0 encodes while the others wait."""
    path = latents or run.models / "latents.pt"
    rank, world, _ = setup_distributed()
    if latents is None and rank == 0 and not latents_are_current(path, run.models / "autoencoder.pt"):
        write_latents(profile, run, path)  # missing, or encoded by another autoencoder
    barrier(world)
    data = torch.load(path, weights_only=True)
    return train_diffusion(profile, data["latents"], data["covariates"], run.models, steps=steps, progress=progress)
