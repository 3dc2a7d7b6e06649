"""Cohort export: killed midway and resumed, it ends with every sample once, as an uninterrupted run."""

import os
import signal
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import random_pipeline, write_random_checkpoints

from ldm.config import load_profile
from ldm.sampling.export import export, gather, read_covariates

N = 120


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    profile = load_profile("smoke")
    write_random_checkpoints(profile, root / "models")
    rng = np.random.default_rng(0)
    pd.DataFrame({"sex": rng.choice(["F", "M"], N), "age": rng.uniform(45, 80, N),
                  "ventricular_volume": rng.uniform(10_000, 90_000, N),
                  "brain_volume": rng.uniform(1.2e6, 1.7e6, N)}).to_csv(root / "covariates.tsv", sep="\t", index=False)
    return root, profile


def _cli(root, out):
    return [sys.executable, "-m", "ldm.sample", "--profile", "smoke", "--weights", str(root / "models"),
            "--covariates", str(root / "covariates.tsv"), "--n", str(N), "--out", str(out), "--seed", "5",
            "--batch-size", "4"]


@pytest.mark.slow
def test_killed_export_resumes_without_gap_or_duplicate(setup):
    root, profile = setup
    out = root / "killed"
    # the export kills itself right after sample N // 4 is complete: a machine dying at a known point
    killed = subprocess.run(_cli(root, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
                            env={**os.environ, "LDM_KILL_AT": f"export:{N // 4}"})
    assert killed.returncode == -signal.SIGKILL
    made = len(list(out.glob("*.json")))
    assert made == N // 4 + 1
    with pytest.raises(RuntimeError, match="missing"):
        gather(out, N)
    subprocess.run(_cli(root, out), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    table = pd.read_csv(out / "participants.tsv", sep="\t")
    assert len(table) == N and table["participant_id"].is_unique and table["seed"].tolist() == list(range(5, 5 + N))
    assert len(list(out.glob("sub-*_T1w.nii.gz"))) == N
    assert not list(out.glob(".*tmp*")), "no half-written file left behind"
    # the same brains as one uninterrupted export (checked on a few)
    pipe = random_pipeline(profile)
    covs = read_covariates(root / "covariates.tsv", profile, N)
    ref = root / "reference"
    export(pipe, covs[:8], ref, seed=5, progress=False)
    for i in range(8):
        a = np.asarray(nib.load(out / f"sub-{i:06d}_T1w.nii.gz").dataobj)
        b = np.asarray(nib.load(ref / f"sub-{i:06d}_T1w.nii.gz").dataobj)
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.slow
def test_ranks_take_disjoint_samples(setup, tmp_path):
    _, profile = setup
    pipe = random_pipeline(profile)
    covs = read_covariates(setup[0] / "covariates.tsv", profile, 10)
    made = [export(pipe, covs, tmp_path, rank=r, world=3, progress=False) for r in range(3)]
    assert sorted(i for m in made for i in m) == list(range(10))
    assert len(gather(tmp_path, 10)) == 10
