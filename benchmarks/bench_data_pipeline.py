"""Time the data pipeline per profile: template set-up, subject generation and preprocessing.

    .venv/bin/python benchmarks/bench_data_pipeline.py --profiles smoke demo paper --subjects 6

Writes ``benchmarks/results/data_pipeline.json`` (appending one record per run) with the machine,
library versions, date, and for each profile: seconds to build the template at the cohort's resolution,
seconds per generated subject, seconds per preprocessed subject (registration + resampling + writing,
one process), and the peak resident memory of this process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import nilearn
import numpy as np
import scipy
import SimpleITK as sitk

from ldm.config import load_profile
from ldm.data import cohort as cohort_lib
from ldm.data.preprocess import preprocess_image
from ldm.data.template import load_template
from ldm.io import read_image
from ldm.runtime import cpu_name

RESULTS = Path(__file__).resolve().parent / "results" / "data_pipeline.json"


def machine() -> dict:
    cpu = cpu_name("unknown")
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def bench(profile_name: str, n: int) -> dict:
    prof = load_profile(profile_name, {"cohort.n_subjects": max(n, 3)})
    t0 = time.perf_counter()
    tpl = load_template(prof.cohort.template_voxel_mm)
    template_s = time.perf_counter() - t0
    gen, prep, shapes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            t0 = time.perf_counter()
            record = cohort_lib._make_subject((tmp, prof.cohort, i))
            gen.append(time.perf_counter() - t0)
            path = cohort_lib.t1w_path(Path(tmp), record["participant_id"])
            shapes.append(nib.load(path).shape)
            t0 = time.perf_counter()
            res = preprocess_image(read_image(path), prof.data, prof.preprocessing)
            prep.append(time.perf_counter() - t0)
            assert res["volume"].shape == prof.data.shape
    # the first subject pays for caches (registration template, target grid): report the rest too
    return {
        "profile": profile_name,
        "subjects": n,
        "template_voxel_mm": prof.cohort.template_voxel_mm,
        "template_shape": list(tpl.shape),
        "template_setup_s": round(template_s, 2),
        "raw_scan_shapes": [list(s) for s in shapes],
        "generate_s_per_subject": round(float(np.mean(gen)), 3),
        "preprocess_s_per_subject": round(float(np.mean(prep[1:] if n > 1 else prep)), 3),
        "preprocess_first_subject_s": round(prep[0], 3),
        "output_shape": list(prof.data.shape),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", nargs="+", default=["smoke", "demo"])
    ap.add_argument("--subjects", type=int, default=6)
    args = ap.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # one core, as each worker process uses
    record = {
        "benchmark": "data_pipeline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "SimpleITK": sitk.Version_VersionString(),
                     "nibabel": nib.__version__, "nilearn": nilearn.__version__},
        "threads": "one process, SimpleITK single-threaded",
        "results": [bench(p, args.subjects) for p in args.profiles],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    history.append(record)
    RESULTS.write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
