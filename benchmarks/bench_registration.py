"""Rigid registration settings: time and agreement with a converged reference, on generated subjects.

    .venv/bin/python benchmarks/bench_registration.py --run-dir runs/demo --subjects 12

Why: in the demo book, registration is ~2.4 of the ~2.9 s each subject takes in chapter 1 (~9 of its
16 minutes). Cheaper settings save time only if they land where a careful registration does. For each
subject of the run's cohort (raw scans), every setting below registers the scan to the MNI template at
the profile's ``preprocessing.registration_voxel_mm`` with ``ldm.data.preprocess.register_rigid``, and is
compared with a reference: Mattes MI on every voxel (no sampling), 300 iterations, a 1e-4 minimum step.
Agreement is the distance between the two transforms' images of the template's brain voxels (mean over
voxels, then mean and worst over subjects). One process, one ITK thread (as each book worker runs).

The generated subjects also carry elastic warps and head scaling, which no rigid transform undoes, so
the distance to the cohort's own (rigid) head pose mixes registration error with those; the reference
comparison isolates the optimiser's error. Results: ``benchmarks/results/registration_settings.json``.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk
from common import RESULTS_DIR, append_record

from ldm.config import load_profile
from ldm.data import preprocess as P
from ldm.io import read_image
from ldm.runtime import cpu_name

REFERENCE = {"metric": "mattes_mi", "sampling": 1.0, "iterations": 300, "min_step": 1e-4}
SETTINGS = {  # name -> arguments of ldm.data.preprocess.register_rigid ({}: the shipped setting)
    "shipped (MI, 25% of voxels, 100 iterations)": {},
    "MI, 100 iterations, min step 1e-2": {"min_step": 1e-2},
    "MI, 50 iterations": {"iterations": 50},
    "MI, 10% of voxels": {"sampling": 0.10},
    "correlation, 25% of voxels": {"metric": "correlation"},
    "correlation, 10% of voxels": {"metric": "correlation", "sampling": 0.10},
}


def brain_points(fixed: sitk.Image, every: int = 7) -> list[list[float]]:
    """Physical points (LPS mm) of every ``every``-th template voxel brighter than 20% of its 99th percentile."""
    arr = P.from_sitk(fixed)
    idx = np.argwhere(arr > 0.2 * np.percentile(arr, 99))[::every]
    return [list(fixed.TransformContinuousIndexToPhysicalPoint([float(x) for x in i])) for i in idx]


def mapped(transform: sitk.Transform, points) -> np.ndarray:
    return np.array([transform.TransformPoint(p) for p in points])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/demo")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--subjects", type=int, default=12)
    args = ap.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    prof = load_profile(args.profile)
    fixed = P._fixed_template(prof.preprocessing.registration_voxel_mm)
    points = brain_points(fixed)
    cohort = Path(args.run_dir) / "cohort"
    ids = pd.read_csv(cohort / "participants.tsv", sep="\t")["participant_id"][: args.subjects]
    per = {name: {"seconds": [], "mean_mm": [], "max_mm": []} for name in SETTINGS}
    ref_seconds = []
    for pid in ids:
        img = nib.as_closest_canonical(read_image(cohort / pid / "anat" / f"{pid}_T1w.nii.gz"))
        moving = P.to_sitk(np.asanyarray(img.dataobj, dtype=np.float32), img.affine)
        t0 = time.perf_counter()
        ref = mapped(P.register_rigid(moving, fixed, **REFERENCE), points)
        ref_seconds.append(time.perf_counter() - t0)
        for name, kw in SETTINGS.items():
            t0 = time.perf_counter()
            est = mapped(P.register_rigid(moving, fixed, **kw), points)
            per[name]["seconds"].append(time.perf_counter() - t0)
            d = np.linalg.norm(est - ref, axis=1)
            per[name]["mean_mm"].append(float(d.mean()))
            per[name]["max_mm"].append(float(d.max()))
        print(pid, flush=True)
    rows = {name: {"seconds_per_subject": float(np.mean(v["seconds"])),
                   "distance_mm_mean": float(np.mean(v["mean_mm"])),
                   "distance_mm_worst_subject": float(np.max(v["mean_mm"])),
                   "distance_mm_max_voxel": float(np.max(v["max_mm"]))} for name, v in per.items()}
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": cpu_name(),
              "python": platform.python_version(), "simpleitk": sitk.Version.VersionString(),
              "profile": prof.name, "registration_voxel_mm": prof.preprocessing.registration_voxel_mm,
              "subjects": list(ids), "reference": REFERENCE,
              "reference_seconds_per_subject": float(np.mean(ref_seconds)), "settings": rows}
    append_record(RESULTS_DIR / "registration_settings.json", record)
    print(f"reference: {np.mean(ref_seconds):.2f} s/subject")
    for name, r in rows.items():
        print(f"{name:45s} {r['seconds_per_subject']:.2f} s  distance to reference: mean "
              f"{r['distance_mm_mean']:.2f} mm, worst subject {r['distance_mm_worst_subject']:.2f} mm, "
              f"worst voxel {r['distance_mm_max_voxel']:.2f} mm")


if __name__ == "__main__":
    main()
