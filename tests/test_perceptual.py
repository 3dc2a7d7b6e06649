"""The perceptual term loads MedicalNet-format weights from a local file, or says clearly why not."""

import pytest
import torch
from monai.networks.nets import resnet10

from ldm.io import DataError
from ldm.models.perceptual import MedicalNetPerceptualLoss


@pytest.fixture()
def medicalnet_file(tmp_path):
    """A file laid out like MedicalNet's release: {'state_dict': {'module.<key>': tensor}}, plus its head."""
    torch.manual_seed(0)
    net = resnet10(spatial_dims=3, n_input_channels=1, shortcut_type="B", bias_downsample=False, feed_forward=False)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    state["module.conv_seg.0.weight"] = torch.zeros(2, 2, 1, 1, 1)  # segmentation head: ignored
    path = tmp_path / "resnet_10_23dataset.pth"
    torch.save({"state_dict": state}, path)
    return path


def test_loss_is_zero_on_identical_volumes_and_positive_otherwise(medicalnet_file):
    loss = MedicalNetPerceptualLoss(medicalnet_file)
    x = torch.rand(2, 1, 24, 24, 24)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    y = (x + 0.3 * torch.rand_like(x)).requires_grad_(True)
    value = loss(y, x)
    assert value.item() > 0
    value.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0, "the loss must train the autoencoder"
    assert all(not p.requires_grad for p in loss.net.parameters()), "the feature network stays frozen"


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.pth: MedicalNet weights not found .*perceptual_weights"):
        MedicalNetPerceptualLoss(tmp_path / "nope.pth")


def test_other_weights_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, path)
    with pytest.raises(DataError, match=r"other\.pth: not MedicalNet ResNet-10 weights"):
        MedicalNetPerceptualLoss(path)
    path.write_text("not a checkpoint")
    with pytest.raises(DataError, match=r"other\.pth: cannot read as a torch state dict"):
        MedicalNetPerceptualLoss(path)
