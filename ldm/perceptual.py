"""Perceptual loss on MedicalNet (Med3D) ResNet-10 features, loaded from a local file (never downloaded).

MedicalNet (Chen et al. 2019) is a 3D ResNet pretrained for segmentation on 23 medical datasets; its
``resnet_10_23dataset.pth`` holds a ``state_dict`` with ``module.``-prefixed keys that MONAI's ResNet-10
(shortcut B, no bias in the downsample) loads. The loss compares channel-normalised activations after
each residual stage (LPIPS-style, without learned weights): sum over stages of the mean squared
difference. Inputs are z-scored per volume first, as MedicalNet expects.
"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import resnet10

from .io import DataError


def load_medicalnet(path: str | Path) -> torch.nn.Module:
    """MONAI ResNet-10 with MedicalNet weights from ``path``; a clear error when the file does not fit."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MedicalNet weights not found (resnet_10_23dataset.pth from the MedicalNet "
                        "release); or set training.perceptual_weights to \"\" to train without a perceptual term")
    net = resnet10(spatial_dims=3, n_input_channels=1, shortcut_type="B", bias_downsample=False, feed_forward=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{path}: cannot read as a torch state dict ({type(err).__name__}: {err})") from None
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise DataError(f"{path}: not MedicalNet ResNet-10 weights "
                        f"(missing {missing[0]!r} and {len(missing) - 1} more)")
    bad = [k for k in expected if state[k].shape != expected[k].shape]
    if bad:
        raise DataError(f"{path}: {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, "
                        f"ResNet-10 needs {tuple(expected[bad[0]].shape)}")
    net.load_state_dict({k: state[k] for k in expected})
    return net.eval().requires_grad_(False)


class MedicalNetPerceptualLoss(torch.nn.Module):
    def __init__(self, weights: str | Path):
        super().__init__()
        self.net = load_medicalnet(weights)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - x.mean(dim=(1, 2, 3, 4), keepdim=True)) / (x.std(dim=(1, 2, 3, 4), keepdim=True) + 1e-6)
        n = self.net
        x = n.maxpool(n.act(n.bn1(n.conv1(x))))
        out = []
        for stage in (n.layer1, n.layer2, n.layer3, n.layer4):
            x = stage(x)
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        return sum(((a - b) ** 2).sum(1).mean() for a, b in zip(self.features(x), self.features(y)))
