"""Does the model copy its training brains? A nearest-neighbour memorisation audit.

For each query volume (a synthetic sample, or a held-out real subject as the reference distribution)
its nearest training subject by normalised cross-correlation (NCC) inside a brain mask:
NCC(a, b) = <a - mean a, b - mean b> / (|a - mean a| |b - mean b|), 1 for a copy up to brightness and
contrast. Held-out real subjects show how close an *independent* brain comes to the training set; a
sample closer to a training subject than any held-out subject is (``threshold``) is flagged as a
possible copy. The search runs over blocks of queries and chunks of the training set, so memory is
bounded by (query block + chunk) x voxels, whatever the numbers of samples and training subjects
(``benchmarks/bench_privacy.py`` measures it at the paper's size).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd


def unit_rows(volumes: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
    """(N, V) zero-mean, unit-norm rows of the volumes' voxels (inside ``mask`` if given), float32.
    One copy of the input, normalised in place (memory: this runs on blocks of paper-size volumes)."""
    x = torch.tensor(np.asarray(volumes), dtype=torch.float32).flatten(1)
    if mask is not None:
        x = x[:, torch.as_tensor(np.asarray(mask).ravel(), dtype=torch.bool)]
    x.sub_(x.mean(1, keepdim=True))
    return x.div_(x.norm(dim=1, keepdim=True).clamp(min=1e-12))


def nearest_neighbours(queries, references, mask: np.ndarray | None = None, query_batch: int = 64
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(index, NCC) of each query's nearest reference.

    ``queries``: anything sliceable into arrays (N, ...), e.g. an array or a memory-mapped file.
    ``references``: an array (M, ...), or a function returning an iterable of chunks (m_i, ...) read
    one at a time (e.g. from files), indexed in order; it is called once per block of ``query_batch``
    queries. Memory is bounded by (query_batch + chunk) x voxels, whatever N and M are."""
    read = (lambda: [references]) if isinstance(references, np.ndarray) else references
    args, bests = [], []
    for start in range(0, len(queries), query_batch):
        q = unit_rows(np.asarray(queries[start:start + query_batch]), mask)
        best = torch.full((len(q),), -2.0)
        arg = torch.zeros(len(q), dtype=torch.long)
        offset = 0
        for chunk in read():
            r = unit_rows(chunk, mask)
            value, index = (q @ r.T).max(1)
            better = value > best
            best[better], arg[better] = value[better], index[better] + offset
            offset += len(r)
        args.append(arg.numpy())
        bests.append(best.numpy())
    return np.concatenate(args), np.concatenate(bests)


def audit(samples, train, test, mask: np.ndarray | None = None, query_batch: int = 64) -> dict:
    """Nearest training subject of every sample and every held-out real subject; samples closer to a
    training subject than the closest held-out subject is are flagged. ``train`` is an array or a
    function returning chunks (see ``nearest_neighbours``)."""
    s_idx, s_ncc = nearest_neighbours(samples, train, mask, query_batch)
    t_idx, t_ncc = nearest_neighbours(test, train, mask, query_batch)
    threshold = float(t_ncc.max())
    flagged = s_ncc > threshold
    return {"sample_nn": s_idx, "sample_ncc": s_ncc, "test_nn": t_idx, "test_ncc": t_ncc, "threshold": threshold,
            "flagged": flagged, "flag_rate": float(flagged.mean()), "n_samples": int(len(s_ncc)),
            "n_test": int(len(t_ncc))}


def most_common_nearest(nearest: np.ndarray) -> tuple[int, int]:
    """(training index, how many queries have it as nearest neighbour) for the most common one; (-1, 0)
    for none. Samples that copy one subject pile up on it; samples that are merely typical (near the
    population mean, so near many subjects) spread over several."""
    if len(nearest) == 0:
        return -1, 0
    values, counts = np.unique(np.asarray(nearest), return_counts=True)
    return int(values[counts.argmax()]), int(counts.max())


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
    from .config import load_profile

    steps = load_profile(profile, overrides).privacy.control_steps
    return load_profile(profile, {**(overrides or {}), **CONTROL_OVERRIDES, "training.diffusion_steps": steps})


def train_memoriser(profile, pipe, images: np.ndarray, covariates: torch.Tensor, out_dir, steps: int,
                    shipped: Path | None = None, progress: bool = False):
    """A Pipeline whose diffusion model has memorised ``images`` (a handful of training volumes, (n, D, H, W)).

    ``profile`` is ``control_profile(...)``; ``pipe`` supplies the autoencoder. A ``shipped`` control
    (``checkpoints/<profile>/privacy_control.pt``) is used when it memorised these latents for these
    steps; otherwise the control is trained (or resumed) in ``out_dir``. The weights are the last ones
    (no EMA lag)."""
    from .generate import Pipeline
    from .networks import build_unet
    from .sampling import schedule_betas
    from .train import StaleCheckpointError, encode, load_checkpoint, train_diffusion

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
    from .train import check_architecture, differing_statistic, latent_statistics, load_checkpoint

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


def head_mask(train: np.ndarray, level: float = 0.1) -> np.ndarray:
    """Voxels inside the head on average over the training set: NCC is taken there, so the empty
    background (identical in every volume) does not make every pair look alike."""
    return np.asarray(train).mean(0) > level


def control_subjects(preprocessed, k: int) -> tuple[np.ndarray, torch.Tensor, pd.DataFrame]:
    """The control's memorised subjects: the first ``k`` of the training split, as (volumes (k, D, H, W),
    normalised covariates (k, 4), their rows)."""
    import nibabel as nib

    from .conditioning import NORM_COLUMNS

    rows = preprocessed[preprocessed["split"] == "train"].iloc[:k]
    images = np.stack([np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in rows["image"]])
    return images, torch.tensor(rows[list(NORM_COLUMNS)].to_numpy(np.float32)), rows


def main(argv: list[str] | None = None) -> None:
    """Train the positive control of a run (what ``ldm.ship`` exports as ``privacy_control.pt``)."""
    import argparse

    from .config import load_profile
    from .generate import load_pipeline
    from .preprocess import load_preprocessed

    ap = argparse.ArgumentParser(description="Train the over-fitted privacy control in RUN/models/privacy_control "
                                             "(the autoencoder: RUN/models/autoencoder.pt).")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--run-dir", required=True)
    args = ap.parse_args(argv)
    profile, control = load_profile(args.profile), control_profile(args.profile)
    run = Path(args.run_dir)
    pipe = load_pipeline(profile, run / "models")
    k = profile.privacy.control_subjects
    images, covariates, rows = control_subjects(load_preprocessed(run / "preprocessed"), k)
    result = train_memoriser(control, pipe, images, covariates, run / "models" / "privacy_control",
                             steps=profile.privacy.control_steps, progress=True)
    print(f"{result.weights}: {', '.join(rows['participant_id'])}")


if __name__ == "__main__":
    main()
