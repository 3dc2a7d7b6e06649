import dataclasses
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel.orientations import aff2axcodes

from ldm.config import load_profile
from ldm.data import cohort as cohort_lib
from ldm.data.template import load_template


@pytest.fixture(scope="module")
def tpl(smoke):
    return load_template(smoke.cohort.template_voxel_mm)


def test_template_ventricles_are_the_lateral_ventricles(tpl):
    ventricles_ml = tpl.ventricles.sum() * tpl.voxel_mm**3 / 1000
    assert 12 < ventricles_ml < 25  # the ICBM 2009a lateral ventricles (+ third): ~18 mL
    ijk = np.argwhere(tpl.ventricles > 0.5)
    mm = tpl.affine[:3, :3] @ ijk.T + tpl.affine[:3, 3:4]
    for sign in (-1, 1):  # one body in each hemisphere, near MNI (+-14, -15, 14)
        c = mm[:, np.sign(mm[0]) == sign].mean(1)
        assert 5 < sign * c[0] < 25 and abs(c[1] + 15) < 15 and 0 < c[2] < 30, c


def test_separable_interpolation_equals_map_coordinates():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    values = rng.standard_normal((7, 9, 5)).astype(np.float32)
    # irregular steps, points past both edges (clamped, as mode="nearest"), and the last node exactly
    axes = [np.sort(rng.uniform(-2, n + 1, 11)) for n in values.shape]
    axes[0][-1] = values.shape[0] - 1
    ours = cohort_lib.interpolate_separable(values, axes)
    points = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
    scipy = ndi.map_coordinates(values, points, order=1, mode="nearest").reshape(ours.shape)
    assert ours.dtype == np.float32 and ours.shape == (11, 11, 11)
    np.testing.assert_allclose(ours, scipy, rtol=0, atol=1e-6)


def test_a_smooth_field_on_a_grid_equals_the_field_at_its_points(tpl):
    field = cohort_lib.SmoothField(np.random.default_rng(0), [-90, -120, -70], [90, 90, 100], 12.0)
    points = tpl.affine[:3, :3] @ np.indices(tpl.shape).reshape(3, -1) + tpl.affine[:3, 3:4]
    np.testing.assert_allclose(field.on_grid(tpl.affine, tpl.shape), field(points).reshape(tpl.shape),
                               rtol=0, atol=1e-6)
    rotated = tpl.affine.copy()
    rotated[:3, :3] = tpl.affine[:3, :3] @ cohort_lib._rotation([0, 0, 10])
    with pytest.raises(ValueError, match="axis-aligned"):
        field.on_grid(rotated, tpl.shape)


def test_ventricle_dilation_controls_the_measured_volume(smoke, tpl):
    base = cohort_lib.sample_factors(0, 0, smoke.cohort)
    volumes = []
    for depth in (-2.0, 0.0, 3.0, 8.0):
        f = dataclasses.replace(base, ventricle_dilation_left_mm=depth, ventricle_dilation_right_mm=depth)
        img, masks = cohort_lib.synthesise(f, 0, 0, tpl)
        volumes.append(cohort_lib.measure_volumes(masks, img.affine, tpl))
    vent = [v["ventricular_volume"] for v in volumes]
    assert all(a < b for a, b in zip(vent, vent[1:])), vent
    assert vent[-1] > 3 * vent[1], "8 mm of dilation should more than triple the ventricles"
    assert volumes[-1]["brain_volume"] < volumes[1]["brain_volume"], "bigger ventricles displace tissue"


def test_recorded_volumes_equal_volumes_measured_from_the_masks(cohort_dir, tpl):
    participants = pd.read_csv(cohort_dir / "participants.tsv", sep="\t")
    icv_template = tpl.intracranial.sum(dtype=np.float64) * tpl.voxel_mm**3
    for row in participants.itertuples():
        maps = {}
        for name in cohort_lib.MASKS:
            img = nib.load(cohort_lib.mask_path(cohort_dir, row.participant_id, name))
            maps[name] = img.get_fdata(dtype=np.float64)
            voxel = abs(np.linalg.det(img.affine[:3, :3]))
        ventricles = maps["ventricles"].sum() * voxel
        brain = (maps["GM"].sum() + maps["WM"].sum()) * voxel * icv_template / (maps["intracranial"].sum() * voxel)
        # The NIfTI slope (1/255) is stored as float32: agreement to 1e-7, i.e. a fraction of a mm3.
        assert row.ventricular_volume == pytest.approx(ventricles, rel=1e-7, abs=0.01), row.participant_id
        assert row.brain_volume == pytest.approx(brain, rel=1e-7, abs=0.01), row.participant_id


def test_covariates_follow_the_papers_cohort_and_age_relations(smoke, tpl):
    cfg = load_profile("smoke", {"cohort.n_subjects": 48}).cohort
    rows = []
    for i in range(48):
        f = cohort_lib.sample_factors(cfg.seed, i, cfg)
        img, masks = cohort_lib.synthesise(f, cfg.seed, i, tpl)
        rows.append({"age": f.age, "male": f.sex == "M", **cohort_lib.measure_volumes(masks, img.affine, tpl)})
    df = pd.DataFrame(rows)
    assert df["age"].between(44, 82).all()
    assert 59 < df["age"].mean() < 68 and 5 < df["age"].std() < 10
    assert 0.25 < df["male"].mean() < 0.7
    # within the paper's UK Biobank ranges (fields 25004 and 25009)
    assert df["ventricular_volume"].between(6995.68, 171375.0).all()
    assert df["brain_volume"].between(1144240, 1793910).all()
    r_vent = np.corrcoef(df["age"], df["ventricular_volume"])[0, 1]
    r_brain = np.corrcoef(df["age"], df["brain_volume"])[0, 1]
    assert r_vent > 0.25, r_vent
    assert r_brain < -0.25, r_brain
    # and individual variation: age does not determine the volumes
    assert r_vent < 0.9 and r_brain > -0.9


def test_demographics_match_the_paper_over_many_draws(smoke, tpl):
    f = [cohort_lib.sample_factors(123, i, smoke.cohort) for i in range(1500)]
    ages = np.array([x.age for x in f])
    assert abs(ages.mean() - 63.6) < 1.0 and abs(ages.std() - 7.5) < 1.0  # truncation narrows it a little
    assert abs(np.mean([x.sex == "M" for x in f]) - 0.47) < 0.04


def test_a_subject_depends_only_on_its_seed_and_index(smoke, tpl):
    small = load_profile("smoke", {"cohort.n_subjects": 5}).cohort
    a = cohort_lib.sample_factors(small.seed, 3, small)
    b = cohort_lib.sample_factors(smoke.cohort.seed, 3, smoke.cohort)
    assert a == b
    img_a, _ = cohort_lib.synthesise(a, small.seed, 3, tpl)
    img_b, _ = cohort_lib.synthesise(b, smoke.cohort.seed, 3, tpl)
    np.testing.assert_array_equal(np.asanyarray(img_a.dataobj), np.asanyarray(img_b.dataobj))
    other = cohort_lib.sample_factors(smoke.cohort.seed + 1, 3, smoke.cohort)
    assert other != a


def test_bids_layout_with_varied_raw_scans(cohort_dir, smoke):
    participants = pd.read_csv(cohort_dir / "participants.tsv", sep="\t")
    assert list(participants.columns) == ["participant_id", "sex", "age", "ventricular_volume", "brain_volume", "split"]
    assert len(participants) == smoke.cohort.n_subjects
    assert set(participants["split"]) == {"train", "validation", "test"}
    codes, zooms, dtypes = set(), set(), set()
    for pid in participants["participant_id"]:
        img = nib.load(cohort_dir / pid / "anat" / f"{pid}_T1w.nii.gz")
        assert img.ndim == 3
        codes.add(aff2axcodes(img.affine))
        zooms.add(tuple(float(z) for z in img.header.get_zooms()))
        dtypes.add(img.get_data_dtype().name)
    assert len(codes) >= 3, "scans should come in several orientations"
    assert len(zooms) >= 2 and dtypes == {"int16", "float32"}
    gt = pd.read_csv(cohort_dir / "derivatives" / "groundtruth" / "groundtruth.tsv", sep="\t")
    rotations = np.array([json.loads(r) for r in gt["rotation_deg"]])
    assert np.abs(rotations).max() > 5, "heads should sit at different angles in the scanner"


def test_generation_resumes_without_rewriting(cohort_dir, smoke):
    files = sorted(cohort_dir.glob("sub-*/anat/*_T1w.nii.gz"))
    before = {f: f.stat().st_mtime_ns for f in files}
    cohort_lib.generate_cohort(cohort_dir, smoke.cohort, progress=False)
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_workers_do_not_change_the_subjects(tmp_path, cohort_dir, smoke):
    cfg = load_profile("smoke", {"cohort.n_subjects": 4}).cohort
    parallel = cohort_lib.generate_cohort(tmp_path, cfg, workers=2, progress=False)
    serial = pd.read_csv(cohort_dir / "participants.tsv", sep="\t").head(4)
    pd.testing.assert_frame_equal(parallel.drop(columns="split"), serial.drop(columns="split"))
    for pid in parallel["participant_id"]:
        a = nib.load(cohort_lib.t1w_path(tmp_path, pid)).get_fdata()
        b = nib.load(cohort_lib.t1w_path(cohort_dir, pid)).get_fdata()
        np.testing.assert_array_equal(a, b)
