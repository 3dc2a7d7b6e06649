"""One optimiser step of each network of the paper (2.2), the only definition the training loops and the
training-step benchmark use.

- ``autoencoder_step``: L1 + KL (+ perceptual when weights are given) + the patch adversarial term after a
  warm-up, then one discriminator step on fakes and reals.
- ``diffusion_step``: x_t from x_0 and eps (``add_noise``), the network's target (``prediction_target``: eps,
  v or x0) from x_t, t and the condition, mean squared error.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss

from ..config import Profile, TrainingConfig
from ..models.networks import condition_vector, conditioning_inputs
from ..models.schedule import add_noise, prediction_target
from ..runtime import CHANNELS_LAST, autocast

ADVERSARIAL = PatchAdversarialLoss(criterion="least_squares")


class AutoencoderPass(torch.nn.Module):
    """encode -> reparameterise with given noise -> decode, as one forward (so DDP sees it). With
    ``freeze_encoder`` the encoding is a constant: only the decoder learns."""

    def __init__(self, ae):
        super().__init__()
        self.ae = ae

    def forward(self, x: torch.Tensor, eps: torch.Tensor, freeze_encoder: bool = False):
        with torch.no_grad() if freeze_encoder else contextlib.nullcontext():
            mu, sigma = self.ae.encode(x)
        return self.ae.decode(mu + sigma * eps), mu, sigma


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)), summed over latent voxels, averaged over the batch."""
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-12) - 1)
    return kl.flatten(1).sum(1).mean()


def least_squares(pred: torch.Tensor, target: float) -> torch.Tensor:
    """Mao et al.'s loss, 1/2 E[(D(.) - target)^2], with targets 1 (real) and 0 (fake)."""
    return 0.5 * (pred - target).pow(2).mean()


def autoencoder_step(model: torch.nn.Module, disc: torch.nn.Module, opt_g: torch.optim.Optimizer,
                     opt_d: torch.optim.Optimizer, x: torch.Tensor, eps: torch.Tensor, step: int,
                     cfg: TrainingConfig, device: torch.device, perceptual: torch.nn.Module | None = None) -> dict:
    """One step of the autoencoder (``model``: an ``AutoencoderPass``, maybe DDP-wrapped) and its patch
    discriminator on volumes ``x`` with reparameterisation noise ``eps``. Steps from
    ``cfg.autoencoder_steps`` on train the decoder alone. Returns the losses of the step."""
    decoder_only = step >= cfg.autoencoder_steps
    with autocast(device, cfg.precision):
        recon, mu, sigma = model(x, eps, freeze_encoder=decoder_only)
    recon, mu, sigma = recon.float(), mu.float(), sigma.float()
    l1 = F.l1_loss(recon, x)
    kl = kl_divergence(mu, sigma)
    loss = l1 if decoder_only else l1 + cfg.kl_weight * kl  # KL is a constant for the decoder
    p_loss = torch.zeros(())
    if perceptual is not None:
        p_loss = perceptual(recon, x)
        loss = loss + cfg.perceptual_weight * p_loss
    adversarial = step >= cfg.adversarial_warmup_steps and cfg.adversarial_weight > 0
    g_adv = torch.zeros(())
    if adversarial:
        g_adv = ADVERSARIAL(disc(recon)[-1], target_is_real=True, for_discriminator=False)
        loss = loss + cfg.adversarial_weight * g_adv
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    d_loss = torch.zeros(())
    if adversarial:
        # one forward over fakes and reals together: DDP allows one forward per backward
        logits = disc(torch.cat([recon.detach(), x]))[-1]
        fake = ADVERSARIAL(logits[: len(x)], target_is_real=False, for_discriminator=True)
        real = ADVERSARIAL(logits[len(x):], target_is_real=True, for_discriminator=True)
        d_loss = cfg.adversarial_weight * 0.5 * (fake + real)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    return {"l1": l1.item(), "kl": kl.item(), "perceptual": p_loss.item(), "generator_adversarial": g_adv.item(),
            "discriminator": d_loss.item()}


def diffusion_draws(generators: list[torch.Generator], shape: tuple[int, ...], num_train_timesteps: int,
                    condition_dropout: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noise, timestep, present) of each sample of a step, each drawn from that sample's own generator
    (``runtime.sample_generator``): present is 0 for a sample trained unconditionally."""
    noise = torch.stack([torch.randn(shape, generator=g) for g in generators])
    t = torch.stack([torch.randint(0, num_train_timesteps, (), generator=g) for g in generators])
    present = torch.stack([(torch.rand((), generator=g) >= condition_dropout).float() for g in generators])
    return noise, t, present


def diffusion_step(model: torch.nn.Module, opt: torch.optim.Optimizer, z0: torch.Tensor, c: torch.Tensor,
                   noise: torch.Tensor, t: torch.Tensor, present: torch.Tensor, abar: torch.Tensor,
                   profile: Profile, device: torch.device) -> torch.Tensor:
    """One step of the diffusion model on normalised latents ``z0`` conditioned on covariates ``c`` (B, 4):
    noise them to timesteps ``t``, regress the profile's prediction target. Returns the loss."""
    zt = add_noise(z0, noise, t, abar)
    target = prediction_target(z0, noise, t, abar, profile.scheduler.prediction_type)
    x_in, context = conditioning_inputs(zt, condition_vector(c, profile.diffusion.null_token, present))
    x_in = x_in.contiguous(memory_format=CHANNELS_LAST)
    with autocast(device, profile.training.precision):
        pred = model(x=x_in, timesteps=t, context=context)
    loss = F.mse_loss(pred.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """EMA of the weights with the usual warm-up: early on the average follows the weights closely, so a
    short run's EMA is not mostly its random initialisation (0.999 over 1000 steps would keep 37% of it)."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - d)
