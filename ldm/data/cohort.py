"""The embedded cohort: raw-like T1w scans generated from nilearn's MNI152 anatomy, with ground truth.

No UK Biobank access is needed to run the book: each subject is the MNI152 2009 anatomy changed in the
ways that the paper's covariates describe, then "scanned":

1. Demographics and latent factors (``sample_factors``): age ~ N(63.6, 7.5) in [44, 82], 47% male
   (paper 2.1); a target ventricle volume and a cortical-atrophy depth that both grow with age and
   share part of their individual noise; a head size that depends on sex.
2. Anatomy, in template space: cortical atrophy erodes tissue from the outer CSF boundary by a depth
   that varies smoothly over the cortex (sulcal widening, thinner cortex); deep
   white-matter hypointensities, more of them with age; a grey/white contrast that varies.
3. Shape: one backward map composed of an anisotropic head-size scaling, two scales of random elastic
   warps, and a dilation of the lateral ventricles (a flow along their surface normal that pushes the
   tissue around them outwards).
4. Scan: a rigid head position in the scanner, a voxel size per axis and an orientation code per scan,
   a smooth multiplicative bias field, a gain, a gamma and Rician noise; int16 or float32 on disk.

All four stages are evaluated at the raw scan's own voxel centres, so the anatomy is interpolated once.
The ground truth is *measured*: the grey-matter, white-matter, ventricle and intracranial probability
maps go through the same map, are written next to the scan, and the recorded volumes are their sums.
Brain volume is normalised for head size as UK Biobank field 25009 is (SIENAX scaling to the template's
head size): brain volume x template intracranial volume / subject intracranial volume.

Each subject is a function of (seed, index) alone: the cohort's size never changes subject 7.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.orientations import axcodes2ornt
from scipy import ndimage as ndi

from ..config import CohortConfig
from ..io import atomic_write_table, atomic_write_text, write_nifti
from .loading import load_cohort
from .parallel import imap
from .template import Template, load_template

log = logging.getLogger(__name__)

AGE_RANGE = (44.0, 82.0)
AGE_MEAN, AGE_SD = 63.6, 7.5
P_MALE = 0.47
# Orientation codes seen in practice: axial RAS/LAS/LPS, sagittal 3D acquisitions (PIL, ASL), coronal.
ORIENTATIONS = ("RAS", "LAS", "LPS", "PIL", "ASL", "LIP")
FOV_MM = (200.0, 240.0, 210.0)  # scanner field of view around the head, in scanner axes (x, y, z)
# Median target ventricle volume: with head sizes below the template's, the *measured* median lands near
# 27 mL, about UK Biobank's median ventricular CSF (field 25004) over ages 44-82.
TARGET_VENTRICLES_ML = 36.0
# Lateral-ventricle volume of the template after a dilation of d mm, V(d) ~ 17.8 + 5.6 d + 0.6 d^2 mL:
# a quadratic fitted to volumes measured at d = -3..12 mm (8.8 mL at -3, 95.8 at 8, 154 at 12).
VENTRICLE_VOLUME_FIT = (17.8, 5.6, 0.6)
ATROPHY_MEDIAN_MM = 1.4
MASKS = ("GM", "WM", "ventricles", "intracranial")
GENERATOR_VERSION = 2  # bump when the generator changes: cohorts on disk from another version are redone


@dataclass(frozen=True)
class SubjectFactors:
    """Everything that defines one generated subject; recorded in ``derivatives/groundtruth``."""

    participant_id: str
    sex: str
    age: float
    ventricle_dilation_left_mm: float  # depth by which the left lateral ventricle grows (< 0: shrinks)
    ventricle_dilation_right_mm: float
    atrophy_mm: float  # mean depth of tissue eroded from the outer CSF boundary
    n_lesions: int
    contrast_shift: float  # added to T1 in proportion to grey matter
    head_scale: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    voxel_mm: tuple[float, float, float]
    orientation: str
    dtype: str
    gain: float
    gamma: float
    noise: float  # Rician noise sd relative to white-matter intensity


def dilation_for_volume(volume_ml: float) -> float:
    """Dilation depth (mm) that takes the template's lateral ventricles to about ``volume_ml``."""
    a0, a1, a2 = VENTRICLE_VOLUME_FIT
    disc = a1**2 - 4 * a2 * (a0 - volume_ml)
    return float((-a1 + np.sqrt(max(disc, 0.0))) / (2 * a2))


def subject_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def sample_factors(seed: int, index: int, cfg: CohortConfig) -> SubjectFactors:
    """Draw one subject's demographics, anatomy and scan settings from its own generator."""
    rng = subject_rng(seed, index)
    age = AGE_MEAN + AGE_SD * rng.standard_normal()
    while not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
        age = AGE_MEAN + AGE_SD * rng.standard_normal()
    male = bool(rng.random() < P_MALE)
    z = (age - AGE_MEAN) / AGE_SD
    shared = rng.standard_normal()  # individual "brain ageing" shared by ventricles and atrophy
    # Ventricle volume: log-normal, log-sd ~0.5 as in UK Biobank, r(age) ~0.45. Drawn as a target volume,
    # turned into a dilation depth of the template's ventricles; the volume that results is measured.
    log_vol = np.log(TARGET_VENTRICLES_ML) + 0.30 * z + 0.5 * (0.6 * shared + 0.8 * rng.standard_normal())
    # Bounded to 11-150 mL so that, after head size and warps, the cohort stays inside UK Biobank's
    # observed range (7.0-171.4 mL).
    depth = dilation_for_volume(float(np.clip(np.exp(log_vol), 11.0, 150.0)))
    d_left, d_right = depth + 0.4 * rng.standard_normal(2)  # left/right asymmetry
    # Cortical atrophy depth (mm): log-normal, so it never piles up at zero, growing with age; capped at
    # 3.2 mm, which keeps brain volume inside UK Biobank's range (field 25009: 1144-1794 mL).
    atrophy = min(3.2, ATROPHY_MEDIAN_MM * np.exp(0.3 * z + 0.35 * (0.6 * shared + 0.8 * rng.standard_normal())))
    n_lesions = int(rng.poisson(max(0.2, 1.5 + 2.0 * z)))
    contrast = float(rng.uniform(-0.03, 0.03) - 0.01 * z)
    head = 0.94 + 0.05 * male + 0.025 * rng.standard_normal() + 0.012 * rng.standard_normal(3)
    rot = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg, 3)
    trans = rng.uniform(-cfg.max_translation_mm, cfg.max_translation_mm, 3)
    if rng.random() < 0.5:
        vox = (float(rng.choice(cfg.raw_voxel_mm)),) * 3
    else:
        vox = tuple(float(v) for v in rng.choice(cfg.raw_voxel_mm, 3))
    return SubjectFactors(
        participant_id=f"sub-{index + 1:04d}",
        sex="M" if male else "F",
        age=round(float(age), 1),
        ventricle_dilation_left_mm=float(d_left),
        ventricle_dilation_right_mm=float(d_right),
        atrophy_mm=float(atrophy),
        n_lesions=n_lesions,
        contrast_shift=contrast,
        head_scale=tuple(float(h) for h in head),
        rotation_deg=tuple(float(r) for r in rot),
        translation_mm=tuple(float(t) for t in trans),
        voxel_mm=vox,
        orientation=str(rng.choice(ORIENTATIONS)),
        dtype=str(rng.choice(["int16", "float32"])),
        gain=float(rng.uniform(300, 1200)),
        gamma=float(rng.uniform(0.9, 1.1)),
        noise=float(rng.uniform(0.01, 0.03)),
    )


class SmoothField:
    """A random scalar field with unit sd and Gaussian smoothness ``sigma_mm`` over a box, evaluated anywhere.

    Held on a grid of spacing sigma / 2 and interpolated linearly: the field has no detail finer than
    sigma, so the linear pieces are invisible, and evaluation costs 8 look-ups a point.
    """

    def __init__(self, rng: np.random.Generator, lo_mm, hi_mm, sigma_mm: float):
        self.spacing = sigma_mm / 2.0
        self.origin = np.asarray(lo_mm, float) - 3 * sigma_mm
        shape = np.ceil((np.asarray(hi_mm, float) + 3 * sigma_mm - self.origin) / self.spacing).astype(int) + 1
        field = ndi.gaussian_filter(rng.standard_normal(tuple(shape)), 2.0, mode="wrap")
        self.values = (field / field.std()).astype(np.float32)

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        idx = (points_mm - self.origin[:, None]) / self.spacing
        return ndi.map_coordinates(self.values, idx, order=1, mode="nearest")

    def on_grid(self, affine: np.ndarray, shape) -> np.ndarray:
        """The field at every voxel of an axis-aligned grid (diagonal ``affine``), shaped ``shape``: the same
        values as ``__call__`` on the grid's points (to float32 rounding), in a sixth of the time."""
        if np.count_nonzero(affine[:3, :3] - np.diag(np.diag(affine[:3, :3]))):
            raise ValueError("on_grid needs an axis-aligned grid (a diagonal affine)")
        axes = [(affine[k, k] * np.arange(n) + affine[k, 3] - self.origin[k]) / self.spacing
                for k, n in enumerate(shape)]
        return interpolate_separable(self.values, axes)


def interpolate_separable(values: np.ndarray, axis_coords) -> np.ndarray:
    """Trilinear interpolation of ``values`` at every point of the product grid ``axis_coords`` (one array of
    voxel coordinates per axis), edges as ``map_coordinates(order=1, mode="nearest")``: the same numbers to
    float rounding (tests/test_cohort.py; the demo cohort: 1-ulp changes in 49 voxels of 32 of its 400 scans,
    masks and recorded volumes identical), but each axis is interpolated once, not once per output voxel:
    the demo cohort is made in 28% less time."""
    out = values.astype(np.float64)
    for axis, coords in enumerate(axis_coords):
        n = out.shape[axis]
        c = np.clip(np.asarray(coords, np.float64), 0, n - 1)
        lo = np.floor(c).astype(np.intp)
        frac = (c - lo).reshape([-1 if k == axis else 1 for k in range(out.ndim)])
        out = out.take(lo, axis) * (1 - frac) + out.take(np.minimum(lo + 1, n - 1), axis) * frac
    return out.astype(values.dtype)


def _rotation(deg) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def raw_grid(f: SubjectFactors, template: Template) -> tuple[np.ndarray, tuple[int, int, int], np.ndarray, np.ndarray]:
    """The scanner grid of one scan: (affine, shape, R, t) with scanner mm = R @ subject MNI mm + t."""
    R, t = _rotation(f.rotation_deg), np.asarray(f.translation_mm)
    ornt = axcodes2ornt(tuple(f.orientation))  # voxel axis i -> world axis ornt[i, 0], direction ornt[i, 1]
    vox = np.asarray(f.voxel_mm)
    shape = tuple(int(np.ceil(FOV_MM[int(ax)] / v)) for (ax, _), v in zip(ornt, vox))
    M = np.zeros((3, 3))
    for i, (ax, direction) in enumerate(ornt):
        M[int(ax), i] = direction * vox[i]
    centre = R @ template.brain_centre + t
    origin = centre - M @ ((np.asarray(shape) - 1) / 2)
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = M, origin
    return affine, shape, R, t


def _edited_anatomy(f: SubjectFactors, rng: np.random.Generator, tpl: Template) -> dict[str, np.ndarray]:
    """Atrophy, lesions and contrast applied in template space (before any deformation)."""
    shape = tpl.shape
    corners = np.stack(np.meshgrid(*[(0.0, n - 1.0) for n in shape], indexing="ij")).reshape(3, -1)
    corners_mm = tpl.affine[:3, :3] @ corners + tpl.affine[:3, 3:4]  # the grid's extremes are at its corners
    lo, hi = corners_mm.min(1), corners_mm.max(1)
    # Erosion depth varies over the cortex: a slow regional pattern and a faster, gyral-scale one.
    regional = SmoothField(rng, lo, hi, 25.0).on_grid(tpl.affine, shape)
    local = SmoothField(rng, lo, hi, 6.0).on_grid(tpl.affine, shape)
    depth_eroded = np.clip(f.atrophy_mm * (1 + 0.4 * regional) + 0.5 * local, 0, None)
    softness = max(0.35, 0.25 * tpl.voxel_mm)  # mm; keeps the new boundary a partial-volume edge
    keep = 1 / (1 + np.exp(-(tpl.depth_mm - depth_eroded) / softness))
    brain = tpl.gm + tpl.wm
    removed = brain * (1 - keep)
    gm, wm = tpl.gm * keep, tpl.wm * keep
    t1 = tpl.t1 + (tpl.csf_intensity - tpl.t1) * removed
    t1 = t1 + f.contrast_shift * gm
    if f.n_lesions:
        # Deep white-matter hypointensities (T1 "black holes" of small-vessel disease), more with age.
        candidates = np.argwhere((tpl.wm > 0.9) & (tpl.depth_mm > 12))
        lesion = np.zeros(shape, np.float32)
        for c in candidates[rng.choice(len(candidates), f.n_lesions)]:
            radius = rng.uniform(1.5, 4.0) / tpl.voxel_mm  # voxels
            lo_i = np.maximum(c - int(3 * radius) - 1, 0)
            hi_i = np.minimum(c + int(3 * radius) + 2, shape)
            box = tuple(slice(a, b) for a, b in zip(lo_i, hi_i))
            d2 = sum((np.arange(a, b) - ci).reshape([-1 if j == k else 1 for k in range(3)]) ** 2
                     for j, (a, b, ci) in enumerate(zip(lo_i, hi_i, c)))
            lesion[box] = np.maximum(lesion[box], np.exp(-d2 / (2 * radius**2)))
        t1 = t1 - 0.35 * (t1 - tpl.csf_intensity) * lesion * wm
    return {"t1": t1.astype(np.float32), "GM": gm, "WM": wm, "ventricles": tpl.ventricles,
            "intracranial": tpl.intracranial}


def _grid_points(affine: np.ndarray, shape) -> np.ndarray:
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return affine[:3, :3] @ ijk + affine[:3, 3:4]


def synthesise(f: SubjectFactors, seed: int, index: int, tpl: Template) -> tuple[nib.Nifti1Image, dict]:
    """One raw-like scan and its ground-truth probability maps (same grid), from its factors."""
    rng = subject_rng(seed, index)
    rng.bit_generator.advance(1000)  # independent of the draws made by sample_factors
    anatomy = _edited_anatomy(f, rng, tpl)
    affine, shape, R, t = raw_grid(f, tpl)

    # The smooth parts of the map (head size, elastic warps, ventricle scaling, bias field) are computed
    # on a coarse copy of the scan grid (~6 mm) and interpolated linearly: they have no finer detail, and
    # at 1 mm this is 200x fewer points. The anatomy itself is then sampled at every voxel.
    step = max(1, int(round(6.0 / min(f.voxel_mm))))
    coarse_shape = tuple((n - 1) // step + 2 for n in shape)
    scanner_mm = _grid_points(affine @ np.diag([step, step, step, 1.0]), coarse_shape)
    y = R.T @ (scanner_mm - t[:, None])  # subject (MNI-aligned) mm
    lo, hi = y.min(1), y.max(1)
    centre = tpl.brain_centre[:, None]
    u = centre + (y - centre) / np.asarray(f.head_scale)[:, None]  # head size
    for sigma, amplitude in ((30.0, 4.0), (12.0, 1.5)):  # random elastic warps, two scales
        u = u + amplitude * np.stack([SmoothField(rng, lo, hi, sigma)(u) for _ in range(3)])
    # Ventricular enlargement as a flow: in small steps, each point moves against the outward normal of
    # the ventricle surface, read where the point now is, so the ventricles grow (or shrink, for a
    # negative dilation) by about the dilation depth all round, like ballooning in ageing, and the
    # tissue around them is pushed out. Points near the medial axis oscillate across it and stay in CSF.
    x = u
    n_steps = max(4, int(np.ceil(max(abs(f.ventricle_dilation_left_mm), abs(f.ventricle_dilation_right_mm)) / 0.5)))
    for _ in range(n_steps):
        vox = tpl.world_to_voxel(x)
        w = ndi.map_coordinates(tpl.ventricle_weight, vox, order=1, mode="constant")
        normal = np.stack([ndi.map_coordinates(n, vox, order=1, mode="constant") for n in tpl.ventricle_normal])
        right = 0.5 * (1 + np.tanh(x[0] / 4.0))  # blend the two sides across the midline
        depth = f.ventricle_dilation_left_mm * (1 - right) + f.ventricle_dilation_right_mm * right
        x = x - (depth / n_steps) * w * normal
    bias = np.exp(0.12 * SmoothField(rng, scanner_mm.min(1), scanner_mm.max(1), 50.0)(scanner_mm))
    fine = [np.arange(n, dtype=np.float32) / step for n in shape]  # scan voxels in coarse-grid units, per axis

    def upsample(values: np.ndarray) -> np.ndarray:
        return interpolate_separable(values.reshape(coarse_shape).astype(np.float32), fine).reshape(-1)

    idx = tpl.world_to_voxel(np.stack([upsample(xd) for xd in x]).astype(np.float64))
    bias = upsample(bias).reshape(shape)

    def sample(vol: np.ndarray) -> np.ndarray:
        return ndi.map_coordinates(vol, idx, order=1, mode="constant", cval=0.0).reshape(shape)

    masks = {name: np.clip(sample(anatomy[name]), 0, 1) for name in MASKS}
    masks = {k: np.round(v * 255) / 255 for k, v in masks.items()}  # exactly what uint8 / 255 stores

    clean = np.clip(sample(anatomy["t1"]), 0, None) ** f.gamma * bias
    sd = f.noise * tpl.wm_intensity
    noisy = np.sqrt((clean + sd * rng.standard_normal(shape)) ** 2 + (sd * rng.standard_normal(shape)) ** 2)
    data = noisy * f.gain
    if f.dtype == "int16":
        data = np.clip(np.round(data), 0, 32767).astype(np.int16)
    else:
        data = data.astype(np.float32)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    return img, masks


def measure_volumes(masks: dict[str, np.ndarray], affine: np.ndarray, template: Template) -> dict[str, float]:
    """Volumes in mm3 from probability maps on a grid; brain volume also normalised for head size."""
    voxel = abs(np.linalg.det(affine[:3, :3]))
    vol = {k: float(v.sum(dtype=np.float64) * voxel) for k, v in masks.items()}
    brain = vol["GM"] + vol["WM"]
    icv_template = float(template.intracranial.sum(dtype=np.float64)) * template.voxel_mm**3
    return {
        "ventricular_volume": vol["ventricles"],
        "brain_volume": brain * icv_template / vol["intracranial"],
        "brain_volume_raw": brain,
        "intracranial_volume": vol["intracranial"],
        "gm_volume": vol["GM"],
        "wm_volume": vol["WM"],
    }


def assign_splits(n: int, fractions, seed: int) -> np.ndarray:
    """Exact-count random split into train / validation / test (at least one subject in each)."""
    counts = np.maximum(1, np.round(np.asarray(fractions) * n).astype(int))
    counts[0] = n - counts[1:].sum()
    labels = np.repeat(np.array(["train", "validation", "test"]), counts)
    return np.random.default_rng([seed, 10**6]).permutation(labels)


def mask_path(root: Path, participant_id: str, name: str) -> Path:
    folder = root / "derivatives" / "groundtruth" / participant_id / "anat"
    return folder / f"{participant_id}_label-{name}_probseg.nii.gz"


def t1w_path(root: Path, participant_id: str) -> Path:
    return root / participant_id / "anat" / f"{participant_id}_T1w.nii.gz"


def _factor_record(f: SubjectFactors) -> dict:
    record = {k: (json.dumps(v) if isinstance(v, tuple) else v) for k, v in asdict(f).items()}
    record["generator_version"] = GENERATOR_VERSION
    return record


def _subject_files(root: Path, participant_id: str) -> list[Path]:
    return [t1w_path(root, participant_id)] + [mask_path(root, participant_id, m) for m in MASKS]


def _make_subject(task: tuple[str, CohortConfig, int]) -> dict:
    """Synthesise, write and measure one subject (runs in a worker process)."""
    root, cfg, index = Path(task[0]), task[1], task[2]
    tpl = load_template(cfg.template_voxel_mm)
    f = sample_factors(cfg.seed, index, cfg)
    img, masks = synthesise(f, cfg.seed, index, tpl)
    for name, m in masks.items():
        write_nifti(mask_path(root, f.participant_id, name), m, img.affine, dtype=np.uint8, scale=1 / 255)
    write_nifti(t1w_path(root, f.participant_id), np.asanyarray(img.dataobj), img.affine)
    return {**_factor_record(f), **measure_volumes(masks, img.affine, tpl)}


def generate_cohort(root: str | Path, cfg: CohortConfig, workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """Write the embedded cohort as a BIDS folder; returns its ``participants.tsv`` table.

    Layout: ``sub-XXXX/anat/sub-XXXX_T1w.nii.gz``, ``participants.tsv`` (sex, age, ventricular_volume,
    brain_volume, split), ``derivatives/groundtruth/`` (probability maps on each scan's grid and
    ``groundtruth.tsv`` with every factor and volume). Subjects already written with the same factors
    are kept, so an interrupted run resumes; every file is written to a temporary name, then renamed.
    ``workers`` processes share the work; each subject depends only on (seed, index), not on them.
    """
    root = Path(root)
    gt_file = root / "derivatives" / "groundtruth" / "groundtruth.tsv"
    done = {}
    if gt_file.is_file():
        prev = pd.read_csv(gt_file, sep="\t", dtype={"participant_id": str})
        done = {r["participant_id"]: r for r in prev.to_dict("records")}
    records: dict[int, dict] = {}
    todo: list[tuple[str, CohortConfig, int]] = []
    for i in range(cfg.n_subjects):
        record = _factor_record(sample_factors(cfg.seed, i, cfg))
        prev = done.get(record["participant_id"])
        files = _subject_files(root, record["participant_id"])
        if prev is not None and all(p.is_file() for p in files) and _same_factors(prev, record):
            records[i] = prev
        else:
            todo.append((str(root), cfg, i))
    t0 = time.perf_counter()
    tasks = imap(_make_subject, todo, workers=workers, desc="generating cohort", progress=progress)
    for n, (k, record) in enumerate(tasks, 1):
        records[todo[k][2]] = record
        if n % 25 == 0:  # keep progress on disk: a killed run resumes from here
            atomic_write_table(pd.DataFrame([records[i] for i in sorted(records)]), gt_file)
    rows = [records[i] for i in range(cfg.n_subjects)]
    gt = pd.DataFrame(rows)
    gt["split"] = assign_splits(len(gt), cfg.split_fractions, cfg.seed)
    atomic_write_table(gt, gt_file)
    participants = pd.DataFrame(
        {
            "participant_id": gt["participant_id"],
            "sex": gt["sex"],
            "age": gt["age"],
            "ventricular_volume": gt["ventricular_volume"].round(2),
            "brain_volume": gt["brain_volume"].round(2),
            "split": gt["split"],
        }
    )
    atomic_write_table(participants, root / "participants.tsv")
    atomic_write_text(root / "dataset_description.json", json.dumps(
        {"Name": "ldm embedded cohort (generated from nilearn's MNI152 2009 anatomy)",
         "BIDSVersion": "1.9.0", "DatasetType": "raw",
         "GeneratedBy": [{"Name": "ldm.cohort", "Description": f"seed={cfg.seed}"}]}, indent=2))
    atomic_write_text(root / "participants.json", json.dumps(PARTICIPANTS_SIDECAR, indent=2))
    log.info("cohort: %d subjects made in %.1f s, %d kept, at %s", len(todo), time.perf_counter() - t0,
             len(rows) - len(todo), root)
    return participants


def _same_factors(prev: pd.Series, record: dict) -> bool:
    for k, v in record.items():
        p = prev.get(k)
        if isinstance(v, float):
            if p is None or not np.isclose(float(p), v, rtol=1e-9, atol=1e-12):
                return False
        elif str(p) != str(v):
            return False
    return True


PARTICIPANTS_SIDECAR = {
    "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
    "age": {"Description": "age at scan", "Units": "years"},
    "ventricular_volume": {
        "Description": "lateral-ventricle volume measured from the ground-truth probability map (cf. UKB 25004)",
        "Units": "mm3",
    },
    "brain_volume": {
        "Description": "grey + white matter volume normalised for head size (cf. UKB 25009)",
        "Units": "mm3",
    },
    "split": {"Description": "train / validation / test split of this cohort"},
}


def with_groundtruth(cohort: pd.DataFrame, root: str | Path, names: tuple[str, ...] = MASKS) -> pd.DataFrame:
    """Add one column per ground-truth map (paths) to a ``load_cohort`` table of the embedded cohort,
    so that preprocessing carries the maps through each scan's own transform."""
    out = cohort.copy()
    for name in names:
        out[name] = [str(mask_path(Path(root), pid, name)) for pid in out["participant_id"]]
    return out


def summarise(cohort: pd.DataFrame) -> pd.DataFrame:
    """Per-split summary in the paper's terms (n, age mean +- sd, % male, volume ranges), plus 'all'."""
    groups = [("all", cohort)] + ([(s, g) for s, g in cohort.groupby("split", sort=False)] if "split" in cohort else [])
    rows = []
    for name, g in groups:
        rows.append({
            "split": name,
            "n": len(g),
            "age (years)": f"{g['age'].mean():.1f} ± {g['age'].std():.1f}",
            "male (%)": f"{100 * g['sex'].mean():.0f}",
            "ventricles (mm3) min-max": f"{g['ventricular_volume'].min():.0f} - {g['ventricular_volume'].max():.0f}",
            "brain (mm3) min-max": f"{g['brain_volume'].min():.0f} - {g['brain_volume'].max():.0f}",
        })
    return pd.DataFrame(rows).set_index("split")


def cohort_for_run(profile, cohort_dir: str | Path, data_dir: str | Path = "", participants: str | Path = "",
                   workers: int = 1, progress: bool = True) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """(the cohort to preprocess, its label maps to carry to MNI space): the scans in ``data_dir`` (BIDS, or a
    folder of images with the ``participants`` table), or else the embedded cohort, generated (or resumed)
    in ``cohort_dir`` with its ground-truth ventricle maps, against which chapter 5 checks its measurement."""
    if data_dir:
        return load_cohort(data_dir, profile.data.covariates, table=participants or None), ()
    generate_cohort(cohort_dir, profile.cohort, workers=workers, progress=progress)
    return with_groundtruth(load_cohort(cohort_dir, profile.data.covariates), cohort_dir), ("ventricles",)
