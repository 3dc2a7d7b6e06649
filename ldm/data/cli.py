"""Preprocess a cohort from the command line (``ldm preprocess``): the embedded cohort, or your own scans.

    ldm preprocess --profile demo                                     # generate the embedded cohort, preprocess it
    ldm preprocess --profile paper --data-dir /data/my_bids --run-dir runs/mine
    ldm preprocess --profile paper --data-dir /data/scans --participants /data/covariates.csv --run-dir runs/mine

Writes ``<run>/preprocessed/`` (MNI-aligned volumes in [0, 1], ``manifest.tsv``, rigid transforms), what
chapter 1 (``notebooks/01_preprocessing.ipynb``) does without its figures. A rerun skips the subjects
already done with the same settings; a subject that fails is recorded in the manifest and the others go on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..config import load_profile
from ..run import Run
from . import cohort as cohort_lib
from .parallel import default_workers
from .preprocess import preprocess_cohort


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--overrides", default="{}", help='JSON, e.g. \'{"cohort.n_subjects": 50}\'')
    ap.add_argument("--run-dir", default="", help="default runs/<profile>")
    ap.add_argument("--data-dir", default="", help="a BIDS folder, or a folder of <id>.nii[.gz]; default: the "
                                                   "embedded cohort, generated in <run>/cohort")
    ap.add_argument("--participants", default="", help="for a plain folder: the CSV/TSV table of covariates")
    ap.add_argument("--workers", type=int, default=0, help="processes; 0: every core (at most 8)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    profile = load_profile(args.profile, json.loads(args.overrides))
    run = Run.of(profile, args.run_dir)
    workers = args.workers or default_workers()
    cohort, labels = cohort_lib.cohort_for_run(profile, run.cohort, args.data_dir, args.participants, workers)
    manifest = preprocess_cohort(cohort, run.preprocessed, profile, label_columns=labels, workers=workers)
    ok = manifest["status"] == "ok"
    print(f"{int(ok.sum())} of {len(manifest)} subjects preprocessed into {run.preprocessed} (manifest.tsv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
