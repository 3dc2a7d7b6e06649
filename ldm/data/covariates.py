"""Conditioning covariates: natural units <-> the min-max normalised vector the networks see, and the
covariate settings of the conditioning experiments (paper Figs. 2-4): sweeps and cohort-like draws.

Paper 2.1: c = [sex, age, ventricular volume, brain volume], each min-max normalised over UK Biobank
(sex F=0 / M=1; age (a - 44) / 38; ventricles 6995.68..171375.0 mm3; brain 1144240..1793910 mm3).
The ranges come from the profile. Values outside [0, 1] are kept: they are how Fig. 4 extrapolates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..config import Covariate, Profile

# the normalised covariates of a manifest or a participants table, in the networks' order
NORM_COLUMNS = ("sex_norm", "age_norm", "ventricular_volume_norm", "brain_volume_norm")

SEX_CODES = {"f": 0.0, "female": 0.0, "0": 0.0, "m": 1.0, "male": 1.0, "1": 1.0}


def parse_sex(value) -> float:
    """F/female/0 -> 0.0 and M/male/1 -> 1.0; anything else raises ``ValueError``."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if float(value) in (0.0, 1.0):
            return float(value)
    elif isinstance(value, str) and value.strip().lower() in SEX_CODES:
        return SEX_CODES[value.strip().lower()]
    raise ValueError(f"sex must be F/M (or female/male, 0/1), got {value!r}")


def to_natural(normalised, c: Covariate):
    """The one place the min-max map is inverted: normalised value(s) -> natural units of covariate ``c``."""
    return c.min + normalised * (c.max - c.min)


def normalise(values: Mapping[str, float], covariates: Sequence[Covariate]) -> np.ndarray:
    """Natural-unit covariates (by name) -> normalised vector in the profile's order."""
    out = []
    for c in covariates:
        if c.name not in values:
            raise KeyError(f"missing covariate {c.name!r} (need {[c.name for c in covariates]})")
        v = parse_sex(values[c.name]) if c.name == "sex" else float(values[c.name])
        out.append((v - c.min) / (c.max - c.min))
    return np.asarray(out, dtype=np.float32)


def denormalise(vector: Sequence[float], covariates: Sequence[Covariate]) -> dict[str, float]:
    """Normalised vector -> natural units by name (sex stays 0/1)."""
    if len(vector) != len(covariates):
        raise ValueError(f"expected {len(covariates)} values, got {len(vector)}")
    return {c.name: float(to_natural(v, c)) for c, v in zip(covariates, vector)}


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
