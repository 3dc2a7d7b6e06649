"""Reading and writing files safely.

Every reader turns a bad file into one ``DataError`` that names the file and what is wrong with it.
Every writer writes to a temporary name in the same folder and renames it into place, so a crash or a
kill never leaves a half-written file under the real name, and an earlier good file is only replaced
by a complete new one.
"""

from __future__ import annotations

import glob
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad input data: the message names the file (and the field or subject where there is one)."""


class OutputError(OSError):
    """A result could not be written (disk full, no permission, read-only folder): the message names the
    file; the file under its real name is as it was before (an earlier version stays whole)."""


_UMASK = os.umask(0)  # read the process umask (os.umask sets and returns it), then restore it
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix, suffix = _temporary_affixes(path)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a result file gets the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    except OutputError:  # from an inner atomic write: already says which file
        raise
    except OSError as err:
        raise OutputError(err.errno, f"{path}: cannot write: {err.strerror or err} (is {path.parent} full, "
                                     f"read-only or not yours?); any earlier {path.name} is unchanged") from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _temporary_affixes(path: Path) -> tuple[str, str]:
    """(prefix, suffix) of ``atomic_path``'s temporary names for ``path``: hidden, and with the full suffix
    (.nii.gz) kept so that libraries inferring the format from the name still work."""
    suffix = "".join(path.suffixes)
    return f".{path.name.removesuffix(suffix)}.", f".tmp{suffix}"


def leftover_temporaries(path: str | Path) -> list[Path]:
    """The temporary files ``atomic_path`` left beside ``path`` in processes killed while writing it
    (SIGKILL, power loss: no ``finally`` runs)."""
    path = Path(path)
    prefix, suffix = _temporary_affixes(path)
    return sorted(path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"))


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a table as TSV (or CSV for a .csv name), atomically."""
    sep = "," if str(path).endswith(".csv") else "\t"
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep=sep, index=False)


def write_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, dtype=None, scale: float | None = None) -> Path:
    """Write a NIfTI-1 image atomically, with qform and sform set to ``affine`` (scanner/MNI mm).

    ``scale`` stores ``data / scale`` as ``dtype`` with the NIfTI slope set, e.g. probabilities as uint8
    with slope 1/255 (nibabel applies the slope on reading).
    """
    arr = np.asarray(data)
    if scale is not None:
        arr = np.round(arr / scale)
    arr = arr.astype(dtype or arr.dtype)
    img = nib.Nifti1Image(arr, affine)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    if scale is not None:
        img.header.set_slope_inter(scale, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return Path(path)


def read_image(path: str | Path, what: str = "T1w image") -> nib.Nifti1Image:
    """Load a 3D NIfTI image as float32, checking everything that later steps assume.

    Accepted: .nii / .nii.gz, 3D or 4D with a single volume, any integer or float dtype, any orientation.
    Refused with a ``DataError`` naming the file: missing, unreadable or truncated files, files that are
    not NIfTI, 2D images, 4D images with several volumes, NaN/Inf voxels, constant (e.g. all-zero) images,
    and affines that are not invertible.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise DataError(f"{path}: {what}: not a NIfTI image (nibabel read it as {type(img).__name__})")
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except DataError:
        raise
    except Exception as err:  # nibabel raises many types for corrupt, truncated or foreign files
        raise DataError(f"{path}: {what}: cannot read as NIfTI ({type(err).__name__}: {err})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        extra = " (a 4D series: give one volume)" if data.ndim == 4 else ""
        raise DataError(f"{path}: {what}: expected a 3D image, got shape {data.shape}{extra}")
    if min(data.shape) < 2:
        raise DataError(f"{path}: {what}: expected a 3D image, got shape {data.shape} (a 2D slice?)")
    bad = int((~np.isfinite(data)).sum())
    if bad:
        raise DataError(f"{path}: {what}: {bad} voxels are NaN or Inf")
    if float(data.max()) == float(data.min()):
        raise DataError(f"{path}: {what}: every voxel equals {float(data.min())} (an empty image?)")
    affine = img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise DataError(f"{path}: {what}: the voxel-to-world affine is not invertible")
    out = nib.Nifti1Image(data, affine)
    out.header.set_xyzt_units("mm")
    return out


def read_volumes(table: pd.DataFrame) -> np.ndarray:
    """The volumes (N, D, H, W), float32, of a table's ``image`` column (e.g. a preprocessed manifest)."""
    return np.stack([np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in table["image"]])
