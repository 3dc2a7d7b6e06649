"""Finding a cohort on disk: a BIDS folder, or a folder of NIfTI files plus a CSV/TSV table; and reading a
preprocessed one back (its ``manifest.tsv``).

The result is a validated table with one row per subject: ``participant_id``, ``image`` (path), the
profile's covariates in natural units (sex as 0/1), their normalised values (``<name>_norm``), and
``split`` when the table has one. Every problem found is reported as one ``DataError`` naming the file,
the subject and the column; images are checked for readability later, one at a time, by preprocessing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from ..config import Covariate
from ..io import DataError, read_volumes
from .covariates import NORM_COLUMNS, parse_sex

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
SPLITS = ("train", "validation", "test")


def read_table(path: str | Path) -> pd.DataFrame:
    """A participants table (.tsv or .csv), every column read as text so nothing is guessed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: participants table not found")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as err:
        raise DataError(f"{path}: cannot read the participants table ({err})") from None


def validate_participants(
    table: pd.DataFrame, covariates: Sequence[Covariate], source: str | Path, id_column: str = "participant_id"
) -> pd.DataFrame:
    """Check ids and covariates; return natural values (floats, sex 0/1) and normalised ``<name>_norm``."""
    missing = [c for c in [id_column] + [cov.column for cov in covariates] if c not in table.columns]
    if missing:
        raise DataError(f"{source}: missing column {missing[0]!r} (columns present: {list(table.columns)})")
    ids = table[id_column].astype(str).str.strip()
    if (ids == "").any():
        row = int(np.flatnonzero(ids == "")[0]) + 2  # +1 header, +1 one-based
        raise DataError(f"{source}: line {row}: empty {id_column!r}")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataError(f"{source}: duplicate {id_column} {dup.iloc[0]!r}")
    out = pd.DataFrame({"participant_id": ids.values})
    for cov in covariates:
        values = []
        for pid, raw in zip(ids, table[cov.column]):
            where = f"{source}: subject {pid!r}, column {cov.column!r}"
            text = str(raw).strip()
            if text.lower() in ("", "n/a", "na", "nan", "none"):
                raise DataError(f"{where}: missing value")
            try:
                value = parse_sex(text) if cov.name == "sex" else float(text)
            except ValueError as err:
                reason = str(err) if cov.name == "sex" else f"not a number: {text!r}"
                raise DataError(f"{where}: {reason}") from None
            if not np.isfinite(value):
                raise DataError(f"{where}: not finite: {text!r}")
            if cov.name != "sex" and value < 0:
                raise DataError(f"{where}: negative {cov.name} {value} {cov.unit}")
            values.append(value)
        out[cov.name] = values
        out[f"{cov.name}_norm"] = (out[cov.name] - cov.min) / (cov.max - cov.min)
        outside = out.loc[(out[f"{cov.name}_norm"] < 0) | (out[f"{cov.name}_norm"] > 1), "participant_id"]
        if len(outside):
            log.warning("%s: %d subjects have %s outside the profile range [%g, %g] %s (e.g. %s); kept",
                        source, len(outside), cov.name, cov.min, cov.max, cov.unit, outside.iloc[0])
    if "split" in table.columns:
        split = table["split"].str.strip().values
        bad = [s for s in split if s not in SPLITS]
        if bad:
            raise DataError(f"{source}: column 'split': {bad[0]!r} is not one of {SPLITS}")
        out["split"] = split
    return out


def _bids_images(root: Path) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for sub in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        found = sorted(f for s in NIFTI_SUFFIXES for f in sub.glob(f"**/anat/*_T1w{s}"))
        if found:
            if len(found) > 1:
                log.warning("%s: %d T1w images, using %s", sub, len(found), found[0].name)
            images[sub.name] = found[0]
    return images


def _folder_images(folder: Path) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        for s in NIFTI_SUFFIXES:
            if f.name.endswith(s):
                images[f.name[: -len(s)]] = f
    return images


def load_cohort(
    path: str | Path,
    covariates: Sequence[Covariate],
    table: str | Path | None = None,
    id_column: str = "participant_id",
) -> pd.DataFrame:
    """Index a cohort: a BIDS folder (``sub-*/anat/*_T1w.nii[.gz]`` + ``participants.tsv``) or a folder of
    ``<id>.nii[.gz]`` with ``table`` (CSV/TSV). Every subject of the table must have an image and every
    image a row: a mismatch is an error that names the subject, not a silent drop.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: cohort folder not found")
    bids = table is None
    table_path = Path(table) if table is not None else path / "participants.tsv"
    images = _bids_images(path) if bids else _folder_images(path)
    if not images:
        pattern = "sub-*/anat/*_T1w.nii[.gz]" if bids else "<id>.nii[.gz]"
        raise DataError(f"{path}: no images found (expected {pattern})")
    df = validate_participants(read_table(table_path), covariates, table_path, id_column)
    listed = set(df["participant_id"])
    no_image = sorted(listed - set(images))
    if no_image:
        raise DataError(f"{table_path}: subject {no_image[0]!r} has no image in {path}"
                        f" ({len(no_image)} subjects without images)")
    no_row = sorted(set(images) - listed)
    if no_row:
        raise DataError(f"{images[no_row[0]]}: subject {no_row[0]!r} is not in {table_path}"
                        f" ({len(no_row)} images without a row)")
    df.insert(1, "image", [str(images[p]) for p in df["participant_id"]])
    return df


def load_preprocessed(out_dir: str | Path, status: str = "ok") -> pd.DataFrame:
    """The manifest of a preprocessed cohort, with image paths made absolute."""
    out = Path(out_dir)
    path = out / "manifest.tsv"
    if not path.is_file():
        raise DataError(f"{path}: no manifest; run preprocessing (notebook 01) first")
    df = pd.read_csv(path, sep="\t", dtype={"participant_id": str})
    df = df[df["status"] == status].copy() if status else df
    for col in [c for c in df.columns if c == "image" or c.startswith("label_")]:
        df[col] = [str(out / p) for p in df[col]]
    return df.reset_index(drop=True)


def volumes_and_covariates(manifest: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed volumes (N, 1, D, H, W) in [0, 1] and normalised covariates (N, 4) of a manifest: what the
    networks train on."""
    vols = read_volumes(manifest)
    covs = manifest[list(NORM_COLUMNS)].to_numpy(np.float32, copy=True)  # writable: torch shares it
    return torch.from_numpy(vols)[:, None], torch.from_numpy(covs)


def label_volume(path: str | Path) -> float:
    """Volume (mm3) of a probability map: its sum times the voxel volume. A rigid registration keeps
    volumes, so a label carried to MNI space should keep the volume it had on the scan's own grid."""
    img = nib.load(str(path))
    return float(np.asarray(img.dataobj, dtype=np.float64).sum() * abs(np.linalg.det(img.affine[:3, :3])))
