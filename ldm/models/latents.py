"""The autoencoder's latent space as the diffusion model sees it: encodings and their normalisation."""

from __future__ import annotations

import torch

from ..runtime import default_device


@torch.no_grad()
def encode(ae, images: torch.Tensor, batch: int = 8, device: str | torch.device | None = None) -> torch.Tensor:
    """Latent means z_mu of a set of volumes (the deterministic encoding the diffusion model learns), on the
    CPU; computed on ``device`` (default: ``default_device()``), where ``ae`` is moved."""
    device = torch.device(device or default_device())
    ae = ae.to(device).eval()
    return torch.cat([ae.encode(images[i:i + batch].to(device))[0].float().cpu() for i in range(0, len(images), batch)])


def latent_statistics(latents: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per latent channel, by which the diffusion model sees (z - mean) / std.

    ``global_std`` is the paper's (Rombach et al.'s) scale factor: mean 0 and one std for all channels.
    ``per_channel`` standardises each channel, for latents whose channels differ in spread."""
    c = latents.shape[1]
    if mode == "global_std":
        return torch.zeros(c), latents.std().repeat(c)
    if mode == "per_channel":
        per = latents.transpose(0, 1).flatten(1)
        return per.mean(1), per.std(1)
    raise ValueError(f"unknown latent_normalisation {mode!r}")


def _channel_view(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return v.to(z).view(1, -1, *(1,) * (z.ndim - 2))


def normalise_latents(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (z - _channel_view(mean, z)) / _channel_view(std, z)


def denormalise_latents(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return z * _channel_view(std, z) + _channel_view(mean, z)
