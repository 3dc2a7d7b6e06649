"""The profile's output grid: where every preprocessed volume and every sample lies in MNI space.

Its own module so that sampling and measuring need no registration library (SimpleITK is only for
preprocessing)."""

from __future__ import annotations

import numpy as np

from ..config import DataConfig


def target_grid(data: DataConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    """RAS affine and shape of the profile's output grid: ``shape`` voxels centred on ``fov_center_mm``."""
    v = data.voxel_size_mm
    shape = tuple(int(s) for s in data.shape)
    affine = np.diag([v, v, v, 1.0])
    affine[:3, 3] = np.asarray(data.fov_center_mm) - v * (np.asarray(shape) - 1) / 2
    return affine, shape
