"""The GAN baselines of Table 1: a 3D LSGAN and a 3D VAE-GAN, unconditional, at the profile's resolution.

The paper takes both rows from Kwon et al. 2019 ("Generation of 3D brain MRI using auto-encoding
generative adversarial networks", MICCAI), who trained them at 64^3. Here they are rebuilt small and
plain, sharing one generator and one discriminator design, so Table 1 compares like with like on our data:

- **LSGAN** (Mao et al. 2017, "Least squares generative adversarial networks"): generator G(z), z ~ N(0, I);
  discriminator D; D minimises 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2, G minimises 1/2 (D(G(z)) - 1)^2.
- **VAE-GAN** (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric"):
  an encoder q(z|x) in front of the same generator. Encoder and generator minimise
  ``kl_weight`` KL(q(z|x) || N(0, I)) + ``reconstruction_weight`` |x - G(z_x)|_1 + a GAN term on both
  reconstructions G(z_x) and prior samples G(z_p); D tells real from both. The L1 image reconstruction
  (rather than Larsen's discriminator-feature distance) follows Kwon et al.'s 3D version. The GAN terms
  are the least-squares ones, as in the LSGAN row, so the two rows differ only by the encoder.

Generator: linear -> (C0, shape / 2^L) -> L x [2x nearest upsampling, conv3x3x3, BatchNorm, ReLU] ->
conv3x3x3 -> sigmoid (volumes are in [0, 1]). Discriminator: L x [conv4x4x4 stride 2, LeakyReLU 0.2],
spectrally normalised (Miyato et al. 2018: it keeps a short CPU run from diverging), then linear.

Training (``ldm.training.gans``) follows the other trainers' conventions: the batch of step k and each
sample's noise are functions of (seed, k, position) alone, checkpoints are atomic and resume; one process
(no DDP: they are small).

    python -m ldm.train lsgan  --profile demo --run-dir runs/demo
    python -m ldm.train vaegan --profile demo --run-dir runs/demo
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..config import BaselinesConfig, Profile
from ..runtime import default_device, module_device

KINDS = ("lsgan", "vaegan")


class Generator(nn.Module):
    def __init__(self, latent_dim: int, channels: tuple[int, ...], shape: tuple[int, int, int]):
        super().__init__()
        self.base = tuple(s // 2 ** len(channels) for s in shape)
        self.fc = nn.Linear(latent_dim, channels[0] * int(np.prod(self.base)))
        layers = [nn.BatchNorm3d(channels[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(channels, (*channels[1:], channels[-1])):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv3d(c_in, c_out, 3, padding=1),
                       nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.Conv3d(channels[-1], 1, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.channels0 = channels[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(len(z), self.channels0, *self.base))


class Critic(nn.Module):
    """Stride-2 convolutions then one linear output: the discriminator (out=1) or the encoder (out=2*latent)."""

    def __init__(self, channels: tuple[int, ...], shape: tuple[int, int, int], out: int, spectral: bool):
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        layers, c_in = [], 1
        for c in channels:
            layers += [wrap(nn.Conv3d(c_in, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        self.net = nn.Sequential(*layers)
        n = c_in * int(np.prod([s // 2 ** len(channels) for s in shape]))
        self.fc = wrap(nn.Linear(n, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x).flatten(1))


def build_generator(cfg: BaselinesConfig, shape: tuple[int, int, int]) -> Generator:
    return Generator(cfg.latent_dim, cfg.generator_channels, shape)


def build_gan_discriminator(cfg: BaselinesConfig, shape: tuple[int, int, int]) -> Critic:
    return Critic(cfg.discriminator_channels, shape, 1, spectral=True)


def build_encoder(cfg: BaselinesConfig, shape: tuple[int, int, int]) -> Critic:
    return Critic(cfg.discriminator_channels, shape, 2 * cfg.latent_dim, spectral=False)


def load_generator(ck: dict, profile: Profile, device: str | torch.device | None = None) -> Generator:
    """The generator of a checkpoint, on ``device`` (default: ``default_device()``)."""
    gen = build_generator(profile.baselines, profile.data.shape)
    gen.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
    return gen.to(device or default_device()).eval()


@torch.no_grad()
def sample_gan(gen: Generator, n: int, seed: int = 0, batch: int = 16) -> torch.Tensor:
    """``n`` volumes (n, 1, D, H, W) in [0, 1] on the CPU from G(z), z ~ N(0, I) drawn from ``seed`` on the
    host (the same z on any device)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, gen.fc.in_features, generator=g).to(module_device(gen))
    return torch.cat([gen(z[i:i + batch]).cpu() for i in range(0, n, batch)])
