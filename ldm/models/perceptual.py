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
from monai.networks.nets import resnet10, resnet50

from ..io import DataError


def medicalnet_resnet(depth: int = 10) -> torch.nn.Module:
    """MedicalNet's layout in MONAI: one input channel, shortcut B, no bias in the downsample, and global
    average pooling instead of the segmentation head (the output is the pooled layer-4 feature)."""
    make = {10: resnet10, 50: resnet50}[depth]
    return make(spatial_dims=3, n_input_channels=1, shortcut_type="B", bias_downsample=False, feed_forward=False)


def load_medicalnet(path: str | Path, depth: int | None = None, what: str = "training.perceptual_weights"
                    ) -> torch.nn.Module:
    """MONAI ResNet-10 or -50 with MedicalNet weights from ``path`` (depth read from the file unless
    given); a clear error, naming the file and the profile key, when it is missing or does not fit."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MedicalNet weights not found (resnet_10_23dataset.pth or resnet_50_23dataset.pth "
                        f"from the MedicalNet release); or set {what} to \"\" to use the documented fallback")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{path}: cannot read as a torch state dict ({type(err).__name__}: {err})") from None
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if depth is None:  # bottleneck blocks (conv3) mean ResNet-50
        depth = 50 if "layer1.0.conv3.weight" in state else 10
    net = medicalnet_resnet(depth)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected and not k.startswith("conv_seg")]
    if missing or extra:
        first = missing[0] if missing else extra[0]
        raise DataError(f"{path}: not MedicalNet ResNet-{depth} weights ({'missing' if missing else 'unexpected'} "
                        f"{first!r} and {len(missing) + len(extra) - 1} more)")
    bad = [k for k in expected if state[k].shape != expected[k].shape]
    if bad:
        raise DataError(f"{path}: {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, "
                        f"ResNet-{depth} needs {tuple(expected[bad[0]].shape)}")
    net.load_state_dict({k: state[k] for k in expected})
    return net.eval().requires_grad_(False)


class MedicalNetPerceptualLoss(torch.nn.Module):
    def __init__(self, weights: str | Path):
        super().__init__()
        self.net = load_medicalnet(weights, depth=10)

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
