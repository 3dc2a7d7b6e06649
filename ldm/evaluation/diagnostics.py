"""Numbers the notebooks report beside the headline ones: what preprocessing keeps, reconstruction error,
one row of Table 1 for a set of volumes, and the diagnostic sets that ask where a gap to real images
comes from (reconstructions, blur, white noise)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..config import DataConfig
from ..data.loading import label_volume
from ..io import read_volumes
from ..runtime import module_device


@torch.no_grad()
def reconstruct(ae: torch.nn.Module, images: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Deterministic reconstructions: decode the latent mean (no sampling noise). Computed on the device
    ``ae`` is on, returned on the CPU."""
    ae.eval()
    device = module_device(ae)
    return torch.cat([ae.decode(ae.encode(images[i:i + batch].to(device))[0]).clamp(0, 1).cpu()
                      for i in range(0, len(images), batch)])


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



def sample_set_metrics(volumes: np.ndarray, reference_features: np.ndarray, extractor, cfg, seed: int = 0,
                       features: np.ndarray | None = None) -> dict:
    """One row of Table 1 for a set of volumes (N, D, H, W): FID against the reference features, and
    the diversity of random pairs within the set by MS-SSIM and 4-G-R-SSIM (lower = more diverse).
    ``features``: the volumes' features from ``extractor``, when the caller has them already."""
    from .metrics import fid_from_features, four_g_r_ssim, ms_ssim, pair_diversity

    ms = pair_diversity(volumes, ms_ssim, cfg.n_pairs, seed=seed, cfg=cfg)
    gr = pair_diversity(volumes, four_g_r_ssim, cfg.n_pairs, seed=seed, cfg=cfg)
    features = extractor(volumes) if features is None else features
    return {"n": int(len(volumes)), "fid": fid_from_features(features, reference_features),
            "ms_ssim": ms["mean"], "ms_ssim_ci95": ms["ci95"], "4_g_r_ssim": gr["mean"], "4_g_r_ssim_ci95": gr["ci95"],
            "n_pairs": ms["n_pairs"], "feature_extractor": extractor.name}


def noise_sd(volumes: np.ndarray, threshold: float = 0.1) -> float:
    """The noise sd of volumes (N, D, H, W), by the wavelet MAD estimator (Donoho and Johnstone 1994):
    median |finest 3D Haar detail| / 0.6745 over the voxels inside the head (> ``threshold``), then the
    median over volumes. The all-axes detail band holds little anatomy, and the median ignores most of the
    edges that do reach it (measured: +9% on white noise over a test phantom's sharp edges); noise that
    resampling has smoothed loses some of its energy in that band, which makes the estimate err low."""
    sds = []
    for v in volumes:  # one volume at a time in float64, not a float64 copy of the whole set
        v = np.asarray(v, dtype=np.float64)[: v.shape[0] // 2 * 2, : v.shape[1] // 2 * 2, : v.shape[2] // 2 * 2]
        d = (v[0::2] - v[1::2]) / np.sqrt(2)  # orthonormal Haar steps keep white noise's sd
        d = (d[:, 0::2] - d[:, 1::2]) / np.sqrt(2)
        d = (d[:, :, 0::2] - d[:, :, 1::2]) / np.sqrt(2)
        inside = v[0::2, 0::2, 0::2] > threshold
        sds.append(np.median(np.abs(d[inside])) / 0.6745 if inside.any() else np.nan)
    return float(np.nanmedian(sds))


def add_white_noise(volumes: np.ndarray, sd: float, seed: int = 0) -> np.ndarray:
    """``volumes`` plus white Gaussian noise of ``sd`` (seeded), clipped back to the data range [0, 1]."""
    rng = np.random.default_rng(seed)
    noisy = volumes + sd * rng.standard_normal(volumes.shape)
    return np.clip(noisy, 0, 1).astype(np.float32)


def diagnostic_sets(ae: torch.nn.Module, real: np.ndarray, blur_voxels: float = 0.5, noise: float | None = None,
                    samples: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The volumes of chapter 4's diagnostic rows, for real volumes (N, D, H, W): their autoencoder
    reconstructions (the best an LDM sample can look: every sample is a decoded latent) and the same
    volumes blurred by a Gaussian of ``blur_voxels`` sd (how much the metrics react to losing fine texture).

    With ``noise`` (an sd, e.g. ``noise_sd`` of the training images), more sets: the real volumes, their
    reconstructions and each set in ``samples``, each with that much white noise added (``add_white_noise``, seed
    0: the same noise field for every set, so differences between sets are not noise draws). A decoder
    trained with an L1 loss returns a smooth estimate without the scanner's noise; these sets show how much
    of a FID is that missing texture, and whether noise alone makes real images score better (it should
    not)."""
    from scipy.ndimage import gaussian_filter

    recons = reconstruct(ae, torch.as_tensor(real, dtype=torch.float32)[:, None])[:, 0].numpy()
    blurred = np.stack([gaussian_filter(v, blur_voxels) for v in real])
    sets = {"Autoencoder reconstructions": recons, f"Real images blurred (sd {blur_voxels:g} voxel)": blurred}
    if noise is not None:
        for name, volumes in {"Real images": real, "Autoencoder reconstructions": recons, **(samples or {})}.items():
            sets[f"{name} + white noise (sd {noise:.3f})"] = add_white_noise(volumes, noise)
    return sets


def mean_image_correlation(volumes: np.ndarray, mean_image: np.ndarray) -> np.ndarray:
    """Pearson correlation of each volume with the cohort's mean image: a broken sample (holes, boxes,
    islands) falls below the range of real subjects. Used for the fraction of plausible samples."""
    v = np.asarray(volumes, dtype=np.float64).reshape(len(volumes), -1)
    m = np.asarray(mean_image, dtype=np.float64).ravel()
    v = v - v.mean(1, keepdims=True)
    m = m - m.mean()
    return (v @ m) / (np.linalg.norm(v, axis=1) * np.linalg.norm(m) + 1e-12)


def reconstruction_report(ae: torch.nn.Module, train: pd.DataFrame, test: pd.DataFrame, data: DataConfig
                          ) -> tuple[dict, np.ndarray, np.ndarray]:
    """Chapter 2's numbers on the held-out test split: reconstruction error (``reconstruction_metrics``) and
    whether the ventricles survive the autoencoder (the ventricle measure, calibrated on the training
    split, on reconstructions and on the real volumes against the ground truth). Returns (numbers, test
    volumes (N, D, H, W), their reconstructions)."""
    from .ventricles import calibrated_measure, ventricle_agreement

    test_images = torch.from_numpy(read_volumes(test))[:, None]
    recons = reconstruct(ae, test_images)
    metrics = reconstruction_metrics(test_images, recons)
    measure = calibrated_measure(data, train)
    real, recon = test_images[:, 0].numpy(), recons[:, 0].numpy()
    vent = ventricle_agreement(measure(recon), test["ventricular_volume"])
    metrics.update({"ventricle_r_reconstructions": vent["r"], "ventricle_mae_ml_reconstructions": vent["mae_ml"],
                    "ventricle_r_real": ventricle_agreement(measure(real), test["ventricular_volume"])["r"]})
    return metrics, real, recon


def ventricle_preservation(manifest: pd.DataFrame) -> dict:
    """How well preprocessing keeps the ventricles' volume: the ground-truth label map carried to MNI space
    (``label_volume``) against the volume measured on the raw scan."""
    mni = np.array([label_volume(p) for p in manifest["label_ventricles"]])
    truth = manifest["ventricular_volume"].to_numpy()
    rel = np.abs(mni / truth - 1)
    return {"n": int(len(mni)), "r": float(np.corrcoef(mni, truth)[0, 1]),
            "median_relative_difference": float(np.median(rel)), "max_relative_difference": float(rel.max())}
