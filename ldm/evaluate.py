"""Numbers the notebooks report about trained networks (reconstruction now; Table 1 metrics later)."""

from __future__ import annotations

import torch


@torch.no_grad()
def reconstruct(ae: torch.nn.Module, images: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Deterministic reconstructions: decode the latent mean (no sampling noise)."""
    ae.eval()
    return torch.cat([ae.decode(ae.encode(images[i:i + batch])[0]).clamp(0, 1) for i in range(0, len(images), batch)])


def reconstruction_metrics(images: torch.Tensor, recons: torch.Tensor, brain_threshold: float = 0.1) -> dict:
    """Mean absolute error over the whole volume and inside the head (voxels > threshold), and PSNR
    (data range 1), averaged over subjects."""
    x, y = images.flatten(1).double(), recons.flatten(1).double()
    err = (x - y).abs()
    inside = x > brain_threshold
    mse = ((x - y) ** 2).mean(1)
    return {
        "n": int(len(x)),
        "l1": float(err.mean()),
        "l1_inside_head": float(((err * inside).sum(1) / inside.sum(1).clamp(min=1)).mean()),
        "psnr_db": float((10 * torch.log10(1 / mse.clamp(min=1e-12))).mean()),
        "l1_per_subject_sd": float(err.mean(1).std()) if len(x) > 1 else float("nan"),
    }

