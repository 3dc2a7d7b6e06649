"""The three networks, built from a profile. MONAI supplies them; this module only sets their sizes.

The paper profile reproduces the public MONAI bundle ``brain_image_synthesis_latent_diffusion_model``:
AutoencoderKL 13,766,248 parameters (160x224x160 -> 3x20x28x20) and DiffusionModelUNet 553,168,899
parameters (in = 3 latent + 4 conditioning channels, one cross-attention token of 4 covariates).
"""

from __future__ import annotations

import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet, PatchDiscriminator

from ..config import AutoencoderConfig, DiffusionConfig, Profile

N_COVARIATES = 4  # sex, age, ventricular volume, brain volume


def build_autoencoder(cfg: AutoencoderConfig) -> AutoencoderKL:
    return AutoencoderKL(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        channels=cfg.channels,
        latent_channels=cfg.latent_channels,
        num_res_blocks=cfg.num_res_blocks,
        norm_num_groups=cfg.norm_num_groups,
        norm_eps=cfg.norm_eps,
        attention_levels=cfg.attention_levels,
        with_encoder_nonlocal_attn=cfg.with_encoder_nonlocal_attn,
        with_decoder_nonlocal_attn=cfg.with_decoder_nonlocal_attn,
    )


def build_unet(cfg: DiffusionConfig, latent_channels: int) -> DiffusionModelUNet:
    """Hybrid conditioning: the covariates enter as extra input channels *and* as a cross-attention token
    (with ``null_token``, one more of each: the flag of ``condition_vector``)."""
    return DiffusionModelUNet(
        spatial_dims=3,
        in_channels=latent_channels + N_COVARIATES + int(cfg.null_token),
        out_channels=latent_channels,
        channels=cfg.channels,
        num_res_blocks=cfg.num_res_blocks,
        attention_levels=cfg.attention_levels,
        norm_num_groups=cfg.norm_num_groups,
        norm_eps=cfg.norm_eps,
        resblock_updown=cfg.resblock_updown,
        num_head_channels=list(cfg.num_head_channels),
        with_conditioning=True,
        transformer_num_layers=cfg.transformer_num_layers,
        cross_attention_dim=cfg.cross_attention_dim,
        upcast_attention=cfg.upcast_attention,
    )


def build_patch_discriminator(channels: int = 64, num_layers: int = 3) -> PatchDiscriminator:
    """The patch discriminator of the adversarial term (paper 2.2; Isola et al. 2017)."""
    return PatchDiscriminator(spatial_dims=3, channels=channels, in_channels=1, out_channels=1, num_layers_d=num_layers)


def build_networks(profile: Profile, device: str | torch.device = "cpu") -> tuple[AutoencoderKL, DiffusionModelUNet]:
    """Autoencoder and UNet of a profile (on ``device``; "meta" builds them without memory)."""
    with torch.device(device):
        ae = build_autoencoder(profile.autoencoder)
        unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels)
    return ae, unet


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def condition_vector(c: torch.Tensor, null_token: bool, present: torch.Tensor | None = None) -> torch.Tensor:
    """What the UNet is conditioned on, from normalised covariates ``c`` (B, 4).

    Without a null token (the paper): c itself. With one: [c * present, present], where ``present`` (B,)
    is 1 for a conditional sample and 0 for an unconditional one, whose covariates are zeroed. The flag
    keeps "no covariates" apart from covariates that are truly 0 (or extrapolated negative values)."""
    if not null_token:
        if present is not None and not bool(present.all()):
            raise ValueError("unconditional samples need a model with diffusion.null_token")
        return c
    present = torch.ones(len(c), dtype=c.dtype, device=c.device) if present is None else present.to(c)
    return torch.cat([c * present[:, None], present[:, None]], dim=1)


def conditioning_inputs(z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(UNet input, cross-attention context) for latents ``z`` (B, C, ...) and a condition vector ``c``
    (B, K; see ``condition_vector``): c broadcast to K channels concatenated after the latent, and c as
    one token of dimension K."""
    spatial = (1,) * (z.ndim - 2)
    channels = c.to(z.dtype).view(c.shape[0], c.shape[1], *spatial).expand(-1, -1, *z.shape[2:])
    return torch.cat([z, channels], dim=1), c.to(z.dtype)[:, None, :]
