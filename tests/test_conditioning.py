"""Conditioning beyond the paper's defaults: v-prediction converted for the samplers, per-channel latent
standardisation, the null token and classifier-free guidance, and the two conditioning paths."""

import pytest
import torch
from conftest import random_pipeline

from ldm.config import ConfigError, load_profile
from ldm.models.latents import denormalise_latents, latent_statistics, normalise_latents
from ldm.models.networks import condition_vector, conditioning_inputs
from ldm.models.schedule import add_noise, alphas_cumprod, eps_from_prediction, schedule_betas
from ldm.sampling.pipeline import Pipeline, eps_function, generate

SMOKE = load_profile("smoke")


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_every_prediction_type_converts_to_the_true_noise(kind):
    abar = alphas_cumprod(schedule_betas(SMOKE.scheduler))
    x0, eps = torch.randn(4, 3, 5, 5, 5, dtype=torch.float64), torch.randn(4, 3, 5, 5, 5, dtype=torch.float64)
    for t in (0, 300, 999):
        a = abar[t]
        xt = add_noise(x0, eps, torch.full((4,), t), abar)
        target = {"epsilon": eps, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "sample": x0}[kind]
        torch.testing.assert_close(eps_from_prediction(target, xt, a, kind), eps)


@pytest.mark.parametrize("mode", ["global_std", "per_channel"])
def test_latent_normalisation_round_trips(mode):
    z = torch.randn(20, 4, 3, 3, 3) * torch.tensor([0.1, 1.0, 3.0, 0.5]).view(1, 4, 1, 1, 1) + 2.0
    mean, std = latent_statistics(z, mode)
    zn = normalise_latents(z, mean, std)
    torch.testing.assert_close(denormalise_latents(zn, mean, std), z)
    per_channel_std = zn.transpose(0, 1).flatten(1).std(1)
    if mode == "per_channel":  # every channel mean 0, sd 1
        torch.testing.assert_close(per_channel_std, torch.ones(4))
        torch.testing.assert_close(zn.transpose(0, 1).flatten(1).mean(1), torch.zeros(4), atol=1e-5, rtol=0)
    else:  # one factor for all: overall sd 1, channels keep their relative spread
        assert zn.std().item() == pytest.approx(1.0, rel=1e-5)
        assert per_channel_std[2] / per_channel_std[0] == pytest.approx(30, rel=0.2)


def test_null_token_marks_unconditional_rows():
    c = torch.tensor([[0.2, 0.4, 0.6, 0.8], [0.0, 0.0, 0.0, 0.0]])
    v = condition_vector(c, null_token=True, present=torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(v, torch.tensor([[0.2, 0.4, 0.6, 0.8, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]]))
    # a conditional row of all-zero covariates is not the null token
    assert not torch.equal(condition_vector(c[1:], True), v[1:])
    assert torch.equal(condition_vector(c, null_token=False), c)
    with pytest.raises(ValueError, match="null_token"):
        condition_vector(c, null_token=False, present=torch.tensor([1.0, 0.0]))


def _pipeline(profile=SMOKE) -> Pipeline:
    return random_pipeline(profile)


def test_guidance_is_the_classifier_free_combination():
    pipe = _pipeline()
    c = torch.rand(2, 4, generator=torch.Generator().manual_seed(1))
    z = torch.randn(2, SMOKE.autoencoder.latent_channels, *SMOKE.latent_shape)
    cond = eps_function(pipe, c, 1.0)(z, 500)
    assert (cond - eps_function(pipe, c, 0.0)(z, 500)).abs().max() > 1e-3  # the covariates matter
    with torch.no_grad():  # the unconditional prediction, by hand: covariates zeroed, flag 0
        x_in, ctx = conditioning_inputs(z, condition_vector(c, True, present=torch.zeros(2)))
        v = pipe.unet(x=x_in, timesteps=torch.full((2,), 500), context=ctx)
    uncond = eps_from_prediction(v, z, alphas_cumprod(pipe.betas)[500], SMOKE.scheduler.prediction_type)
    torch.testing.assert_close(eps_function(pipe, c, 0.0)(z, 500), uncond, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eps_function(pipe, c, 2.5)(z, 500), uncond + 2.5 * (cond - uncond),
                               rtol=1e-4, atol=1e-5)


def test_guidance_changes_samples_and_needs_a_null_token():
    pipe = _pipeline()
    c = torch.rand(2, 4, generator=torch.Generator().manual_seed(1))
    a = generate(pipe, c, [3, 4], steps=3, guidance_scale=1.0)
    b = generate(pipe, c, [3, 4], steps=3, guidance_scale=3.0)
    assert a.shape == (2, *SMOKE.data.shape) and abs(a - b).max() > 1e-3
    paper_like = load_profile("smoke", {"diffusion.null_token": False, "diffusion.cross_attention_dim": 4,
                                        "training.condition_dropout": 0.0, "sampling.guidance_scale": 1.0})
    with pytest.raises(ValueError, match="null token"):
        eps_function(_pipeline(paper_like), c, 2.0)


def test_covariates_reach_the_unet_through_both_paths():
    """Hybrid conditioning: changing c only in the concatenated channels, or only in the cross-attention
    token, each changes the UNet's output."""
    pipe = _pipeline()
    z = torch.randn(1, SMOKE.autoencoder.latent_channels, *SMOKE.latent_shape)
    c0, c1 = condition_vector(torch.zeros(1, 4), True), condition_vector(torch.ones(1, 4), True)
    x0, ctx0 = conditioning_inputs(z, c0)
    x1, ctx1 = conditioning_inputs(z, c1)
    t = torch.tensor([500])
    with torch.no_grad():
        base = pipe.unet(x=x0, timesteps=t, context=ctx0)
        via_channels = pipe.unet(x=x1, timesteps=t, context=ctx0)
        via_token = pipe.unet(x=x0, timesteps=t, context=ctx1)
    assert (via_channels - base).abs().max() > 1e-4
    assert (via_token - base).abs().max() > 1e-4


def test_profile_checks_the_null_token_settings():
    with pytest.raises(ConfigError, match="condition_dropout"):
        load_profile("smoke", {"diffusion.null_token": False, "diffusion.cross_attention_dim": 4})
    with pytest.raises(ConfigError, match="cross_attention_dim"):
        load_profile("smoke", {"diffusion.cross_attention_dim": 4})
    with pytest.raises(ConfigError, match="guidance"):
        load_profile("smoke", {"diffusion.null_token": False, "diffusion.cross_attention_dim": 4,
                               "training.condition_dropout": 0.0})
