"""Covariate settings for the conditioning experiments (paper Figs. 2-4): sweeps and cohort-like draws.

All values here are normalised (0..1 over the UK Biobank ranges of the profile); values outside [0, 1]
are extrapolation (Fig. 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .config import Profile
from .covariates import normalise, to_natural

NORM_COLUMNS = ("sex_norm", "age_norm", "ventricular_volume_norm", "brain_volume_norm")


def sweep(base: Mapping[str, float], name: str, values: Sequence[float], profile: Profile) -> torch.Tensor:
    """(len(values), 4) normalised covariates: ``base`` (natural units) with covariate ``name`` set to
    each normalised value in turn, the other three held fixed."""
    names = [c.name for c in profile.data.covariates]
    if name not in names:
        raise ValueError(f"unknown covariate {name!r}: one of {names}")
    row = normalise(base, profile.data.covariates)
    out = np.repeat(row[None], len(values), axis=0)
    out[:, names.index(name)] = np.asarray(values, dtype=np.float32)
    return torch.from_numpy(out)


def cohort_draw(table: pd.DataFrame, n: int, seed: int = 0) -> torch.Tensor:
    """(n, 4) normalised covariates drawn with replacement from real subjects' rows (a manifest's
    ``*_norm`` columns), so the combinations of age, sex and volumes are realistic."""
    rng = np.random.default_rng(seed)
    rows = table[list(NORM_COLUMNS)].to_numpy(np.float32)
    return torch.from_numpy(rows[rng.integers(0, len(rows), n)])


def natural(c: torch.Tensor, profile: Profile, name: str) -> np.ndarray:
    """Covariate ``name`` of normalised rows ``c``, in natural units (years, mm3)."""
    i = [cv.name for cv in profile.data.covariates].index(name)
    return to_natural(c[:, i].numpy().astype(np.float64), profile.data.covariates[i])
