"""Tiled decoding equals the whole decode (GroupNorm statistics shared across tiles), and the test can tell."""

import numpy as np
import pytest
import torch
from monai.networks.nets import AutoencoderKL

from ldm.config import load_profile
from ldm.models.networks import build_autoencoder
from ldm.sampling import tiled_decode


def small_autoencoder(levels: int = 3) -> AutoencoderKL:
    """The paper's block structure (no attention) at toy width, with GroupNorm affines far from identity
    so that a tile normalised with its own statistics visibly differs."""
    torch.manual_seed(0)
    ae = AutoencoderKL(spatial_dims=3, in_channels=1, out_channels=1, channels=(8, 16, 16, 16)[:levels],
                       latent_channels=3, num_res_blocks=2, norm_num_groups=4, attention_levels=(False,) * levels,
                       with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False).eval()
    for m in ae.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.data.normal_(1, 0.5)
            m.bias.data.normal_(0, 0.5)
    return ae


@pytest.mark.parametrize("tile", [7, (9, 5, 20), 100])
def test_tiled_decode_equals_whole_decode(tile):
    ae = small_autoencoder()
    z = torch.randn(2, 3, 10, 12, 8) * 2 + 0.5  # off-centre, so the statistics are not those of N(0, 1)
    with torch.no_grad():
        whole = ae.decode(z)
    tiled = tiled_decode.decode_tiled(ae, z, tile)
    assert tiled.shape == whole.shape == (2, 1, 40, 48, 32)
    assert torch.allclose(tiled, whole, atol=1e-5), (tiled - whole).abs().max()


def test_the_test_sees_a_short_halo_and_per_tile_statistics(monkeypatch):
    """The equality above is not automatic: one voxel less of halo, or GroupNorm statistics per tile
    (what a sliding window does), both change the image."""
    ae = small_autoencoder()
    z = torch.randn(1, 3, 10, 12, 8) * 2 + 0.5
    with torch.no_grad():
        whole = ae.decode(z)
    halo = tiled_decode.tail_halo(tiled_decode.split(ae.decoder)[1])
    assert halo == 3  # six 3x3x3 convolutions at twice the tail's input resolution
    monkeypatch.setattr(tiled_decode, "tail_halo", lambda tail: halo - 1)
    short = tiled_decode.decode_tiled(ae, z, 8)
    assert (short - whole).abs().max() > 1e-3
    monkeypatch.undo()

    def per_tile_stats(self, x):  # the plain GroupNorm of the tile: what a sliding window computes
        return self.norm(x)

    monkeypatch.setattr(tiled_decode._WholeVolumeGroupNorm, "forward", per_tile_stats)
    monkeypatch.setattr(tiled_decode._WholeVolumeGroupNorm, "fix", lambda self: None)
    per_tile = tiled_decode.decode_tiled(ae, z, 8)
    assert (per_tile - whole).abs().mean() > 1e-2


def test_tiled_decode_of_the_demo_autoencoder_and_the_paper_split():
    demo = build_autoencoder(load_profile("demo").autoencoder).eval()
    z = torch.randn(1, demo.decoder.blocks[0].conv.in_channels, *load_profile("demo").latent_shape)
    with torch.no_grad():
        whole = demo.decode(z)
    assert torch.allclose(tiled_decode.decode_tiled(demo, z, 6), whole, atol=1e-5)
    # the paper's tail is its last level: upsampling to 160x224x160 + two res blocks + norm + conv out
    paper = build_autoencoder(load_profile("paper").autoencoder)
    head, tail = tiled_decode.split(paper.decoder)
    assert len(tail) == 5 and tiled_decode.tail_halo(tail) == 3
    assert sum(isinstance(m, torch.nn.GroupNorm) for b in tail for m in b.modules()) == 5


def test_a_decoder_without_upsampling_is_refused():
    ae = small_autoencoder(levels=1)
    with pytest.raises(ValueError, match="no upsampling"):
        tiled_decode.decode_tiled(ae, torch.randn(1, 3, 4, 4, 4))


def test_generate_and_the_export_command_take_a_tile(smoke):
    from conftest import random_pipeline

    from ldm.sampling.export import parse_tile
    from ldm.sampling.pipeline import generate

    pipe = random_pipeline(smoke)
    c = torch.tensor([[1.0, 0.5, 0.3, 0.6]])
    whole = generate(pipe, c, [3], steps=3)
    tiled = generate(pipe, c, [3], steps=3, decode_tile=(3, 2, 100))
    assert np.allclose(tiled, whole, atol=1e-5)
    assert parse_tile("") is None and parse_tile("20") == 20 and parse_tile("20x28X80") == (20, 28, 80)
    with pytest.raises(ValueError, match="--decode-tile '20x0': N or AxBxC"):
        parse_tile("20x0")
