"""Shared fixtures: the smoke profile and one small embedded cohort, generated and preprocessed once."""

from __future__ import annotations

import logging

import pytest

from ldm import cohort as cohort_lib
from ldm.config import load_profile
from ldm.data import load_cohort
from ldm.preprocess import preprocess_cohort


@pytest.fixture(scope="session")
def smoke():
    return load_profile("smoke")


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory, smoke):
    root = tmp_path_factory.mktemp("cohort")
    cohort_lib.generate_cohort(root, smoke.cohort, progress=False)
    return root


@pytest.fixture(scope="session")
def preprocessed(tmp_path_factory, smoke, cohort_dir):
    out = tmp_path_factory.mktemp("preprocessed")
    table = cohort_lib.with_groundtruth(load_cohort(cohort_dir, smoke.data.covariates), cohort_dir)
    logging.getLogger("ldm").setLevel(logging.ERROR)
    manifest = preprocess_cohort(table, out, smoke, label_columns=cohort_lib.MASKS, progress=False)
    return out, manifest
