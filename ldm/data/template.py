"""The MNI152 2009 anatomy that nilearn ships in its wheel (no download), at any voxel size.

Used twice: as the registration target of preprocessing, and as the anatomy the embedded cohort
deforms. The images are the ICBM 2009a symmetric T1 template (skull-stripped), its grey- and white-matter
probability maps and brain mask, at 1 mm on a 197x233x189 grid. The lateral-ventricle mask is not
shipped; it is derived here once (see ``_ventricle_mask``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class Template:
    """MNI152 anatomy on a RAS grid. Arrays are float32, indexed [x, y, z]; ``affine`` maps voxels to mm."""

    voxel_mm: float
    affine: np.ndarray
    t1: np.ndarray  # intensities in [0, 1]
    gm: np.ndarray  # tissue probabilities
    wm: np.ndarray
    intracranial: np.ndarray  # the brain mask (tissue + sulcal and ventricular CSF)
    ventricles: np.ndarray  # soft lateral-ventricle mask (CSF probability inside the derived mask)
    depth_mm: np.ndarray  # depth inside brain tissue from the outer CSF / background (periventricular excluded)
    ventricle_normal: np.ndarray  # (3, ...) outward unit normal of the smoothed ventricle surface (RAS)
    ventricle_weight: np.ndarray  # 1 in and within 10 mm of the ventricles, 0 beyond 30 mm
    csf_intensity: float
    wm_intensity: float
    brain_centre: np.ndarray  # centroid of the intracranial mask (mm, MNI): the centre of head scaling

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1.shape

    @property
    def brain(self) -> np.ndarray:
        return self.gm + self.wm

    def world_to_voxel(self, points_mm: np.ndarray) -> np.ndarray:
        """(3, N) MNI mm -> (3, N) fractional voxel indices of this grid."""
        inv = np.linalg.inv(self.affine)
        return inv[:3, :3] @ points_mm + inv[:3, 3:4]


@functools.lru_cache(maxsize=1)
def _load_1mm() -> dict[str, np.ndarray]:
    from nilearn import datasets

    imgs = {
        "t1": datasets.load_mni152_template(resolution=1),
        "gm": datasets.load_mni152_gm_template(resolution=1),
        "wm": datasets.load_mni152_wm_template(resolution=1),
        "intracranial": datasets.load_mni152_brain_mask(resolution=1),
    }
    out = {k: np.asarray(v.get_fdata(), dtype=np.float32) for k, v in imgs.items()}
    out["affine"] = imgs["t1"].affine.copy()
    return out


def _ventricle_mask(gm: np.ndarray, wm: np.ndarray, brain_mask: np.ndarray) -> np.ndarray:
    """Lateral ventricles (with the third ventricle that joins them) as a soft mask at 1 mm.

    CSF probability is what the brain mask holds that grey and white matter do not. Its confident part
    (> 0.5) splits into one large component touching the brain surface (sulcal CSF and cisterns) and
    interior components; the lateral ventricles are the largest component that stays more than 3 mm
    inside the brain mask (17.8 mL in this template).
    """
    csf = np.clip(brain_mask - gm - wm, 0, 1)
    confident = csf > 0.5
    labels, n = ndi.label(confident)
    rim = (brain_mask > 0.5) & ~ndi.binary_erosion(brain_mask > 0.5, iterations=3)
    touching = set(np.unique(labels[rim]))
    sizes = ndi.sum(confident, labels, np.arange(1, n + 1))
    interior = [i + 1 for i in np.argsort(sizes)[::-1] if i + 1 not in touching]
    core = labels == interior[0]
    # Keep the partial-volume rim: CSF probability within 2 mm of the confident core.
    return (csf * ndi.binary_dilation(core, iterations=2)).astype(np.float32)


def _resample(vol: np.ndarray, factor: float, order: int = 1) -> np.ndarray:
    """Blur to the new voxel size (Gaussian with FWHM = new voxel) and sample a grid ``factor`` coarser."""
    if factor == 1:
        return vol.astype(np.float32)
    sigma = np.sqrt(factor**2 - 1) / 2.3548
    blurred = ndi.gaussian_filter(vol.astype(np.float32), sigma)
    shape = [int(np.floor((n - 1) / factor)) + 1 for n in vol.shape]
    grid = np.meshgrid(*[np.arange(s) * factor for s in shape], indexing="ij")
    return ndi.map_coordinates(blurred, grid, order=order, mode="nearest").astype(np.float32)


@functools.lru_cache(maxsize=8)
def load_template_t1(voxel_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Only the T1 template at ``voxel_mm`` (anti-aliased) and its affine: the registration target."""
    raw = _load_1mm()
    affine = raw["affine"].copy()
    affine[:3, :3] *= voxel_mm
    return _resample(raw["t1"], float(voxel_mm)), affine


@functools.lru_cache(maxsize=4)
def load_template(voxel_mm: float = 1.0) -> Template:
    """The MNI152 2009 anatomy at ``voxel_mm`` (>= 1), derived fields included. Cached per size."""
    if voxel_mm < 1:
        raise ValueError(f"voxel_mm={voxel_mm}: the shipped template is 1 mm; finer grids add nothing")
    raw = _load_1mm()
    gm, wm = raw["gm"], raw["wm"]
    mask = ndi.binary_fill_holes(raw["intracranial"] > 0.5).astype(np.float32)  # 6 stray holes in the shipped mask
    ventricles = _ventricle_mask(gm, wm, mask)
    factor = float(voxel_mm)
    affine_1mm = raw["affine"]
    affine = affine_1mm.copy()
    affine[:3, :3] *= factor
    t1, gm_r, wm_r, mask_r, vent_r = (_resample(a, factor) for a in (raw["t1"], gm, wm, mask, ventricles))

    # Derived fields are computed at the working resolution (at most 2 mm, for sub-voxel depth).
    work = min(factor, 2.0)
    tissue_w = _resample(gm + wm, work)
    vent_w = _resample(ventricles, work)
    vent_core = ndi.binary_dilation(vent_w > 0.5, iterations=max(1, round(3 / work)))
    # Depth inside tissue, measured from the outer CSF only: erosion (atrophy) then thins the cortex
    # and widens sulci without eating into the ventricles, whose enlargement is a separate control.
    depth = ndi.distance_transform_edt((tissue_w > 0.5) | vent_core, sampling=work).astype(np.float32)

    # Ventricle dilation field: the outward unit normal of the (smoothed) ventricle surface, and a
    # weight that is 1 in and within 10 mm of the ventricles and falls linearly to 0 at 30 mm. A cohort
    # subject's ventricles grow by flowing along the normal (``ldm.cohort``); the ramp is where the
    # displaced tissue is absorbed.
    vent_bin = vent_w > 0.5
    dist_out = ndi.distance_transform_edt(~vent_bin, sampling=work)
    dist_in = ndi.distance_transform_edt(vent_bin, sampling=work)
    sdf = ndi.gaussian_filter((dist_out - dist_in).astype(np.float32), 2.0 / work)
    grad = np.stack(np.gradient(sdf, work))
    normal = grad / np.maximum(np.linalg.norm(grad, axis=0), 1e-6)
    weight = ndi.gaussian_filter(np.clip(1 - (dist_out - 10.0) / 20.0, 0, 1).astype(np.float32), 2.0 / work)

    csf_intensity = float(np.median(raw["t1"][ventricles > 0.9]))
    wm_intensity = float(np.median(raw["t1"][wm > 0.9]))

    rescale = work / factor  # working grid -> template grid
    def to_grid(a):
        return a if rescale == 1 else _regrid(a, rescale, t1.shape)

    return Template(
        voxel_mm=factor,
        affine=affine,
        t1=t1,
        gm=gm_r,
        wm=wm_r,
        intracranial=mask_r,
        ventricles=vent_r,
        depth_mm=to_grid(depth),
        ventricle_normal=np.stack([to_grid(n) for n in normal]),
        ventricle_weight=to_grid(weight),
        csf_intensity=csf_intensity,
        wm_intensity=wm_intensity,
        brain_centre=affine[:3, :3] @ np.argwhere(mask_r > 0.5).mean(0) + affine[:3, 3],
    )


def _regrid(a: np.ndarray, ratio: float, shape) -> np.ndarray:
    """Sample a smooth field onto a grid of ``shape`` whose voxels are ``1 / ratio`` of the field's voxels."""
    grid = np.meshgrid(*[np.arange(s) / ratio for s in shape], indexing="ij")
    return ndi.map_coordinates(a, grid, order=1, mode="nearest").astype(np.float32)
