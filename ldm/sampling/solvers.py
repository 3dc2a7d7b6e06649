"""The samplers, each a short plain function over a noise-prediction function, and their registry.

Notation (Ho et al. 2020; Song et al. 2021): beta_t, alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s,
and the forward process x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. ``eps_fn(x_t, t)`` returns the
predicted eps for a batch x_t at integer timestep t. Both samplers follow MONAI's DDPMScheduler /
DDIMScheduler conventions (clip_sample False, DDPM "fixed_small" variance, DDIM final abar = 1), which
is what the paper's released model was sampled with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..models.schedule import alphas_cumprod

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]
Generators = torch.Generator | list[torch.Generator] | None


def ddim_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """The DDIM grid of MONAI-Generative 0.2, which sampled the released model: T // steps apart, ending
    at 0, so 1000 and 50 give 980, 960, ..., 0. (MONAI 1.6's DDIMScheduler spaces 999 .. 0 instead.)"""
    ratio = num_train_timesteps // steps
    return [i * ratio for i in range(steps)][::-1]


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, x: torch.Tensor, betas: torch.Tensor, steps: int = 50, eta: float = 0.0,
                generator: Generators = None) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12): from noise ``x`` = x_T to x_0 in ``steps`` steps.

    Per step t -> s (the next timestep on the grid; abar_s = 1 after the last):
        x0_hat  = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        sigma   = eta * sqrt((1 - abar_s) / (1 - abar_t)) * sqrt(1 - abar_t / abar_s)
        x_s     = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z
    eta = 0 is deterministic; eta = 1 has DDPM's variance.
    """
    abar = alphas_cumprod(betas)
    grid = ddim_timesteps(len(betas), steps)
    for i, t in enumerate(grid):
        a_t = abar[t]
        a_s = abar[grid[i + 1]] if i + 1 < len(grid) else torch.tensor(1.0, dtype=abar.dtype)
        eps = eps_fn(x, t)
        x0_hat = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        sigma = eta * ((1 - a_s) / (1 - a_t)).sqrt() * (1 - a_t / a_s).sqrt()
        x = a_s.sqrt() * x0_hat + (1 - a_s - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * _noise_like(x, generator)
    return x


def logsnr_timesteps(betas: torch.Tensor, steps: int) -> list[int]:
    """``steps`` timesteps from T - 1 down to 0, uniform in log-SNR lambda = log(alpha / sigma) (the grid
    DPM-Solver recommends; uniform-in-t grids leave big lambda jumps near t = 0 that a multistep solver
    overshoots: measured on Gaussian data, sd x1.15 at 20 steps vs x1.01-1.03 here)."""
    abar = alphas_cumprod(betas)
    lam = 0.5 * (abar.log() - (1 - abar).log())
    targets = torch.linspace(float(lam[-1]), float(lam[0]), steps, dtype=lam.dtype)
    grid = [int((lam - v).abs().argmin()) for v in targets]
    return sorted(set(grid), reverse=True)


@torch.no_grad()
def dpm_solver_pp_sample(eps_fn: EpsFn, x: torch.Tensor, betas: torch.Tensor, steps: int = 20, order: int = 2,
                         grid: list[int] | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a multistep solver of the
    diffusion ODE in the data prediction x0_hat, on a log-SNR-uniform grid (``logsnr_timesteps``).

    With alpha = sqrt(abar), sigma = sqrt(1 - abar), lambda = log(alpha / sigma), per step t -> s:
        h       = lambda_s - lambda_t
        D       = x0_hat(t)                                       (first step, or order 1)
        D       = (1 + 1/(2r)) x0_hat(t) - 1/(2r) x0_hat(t_prev),  r = h_prev / h   (order 2)
        x_s     = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D
    and at the last grid point (t = 0) it returns x0_hat, as DDIM does (abar = 1). Order 1 on DDIM's grid
    is DDIM with eta = 0 exactly; order 2 reuses the previous prediction: one network call per step.
    """
    abar = alphas_cumprod(betas)
    grid = grid or logsnr_timesteps(betas, steps)
    lam = 0.5 * (abar.log() - (1 - abar).log())
    previous = None  # (x0_hat, h) of the step before
    for i, t in enumerate(grid):
        a_t = abar[t]
        x0_hat = (x - (1 - a_t).sqrt() * eps_fn(x, t)) / a_t.sqrt()
        if i + 1 == len(grid):
            break
        s = grid[i + 1]
        h = lam[s] - lam[t]
        d = x0_hat
        if order == 2 and previous is not None:
            r = previous[1] / h
            d = (1 + 1 / (2 * r)) * x0_hat - (1 / (2 * r)) * previous[0]
        x = ((1 - abar[s]) / (1 - a_t)).sqrt() * x - abar[s].sqrt() * torch.expm1(-h) * d
        previous = (x0_hat, h)
    return x0_hat


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, x: torch.Tensor, betas: torch.Tensor,
                generator: Generators = None) -> torch.Tensor:
    """Ancestral DDPM (Ho et al. 2020, eqs. 6-7): all T steps, posterior mean and "fixed small" variance.

        x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        mean   = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0_hat + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
        var    = beta_t (1 - abar_{t-1}) / (1 - abar_t),  no noise added at t = 0
    """
    abar = alphas_cumprod(betas)
    for t in range(len(betas) - 1, -1, -1):
        a_t, beta_t = abar[t], betas[t]
        a_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=abar.dtype)
        eps = eps_fn(x, t)
        x0_hat = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0_hat + ((1 - beta_t).sqrt() * (1 - a_prev) / (1 - a_t)) * x
        if t > 0:
            var = (beta_t * (1 - a_prev) / (1 - a_t)).clamp(min=1e-20)
            x = mean + var.sqrt() * _noise_like(x, generator)
        else:
            x = mean
    return x


def _noise_like(x: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Gaussian noise shaped like x; with a list of generators, sample i draws from generator i, so a
    sample's noise never depends on the batch it is in."""
    if isinstance(generator, list | tuple):  # host generators (``initial_noise``): drawn there, then moved
        return torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device)
                            for g in generator]).to(x.device)
    device = x.device if generator is None else generator.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


def initial_noise(
    shape: tuple[int, ...], seeds: list[int], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """x_T for one sample per seed (on ``device``), and the per-sample generators the sampler continues with.
    The generators live on the CPU whatever the device, so seed 42 is the same brain on a GPU as on a CPU."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device), gens


@dataclass(frozen=True)
class Sampler:
    """A registered sampler: how to run it, and which ``sampling`` key of the profile gives its network calls
    (None: a fixed count)."""

    run: Callable[..., torch.Tensor]  # (eps_fn, x_T, betas, steps, eta, generators) -> x_0
    steps_key: str | None
    description: str


# the one list of samplers: the profile's ``sampling.sampler``, ``generate``, the export CLI and the widget
SAMPLERS: dict[str, Sampler] = {
    "ddim": Sampler(lambda eps_fn, x, betas, steps, eta, gens: ddim_sample(eps_fn, x, betas, steps, eta, gens),
                    "ddim_steps", "DDIM (Song et al. 2021), the paper's fast sampler"),
    "ddpm": Sampler(lambda eps_fn, x, betas, steps, eta, gens: ddpm_sample(eps_fn, x, betas, gens),
                    None, "ancestral DDPM (Ho et al. 2020), all T steps"),
    "dpm++": Sampler(lambda eps_fn, x, betas, steps, eta, gens: dpm_solver_pp_sample(eps_fn, x, betas, steps),
                     "dpm_steps", "DPM-Solver++(2M) (Lu et al. 2022), beyond the paper"),
}
