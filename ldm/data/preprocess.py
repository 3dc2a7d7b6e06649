"""Preprocessing (paper 2.1): raw T1w scans -> MNI-aligned volumes of the profile's shape, in [0, 1].

Per scan: reorient to RAS; rigid registration to the MNI152 2009 template (SimpleITK: Mattes mutual
information or correlation, as the profile says; multi-resolution, regular-step gradient descent); then
*one* resampling onto the profile's target grid (its voxel size and crop/pad box in MNI space), with
Gaussian anti-aliasing when the target voxels are coarser than the scan's; intensities mapped to [0, 1]
by robust percentiles.
Resampling once, instead of resample-then-register-then-crop, interpolates the image once.

The paper used UniRes for this step (rigid registration to MNI, 1 mm, crop to 160x224x160); UniRes
also super-resolves, which we do not. ``preprocess_cohort`` writes NIfTI files plus a manifest, skips
subjects already done with the same settings, and records a failure on one subject without losing
the others.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..config import DataConfig, PreprocessingConfig, Profile, config_fingerprint
from ..io import DataError, OutputError, atomic_path, atomic_write_table, read_image, write_nifti
from .grid import target_grid
from .parallel import imap
from .template import load_template_t1

log = logging.getLogger(__name__)

LPS = np.diag([-1.0, -1.0, 1.0])  # NIfTI world is RAS, ITK physical space is LPS


def to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A float32 SimpleITK image with the same voxels in the same place as (data [x,y,z], RAS affine)."""
    m = LPS @ affine[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    direction = m / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise DataError("the voxel-to-world affine has shear; resample the image to an orthogonal grid first")
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, np.float32).transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(d) for d in direction.ravel()])
    img.SetOrigin([float(o) for o in LPS @ affine[:3, 3]])
    return img


def from_sitk(img: sitk.Image) -> np.ndarray:
    """Voxel array indexed [x, y, z] (the transpose of SimpleITK's [z, y, x] view)."""
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0)


def _reference(affine: np.ndarray, shape) -> sitk.Image:
    return to_sitk(np.zeros(shape, np.float32), affine)


def _foreground_centre(img: sitk.Image) -> np.ndarray:
    """Physical centre of mass of the voxels brighter than 20% of the 99th percentile (not the noise)."""
    arr = sitk.GetArrayViewFromImage(img)
    fg = np.argwhere(arr > 0.2 * np.percentile(arr, 99))[:, ::-1].mean(0)  # back to (i, j, k)
    return np.asarray(img.TransformContinuousIndexToPhysicalPoint([float(x) for x in fg]))


def register_rigid(moving: sitk.Image, fixed: sitk.Image, iterations: int = 100, metric: str = "mattes_mi",
                   sampling: float = 0.25, min_step: float = 1e-3) -> sitk.Euler3DTransform:
    """Rigid transform mapping fixed (template) physical points to moving (scan) physical points.

    Initialised by matching foreground centres of mass; ``metric`` (Mattes MI with 32 bins, or
    correlation: ``preprocessing.registration_metric``) on a regular 25% sample; two resolution levels
    (x2 shrink with 2 mm smoothing, then full); gradient descent with steps scaled by the physical shift
    each parameter causes. ``sampling`` and ``min_step`` exist for ``benchmarks/bench_registration.py``;
    preprocessing uses the defaults.
    """
    scale = float(np.percentile(sitk.GetArrayViewFromImage(moving), 99))
    moving = sitk.Cast(sitk.Cast(moving, sitk.sitkFloat32) / scale, sitk.sitkFloat32)
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    init = sitk.Euler3DTransform()
    c_fixed = _foreground_centre(fixed)
    init.SetCenter([float(c) for c in c_fixed])
    init.SetTranslation([float(t) for t in _foreground_centre(moving) - c_fixed])

    reg = sitk.ImageRegistrationMethod()
    if metric == "mattes_mi":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    elif metric == "correlation":
        reg.SetMetricAsCorrelation()
    else:
        raise ValueError(f"unknown registration metric {metric!r} (expected 'mattes_mi' or 'correlation')")
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(sampling, 1234)  # fixed seed: the same scan registers the same way
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=min_step, numberOfIterations=iterations, relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    result = reg.Execute(fixed, moving)
    composite = sitk.CompositeTransform(result)
    return sitk.Euler3DTransform(composite.GetNthTransform(0))


def resample(
    img: sitk.Image, transform: sitk.Transform, affine: np.ndarray, shape, interpolation: str = "linear"
) -> np.ndarray:
    """Sample ``img`` on the (affine, shape) grid through ``transform``, anti-aliased if coarser."""
    target_spacing = float(np.linalg.norm(affine[:3, 0]))
    sigma = [math.sqrt(max(target_spacing**2 - s**2, 0.0)) / 2.3548 for s in img.GetSpacing()]
    if max(sigma) > 0.05:
        img = sitk.SmoothingRecursiveGaussian(img, sigma)
    interp = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}[interpolation]
    out = sitk.Resample(img, _reference(affine, shape), transform, interp, 0.0, sitk.sitkFloat32)
    return from_sitk(out)


def normalise_intensity(vol: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map the low percentile (of all voxels) to 0 and the high one (of the foreground) to 1, then clip.

    The foreground is the voxels brighter than 10% of the 99th percentile: percentiles, unlike the mean
    or the maximum, ignore a few hot voxels, and the background that fills most of the box drops out.
    """
    lo = float(np.percentile(vol, percentiles[0]))
    hi = float(np.percentile(vol[vol > 0.1 * np.percentile(vol, 99)], percentiles[1]))
    if hi <= lo:
        raise DataError(f"intensity range collapsed (low {lo}, high {hi})")
    return np.clip((vol - lo) / (hi - lo), 0, 1).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _fixed_template(voxel_mm: float) -> sitk.Image:
    t1, affine = load_template_t1(voxel_mm)
    return to_sitk(t1, affine)


@functools.lru_cache(maxsize=4)
def template_on_grid(data: DataConfig) -> np.ndarray:
    """The MNI152 T1 template on the profile's target grid (for QC and figures)."""
    affine, shape = target_grid(data)
    fixed = _fixed_template(max(1.0, data.voxel_size_mm / 2))
    return resample(fixed, sitk.Euler3DTransform(), affine, shape)


def preprocess_image(img: nib.Nifti1Image, data: DataConfig, prep: PreprocessingConfig) -> dict:
    """One scan -> dict(volume in [0,1] on the target grid, affine, transform, ncc with the template)."""
    canonical = nib.as_closest_canonical(img)  # reorient to RAS (lossless: flips and axis swaps)
    moving = to_sitk(np.asanyarray(canonical.dataobj, dtype=np.float32), canonical.affine)
    transform = register_rigid(moving, _fixed_template(prep.registration_voxel_mm), prep.registration_iterations,
                               metric=prep.registration_metric)
    affine, shape = target_grid(data)
    vol = normalise_intensity(resample(moving, transform, affine, shape, prep.interpolation),
                              data.intensity_percentiles)
    tpl = template_on_grid(data)
    mask = tpl > 0.05
    ncc = float(np.corrcoef(vol[mask], tpl[mask])[0, 1])
    return {"volume": vol, "affine": affine, "transform": transform, "ncc": ncc, "moving": moving}


def transform_parameters(t: sitk.Euler3DTransform) -> dict[str, float]:
    """Rotation (degrees, about x, y, z) and translation (mm, LPS) of a rigid transform."""
    ax, ay, az, tx, ty, tz = t.GetParameters()
    return {"rot_x_deg": math.degrees(ax), "rot_y_deg": math.degrees(ay), "rot_z_deg": math.degrees(az),
            "trans_x_mm": tx, "trans_y_mm": ty, "trans_z_mm": tz}


def _file_stamp(path: str | Path) -> str:
    """Size and modification time of an input: a scan replaced under the same name is redone."""
    try:
        st = Path(path).stat()
    except OSError:
        return "missing"
    return f"{st.st_size}-{st.st_mtime_ns}"


def _image_rel(pid: str) -> str:
    return f"images/{pid}_T1w.nii.gz"


def _label_rel(pid: str, name: str) -> str:
    return f"labels/{pid}_label-{name}.nii.gz"


def _preprocess_task(task: tuple[dict, str, Profile, tuple[str, ...], str]) -> dict:
    """Preprocess one subject and write its files; never raises: failures come back in the row."""
    subject, out, profile, label_columns, fingerprint = task
    out = Path(out)
    pid = subject["participant_id"]
    extra = {k: v for k, v in subject.items() if k not in ("participant_id", "image", *label_columns)}
    row = {"participant_id": pid, "status": "failed", "image": _image_rel(pid), "source": str(subject["image"]),
           "source_stamp": _file_stamp(subject["image"]), "settings": fingerprint, "error": "", **extra}
    t0 = time.perf_counter()
    try:
        res = preprocess_image(read_image(subject["image"]), profile.data, profile.preprocessing)
        for col in label_columns:
            lab = nib.as_closest_canonical(read_image(subject[col], what=f"{col} label map"))
            lab_img = to_sitk(np.asanyarray(lab.dataobj, dtype=np.float32), lab.affine)
            vol = np.clip(resample(lab_img, res["transform"], res["affine"], profile.data.shape), 0, 1)
            write_nifti(out / _label_rel(pid, col), vol, res["affine"], dtype=np.float32)
            row[f"label_{col}"] = _label_rel(pid, col)
        write_nifti(out / _image_rel(pid), res["volume"], res["affine"], dtype=np.float32)
        with atomic_path(out / "transforms" / f"{pid}.tfm") as tmp:
            sitk.WriteTransform(res["transform"], str(tmp))
        row.update(status="ok", ncc=res["ncc"], **transform_parameters(res["transform"]))
    except DataError as err:
        row["error"] = str(err)
        log.error("%s: %s", pid, err)
    except OutputError:  # a full or read-only output folder is not a bad subject: stop, keep what is done
        raise
    except Exception as err:  # one bad subject must not lose the others: record it and go on
        row["error"] = f"{subject['image']}: {type(err).__name__}: {err}"
        log.exception("%s failed", pid)
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def preprocess_cohort(
    cohort: pd.DataFrame,
    out_dir: str | Path,
    profile: Profile,
    label_columns: tuple[str, ...] = (),
    workers: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Preprocess every subject of a ``load_cohort`` table into ``out_dir``; return the manifest.

    Writes ``images/<id>_T1w.nii.gz``, ``transforms/<id>.tfm`` and ``manifest.tsv`` (one row per subject:
    status ok/failed, the error if any, seconds, NCC with the template, the rigid parameters, the
    covariates). ``label_columns`` name columns of ``cohort`` that hold probability maps on each scan's
    grid (e.g. ground-truth masks); they go through the same transform to ``labels/<id>_label-<name>.nii.gz``.
    A subject already in the manifest as ``ok`` with the same settings and files present is skipped.
    ``workers`` processes share the subjects.
    """
    out = Path(out_dir)
    manifest_path = out / "manifest.tsv"
    fingerprint = config_fingerprint(profile.data, profile.preprocessing)
    previous: dict[str, dict] = {}
    if manifest_path.is_file():
        prev = pd.read_csv(manifest_path, sep="\t", dtype={"participant_id": str})
        previous = {r["participant_id"]: r for r in prev.to_dict("records")}
    rows: dict[int, dict] = {}
    todo, todo_index = [], []
    for i, subject in enumerate(cohort.to_dict("records")):
        pid = subject["participant_id"]
        prev = previous.get(pid)
        outputs = [_image_rel(pid), *(_label_rel(pid, c) for c in label_columns)]
        if (prev is not None and prev.get("status") == "ok" and prev.get("settings") == fingerprint
                and str(prev.get("source")) == str(subject["image"])
                and str(prev.get("source_stamp")) == _file_stamp(subject["image"])
                and all((out / p).is_file() for p in outputs)):
            rows[i] = prev
        else:
            todo.append((subject, str(out), profile, tuple(label_columns), fingerprint))
            todo_index.append(i)
    for n, (k, row) in enumerate(imap(_preprocess_task, todo, workers, "preprocessing", progress), 1):
        rows[todo_index[k]] = row
        if n % 20 == 0:  # progress on disk: a killed run resumes from here
            atomic_write_table(pd.DataFrame([rows[i] for i in sorted(rows)]), manifest_path)
    rows = [rows[i] for i in sorted(rows)]
    manifest = pd.DataFrame(rows)
    atomic_write_table(manifest, manifest_path)
    failed = manifest[manifest["status"] != "ok"]
    if len(failed) and len(failed) == len(manifest):  # nothing to go on with: say why here, not as a later KeyError
        errors = failed["error"].str.split(": ", n=1).str[-1].value_counts()
        raise DataError(f"{manifest_path}: every one of the {len(manifest)} subjects failed; most often "
                        f"({errors.iloc[0]} of them): {errors.index[0]}; first: {failed['error'].iloc[0]}")
    if len(failed):
        log.warning("%d of %d subjects failed; see %s", len(failed), len(manifest), manifest_path)
    return manifest
