"""Brain age: the 3D CNN of Cole et al. 2017, trained on the training split, applied to generated brains.

The paper (Fig. 3, right) feeds its samples to Cole et al.'s brain-age network and reports r = 0.692
between the age a sample was conditioned on and the age predicted from it. That network's weights are not
public for these images, so the architecture is rebuilt here and trained on real training-split volumes:

    Cole, Poudel, Tsagkrasoulis et al. (2017) "Predicting brain age with deep learning from raw imaging
    data results in a reliable and heritable biomarker", NeuroImage 163:115-124. Five blocks of
    conv3x3x3-ReLU-conv3x3x3-BatchNorm-ReLU-maxpool2, channels 8 -> 128 doubling, then one linear
    output; trained on the mean absolute error.

Here the blocks' channels come from the profile (a smaller image takes fewer blocks), the target is age
standardised on the training split (mean and sd stored in the checkpoint), the learning rate decays
along a cosine, and the only augmentation is a left-right flip (age does not depend on the side). Its
MAE and r on the held-out test split say how far its predictions on samples can be trusted; the book
prints both beside the sample correlation.

    python -m ldm.train brain_age --profile demo --run-dir runs/demo
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import BrainAgeConfig, Profile
from ..runtime import default_device, module_device


class BrainAgeCNN(nn.Module):
    """Cole et al. 2017: [conv-ReLU-conv-BN-ReLU-maxpool] per entry of ``channels``, flatten, linear."""

    def __init__(self, channels: tuple[int, ...], shape: tuple[int, int, int]):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv3d(c_in, c, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Conv3d(c, c, 3, padding=1), nn.BatchNorm3d(c), nn.ReLU(inplace=True),
                       nn.MaxPool3d(2)]
            c_in = c
        self.features = nn.Sequential(*blocks)
        out = list(shape)
        for _ in channels:
            out = [s // 2 for s in out]  # MaxPool3d(2) floors
        self.head = nn.Linear(c_in * int(np.prod(out)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


def build_brain_age(cfg: BrainAgeConfig, shape: tuple[int, int, int]) -> BrainAgeCNN:
    return BrainAgeCNN(cfg.channels, shape)


def load_brain_age(ck: dict, profile: Profile, device: str | torch.device | None = None) -> BrainAgeCNN:
    """The brain-age network of a checkpoint, on ``device`` (default: ``default_device()``)."""
    model = build_brain_age(profile.brain_age, profile.data.shape)
    model.load_state_dict({k: v.float() for k, v in ck["model"].items()})
    model.age_mean, model.age_std = float(ck["age_mean"]), float(ck["age_std"])
    return model.to(device or default_device()).eval()


@torch.no_grad()
def predict_age(model: BrainAgeCNN, images: torch.Tensor | np.ndarray, batch: int = 16) -> np.ndarray:
    """Predicted age in years of volumes (N, 1, D, H, W) or (N, D, H, W) in [0, 1]."""
    model.eval()
    images = torch.as_tensor(images, dtype=torch.float32)
    images = images[:, None] if images.ndim == 4 else images
    device = module_device(model)
    pred = torch.cat([model(images[i:i + batch].to(device)).cpu() for i in range(0, len(images), batch)])
    return (pred * model.age_std + model.age_mean).numpy()
