"""Bad input: each case gives one clear error naming the file and the field (or subject)."""

import gzip
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ldm.data.loading import load_cohort
from ldm.io import DataError, read_image, write_nifti


def save(tmp_path, data, name="img.nii.gz", affine=None):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def volume(dtype=np.float32, shape=(12, 14, 10)):
    return (np.random.default_rng(0).random(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float64, np.float32])
def test_integer_and_float_images_load_as_float32(tmp_path, dtype):
    img = read_image(save(tmp_path, volume(dtype)))
    assert img.get_data_dtype() == np.float32 and img.shape == (12, 14, 10)


def test_4d_with_one_volume_is_accepted(tmp_path):
    assert read_image(save(tmp_path, volume()[..., None])).shape == (12, 14, 10)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p.write_bytes(gzip.compress(b"\x00" * 400)[:30]), r"bad\.nii\.gz: T1w image: cannot read as NIfTI"),
        (lambda p: p.write_text("subject,age\n1,60\n"), r"bad\.nii\.gz: T1w image: cannot read as NIfTI"),
        (lambda p: nib.save(nib.Nifti1Image(volume(shape=(12, 14)), np.eye(4)), p),
         r"expected a 3D image, got shape \(12, 14\)"),
        (lambda p: nib.save(nib.Nifti1Image(volume(shape=(12, 14, 1)), np.eye(4)), p), r"a 2D slice"),
        (lambda p: nib.save(nib.Nifti1Image(volume(shape=(12, 14, 10, 3)), np.eye(4)), p), r"4D series"),
        (lambda p: nib.save(nib.Nifti1Image(np.where(volume() > 50, np.nan, 1).astype(np.float32), np.eye(4)), p),
         r"voxels are NaN or Inf"),
        (lambda p: nib.save(nib.Nifti1Image(np.full((12, 14, 10), np.inf, np.float32), np.eye(4)), p),
         r"NaN or Inf"),
        (lambda p: nib.save(nib.Nifti1Image(np.zeros((12, 14, 10), np.float32), np.eye(4)), p),
         r"every voxel equals 0"),
    ],
    ids=["truncated-gz", "not-nifti", "2d", "2d-as-3d", "4d-series", "nan", "inf", "all-zero"],
)
def test_bad_images(tmp_path, make, match):
    path = tmp_path / "bad.nii.gz"
    make(path)
    with pytest.raises(DataError, match=match):
        read_image(path)


def test_truncated_nii_gz_from_a_real_scan(tmp_path):
    good = save(tmp_path, volume(), "good.nii.gz")
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.nii\.gz: T1w image: cannot read"):
        read_image(bad)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.nii\.gz: T1w image not found"):
        read_image(tmp_path / "nope.nii.gz")


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = write_nifti(tmp_path / "x.nii.gz", volume(), np.eye(4))
    before = path.read_bytes()

    def disk_full(img, filename):
        with open(filename, "wb") as f:
            f.write(b"half a header")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_nifti(path, volume() * 2, np.eye(4))
    assert path.read_bytes() == before, "the good file must survive a failed rewrite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"], "no temporary file left behind"


# --- cohort tables -------------------------------------------------------------------------------


@pytest.fixture()
def bids(tmp_path, cohort_dir):
    """A copy of the first 4 subjects of the embedded cohort, as a BIDS folder we can break."""
    root = tmp_path / "bids"
    table = pd.read_csv(cohort_dir / "participants.tsv", sep="\t").head(4)
    for pid in table["participant_id"]:
        shutil.copytree(cohort_dir / pid, root / pid)
    table.to_csv(root / "participants.tsv", sep="\t", index=False)
    return root, table


def rewrite(root, table):
    table.to_csv(root / "participants.tsv", sep="\t", index=False)


def test_bids_loads(bids, smoke):
    root, table = bids
    df = load_cohort(root, smoke.data.covariates)
    assert list(df["participant_id"]) == list(table["participant_id"])
    assert df["sex"].isin([0.0, 1.0]).all()
    np.testing.assert_allclose(df["age_norm"], (table["age"] - 44) / 38)


def test_folder_with_csv_loads(tmp_path, bids, smoke):
    root, table = bids
    folder = tmp_path / "flat"
    folder.mkdir()
    for pid in table["participant_id"]:
        shutil.copy(root / pid / "anat" / f"{pid}_T1w.nii.gz", folder / f"{pid}.nii.gz")
    csv = tmp_path / "covariates.csv"
    table.assign(sex=table["sex"].map({"F": "female", "M": "male"})).to_csv(csv, index=False)
    df = load_cohort(folder, smoke.data.covariates, table=csv)
    assert len(df) == 4 and df["image"].str.endswith(".nii.gz").all()


def test_missing_subject_image(bids, smoke):
    root, table = bids
    shutil.rmtree(root / table["participant_id"][2])
    with pytest.raises(DataError, match=rf"participants\.tsv: subject '{table['participant_id'][2]}' has no image"):
        load_cohort(root, smoke.data.covariates)


def test_extra_subject_without_a_row(bids, smoke):
    root, table = bids
    rewrite(root, table.drop(index=1))
    pid = table["participant_id"][1]
    with pytest.raises(DataError, match=rf"_T1w\.nii\.gz: subject '{pid}' is not in .*participants\.tsv"):
        load_cohort(root, smoke.data.covariates)


def test_duplicate_id(bids, smoke):
    root, table = bids
    rewrite(root, pd.concat([table, table.iloc[[0]]]))
    with pytest.raises(DataError, match=rf"participants\.tsv: duplicate participant_id '{table['participant_id'][0]}'"):
        load_cohort(root, smoke.data.covariates)


def test_missing_column(bids, smoke):
    root, table = bids
    rewrite(root, table.drop(columns="ventricular_volume"))
    with pytest.raises(DataError, match=r"participants\.tsv: missing column 'ventricular_volume'"):
        load_cohort(root, smoke.data.covariates)


@pytest.mark.parametrize(
    "column,value,match",
    [
        ("age", "sixty", r"column 'age': not a number: 'sixty'"),
        ("age", "", r"column 'age': missing value"),
        ("brain_volume", "n/a", r"column 'brain_volume': missing value"),
        ("ventricular_volume", "-5", r"column 'ventricular_volume': negative ventricular_volume"),
        ("age", "inf", r"column 'age': not finite"),
        ("sex", "X", r"column 'sex': sex must be F/M"),
    ],
)
def test_bad_covariate_values(bids, smoke, column, value, match):
    root, table = bids
    table = table.astype({column: object})
    table.loc[2, column] = value
    rewrite(root, table)
    with pytest.raises(DataError, match=rf"participants\.tsv: subject '{table['participant_id'][2]}', {match}"):
        load_cohort(root, smoke.data.covariates)


def test_out_of_range_covariate_is_kept_with_a_warning(bids, smoke, caplog):
    root, table = bids
    table.loc[0, "age"] = 90.0
    rewrite(root, table)
    df = load_cohort(root, smoke.data.covariates)
    assert df.loc[0, "age_norm"] == pytest.approx((90 - 44) / 38)
    assert "outside the profile range" in caplog.text


def test_bad_split_label(bids, smoke):
    root, table = bids
    table.loc[0, "split"] = "holdout"
    rewrite(root, table)
    with pytest.raises(DataError, match=r"column 'split': 'holdout'"):
        load_cohort(root, smoke.data.covariates)
