"""Table 1's metrics (paper section 3): FID on Med3D features, MS-SSIM, 4-G-R-SSIM, and the diversity protocol.

Every function takes volumes in [0, 1] on the profile's grid, shaped (N, D, H, W) or (D, H, W).

- FID: Frechet distance between Gaussians fitted to Med3D (MedicalNet ResNet) features, as the paper and
  HA-GAN (Sun et al. 2022) compute it. Without MedicalNet weights a *fallback* extractor is used, a
  fixed-seed randomly initialised Med3D ResNet-10, whose name is printed beside every FID it gives:
  random features rank distributions but their values are not comparable with the paper's.
- MS-SSIM (Wang et al. 2003) in 3D by MONAI, with the profile's kernel and scale weights.
- 4-G-R-SSIM: gradient SSIM (Chen et al. 2006) with Li & Bovik's (2010) four-region weighting, in a
  multi-scale form (Rouse & Hemami 2008); see ``four_g_r_ssim``.
- Diversity (paper, Table 1): the mean of a metric over random pairs of distinct samples, with a 95% CI.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from monai.metrics.regression import compute_ms_ssim

from ..config import MetricsConfig
from ..models.perceptual import load_medicalnet, medicalnet_resnet
from ..runtime import default_device, module_device

# --- FID ----------------------------------------------------------------------------------------


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Dowson & Landau 1982), with the usual guard of
    pytorch-fid: a tiny diagonal offset when the product is singular, and the real part of sqrtm."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    with warnings.catch_warnings():
        # features that never fire (the random-init fallback network has some) or fewer samples than features
        # make S1 S2 singular: expected, and the value equals the exact low-rank form (tests/test_metrics.py),
        # so scipy's "Matrix is singular" would only clutter the book
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two sets of feature vectors (N, F) and (M, F)."""
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _fid_low_rank(a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """FID of a set of N feature vectors (N, F) against a fitted Gaussian, through the N x N matrix: with
    S_a = A A^T / (N - 1) (A the centred features, F x N), S_a S_b has the nonzero eigenvalues of
    A^T S_b A / (N - 1), which is symmetric and small, so Tr (S_a S_b)^(1/2) costs an N x N eigh, not
    an F x F sqrtm (equal to ``fid_from_features``: tests/test_metrics.py)."""
    a = np.asarray(a, dtype=np.float64)
    centred = a - a.mean(0)
    small = centred @ sigma_b @ centred.T / (len(a) - 1)
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0, None)).sum()
    diff = a.mean(0) - mu_b
    return float(max(diff @ diff + (centred**2).sum() / (len(a) - 1) + np.trace(sigma_b) - 2 * trace_sqrt, 0.0))


def fid_difference_interval(a: np.ndarray, b: np.ndarray, reference: np.ndarray, n_boot: int = 1000,
                            seed: int = 0) -> dict:
    """FID(a) - FID(b) against the same reference features, with a 95% percentile bootstrap interval:
    both sets resampled with replacement (the reference fixed), so the interval shows whether the
    ranking of two models could be sampling noise at this many samples. Resampling lowers the
    diversity of both sets alike, so the differences, not the FIDs, are bootstrapped."""
    mu, sigma = reference.mean(0), np.cov(reference, rowvar=False)
    rng = np.random.default_rng(seed)
    diffs = [_fid_low_rank(a[rng.integers(0, len(a), len(a))], mu, sigma)
             - _fid_low_rank(b[rng.integers(0, len(b), len(b))], mu, sigma) for _ in range(n_boot)]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"difference": _fid_low_rank(a, mu, sigma) - _fid_low_rank(b, mu, sigma),
            "ci95": (float(lo), float(hi)), "n_boot": n_boot}


@dataclass
class FeatureExtractor:
    """Pooled layer-4 features of a Med3D ResNet; ``name`` goes beside every number it produces."""

    net: torch.nn.Module
    name: str
    pretrained: bool

    def __post_init__(self):
        # channels-last 3D: measured 30% faster on a 2-core AMD EPYC, features equal to 2e-7
        self.net = self.net.to(memory_format=torch.channels_last_3d)

    @property
    def device(self) -> torch.device:
        return module_device(self.net)

    @torch.inference_mode()
    def __call__(self, volumes: np.ndarray | torch.Tensor, batch: int = 8) -> np.ndarray:
        x = torch.as_tensor(np.asarray(volumes), dtype=torch.float32)
        x = x[:, None] if x.ndim == 4 else x
        out = []
        for i in range(0, len(x), batch):
            v = x[i:i + batch].to(self.device)
            v = (v - v.mean(dim=(1, 2, 3, 4), keepdim=True)) / (v.std(dim=(1, 2, 3, 4), keepdim=True) + 1e-6)
            v = v.contiguous(memory_format=torch.channels_last_3d)
            out.append(self.net(v).double().cpu().numpy())  # z-scored per volume, as MedicalNet was trained
        return np.concatenate(out)


def feature_extractor(weights: str | Path = "", device: str | torch.device | None = None) -> FeatureExtractor:
    """Med3D with MedicalNet weights from ``weights`` (e.g. resnet_50_23dataset.pth), or the fallback; on
    ``device`` (default: ``default_device()``), features returned on the CPU."""
    device = device or default_device()
    if weights:
        net = load_medicalnet(weights, what="metrics.fid_weights").to(device)
        depth = 50 if hasattr(net.layer1[0], "conv3") else 10
        return FeatureExtractor(net, f"Med3D ResNet-{depth} ({Path(weights).name})", True)
    torch.manual_seed(0)  # the fallback's weights are drawn on the CPU: the same network on any device
    net = medicalnet_resnet(10).eval().requires_grad_(False).to(device)
    return FeatureExtractor(net, "FALLBACK random-init Med3D ResNet-10 (seed 0; no MedicalNet weights)", False)


# --- MS-SSIM ------------------------------------------------------------------------------------


def _batch(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    return t[None, None] if t.ndim == 3 else t[:, None] if t.ndim == 4 else t


def ms_ssim(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, cfg: MetricsConfig) -> np.ndarray:
    """3D MS-SSIM per pair (data range 1, Gaussian kernel and scale weights from the profile)."""
    return compute_ms_ssim(_batch(x), _batch(y), spatial_dims=3, data_range=1.0, kernel_size=cfg.ms_ssim_kernel_size,
                           kernel_sigma=cfg.ms_ssim_sigma, weights=list(cfg.ms_ssim_weights)).view(-1).numpy()


# --- 4-G-R-SSIM ---------------------------------------------------------------------------------

EDGE, SMOOTH = 0.12, 0.06  # Li & Bovik 2010: thresholds as fractions of the reference's maximum gradient
REGIONS = ("preserved_edge", "changed_edge", "smooth", "texture")


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """3D Sobel gradient magnitude of (B, 1, D, H, W) (replicate padding, so flat borders give 0): along
    each axis the central difference [-1, 0, 1], smoothed by [1, 2, 1] along the two others, over 16."""
    smooth, diff = (1.0, 2.0, 1.0), (-1.0, 0.0, 1.0)
    along_w, along_d = _filter_axis(x, smooth, 2), _filter_axis(x, smooth, 0)  # shared by two derivatives
    grads = (_filter_axis(_filter_axis(along_w, smooth, 1), diff, 0),
             _filter_axis(_filter_axis(along_d, smooth, 2), diff, 1),
             _filter_axis(_filter_axis(along_d, smooth, 1), diff, 2))
    return (sum(g.pow(2) for g in grads) / 256.0).sqrt()


def regions(g_ref: torch.Tensor, g_dist: torch.Tensor) -> dict[str, torch.Tensor]:
    """Li & Bovik's partition from the gradient magnitudes of the reference and the distorted volume:
    preserved edges (both above 0.12 max), changed edges (one above, one not), smooth (reference below
    0.06 max and distorted not an edge), texture (the rest). Thresholds from the reference's maximum."""
    gmax = g_ref.amax(dim=(1, 2, 3, 4), keepdim=True)
    th1, th2 = EDGE * gmax, SMOOTH * gmax
    preserved = (g_ref > th1) & (g_dist > th1)
    changed = ((g_ref > th1) & (g_dist <= th1)) | ((g_dist > th1) & (g_ref <= th1))
    smooth = (g_ref < th2) & (g_dist <= th1)
    texture = ~(preserved | changed | smooth)
    return dict(zip(REGIONS, (preserved, changed, smooth, texture)))


def _gaussian_filter(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    taps = tuple((g / g.sum()).tolist())
    for axis in range(3):
        x = _filter_axis(x, taps, axis)
    return x


def _filter_axis(x: torch.Tensor, taps: Sequence[float], axis: int) -> torch.Tensor:
    """Correlate (B, C, D, H, W) with the odd-length 1D ``taps`` along spatial ``axis`` (replicate padding)
    as a sum of shifted copies, accumulated in place. One-channel conv3d was the slow part of 4-G-R-SSIM on
    a CPU: 200 demo pairs took 16.1 s with it, 5.3 s now, same values to 1e-7 (2-core AMD EPYC);
    ``tests/test_metrics.py`` checks the filters against scipy.ndimage."""
    dim, n = 2 + axis, x.shape[2 + axis]
    padded = F.pad(x, _pad(axis, len(taps)), mode="replicate")
    out = None
    for k, w in enumerate(taps):
        if w and out is None:
            out = w * padded.narrow(dim, k, n)
        elif w:
            out.add_(padded.narrow(dim, k, n), alpha=w)
    return out


def _pad(axis: int, size: int) -> tuple[int, ...]:
    pad = [0] * 6  # (W lo, W hi, H lo, H hi, D lo, D hi)
    pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = size // 2
    return tuple(pad)


def gradient_ssim_map(x: torch.Tensor, y: torch.Tensor, size: int, sigma: float,
                      gx: torch.Tensor | None = None, gy: torch.Tensor | None = None) -> torch.Tensor:
    """Chen et al. 2006 (GSSIM): SSIM's luminance from the intensities, its contrast-structure term from
    the gradient magnitudes: l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1),
    cs = (2 cov(gx, gy) + C2) / (var gx + var gy + C2), with C1 = (0.01)^2, C2 = (0.03)^2 (data range 1).
    ``gx``, ``gy``: the gradient magnitudes, when the caller has them already."""
    c1, c2 = 0.01**2, 0.03**2
    gx = sobel_magnitude(x) if gx is None else gx
    gy = sobel_magnitude(y) if gy is None else gy
    # the seven local means in one filtering pass (the filter acts on each volume of the batch alone)
    means = _gaussian_filter(torch.cat([x, y, gx, gy, gx * gx, gy * gy, gx * gy]), size, sigma)
    mx, my, mgx, mgy, mgxx, mgyy, mgxy = means.chunk(7)
    lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    vx, vy, cov = mgxx - mgx**2, mgyy - mgy**2, mgxy - mgx * mgy
    return lum * (2 * cov + c2) / (vx + vy + c2)


def four_g_ssim(x: torch.Tensor, y: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """4-G-SSIM per pair: the GSSIM map averaged inside each of Li & Bovik's four regions, then the
    regions combined with equal weights (over the regions that are not empty). ``x`` is the reference."""
    gx, gy = sobel_magnitude(torch.cat([x, y])).chunk(2)
    smap = gradient_ssim_map(x, y, size, sigma, gx, gy)
    parts = regions(gx, gy)
    scores, present = [], []
    for mask in parts.values():
        m = mask.float()
        n = m.sum(dim=(1, 2, 3, 4))
        scores.append((smap * m).sum(dim=(1, 2, 3, 4)) / n.clamp(min=1))
        present.append((n > 0).float())
    s, p = torch.stack(scores, 1), torch.stack(present, 1)
    return (s * p).sum(1) / p.sum(1)


def four_g_r_ssim(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, cfg: MetricsConfig) -> np.ndarray:
    """4-G-R-SSIM per pair: 4-G-SSIM at scales 1, 1/2, 1/4, ... (2x average pooling; Rouse & Hemami 2008's
    multi-scale form), combined as prod_j max(s_j, 0)^w_j with the profile's MS-SSIM scale weights and
    kernel. 1 for identical volumes; falls as structure (especially at edges) is lost.

    References: G.-H. Chen, C.-L. Yang, S.-L. Xie, "Gradient-based structural similarity for image quality
    assessment", ICIP 2006. C. Li, A. C. Bovik, "Content-partitioned structural similarity index for image
    quality assessment", Signal Processing: Image Communication 25 (2010). D. M. Rouse, S. S. Hemami,
    "Analyzing the role of visual structure in the recognition of natural image content with multi-scale
    SSIM", SPIE Human Vision and Electronic Imaging XIII (2008)."""
    a, b = _batch(x), _batch(y)
    weights = torch.tensor(cfg.ms_ssim_weights, dtype=torch.float64)
    weights = weights / weights.sum()
    score = torch.ones(a.shape[0], dtype=torch.float64)
    for j, w in enumerate(weights):
        if j:
            a, b = F.avg_pool3d(a, 2), F.avg_pool3d(b, 2)
        s = four_g_ssim(a, b, cfg.ms_ssim_kernel_size, cfg.ms_ssim_sigma).double().clamp(min=0)
        score = score * s**w
    return score.numpy()


# --- the diversity protocol ---------------------------------------------------------------------


def random_pairs(n: int, n_pairs: int, seed: int = 0) -> np.ndarray:
    """``n_pairs`` pairs (i, j), i != j, drawn uniformly (distinct pairs while there are enough)."""
    if n < 2:
        raise ValueError("need at least two volumes for pairs")
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, k=1)  # all n (n - 1) / 2 pairs; 0.5 M for the paper's 1,000 samples
    pick = rng.choice(len(i), size=n_pairs, replace=n_pairs > len(i))
    return np.stack([i[pick], j[pick]], 1)


def pair_diversity(volumes: np.ndarray, metric: Callable[..., np.ndarray], n_pairs: int, seed: int = 0,
                   batch: int = 16, **kwargs) -> dict:
    """Mean of ``metric`` over random pairs of distinct volumes with a 95% CI (normal approximation)."""
    pairs = random_pairs(len(volumes), n_pairs, seed)
    values = np.concatenate([metric(volumes[pairs[k:k + batch, 0]], volumes[pairs[k:k + batch, 1]], **kwargs)
                             for k in range(0, len(pairs), batch)])
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "ci95": float(half), "n_pairs": int(len(values))}
