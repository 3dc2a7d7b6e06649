"""The GAN baselines of Table 1: generator output, the least-squares loss, that the VAE-GAN learns to
reconstruct, exact resume, seeded sampling."""

import pytest
import torch

from ldm.checkpoints import load_checkpoint
from ldm.config import load_profile
from ldm.models.baselines import build_encoder, build_gan_discriminator, build_generator, load_generator, sample_gan
from ldm.training.gans import train_gan
from ldm.training.steps import least_squares


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_generator_makes_volumes_of_the_profile_shape(name):
    p = load_profile(name)
    device = "cpu" if name != "paper" else "meta"
    with torch.device(device):
        gen = build_generator(p.baselines, p.data.shape).eval()
        disc = build_gan_discriminator(p.baselines, p.data.shape)
        enc = build_encoder(p.baselines, p.data.shape)
        z = torch.randn(2, p.baselines.latent_dim)
        x = gen(z)
        assert x.shape == (2, 1, *p.data.shape)
        assert disc(x).shape == (2, 1) and enc(x).shape == (2, 2 * p.baselines.latent_dim)
    if device == "cpu":
        assert 0 <= x.min() and x.max() <= 1  # volumes are in [0, 1], like the preprocessed data


def test_least_squares_loss_values():
    d = torch.tensor([[1.0], [0.0], [0.5]])
    assert least_squares(d, 1.0).item() == pytest.approx(0.5 * (0 + 1 + 0.25) / 3)
    assert least_squares(d, 0.0).item() == pytest.approx(0.5 * (1 + 0 + 0.25) / 3)


def _blobs(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, *shape)
    c = [s // 2 for s in shape]
    for i in range(n):
        r = int(torch.randint(3, 7, (), generator=g))
        x[i, 0, c[0] - r:c[0] + r, c[1] - r:c[1] + r, c[2] - r:c[2] + r] = 0.8
    return x


def test_vaegan_learns_to_reconstruct(tmp_path):
    p = load_profile("smoke", {"baselines.lr": 1e-3})
    ck = load_checkpoint(train_gan("vaegan", p, _blobs(p.data.shape, 16), tmp_path, steps=60, progress=False))
    l1 = [h["l1"] for h in ck["history"]]
    first, last = sum(l1[:5]) / 5, sum(l1[-5:]) / 5
    assert last < 0.5 * first, (first, last)  # the sigmoid starts at 0.5 everywhere: L1 ~0.45
    assert {"model", "encoder", "discriminator", "optimizer", "optimizer_discriminator"} <= set(ck)


@pytest.mark.parametrize("kind", ["lsgan", "vaegan"])
def test_resume_follows_the_same_trajectory(tmp_path, kind):
    p = load_profile("smoke")
    x = _blobs(p.data.shape, 8)
    straight = load_checkpoint(train_gan(kind, p, x, tmp_path / "a", steps=4, progress=False))
    train_gan(kind, p, x, tmp_path / "b", steps=2, progress=False)
    resumed = load_checkpoint(train_gan(kind, p, x, tmp_path / "b", steps=4, progress=False))
    for part in ("model", "discriminator"):
        for k, v in straight[part].items():
            assert torch.equal(v, resumed[part][k]), (part, k)
    assert [h["discriminator"] for h in straight["history"]] == [h["discriminator"] for h in resumed["history"]]


def test_sampling_is_seeded(tmp_path):
    p = load_profile("smoke")
    gen = load_generator(load_checkpoint(train_gan("lsgan", p, _blobs(p.data.shape, 4), tmp_path, steps=2,
                                                   progress=False)), p)
    a, b, c = sample_gan(gen, 3, seed=5), sample_gan(gen, 3, seed=5), sample_gan(gen, 3, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (3, 1, *p.data.shape)


def test_unknown_kind_and_bad_sizes_are_refused(tmp_path):
    from ldm.config import ConfigError

    p = load_profile("smoke")
    with pytest.raises(ValueError, match="unknown baseline 'wgan'"):
        train_gan("wgan", p, _blobs(p.data.shape, 2), tmp_path)
    with pytest.raises(ConfigError, match="baselines.generator_channels"):
        load_profile("smoke", {"baselines.generator_channels": [8, 8, 8]})  # 20 is not divisible by 8
