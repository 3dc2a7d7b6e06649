"""Samplers against hand-computed updates, against MONAI's schedulers, and on Gaussian data where the
exact noise predictor is known in closed form."""

import math

import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from ldm.models.schedule import add_noise, alphas_cumprod, make_betas
from ldm.sampling.solvers import (
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    dpm_solver_pp_sample,
    initial_noise,
    logsnr_timesteps,
)

BETAS = make_betas(1000, "scaled_linear_beta", 0.0015, 0.0205)


def test_schedule_matches_monai():
    sched = DDPMScheduler(num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0205)
    np.testing.assert_allclose(BETAS.numpy(), sched.betas.numpy(), rtol=1e-6)
    np.testing.assert_allclose(alphas_cumprod(BETAS).numpy(), sched.alphas_cumprod.numpy(), rtol=1e-5)


def test_ddim_grid_is_the_bundles():
    """The released model was sampled with MONAI-Generative 0.2's grid, arange(50) * 20 reversed:
    980, 960, ..., 0. (MONAI 1.6's DDIMScheduler now spaces 999 .. 0 instead; we keep the bundle's.)"""
    grid = ddim_timesteps(1000, 50)
    assert grid == (np.arange(0, 50) * 20)[::-1].tolist()
    assert grid[:3] == [980, 960, 940] and grid[-1] == 0


def test_one_ddim_step_by_hand():
    """Two steps on a 10-step schedule (grid 5, 0) with a constant predictor, computed by hand."""
    betas = torch.linspace(0.1, 0.5, 10, dtype=torch.float64)
    abar = np.cumprod(1 - betas.numpy())
    x_t, eps = 2.0, 0.5
    x0 = (x_t - math.sqrt(1 - abar[5]) * eps) / math.sqrt(abar[5])
    x_s = math.sqrt(abar[0]) * x0 + math.sqrt(1 - abar[0]) * eps  # eta = 0
    x0_final = (x_s - math.sqrt(1 - abar[0]) * eps) / math.sqrt(abar[0])  # last step: abar_s = 1
    out = ddim_sample(lambda x, t: torch.full_like(x, eps), torch.tensor([x_t], dtype=torch.float64), betas, steps=2)
    assert out.item() == pytest.approx(x0_final, rel=1e-12)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_matches_monai(eta):
    sched = DDIMScheduler(num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015,
                          beta_end=0.0205, clip_sample=False)
    sched.set_timesteps(50)
    sched.timesteps = torch.tensor(ddim_timesteps(1000, 50))  # the bundle's grid (see above)
    x = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    fake_eps = lambda x, t: 0.3 * x + 0.01 * t / 1000  # noqa: E731
    ours = ddim_sample(fake_eps, x.clone(), BETAS, steps=50, eta=eta, generator=torch.Generator().manual_seed(1))
    theirs, g = x.clone(), torch.Generator().manual_seed(1)
    for t in sched.timesteps:
        theirs, _ = sched.step(fake_eps(theirs, int(t)), int(t), theirs, eta=eta, generator=g)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_ddpm_matches_monai():
    sched = DDPMScheduler(num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015,
                          beta_end=0.0205, clip_sample=False)
    x = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    fake_eps = lambda x, t: 0.3 * x  # noqa: E731
    ours = ddpm_sample(fake_eps, x.clone(), BETAS, generator=torch.Generator().manual_seed(5))
    theirs, g = x.clone(), torch.Generator().manual_seed(5)
    for t in sched.timesteps:
        theirs, _ = sched.step(fake_eps(theirs, int(t)), int(t), theirs, generator=g)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


MU = torch.tensor([0.7, -1.0, 0.0, 2.0], dtype=torch.float64)
MU = torch.tensor([0.7, -1.0, 0.0, 2.0], dtype=torch.float64)
SD = torch.tensor([0.6, 0.8, 1.0, 1.2], dtype=torch.float64)  # the scale of standardised latents


def exact_eps(x: torch.Tensor, t: int) -> torch.Tensor:
    """E[eps | x_t] for x_0 ~ N(MU, SD^2): sqrt(1 - abar)(x_t - sqrt(abar) MU) / (abar SD^2 + 1 - abar)."""
    a = alphas_cumprod(BETAS)[t]
    return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * SD**2 + 1 - a)


# Largest relative error allowed on each dimension's sd. DDPM over all 1000 steps is close to exact;
# DDIM with 50 steps has a real discretisation bias that shrinks the spread (measured with the exact
# predictor: sd x0.95 at eta 0 and x0.89 at eta 1 for sd 0.6), which vanishes as the steps grow.
SD_TOLERANCE = {"ddpm": 0.03, "ddim-eta0": 0.07, "ddim-eta1": 0.15}
MEAN_BIAS = {"ddpm": 0.0, "ddim-eta0": 0.06, "ddim-eta1": 0.06}  # in units of sd, on top of sampling error


def _sample(sampler: str, x: torch.Tensor, steps: int = 50) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if sampler == "ddpm":
        return ddpm_sample(exact_eps, x, BETAS, generator=g)
    return ddim_sample(exact_eps, x, BETAS, steps=steps, eta=float(sampler[-1]), generator=g)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim-eta0", "ddim-eta1"])
def test_samplers_recover_gaussian_data(sampler):
    n = 5000
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = _sample(sampler, x)
    torch.testing.assert_close(out.mean(0), MU, atol=(4 / math.sqrt(n) + MEAN_BIAS[sampler]) * SD.max().item(), rtol=0)
    ratio = out.std(0) / SD
    assert (ratio - 1).abs().max() < SD_TOLERANCE[sampler], ratio
    if sampler != "ddpm":  # and the DDIM bias is discretisation: 4x the steps, a smaller error
        finer = _sample(sampler, x, steps=200).std(0) / SD
        assert (finer - 1).abs().max() < (ratio - 1).abs().max()


def test_forward_process_then_exact_denoise_round_trip():
    """add_noise at t, then the DDIM x0 estimate with the true noise, returns x0 exactly."""
    x0 = torch.randn(3, 2, 5, 5, 5)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 500, 999])
    xt = add_noise(x0, eps, t, alphas_cumprod(BETAS))
    a = alphas_cumprod(BETAS)[t].float().view(-1, 1, 1, 1, 1)
    torch.testing.assert_close((xt - (1 - a).sqrt() * eps) / a.sqrt(), x0, rtol=1e-4, atol=1e-4)


def test_a_sample_depends_only_on_its_seed():
    x, gens = initial_noise((1, 3, 3, 3), seeds=[7, 42, 9])
    alone, g_alone = initial_noise((1, 3, 3, 3), seeds=[42])
    torch.testing.assert_close(x[1], alone[0])
    a = ddim_sample(lambda x, t: 0.1 * x, x, BETAS, steps=10, eta=1.0, generator=gens)
    b = ddim_sample(lambda x, t: 0.1 * x, alone, BETAS, steps=10, eta=1.0, generator=g_alone)
    torch.testing.assert_close(a[1], b[0])


def test_a_seeds_noise_is_drawn_on_the_host_whatever_the_device():
    # the per-sample generators stay on the CPU and the draws are moved, so seed 42 is the same brain on
    # a GPU as on a CPU; "meta" stands in for an accelerator here (shapes, no values)
    x, gens = initial_noise((1, 3, 3, 3), seeds=[42, 7], device="meta")
    host, host_gens = initial_noise((1, 3, 3, 3), seeds=[42, 7])
    assert x.device.type == "meta" and x.shape == host.shape and all(g.device.type == "cpu" for g in gens)
    later = ddpm_sample(lambda z, t: 0.1 * z, x, BETAS[:3], generator=gens)  # two more draws per sample
    ddpm_sample(lambda z, t: 0.1 * z, host, BETAS[:3], generator=host_gens)
    assert later.device.type == "meta"
    for g, h in zip(gens, host_gens):  # the same draws were made from the same host generators
        torch.testing.assert_close(torch.randn(4, generator=g), torch.randn(4, generator=h))


def test_first_order_dpm_solver_pp_is_ddim():
    """DPM-Solver++ of order 1 is DDIM with eta = 0 (Lu et al. 2022): same grid, same numbers."""
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for steps in (10, 20):
        grid = ddim_timesteps(1000, steps)
        torch.testing.assert_close(dpm_solver_pp_sample(exact_eps, x.clone(), BETAS, order=1, grid=grid),
                                   ddim_sample(exact_eps, x.clone(), BETAS, steps=steps, eta=0.0))


def test_dpm_solver_pp_in_20_steps_beats_ddim_in_50_on_gaussian_data():
    """With the exact predictor the only error is discretisation: the second-order solver with 20
    network calls recovers the data's spread better than DDIM with 50 (DDIM shrinks it, see above)."""
    x = torch.randn(5000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    error = lambda out: (out.std(0) / SD - 1).abs().max().item()  # noqa: E731
    dpm20 = error(dpm_solver_pp_sample(exact_eps, x.clone(), BETAS, steps=20))
    ddim50 = error(ddim_sample(exact_eps, x.clone(), BETAS, steps=50))
    assert dpm20 < ddim50 and dpm20 < 0.04, (dpm20, ddim50)  # measured 0.032 vs 0.055
    grid = logsnr_timesteps(BETAS, 20)
    assert len(grid) == 20 and grid[0] == 999 and grid[-1] == 0 and grid == sorted(grid, reverse=True)


def test_profile_sampler_defaults():
    """Every caller that names no sampler gets the profile's, with that sampler's own step count."""
    from ldm.config import load_profile
    from ldm.sampling.pipeline import default_steps

    assert default_steps(load_profile("paper")) == ("ddim", 50)  # the paper's
    demo = load_profile("demo")
    assert default_steps(demo) == ("dpm++", demo.sampling.dpm_steps)
    assert default_steps(demo, "ddim") == ("ddim", demo.sampling.ddim_steps)
    assert default_steps(demo, "dpm++", 7) == ("dpm++", 7)
    assert default_steps(demo, "ddpm") == ("ddpm", None)  # always all 1000
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        default_steps(demo, "euler")


def test_one_sampler_registry_serves_the_config_the_cli_and_generate(smoke):
    """The profile's ``sampling.sampler`` choices, the export CLI's ``--sampler`` and ``default_steps`` all
    come from ``SAMPLERS``; each registered sampler runs through ``generate``."""
    import typing

    from conftest import random_pipeline

    from ldm.config import SamplingConfig
    from ldm.sampling.cli import main
    from ldm.sampling.pipeline import default_steps, generate
    from ldm.sampling.solvers import SAMPLERS

    assert typing.get_args(typing.get_type_hints(SamplingConfig)["sampler"]) == tuple(SAMPLERS)
    with pytest.raises(SystemExit):
        main(["--n", "1", "--out", "x", "--sampler", "euler"])  # argparse: not a registered choice
    pipe = random_pipeline(smoke)
    c = torch.full((1, 4), 0.5)
    for name, sampler in SAMPLERS.items():
        _, steps = default_steps(smoke, name)
        assert steps == (getattr(smoke.sampling, sampler.steps_key) if sampler.steps_key else None)
        if name != "ddpm":  # 1000 network calls: covered by the DDPM tests above
            assert generate(pipe, c, [0], sampler=name).shape == (1, *smoke.data.shape)
    with pytest.raises(ValueError, match="unknown sampler"):
        default_steps(smoke, "euler")
