"""Does a sample follow its conditioning? The numbers of Figs. 2-4 (paper section 3).

Ventricles are measured on samples by ``ldm.evaluation.ventricles`` (calibrated on the training split),
age is predicted by the brain-age CNN (``ldm.models.brain_age``); each is compared with the value the
sample was conditioned on. Fig. 4 asks how measured ventricles grow when the input leaves the training
range: a line fitted inside [0, 1] and one from 1 upwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..config import Profile
from ..data.covariates import natural, sweep
from ..models.brain_age import predict_age
from ..sampling.pipeline import Pipeline, generate


def age_agreement(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MAE (years), Pearson r and n: how a prediction tracks the age it should give."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    r = float(stats.pearsonr(predicted, true)[0]) if len(true) > 2 else float("nan")
    return {"mae_years": float(np.abs(predicted - true).mean()), "r": r, "n": len(true)}


def sweep_volumes(pipe: Pipeline, base: Mapping[str, float], name: str, values: Sequence[float], seed: int,
                  guidance: float) -> np.ndarray:
    """One seed's samples (len(values), D, H, W) with covariate ``name`` set to each normalised value and
    the others at ``base`` (natural units)."""
    return generate(pipe, sweep(base, name, values, pipe.profile), [seed] * len(values), guidance_scale=guidance)


def conditioning_numbers(pipe: Pipeline, c: torch.Tensor, seeds: Sequence[int], guidance_scales: Sequence[float],
                         measure, age_model) -> tuple[dict, dict[float, dict[str, np.ndarray]]]:
    """Fig. 3 at each guidance scale: samples conditioned on rows ``c`` (normalised), their measured
    ventricles (mL) and predicted ages against the conditioning values. Returns (the record's numbers:
    ``ventricle_r_guidance_<w>``, ``ventricle_mae_ml_guidance_<w>``, ``age_r_guidance_<w>``,
    ``age_mae_years_guidance_<w>``; per scale the targets and measurements for the figure)."""
    p = pipe.profile
    target, target_age = natural(c, p, "ventricular_volume") / 1000, natural(c, p, "age")
    record, measured = {}, {}
    for w in guidance_scales:
        vols = generate(pipe, c, list(seeds), guidance_scale=w)
        got, age = measure(vols) / 1000, predict_age(age_model, vols)
        measured[w] = {"target_ml": target, "ventricles_ml": got, "target_age": target_age, "age": age}
        record[f"ventricle_r_guidance_{w:g}"] = float(np.corrcoef(target, got)[0, 1])
        record[f"ventricle_mae_ml_guidance_{w:g}"] = float(np.abs(target - got).mean())
        record[f"age_r_guidance_{w:g}"] = float(np.corrcoef(target_age, age)[0, 1])
        record[f"age_mae_years_guidance_{w:g}"] = float(np.abs(target_age - age).mean())
    return record, measured


def extrapolation_measurements(pipe: Pipeline, base: Mapping[str, float], values: Sequence[float],
                               seeds: Sequence[int], guidance: float, measure) -> tuple[list, pd.DataFrame]:
    """Fig. 4's ventricle sweeps, one per seed: (the volumes of each seed's row, a table of seed, normalised
    input and measured ventricles in mL)."""
    rows, records = [], []
    for s in seeds:
        vols = sweep_volumes(pipe, base, "ventricular_volume", values, s, guidance)
        rows.append((s, vols))
        records += [{"seed": s, "input": v, "measured_ml": m / 1000} for v, m in zip(values, measure(vols))]
    return rows, pd.DataFrame(records)


def extrapolation_slopes(table: pd.DataFrame) -> dict[str, float]:
    """mL of measured ventricles per unit of normalised input: a least-squares line over the inputs inside
    the training range [0, 1], and one over the inputs from 1 up (extrapolation)."""
    inside = table[(table["input"] >= 0) & (table["input"] <= 1)]
    above = table[table["input"] >= 1]
    return {"slope_inside_ml_per_unit": float(np.polyfit(inside["input"], inside["measured_ml"], 1)[0]),
            "slope_above_1_ml_per_unit": float(np.polyfit(above["input"], above["measured_ml"], 1)[0])}


def input_scale_ml(profile: Profile) -> float:
    """mL of ventricles per unit of normalised input (the profile's min-max range)."""
    cv = profile.data.covariates[2]
    return (cv.max - cv.min) / 1000
