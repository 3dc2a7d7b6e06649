"""The networks a notebook needs: loaded from a weights folder when it has them, else trained in the run folder.

The evaluation networks (brain age, the GAN baselines) follow the notebooks' ``weights`` rule through
``obtain``: from the weights folder when it has them, else trained (or resumed) in the run folder for the
profile's budget.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoints import describe, load_checked, resolve_weights
from ..config import Profile
from ..data.loading import volumes_and_covariates
from ..run import Run
from .autoencoder import train_autoencoder
from .brain_age import train_brain_age
from .gans import train_gan

IMAGE_NETWORKS = ("autoencoder", "brain_age", "lsgan", "vaegan")  # trained on volumes, not latents


def train_on_images(kind: str, profile: Profile, run: Run, steps: int | None = None, progress: bool = True) -> Path:
    """Train (or resume) a network that learns from the run's training-split volumes: the autoencoder,
    the brain-age CNN or a GAN baseline. Returns its checkpoint, ``run.models/<kind>.pt``."""
    if kind not in IMAGE_NETWORKS:
        raise ValueError(f"unknown network {kind!r}: one of {IMAGE_NETWORKS}")
    train = run.split("train")
    images, _ = volumes_and_covariates(train)
    if kind == "autoencoder":
        return train_autoencoder(profile, images, run.models, steps=steps, progress=progress)
    if kind == "brain_age":
        ages = torch.tensor(train["age"].to_numpy(), dtype=torch.float32)
        return train_brain_age(profile, images, ages, run.models, steps=steps, progress=progress)
    return train_gan(kind, profile, images, run.models, steps=steps, progress=progress)


def obtain(kind: str, weights: str, profile: Profile, run: Run, progress: bool = False) -> tuple[dict, str]:
    """(checkpoint, one-line description) of the ``brain_age``, ``lsgan`` or ``vaegan`` network.

    Loaded from the ``weights`` folder when it holds ``<kind>.pt``; otherwise trained on the run's
    training split into ``run.models`` (a finished checkpoint there is reused, a partial one resumed)."""
    folder = resolve_weights(weights, profile)
    if folder is not None and (folder / f"{kind}.pt").is_file():
        ck = load_checked(folder / f"{kind}.pt", profile, kind)
        return ck, describe(ck, folder / f"{kind}.pt")
    if folder is not None:
        print(f"{folder} has no {kind}.pt: training it in {run.models} ({profile.name} profile budget)")
    ck = load_checked(train_on_images(kind, profile, run, progress=progress), profile, kind)
    return ck, describe(ck, None)
