"""Conditional generation: networks and schedule as one ``Pipeline``; ``generate``: covariates in, volumes out.

A sample is a function of its seed: the initial noise and every later draw of sample i come from its own
generator, so the batch size never changes which brain seed 42 is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import SHIPPED_DIR, load_checked, model_state
from ..config import Profile
from ..data.covariates import normalise
from ..models.latents import denormalise_latents
from ..models.networks import build_autoencoder, build_unet, condition_vector, conditioning_inputs
from ..models.schedule import alphas_cumprod, eps_from_prediction, schedule_betas
from ..runtime import default_device
from .solvers import SAMPLERS, initial_noise
from .tiled_decode import decode_tiled


@dataclass
class Pipeline:
    profile: Profile
    autoencoder: torch.nn.Module
    unet: torch.nn.Module
    latent_mean: torch.Tensor  # per channel: the diffusion model samples (z - mean) / std
    latent_std: torch.Tensor
    betas: torch.Tensor
    weights: str  # what made the networks, printed on every figure
    device: torch.device


def load_pipeline(profile: Profile, models_dir: str | Path, ema: bool = True,
                  device: str | torch.device | None = None) -> Pipeline:
    """Autoencoder + diffusion model from a folder of checkpoints (a run's ``models/`` or a shipped
    ``checkpoints/<profile>/``), each checked against the profile's architecture, on ``device`` (default:
    ``default_device()``, the GPU when there is one)."""
    models = Path(models_dir)
    ae_ck = load_checked(models / "autoencoder.pt", profile, "autoencoder")
    dm_ck = load_checked(models / "diffusion.pt", profile, "diffusion")
    ae = build_autoencoder(profile.autoencoder)
    ae.load_state_dict(model_state(ae_ck))
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels)
    unet.load_state_dict(model_state(dm_ck, ema))
    device = torch.device(device or default_device())
    shipped = models.resolve().parent == SHIPPED_DIR
    origin = f"shipped {profile.name} checkpoints" if shipped else f"trained ({models})"
    ema_used = dm_ck.get("weights") == "ema" or (ema and "ema" in dm_ck)
    weights = (f"{origin}: AE {ae_ck['step']} steps, diffusion {dm_ck['step']} steps"
               f"{' (EMA)' if ema_used else ''}, perceptual: {ae_ck.get('perceptual', 'none')}")
    if "origin" in ae_ck:  # converted weights (ldm.official): say whose they are, not our step counts
        weights = f"{ae_ck['origin']} (converted, {models})"
    # channels-last 3D weights (the activations follow them) where the profile says so, on a CPU only:
    # measured per profile (benchmarks/bench_memory_format.py); not measured on a GPU, so not used there
    fast = profile.sampling.channels_last and device.type == "cpu"
    fmt = torch.channels_last_3d if fast else torch.contiguous_format
    ae, unet = (m.to(device, memory_format=fmt).eval() for m in (ae, unet))
    return Pipeline(profile, ae, unet, dm_ck["latent_mean"].float(),
                    dm_ck["latent_std"].float(), schedule_betas(profile.scheduler), weights, device)


def eps_function(pipe: Pipeline, c: torch.Tensor, guidance_scale: float = 1.0):
    """eps(z_t, t) for a batch conditioned on normalised covariates ``c`` (B, 4): the network's output
    converted to eps (``eps_from_prediction``), and with classifier-free guidance (Ho & Salimans 2022)
    eps = eps_u + w (eps_c - eps_u), the unconditional half run in the same batch. w = 1 is plain
    conditional sampling (one pass); w = 0 is unconditional."""
    null = pipe.profile.diffusion.null_token
    abar = alphas_cumprod(pipe.betas)
    if guidance_scale != 1.0 and not null:
        raise ValueError("guidance needs a model trained with a null token (diffusion.null_token)")
    cond = condition_vector(c, null)
    if guidance_scale != 1.0:
        uncond = condition_vector(c, null, present=torch.zeros(len(c), device=c.device))
        cond = torch.cat([cond, uncond])

    def eps_fn(z: torch.Tensor, t: int) -> torch.Tensor:
        zz = z if guidance_scale == 1.0 else torch.cat([z, z])
        x_in, context = conditioning_inputs(zz, cond)
        timesteps = torch.full((len(zz),), t, device=z.device, dtype=torch.long)
        pred = pipe.unet(x=x_in, timesteps=timesteps, context=context).float()
        eps = eps_from_prediction(pred, zz, abar[t], pipe.profile.scheduler.prediction_type)
        if guidance_scale == 1.0:
            return eps
        eps_c, eps_u = eps.chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    return eps_fn


def covariate_matrix(rows: Sequence[Mapping[str, float]], profile: Profile, natural: bool = True) -> torch.Tensor:
    """(N, 4) normalised covariates from dicts in natural units (years, mm3, "F"/"M") or normalised."""
    if natural:
        return torch.from_numpy(np.stack([normalise(r, profile.data.covariates) for r in rows]))
    return torch.tensor([[r[c.name] for c in profile.data.covariates] for r in rows], dtype=torch.float32)


def default_steps(profile: Profile, sampler: str | None = None, steps: int | None = None) -> tuple[str, int | None]:
    """(sampler, network calls) with the profile's defaults for what is not given (DDPM: always 1000)."""
    sampler = sampler or profile.sampling.sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: one of {tuple(SAMPLERS)}")
    key = SAMPLERS[sampler].steps_key
    if steps or key is None:
        return sampler, steps
    return sampler, getattr(profile.sampling, key)


@torch.no_grad()
def generate(pipe: Pipeline, covariates: torch.Tensor, seeds: Sequence[int], sampler: str | None = None,
             steps: int | None = None, eta: float | None = None, batch_size: int | None = None,
             guidance_scale: float | None = None, decode_tile: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Volumes (N, D, H, W) in [0, 1] for normalised covariates (N, 4), one seed per sample. Defaults
    (sampler, steps, eta, batch size, guidance) come from the profile's ``sampling`` section. ``decode_tile``
    decodes in tiles of that many voxels (``ldm.tiled_decode``: same result, a fraction of the memory)."""
    p = pipe.profile
    guidance_scale = p.sampling.guidance_scale if guidance_scale is None else guidance_scale
    sampler, steps = default_steps(p, sampler, steps)
    eta = p.sampling.ddim_eta if eta is None else eta
    batch_size = batch_size or p.sampling.batch_size
    shape = (p.autoencoder.latent_channels, *p.latent_shape)
    out = []
    for i in range(0, len(seeds), batch_size):
        c = covariates[i:i + batch_size].to(pipe.device)
        x, gens = initial_noise(shape, list(seeds[i:i + batch_size]), device=pipe.device)
        eps_fn = eps_function(pipe, c, guidance_scale)
        z = SAMPLERS[sampler].run(eps_fn, x, pipe.betas, steps, eta, gens)
        z = denormalise_latents(z, pipe.latent_mean, pipe.latent_std)
        x = decode_tiled(pipe.autoencoder, z, decode_tile) if decode_tile else pipe.autoencoder.decode(z)
        out.append(x.clamp(0, 1)[:, 0].cpu().numpy())
    return np.concatenate(out)
