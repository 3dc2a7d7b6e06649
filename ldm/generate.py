"""Conditional generation: covariates in, brains out (NIfTI with an MNI affine + a TSV of covariates).

A sample is a function of its seed: the initial noise and every later draw of sample i come from its own
generator, so the batch size never changes which brain seed 42 is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import Profile
from .covariates import denormalise, normalise
from .io import atomic_write_table, write_nifti
from .networks import build_autoencoder, build_unet, conditioning_inputs
from .preprocess import target_grid
from .sampling import ddim_sample, ddpm_sample, initial_noise, schedule_betas
from .train import check_architecture, load_checkpoint


@dataclass
class Pipeline:
    profile: Profile
    autoencoder: torch.nn.Module
    unet: torch.nn.Module
    scale_factor: float
    betas: torch.Tensor
    weights: str  # what made the networks, printed on every figure
    device: torch.device


def load_pipeline(profile: Profile, models_dir: str | Path, ema: bool = True,
                  device: str | torch.device = "cpu") -> Pipeline:
    """Autoencoder + diffusion model of a run folder (``runs/<profile>/models``), checked against the profile."""
    models = Path(models_dir)
    ae_ck = load_checkpoint(models / "autoencoder.pt")
    dm_ck = load_checkpoint(models / "diffusion.pt")
    check_architecture(ae_ck, profile, "autoencoder", models / "autoencoder.pt")
    check_architecture(dm_ck, profile, "diffusion", models / "diffusion.pt")
    ae = build_autoencoder(profile.autoencoder)
    ae.load_state_dict(ae_ck["model"])
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels)
    unet.load_state_dict(dm_ck["ema" if ema else "model"])
    s = profile.scheduler
    device = torch.device(device)
    weights = (f"trained here ({profile.name}): AE {ae_ck['step']} steps, diffusion {dm_ck['step']} steps"
               f"{' (EMA)' if ema else ''}, perceptual: {ae_ck.get('perceptual', 'none')}")
    return Pipeline(profile, ae.to(device).eval(), unet.to(device).eval(), float(dm_ck["scale_factor"]),
                    schedule_betas(s), weights, device)


def covariate_matrix(rows: Sequence[Mapping[str, float]], profile: Profile, natural: bool = True) -> torch.Tensor:
    """(N, 4) normalised covariates from dicts in natural units (years, mm3, "F"/"M") or normalised."""
    if natural:
        return torch.from_numpy(np.stack([normalise(r, profile.data.covariates) for r in rows]))
    return torch.tensor([[r[c.name] for c in profile.data.covariates] for r in rows], dtype=torch.float32)


@torch.no_grad()
def generate(pipe: Pipeline, covariates: torch.Tensor, seeds: Sequence[int], sampler: str = "ddim",
             steps: int | None = None, eta: float | None = None, batch_size: int | None = None) -> np.ndarray:
    """Volumes (N, D, H, W) in [0, 1] for normalised covariates (N, 4), one seed per sample."""
    p = pipe.profile
    steps = steps or p.sampling.ddim_steps
    eta = p.sampling.ddim_eta if eta is None else eta
    batch_size = batch_size or p.sampling.batch_size
    shape = (p.autoencoder.latent_channels, *p.latent_shape)
    out = []
    for i in range(0, len(seeds), batch_size):
        c = covariates[i:i + batch_size].to(pipe.device)
        x, gens = initial_noise(shape, list(seeds[i:i + batch_size]), device=pipe.device)

        def eps_fn(z: torch.Tensor, t: int, c=c) -> torch.Tensor:
            x_in, context = conditioning_inputs(z, c)
            timesteps = torch.full((len(z),), t, device=z.device, dtype=torch.long)
            return pipe.unet(x=x_in, timesteps=timesteps, context=context).float()

        if sampler == "ddim":
            z = ddim_sample(eps_fn, x, pipe.betas, steps=steps, eta=eta, generator=gens)
        elif sampler == "ddpm":
            z = ddpm_sample(eps_fn, x, pipe.betas, generator=gens)
        else:
            raise ValueError(f"unknown sampler {sampler!r}: ddim or ddpm")
        out.append(pipe.autoencoder.decode(z / pipe.scale_factor).clamp(0, 1)[:, 0].cpu().numpy())
    return np.concatenate(out)


def save_samples(volumes: np.ndarray, covariates: torch.Tensor, seeds: Sequence[int], out_dir: str | Path,
                 profile: Profile, sampler: str, weights: str) -> pd.DataFrame:
    """One NIfTI per sample on the profile's MNI grid, and ``samples.tsv``: seed, file, covariates in
    natural units and normalised, sampler, weights (the shape of the paper's 100,000-brain release)."""
    out = Path(out_dir)
    affine, _ = target_grid(profile.data)
    rows = []
    for vol, c, seed in zip(volumes, covariates.numpy(), seeds):
        # a sample is (seed, covariates): the name holds both, so settings sharing a seed never collide
        key = hashlib.sha256(np.round(c.astype(np.float64), 6).tobytes()).hexdigest()[:8]
        name = f"sample_seed-{int(seed):06d}_cov-{key}_T1w.nii.gz"
        write_nifti(out / name, vol, affine, dtype=np.float32)
        natural = denormalise(c, profile.data.covariates)
        rows.append({"file": name, "seed": int(seed), **{k: round(v, 4) for k, v in natural.items()},
                     **{f"{cov.name}_norm": float(v) for cov, v in zip(profile.data.covariates, c)},
                     "sampler": sampler, "profile": profile.name, "weights": weights})
    table = pd.DataFrame(rows)
    path = out / "samples.tsv"
    if path.is_file():  # keep earlier samples of other seeds
        old = pd.read_csv(path, sep="\t")
        table = pd.concat([old[~old["file"].isin(table["file"])], table], ignore_index=True)
    atomic_write_table(table, path)
    return table
