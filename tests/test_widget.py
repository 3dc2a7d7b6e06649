"""The interactive sampler driven from Python, as a reader clicks it: generate, change, save."""

import nibabel as nib
import numpy as np
import pandas as pd
from conftest import random_pipeline

from ldm.book.widget import SamplerApp
from ldm.config import load_profile


def test_a_full_generate_and_save_cycle(tmp_path):
    profile = load_profile("smoke")
    app = SamplerApp(random_pipeline(profile), tmp_path / "out")
    assert app.save_button.disabled, "nothing to save before a sample exists"
    app.steps.value = 5
    app.sex.value = "M"
    app.sliders["age"].value = 70
    app.seed.value = 3
    app.generate_button.click()
    first = app.volume.copy()
    assert first.shape == profile.data.shape and np.isfinite(first).all()
    shown = app.figure.axes[2].images[0].get_array()  # the axial view at the slice slider
    np.testing.assert_allclose(shown, app.volume[:, :, app.slice.value].T)
    app.seed.value = 4
    app.generate_button.click()
    assert np.abs(app.volume - first).max() > 1e-4, "another seed, another brain"
    app.save_button.click()
    table = pd.read_csv(tmp_path / "out" / "samples.tsv", sep="\t")
    assert len(table) == 1 and table["seed"].iloc[0] == 4 and table["sex"].iloc[0] == 1
    assert abs(table["age"].iloc[0] - 70) < 1e-3 and table["guidance_scale"].iloc[0] == app.guidance.value
    saved = nib.load(tmp_path / "out" / table["file"].iloc[0])
    np.testing.assert_allclose(np.asarray(saved.dataobj), app.volume, atol=1e-6)
    app.slice.value = 2  # moving the slice redraws the same sample at that slice
    np.testing.assert_allclose(app.figure.axes[2].images[0].get_array(), app.volume[:, :, 2].T)


def test_sliders_reach_the_extrapolation_range_and_say_so():
    profile = load_profile("smoke")
    app = SamplerApp(random_pipeline(profile), "unused")
    vent = app.sliders["ventricular_volume"]
    cov = profile.data.covariates[2]
    vent.value = cov.min + 1.9 * (cov.max - cov.min)
    assert app.covariates()[0, 2].item() == np.float32(1.9) or abs(app.covariates()[0, 2].item() - 1.9) < 1e-4
    assert "ventricular volume 1.90 (extrapolated)" in app.normalised.value
