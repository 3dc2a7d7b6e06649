"""Converting the paper's released networks (MONAI Generative 0.2 state dicts) into this edition's
checkpoints: the converted networks compute what MONAI Generative's did, and bad files are refused."""

import pytest
import torch

from ldm.config import load_profile
from ldm.models.networks import condition_vector, conditioning_inputs
from ldm.models.official import RELEASED_MD5, convert_bundle, md5, read_state
from ldm.sampling.pipeline import load_pipeline

generative = pytest.importorskip("generative.networks.nets", reason="monai-generative (dev extra) is the reference")

# the paper profile's block structure (attention at levels 2-3, res-block up/down sampling, upcast
# attention, one cross-attention token of the 4 covariates), at widths a CPU test can run
SMALL = {"data.shape": [32, 64, 32], "autoencoder.channels": [8, 16, 16, 16], "autoencoder.norm_num_groups": 8,
         "diffusion.channels": [16, 32, 48], "diffusion.norm_num_groups": 8, "diffusion.num_head_channels": [0, 16, 24]}


def _reference_networks(p):
    a, d = p.autoencoder, p.diffusion
    ae = generative.AutoencoderKL(
        spatial_dims=3, in_channels=1, out_channels=1, num_channels=a.channels, latent_channels=a.latent_channels,
        num_res_blocks=a.num_res_blocks, norm_num_groups=a.norm_num_groups, norm_eps=a.norm_eps,
        attention_levels=a.attention_levels, with_encoder_nonlocal_attn=a.with_encoder_nonlocal_attn,
        with_decoder_nonlocal_attn=a.with_decoder_nonlocal_attn)
    unet = generative.DiffusionModelUNet(
        spatial_dims=3, in_channels=a.latent_channels + 4, out_channels=a.latent_channels, num_channels=d.channels,
        num_res_blocks=d.num_res_blocks, attention_levels=d.attention_levels, norm_num_groups=d.norm_num_groups,
        norm_eps=d.norm_eps, resblock_updown=d.resblock_updown, num_head_channels=list(d.num_head_channels),
        with_conditioning=True, transformer_num_layers=d.transformer_num_layers,
        cross_attention_dim=d.cross_attention_dim, upcast_attention=d.upcast_attention)
    return ae.eval(), unet.eval()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    p = load_profile("paper", SMALL)
    torch.manual_seed(0)
    ref_ae, ref_unet = _reference_networks(p)
    with torch.no_grad():  # MONAI zero-initialises some output layers: make every path matter
        for q in ref_unet.parameters():
            q.add_(0.02 * torch.randn_like(q))
    folder = tmp_path_factory.mktemp("official")
    torch.save(ref_ae.state_dict(), folder / "autoencoder.pth")
    torch.save(ref_unet.state_dict(), folder / "diffusion_model.pth")
    out = convert_bundle(folder / "autoencoder.pth", folder / "diffusion_model.pth", folder / "out", profile=p,
                         check_md5=False)
    return p, ref_ae, ref_unet, load_pipeline(p, out), folder


@torch.no_grad()
def test_converted_networks_compute_what_monai_generative_did(converted):
    p, ref_ae, ref_unet, pipe, _ = converted
    x = torch.rand(1, 1, *p.data.shape)
    torch.testing.assert_close(pipe.autoencoder.encode(x)[0], ref_ae.encode(x)[0], atol=1e-5, rtol=1e-4)
    z = torch.randn(1, p.autoencoder.latent_channels, *p.latent_shape)
    torch.testing.assert_close(pipe.autoencoder.decode(z), ref_ae.decode(z), atol=1e-5, rtol=1e-4)
    c = condition_vector(torch.tensor([[1.0, 0.3, 0.6, 0.2]]), null_token=False)
    x_in, context = conditioning_inputs(z, c)
    t = torch.tensor([500])
    torch.testing.assert_close(pipe.unet(x=x_in, timesteps=t, context=context),
                               ref_unet(x=x_in, timesteps=t, context=context), atol=1e-4, rtol=1e-4)
    assert pipe.weights.startswith("official MONAI bundle") and torch.equal(pipe.latent_std, torch.ones(3))


def test_md5_and_missing_files_are_refused(converted, tmp_path):
    p, _, _, _, folder = converted
    with pytest.raises(ValueError, match=r"autoencoder\.pth: md5 [0-9a-f]{32} is not the released autoencoder"):
        read_state(folder / "autoencoder.pth", "autoencoder")
    with pytest.raises(FileNotFoundError, match=r"nothere\.pth: diffusion weights not found.*models/diffusion_model"):
        read_state(tmp_path / "nothere.pth", "diffusion")
    assert md5(folder / "autoencoder.pth") != RELEASED_MD5["autoencoder"]


def test_a_file_of_another_architecture_is_refused(converted, tmp_path):
    p, ref_ae, _, _, folder = converted
    state = {**ref_ae.state_dict(), "extra.weight": torch.zeros(2)}
    torch.save(state, tmp_path / "autoencoder.pth")
    with pytest.raises(ValueError, match=r"autoencoder\.pth: 1 parameters have no place"):
        convert_bundle(tmp_path / "autoencoder.pth", folder / "diffusion_model.pth", tmp_path / "out", profile=p,
                       check_md5=False)


def test_paper_size_parameters_all_find_their_place():
    """At the paper's real sizes (on the meta device: shapes only, no memory), every parameter of MONAI
    Generative's networks maps onto the paper profile's, and the counts are the bundle's."""
    from ldm.models.networks import build_autoencoder, build_unet, count_parameters
    from ldm.models.official import convert

    p = load_profile("paper")
    with torch.device("meta"):
        ref_ae, ref_unet = _reference_networks(p)
        ae, unet = build_autoencoder(p.autoencoder), build_unet(p.diffusion, p.autoencoder.latent_channels)
    assert count_parameters(ref_ae) == count_parameters(ae) == 13_766_248
    assert count_parameters(ref_unet) == count_parameters(unet) == 553_168_899
    convert(ae, ref_ae.state_dict(), "autoencoder.pth")  # raises if a parameter has no place
    convert(unet, ref_unet.state_dict(), "diffusion_model.pth")

