"""The diffusion model's noise schedule and what its network predicts, in one place for training and sampling.

Notation (Ho et al. 2020; Song et al. 2021): beta_t, alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s,
and the forward process x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. The network predicts one of
eps, v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022) or x0 (``scheduler.prediction_type``):
``prediction_target`` is what training regresses, ``eps_from_prediction`` its inverse, which the samplers use.
"""

from __future__ import annotations

import torch


def make_betas(num_train_timesteps: int, schedule: str, beta_start: float, beta_end: float) -> torch.Tensor:
    """beta_t for t = 0..T-1. ``scaled_linear_beta`` is linear in sqrt(beta) (the paper's 0.0015-0.0205)."""
    if schedule == "scaled_linear_beta":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    if schedule == "linear_beta":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    raise ValueError(f"unknown schedule {schedule!r}")


def schedule_betas(cfg) -> torch.Tensor:
    """beta_t of a profile's ``scheduler`` section."""
    return make_betas(cfg.num_train_timesteps, cfg.schedule, cfg.beta_start, cfg.beta_end)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    return torch.cumprod(1.0 - betas, dim=0)


def add_noise(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, for a batch of timesteps t."""
    a = abar.to(x0.device)[t].to(x0.dtype).view(-1, *(1,) * (x0.ndim - 1))
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def prediction_target(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, abar: torch.Tensor,
                      prediction_type: str) -> torch.Tensor:
    """What the network learns to output for x_t = add_noise(x0, eps, t, abar): eps, v or x0."""
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "v_prediction":
        a = abar.to(x0.device)[t].float().view(-1, *(1,) * (x0.ndim - 1))
        return a.sqrt() * eps - (1 - a).sqrt() * x0
    if prediction_type == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def eps_from_prediction(pred: torch.Tensor, x_t: torch.Tensor, abar_t: torch.Tensor,
                        prediction_type: str) -> torch.Tensor:
    """The samplers work with eps; a v- or x0-predicting network converts exactly (Salimans & Ho 2022):
        v   = sqrt(abar) eps - sqrt(1 - abar) x0   =>  eps = sqrt(abar) v + sqrt(1 - abar) x_t
        x0                                         =>  eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)
    """
    a = abar_t.to(x_t.dtype)
    if prediction_type == "epsilon":
        return pred
    if prediction_type == "v_prediction":
        return a.sqrt() * pred + (1 - a).sqrt() * x_t
    if prediction_type == "sample":
        return (x_t - a.sqrt() * pred) / (1 - a).sqrt()
    raise ValueError(f"unknown prediction_type {prediction_type!r}")
