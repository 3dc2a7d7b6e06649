"""Writing samples: a synthetic cohort (``export`` + ``gather``: N brains as NIfTI and one participants.tsv,
resumable and shardable; ``python -m ldm.sample`` runs them, see ``ldm.sampling.cli``) and single samples
with their row in ``samples.tsv`` (``save_samples``: the notebooks and the widget).

Sample i of a cohort has seed ``seed + i`` and covariates row i; rank r of W makes the samples i = r, r + W,
... Each is written atomically as ``sub-<i>_T1w.nii.gz`` with a one-row JSON sidecar written after it, so a
rerun skips the samples whose two files exist and a killed export resumes with no gap and no duplicate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..config import Profile
from ..data.covariates import denormalise
from ..data.grid import target_grid
from ..io import atomic_write_table, atomic_write_text, write_nifti
from ..runtime import kill_point
from .pipeline import Pipeline, covariate_matrix, default_steps, generate


def sample_name(i: int) -> str:
    return f"sub-{i:06d}_T1w.nii.gz"


def done(out: Path, i: int) -> bool:
    return (out / sample_name(i)).is_file() and (out / f"sub-{i:06d}.json").is_file()


def export(pipe: Pipeline, covariates: torch.Tensor, out: str | Path, seed: int = 0, rank: int = 0,
           world: int = 1, batch_size: int | None = None, sampler: str | None = None, progress: bool = True,
           decode_tile: int | tuple[int, ...] | None = None) -> list[int]:
    """Make this rank's missing samples of ``covariates`` (N, 4, normalised); returns the indices made."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = pipe.profile
    affine, _ = target_grid(p.data)
    todo = [i for i in range(rank, len(covariates), world) if not done(out, i)]
    for i in todo:  # a kill mid-write leaves a hidden temporary file of this rank's sample: remove it
        for stale in out.glob(f".sub-{i:06d}*tmp*"):
            stale.unlink()
    batch_size = batch_size or p.sampling.batch_size
    sampler, _ = default_steps(p, sampler)
    bar = tqdm(total=len(todo), desc=f"export rank {rank}", disable=not progress)
    for k in range(0, len(todo), batch_size):
        idx = todo[k:k + batch_size]
        vols = generate(pipe, covariates[idx], [seed + i for i in idx], sampler=sampler, batch_size=batch_size,
                        decode_tile=decode_tile)
        for i, vol in zip(idx, vols):
            write_nifti(out / sample_name(i), vol, affine, dtype=np.float32)
            row = {"participant_id": f"sub-{i:06d}", "file": sample_name(i),
                   **sample_row(covariates[i].numpy(), seed + i, p, sampler, p.sampling.guidance_scale, pipe.weights)}
            atomic_write_text(out / f"sub-{i:06d}.json", json.dumps(row))  # after the image: marks it done
            kill_point(f"export:{i}")  # tests: a SIGKILL after a known sample, never a race
        bar.update(len(idx))
    bar.close()
    return todo


def gather(out: str | Path, n: int) -> pd.DataFrame:
    """participants.tsv from the sidecars; an error names the first missing sample."""
    out = Path(out)
    missing = [i for i in range(n) if not done(out, i)]
    if missing:
        raise RuntimeError(f"{out}: {len(missing)} of {n} samples missing (first: {sample_name(missing[0])}); "
                           "rerun the same command to finish them")
    table = pd.DataFrame([json.loads((out / f"sub-{i:06d}.json").read_text()) for i in range(n)])
    atomic_write_table(table, out / "participants.tsv")
    return table


def read_covariates(path: str | Path, profile, n: int) -> torch.Tensor:
    table = pd.read_csv(path, sep=None, engine="python")
    need = [c.name for c in profile.data.covariates]
    absent = [c for c in need if c not in table.columns]
    if absent:
        raise ValueError(f"{path}: missing column {absent[0]!r} (need {need}, natural units)")
    if len(table) < n:
        raise ValueError(f"{path}: {len(table)} rows for --n {n}")
    return covariate_matrix(table.head(n).to_dict("records"), profile)


def parse_tile(text: str) -> int | tuple[int, ...] | None:
    """"" -> None (whole decode), "20" -> 20, "20x28x80" -> (20, 28, 80)."""
    if not text:
        return None
    sizes = tuple(int(v) for v in text.lower().split("x"))
    if any(v < 1 for v in sizes) or len(sizes) not in (1, 3):
        raise ValueError(f"--decode-tile {text!r}: N or AxBxC, positive voxel counts")
    return sizes[0] if len(sizes) == 1 else sizes


def sample_row(c: np.ndarray, seed: int, profile: Profile, sampler: str, guidance_scale: float,
               weights: str) -> dict:
    """What a saved sample records: its seed, covariates in natural units and normalised, and how it was made."""
    natural = denormalise(c, profile.data.covariates)
    return {"seed": int(seed), **{k: round(v, 4) for k, v in natural.items()},
            **{f"{cov.name}_norm": float(v) for cov, v in zip(profile.data.covariates, c)},
            "sampler": sampler, "guidance_scale": guidance_scale, "profile": profile.name, "weights": weights}


def save_samples(volumes: np.ndarray, covariates: torch.Tensor, seeds: Sequence[int], out_dir: str | Path,
                 profile: Profile, sampler: str, weights: str, guidance_scale: float = 1.0) -> pd.DataFrame:
    """One NIfTI per sample on the profile's MNI grid, and ``samples.tsv``: seed, file, covariates in
    natural units and normalised, sampler, guidance scale, weights (the shape of the paper's 100,000-brain release)."""
    out = Path(out_dir)
    affine, _ = target_grid(profile.data)
    rows = []
    for vol, c, seed in zip(volumes, covariates.numpy(), seeds):
        # a sample is (seed, covariates): the name holds both, so settings sharing a seed never collide
        key = hashlib.sha256(np.round(c.astype(np.float64), 6).tobytes()).hexdigest()[:8]
        name = f"sample_seed-{int(seed):06d}_cov-{key}_T1w.nii.gz"
        write_nifti(out / name, vol, affine, dtype=np.float32)
        rows.append({"file": name, **sample_row(c, seed, profile, sampler, guidance_scale, weights)})
    table = pd.DataFrame(rows)
    path = out / "samples.tsv"
    if path.is_file():  # keep earlier samples of other seeds
        old = pd.read_csv(path, sep="\t")
        table = pd.concat([old[~old["file"].isin(table["file"])], table], ignore_index=True)
    atomic_write_table(table, path)
    return table
