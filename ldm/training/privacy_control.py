"""The positive control of the memorisation audit (chapter 8): a diffusion model made to copy its training data.

The profile's diffusion model made small and trained for many epochs on a handful of training subjects'
latents (with the profile's own autoencoder): its samples come back as those subjects, so an audit that
works (``ldm.evaluation.privacy``) must flag them. Everything else (schedule, prediction type,
conditioning) is unchanged.

    python -m ldm.training.privacy_control --profile demo --run-dir runs/demo   (what ``ldm.ship`` runs)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..checkpoints import check_architecture, differing_statistic, load_checkpoint
from ..config import load_profile
from ..data.covariates import NORM_COLUMNS
from ..io import read_volumes
from ..models.latents import encode, latent_statistics
from ..models.networks import build_unet
from ..models.schedule import schedule_betas
from ..run import Run
from ..sampling.pipeline import Pipeline, load_pipeline
from .diffusion import train_diffusion
from .state import StaleCheckpointError

# --- the positive control: a deliberate memoriser ------------------------------------------------
# The profile's diffusion model made small and trained for many epochs on a handful of training
# subjects' latents (with the profile's own autoencoder): its samples come back as those subjects, so an
# audit that works must flag them. Everything else (schedule, prediction type, conditioning) is unchanged.
CONTROL_OVERRIDES = {"diffusion.channels": [16, 32], "diffusion.num_head_channels": [0, 16],
                     "training.diffusion_batch_size": 4, "training.condition_dropout": 0.0,
                     "training.ema_decay": 0.0, "training.checkpoint_every": 500}


def control_profile(profile: str | Path, overrides: dict | None = None):
    """The positive control's profile: ``profile`` (with ``overrides``) and ``CONTROL_OVERRIDES``, its
    diffusion budget ``privacy.control_steps``. Notebook 08, ``ldm.ship`` and the tests share it."""

    steps = load_profile(profile, overrides).privacy.control_steps
    return load_profile(profile, {**(overrides or {}), **CONTROL_OVERRIDES, "training.diffusion_steps": steps})


def train_memoriser(profile, pipe, images: np.ndarray, covariates: torch.Tensor, out_dir, steps: int,
                    shipped: Path | None = None, progress: bool = False):
    """A Pipeline whose diffusion model has memorised ``images`` (a handful of training volumes, (n, D, H, W)).

    ``profile`` is ``control_profile(...)``; ``pipe`` supplies the autoencoder. A ``shipped`` control
    (``checkpoints/<profile>/privacy_control.pt``) is used when it memorised these latents for these
    steps; otherwise the control is trained (or resumed) in ``out_dir``. The weights are the last ones
    (no EMA lag)."""
    latents = encode(pipe.autoencoder, torch.as_tensor(images, dtype=torch.float32)[:, None], device=pipe.device)
    ck = _fitting_shipped_control(shipped, profile, latents, steps)
    where = " (shipped)" if ck is not None else ""
    if ck is None:
        try:
            path = train_diffusion(profile, latents, covariates, out_dir, steps=steps, progress=progress)
        except StaleCheckpointError:  # left by an earlier autoencoder: kept aside, and the control retrained
            stale = Path(out_dir) / "diffusion.pt"
            stale.replace(stale.with_suffix(".pt.stale"))
            path = train_diffusion(profile, latents, covariates, out_dir, steps=steps, progress=progress)
        ck = load_checkpoint(path)
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels).to(pipe.device)
    unet.load_state_dict(ck["model"])
    return Pipeline(profile, pipe.autoencoder, unet.eval(), ck["latent_mean"].float(), ck["latent_std"].float(),
                    schedule_betas(profile.scheduler),
                    f"over-fitted control{where}: {len(images)} subjects, {ck['step']} steps", pipe.device)


def _fitting_shipped_control(shipped: Path | None, profile, latents: torch.Tensor, steps: int) -> dict | None:
    """The shipped control checkpoint if it memorised exactly these latents (the same subjects through the
    same autoencoder: their per-channel statistics agree to float noise, on any machine) for ``steps``
    steps; else None, saying why, and the control is trained here."""

    if shipped is None or not Path(shipped).is_file():
        return None
    ck = load_checkpoint(shipped)
    check_architecture(ck, profile, "diffusion", Path(shipped))
    mean, std = latent_statistics(latents, profile.diffusion.latent_normalisation)
    if ck["step"] != steps:
        reason = f"it has {ck['step']} steps, the profile asks for {steps}"
    elif differing_statistic(ck, {"latent_mean": mean, "latent_std": std}, rtol=1e-3, atol=1e-4) is not None:
        reason = "it memorised other latents (another autoencoder, or other subjects)"
    else:
        return ck
    print(f"{shipped}: not used ({reason}); training the control here")
    return None


def control_subjects(preprocessed, k: int) -> tuple[np.ndarray, torch.Tensor, pd.DataFrame]:
    """The control's memorised subjects: the first ``k`` of the training split, as (volumes (k, D, H, W),
    normalised covariates (k, 4), their rows)."""
    rows = preprocessed[preprocessed["split"] == "train"].iloc[:k]
    images = read_volumes(rows)
    return images, torch.tensor(rows[list(NORM_COLUMNS)].to_numpy(np.float32)), rows


def main(argv: list[str] | None = None) -> None:
    """Train the positive control of a run (what ``ldm.ship`` exports as ``privacy_control.pt``)."""
    ap = argparse.ArgumentParser(description="Train the over-fitted privacy control in RUN/models/privacy_control "
                                             "(the autoencoder: RUN/models/autoencoder.pt).")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--run-dir", required=True)
    args = ap.parse_args(argv)
    profile, control = load_profile(args.profile), control_profile(args.profile)
    run = Run(Path(args.run_dir))
    pipe = load_pipeline(profile, run.models)
    k = profile.privacy.control_subjects
    images, covariates, rows = control_subjects(run.manifest(), k)
    result = train_memoriser(control, pipe, images, covariates, run.models / "privacy_control",
                             steps=profile.privacy.control_steps, progress=True)
    print(f"{result.weights}: {', '.join(rows['participant_id'])}")


if __name__ == "__main__":
    main()
