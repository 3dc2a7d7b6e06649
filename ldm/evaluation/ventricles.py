"""Lateral-ventricle volume of an MNI-aligned T1w volume: an atlas prior plus an intensity threshold.

The paper measures ventricles with SynthSeg, which cannot be installed here. This measurement needs no
training and no download: the MNI152 ventricle mask (``ldm.template``), dilated by ``dilate_mm`` so that
enlarged ventricles stay inside, bounds where ventricles can be; inside it, a voxel is CSF when it is
darker than ``threshold`` times the median intensity of a shell of tissue around the region (the
periventricular white matter of that subject, so no global intensity scale is assumed). The voxel count
is then mapped to mm3 by a line fitted on training subjects' ground truth (``calibrate``), which absorbs
partial volume at coarse voxels. Agreement with ground truth on held-out subjects is reported by the
notebooks (r and mean absolute error); if SynthSeg's ``mri_synthseg`` is installed, notebooks can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import distance_transform_edt, map_coordinates

from ..config import DataConfig
from ..data.grid import target_grid
from ..data.template import load_template
from ..io import read_volumes


@dataclass(frozen=True)
class VentricleMeasure:
    region: np.ndarray  # bool, where ventricles may be (dilated template ventricles)
    shell: np.ndarray  # bool, the surrounding tissue whose median sets the threshold
    voxel_mm3: float
    threshold: float = 0.7
    slope: float = 1.0  # mm3 = slope * dark-voxel volume + intercept (calibrate)
    intercept: float = 0.0

    def dark_volume(self, volumes: np.ndarray) -> np.ndarray:
        """Volume (mm3) of voxels in the region darker than threshold x the shell's median, per volume."""
        v = np.asarray(volumes, dtype=np.float32)
        v = v[None] if v.ndim == 3 else v
        tissue = np.median(v[:, self.shell], axis=1)
        return (v[:, self.region] < self.threshold * tissue[:, None]).sum(1) * self.voxel_mm3

    def __call__(self, volumes: np.ndarray) -> np.ndarray:
        """Ventricular volume (mm3) per volume, calibrated."""
        return self.slope * self.dark_volume(volumes) + self.intercept


def ventricle_measure(data: DataConfig, dilate_mm: float = 12.0, shell_mm: float = 8.0,
                      threshold: float = 0.7) -> VentricleMeasure:
    """The uncalibrated measure on a profile's grid. Defaults chosen on the demo cohort's training split
    among dilations of 4, 8 and 12 mm (12 keeps the largest ventricles inside the region)."""
    affine, shape = target_grid(data)
    tpl = load_template(2.0)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    vox = (xyz - tpl.affine[:3, 3]) @ np.linalg.inv(tpl.affine[:3, :3]).T
    prior = map_coordinates(tpl.ventricles, vox.T, order=1).reshape(shape)
    spacing = np.abs(np.diag(affine[:3, :3]))
    distance = distance_transform_edt(prior < 0.3, sampling=spacing)
    region = distance <= dilate_mm
    shell = (distance > dilate_mm) & (distance <= dilate_mm + shell_mm)
    return VentricleMeasure(region, shell, float(np.prod(spacing)), threshold)


def calibrate(measure: VentricleMeasure, volumes: np.ndarray, truth_mm3: np.ndarray) -> VentricleMeasure:
    """The measure with a least-squares line from dark-voxel volume to ground truth (training subjects)."""
    slope, intercept = np.polyfit(measure.dark_volume(volumes), np.asarray(truth_mm3, dtype=np.float64), 1)
    return VentricleMeasure(measure.region, measure.shell, measure.voxel_mm3, measure.threshold,
                            float(slope), float(intercept))


def ventricle_agreement(measured: np.ndarray, truth: np.ndarray) -> dict:
    """Pearson r, mean absolute error (mL) and mean relative error between a measurement and the truth."""
    m, t = np.asarray(measured, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    return {"n": int(len(m)), "r": float(np.corrcoef(m, t)[0, 1]), "mae_ml": float(np.abs(m - t).mean() / 1000),
            "mean_relative_error": float((np.abs(m - t) / t).mean())}


def calibrated_measure(data: DataConfig, train: pd.DataFrame) -> VentricleMeasure:
    """The measure calibrated on a manifest's training rows (their volumes and ground-truth volumes)."""
    return calibrate(ventricle_measure(data), read_volumes(train), train["ventricular_volume"])
