from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from ldm.config import load_profile
from ldm.data.loading import load_preprocessed
from ldm.data.preprocess import (
    from_sitk,
    normalise_intensity,
    preprocess_cohort,
    preprocess_image,
    target_grid,
    to_sitk,
)
from ldm.data.template import load_template_t1
from ldm.io import DataError

LPS = np.diag([-1.0, -1.0, 1.0])


def moved_template(voxel_mm: float, rotation_deg, translation_mm, axcodes: str = "RAS"):
    """The MNI T1 template moved by a known rigid transform G (MNI RAS -> scanner RAS), on a scanner grid
    of ``voxel_mm`` stored with orientation ``axcodes``. Returns the NIfTI image and G as a 4x4 (RAS)."""
    t1, affine = load_template_t1(1.0)
    template = to_sitk(t1, affine)
    g = sitk.Euler3DTransform()
    g.SetCenter([0.0, 18.0, 6.0])  # LPS of MNI (0, -18, 6)
    g.SetRotation(*np.radians(rotation_deg))
    g.SetTranslation([float(t) for t in translation_mm])
    n = int(230 / voxel_mm)
    ref = sitk.Image([n, n, n], sitk.sitkFloat32)
    ref.SetSpacing([voxel_mm] * 3)
    ref.SetOrigin([-115.0, -115.0 + 18, -115.0 + 6])
    sigma = np.sqrt(max(voxel_mm**2 - 1, 0)) / 2.3548
    moved = sitk.Resample(sitk.SmoothingRecursiveGaussian(template, max(sigma, 0.01)), ref, g.GetInverse(),
                          sitk.sitkLinear, 0.0)
    data = from_sitk(moved) * 1000
    ras_affine = np.diag([-voxel_mm, -voxel_mm, voxel_mm, 1.0])  # the grid above, in RAS
    ras_affine[:3, 3] = LPS @ np.asarray(ref.GetOrigin())
    img = nib.Nifti1Image(data.astype(np.float32), ras_affine)
    img = img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(tuple(axcodes))))
    m = np.eye(4)
    m[:3, :3] = LPS @ np.asarray(g.GetMatrix()).reshape(3, 3) @ LPS
    m[:3, 3] = LPS @ np.asarray(g.TransformPoint([0.0, 0.0, 0.0]))
    return img, m


def rigid_errors(found: sitk.Euler3DTransform, truth: np.ndarray) -> tuple[float, float]:
    """(rotation error in degrees, max displacement error in mm over the brain) between two RAS rigids."""
    m = np.eye(4)
    m[:3, :3] = LPS @ np.asarray(found.GetMatrix()).reshape(3, 3) @ LPS
    m[:3, 3] = LPS @ np.asarray(found.TransformPoint([0.0, 0.0, 0.0]))
    rel = m[:3, :3].T @ truth[:3, :3]
    angle = np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
    t1, affine = load_template_t1(4.0)
    brain = (affine[:3, :3] @ np.argwhere(t1 > 0.3).T + affine[:3, 3:4])
    diff = (m[:3, :3] - truth[:3, :3]) @ brain + (m[:3, 3:4] - truth[:3, 3:4])
    return float(angle), float(np.linalg.norm(diff, axis=0).max())


@pytest.mark.parametrize(("axcodes", "metric"),
                         [("RAS", "mattes_mi"), ("PIL", "mattes_mi"), ("LPS", "mattes_mi"), ("PIL", "correlation")])
def test_registration_recovers_a_known_rigid_transform(axcodes, metric):
    demo = load_profile("demo", {"preprocessing.registration_metric": metric})
    img, truth = moved_template(2.0, rotation_deg=(8.0, -6.0, 10.0), translation_mm=(7.0, -5.0, 4.0), axcodes=axcodes)
    res = preprocess_image(img, demo.data, demo.preprocessing)
    angle, displacement = rigid_errors(res["transform"], truth)
    assert angle < 1.0, f"rotation off by {angle:.2f} degrees"
    assert displacement < 1.0, f"a brain point is off by {displacement:.2f} mm"
    assert res["ncc"] > 0.95


def test_paper_profile_output_is_160x224x160_at_1mm():
    paper = load_profile("paper")
    img, _ = moved_template(1.5, rotation_deg=(3.0, 0.0, -4.0), translation_mm=(2.0, 3.0, -1.0), axcodes="LAS")
    res = preprocess_image(img, paper.data, paper.preprocessing)
    assert res["volume"].shape == (160, 224, 160)
    np.testing.assert_allclose(np.abs(np.diag(res["affine"])[:3]), [1, 1, 1])
    assert 0 <= res["volume"].min() and res["volume"].max() <= 1
    assert res["ncc"] > 0.9


def test_to_sitk_matches_simpleitks_own_nifti_reader(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((7, 9, 5)).astype(np.float32)
    affine = np.array([[0, 0, -1.5, 40.0], [-1.2, 0, 0, 12.0], [0, 2.0, 0, -30.0], [0, 0, 0, 1]])  # PIL-like
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    ours, theirs = to_sitk(data, affine), sitk.ReadImage(str(path))
    np.testing.assert_allclose(ours.GetSpacing(), theirs.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(ours.GetOrigin(), theirs.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.GetDirection(), theirs.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))


def test_target_grid_is_centred_on_the_field_of_view():
    demo = load_profile("demo")
    affine, shape = target_grid(demo.data)
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2) + affine[:3, 3]
    np.testing.assert_allclose(centre, demo.data.fov_center_mm)


def test_intensity_normalisation_is_robust_to_outliers():
    rng = np.random.default_rng(1)
    vol = np.zeros((20, 20, 20), np.float32)
    vol[5:15, 5:15, 5:15] = rng.normal(100, 5, (10, 10, 10))
    vol[10, 10, 10] = 1e6  # one hot voxel must not squash the rest
    out = normalise_intensity(vol, (0.5, 99.5))
    assert out.min() == 0 and out.max() == 1
    assert np.median(out[5:15, 5:15, 5:15]) > 0.8


def test_cohort_preprocessing_outputs_and_manifest(preprocessed, smoke):
    out, manifest = preprocessed
    assert (manifest["status"] == "ok").all(), manifest["error"].tolist()
    assert manifest["ncc"].min() > 0.6
    pre = load_preprocessed(out)
    img = nib.load(pre["image"].iloc[0])
    assert img.shape == smoke.data.shape
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    vent = nib.load(pre["label_ventricles"].iloc[0]).get_fdata()
    assert vent.shape == smoke.data.shape and 0 <= vent.min() and vent.max() <= 1
    assert {"sex", "age", "ventricular_volume", "brain_volume", "split", "age_norm"} <= set(pre.columns)


def test_one_bad_subject_is_recorded_and_the_rest_kept(tmp_path, smoke, cohort_dir):
    import shutil

    from ldm.data.loading import load_cohort

    table = load_cohort(cohort_dir, smoke.data.covariates).head(4).copy()
    (tmp_path / "raw").mkdir()
    table["image"] = [shutil.copy(p, tmp_path / "raw" / Path(p).name) for p in table["image"]]  # ours to touch
    out = tmp_path / "pre"
    first = preprocess_cohort(table, out, smoke, progress=False)
    assert (first["status"] == "ok").all()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("images/*.nii.gz")}
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(open(table["image"].iloc[1], "rb").read()[:5000])  # truncated
    table.loc[1, "image"] = str(broken)
    second = preprocess_cohort(table, out, smoke, progress=False)
    bad = second.set_index("participant_id").loc[table["participant_id"].iloc[1]]
    assert bad["status"] == "failed" and "broken.nii.gz" in bad["error"] and "cannot read" in bad["error"]
    assert (second["status"] == "ok").sum() == 3
    # the good subjects were skipped, not redone, and their files are intact
    for path, mtime in kept.items():
        assert path.stat().st_mtime_ns == mtime
    assert pd.read_csv(out / "manifest.tsv", sep="\t")["status"].tolist().count("ok") == 3
    # a scan replaced under the same name is redone, not skipped
    import os

    good = table["image"].iloc[0]
    os.utime(good, ns=(os.stat(good).st_atime_ns, os.stat(good).st_mtime_ns + 10**9))
    third = preprocess_cohort(table, out, smoke, progress=False)
    redone = (out / "images" / f"{table['participant_id'].iloc[0]}_T1w.nii.gz").stat().st_mtime_ns
    assert redone != kept[out / "images" / f"{table['participant_id'].iloc[0]}_T1w.nii.gz"]
    assert (third["status"] == "ok").sum() == 3


def test_a_cohort_where_every_subject_fails_stops_with_the_reason(tmp_path, smoke, cohort_dir):
    from ldm.data.loading import load_cohort

    table = load_cohort(cohort_dir, smoke.data.covariates).head(2).copy()
    for i in range(2):
        flat = tmp_path / f"flat{i}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.float32), np.eye(4)), flat)
        table.loc[i, "image"] = str(flat)
    with pytest.raises(DataError, match=r"manifest\.tsv: every one of the 2 subjects failed; most often \(2 of them\): "
                                        r"T1w image: every voxel equals 0\.0 .*; first: .*flat0\.nii\.gz: T1w image"):
        preprocess_cohort(table, tmp_path / "pre", smoke, progress=False)
    kept = pd.read_csv(tmp_path / "pre" / "manifest.tsv", sep="\t")  # written before the error: nothing is lost
    assert kept["status"].tolist() == ["failed", "failed"]


def test_bad_image_gives_a_clear_error(tmp_path, smoke):
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.float32), np.eye(4)), path)
    from ldm.io import read_image

    with pytest.raises(DataError, match=r"empty\.nii\.gz: T1w image: every voxel equals 0"):
        preprocess_image(read_image(path), smoke.data, smoke.preprocessing)


def test_ventricle_volume_survives_preprocessing(preprocessed):
    """Rigid registration keeps volumes: the ventricle map carried to MNI space keeps its volume."""
    from ldm.data.loading import label_volume

    out, _ = preprocessed
    pre = load_preprocessed(out)
    mni = np.array([label_volume(p) for p in pre["label_ventricles"]])
    truth = pre["ventricular_volume"].to_numpy()
    assert np.corrcoef(mni, truth)[0, 1] > 0.97
    assert np.median(np.abs(mni / truth - 1)) < 0.05


def test_ldm_preprocess_makes_a_run_folder_the_notebooks_read(tmp_path):
    """``ldm preprocess`` (no figures) writes the same run folder as chapter 1: a manifest with every subject."""
    import subprocess
    import sys

    from ldm.config import load_profile
    from ldm.run import Run

    out = subprocess.run([sys.executable, "-m", "ldm", "preprocess", "--profile", "smoke", "--overrides",
                          '{"cohort.n_subjects": 4}', "--run-dir", str(tmp_path), "--workers", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "4 of 4 subjects preprocessed" in out.stdout
    manifest = Run.of(load_profile("smoke"), tmp_path).manifest()
    assert len(manifest) == 4 and manifest["label_ventricles"].notna().all()
