"""Shared fixtures: the smoke profile and one small embedded cohort, generated and preprocessed once."""

from __future__ import annotations

import logging

import pytest
import torch

from ldm.config import load_profile
from ldm.data import cohort as cohort_lib
from ldm.data.loading import load_cohort
from ldm.data.preprocess import preprocess_cohort


@pytest.fixture(scope="session")
def smoke():
    return load_profile("smoke")


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory, smoke):
    root = tmp_path_factory.mktemp("cohort")
    cohort_lib.generate_cohort(root, smoke.cohort, progress=False)
    return root


@pytest.fixture(scope="session")
def preprocessed(tmp_path_factory, smoke, cohort_dir):
    out = tmp_path_factory.mktemp("preprocessed")
    table = cohort_lib.with_groundtruth(load_cohort(cohort_dir, smoke.data.covariates), cohort_dir)
    logging.getLogger("ldm").setLevel(logging.ERROR)
    manifest = preprocess_cohort(table, out, smoke, label_columns=cohort_lib.MASKS, progress=False)
    return out, manifest


def random_pipeline(profile):
    """A pipeline of the profile's networks with random weights that respond to their inputs (MONAI
    zero-initialises the UNet's output layer, which would make every covariate irrelevant)."""
    from ldm.models.networks import build_networks
    from ldm.models.schedule import schedule_betas
    from ldm.sampling.pipeline import Pipeline

    torch.manual_seed(0)
    ae, unet = build_networks(profile)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    c = profile.autoencoder.latent_channels
    return Pipeline(profile, ae.eval(), unet.eval(), torch.zeros(c), torch.ones(c),
                    schedule_betas(profile.scheduler), "random weights (test)", torch.device("cpu"))


def write_random_checkpoints(profile, folder):
    """autoencoder.pt + diffusion.pt of ``random_pipeline`` in ldm.train's format (for CLI tests)."""
    import json
    from pathlib import Path

    from ldm.checkpoints import config_record, save_checkpoint

    pipe = random_pipeline(profile)
    folder = Path(folder)
    common = {"step": 1, "history": [{"step": 1}], "config": config_record(profile), "world_size": 1,
              "seconds": 0.0}
    save_checkpoint(folder / "autoencoder.pt", {"kind": "autoencoder", "model": pipe.autoencoder.state_dict(),
                                                "perceptual": "none", **common})
    save_checkpoint(folder / "diffusion.pt", {"kind": "diffusion", "model": pipe.unet.state_dict(),
                                              "latent_mean": pipe.latent_mean, "latent_std": pipe.latent_std,
                                              **common})
    json.loads(common["config"])  # plain data
    return folder
