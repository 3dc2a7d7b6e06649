import math

import pytest
import yaml

from ldm.config import CONFIG_DIR, ConfigError, load_profile


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_profiles_load_and_keep_the_papers_field_of_view(name):
    p = load_profile(name)
    assert p.name == name
    fov = [s * p.data.voxel_size_mm for s in p.data.shape]
    assert fov == pytest.approx([160, 224, 160]), "every profile covers the paper's 160x224x160 mm box"
    assert [c.name for c in p.data.covariates] == ["sex", "age", "ventricular_volume", "brain_volume"]


def test_paper_profile_is_the_bundles_architecture():
    p = load_profile("paper")
    assert p.data.shape == (160, 224, 160) and p.data.voxel_size_mm == 1.0
    assert p.latent_shape == (20, 28, 20)
    assert p.autoencoder.channels == (64, 128, 128, 128) and p.autoencoder.latent_channels == 3
    assert p.diffusion.channels == (256, 512, 768)
    assert p.diffusion.num_head_channels == (0, 512, 768)
    assert p.scheduler.num_train_timesteps == 1000
    assert (p.scheduler.beta_start, p.scheduler.beta_end) == (0.0015, 0.0205)
    assert p.metrics.ms_ssim_kernel_size == 7 and math.isclose(sum(p.metrics.ms_ssim_weights), 1.0, abs_tol=1e-3)
    ranges = {c.name: (c.min, c.max) for c in p.data.covariates}
    assert ranges["age"] == (44, 82)
    assert ranges["ventricular_volume"] == (6995.68, 171375.0)
    assert ranges["brain_volume"] == (1144240, 1793910)


def _write_variant(tmp_path, edit):
    raw = yaml.safe_load((CONFIG_DIR / "smoke.yaml").read_text())
    edit(raw)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    path = _write_variant(tmp_path, lambda r: r["data"].update(voxel_sise_mm=2.0))
    with pytest.raises(ConfigError, match=r"variant\.yaml: unknown key 'data\.voxel_sise_mm'"):
        load_profile(path)


def test_wrong_type_is_an_error_naming_the_key(tmp_path):
    path = _write_variant(tmp_path, lambda r: r["data"].update(shape=[20, "28", 20]))
    with pytest.raises(ConfigError, match=r"data\.shape\[1\]: expected an integer, got '28'"):
        load_profile(path)
    path = _write_variant(tmp_path, lambda r: r["autoencoder"].update(attention_levels=[0, 1]))
    with pytest.raises(ConfigError, match=r"autoencoder\.attention_levels\[0\]: expected true/false"):
        load_profile(path)


def test_missing_key_is_an_error(tmp_path):
    path = _write_variant(tmp_path, lambda r: r["cohort"].pop("seed"))
    with pytest.raises(ConfigError, match=r"missing key 'cohort\.seed'"):
        load_profile(path)


def test_overrides_apply_and_are_checked():
    p = load_profile("smoke", {"cohort.n_subjects": 7, "sampling.ddim_eta": 1})
    assert p.cohort.n_subjects == 7 and p.sampling.ddim_eta == 1.0
    assert p.fingerprint() != load_profile("smoke").fingerprint()
    with pytest.raises(ConfigError, match=r"override 'cohort\.n_subjectz'"):
        load_profile("smoke", {"cohort.n_subjectz": 7})
    with pytest.raises(ConfigError, match=r"cohort\.n_subjects: expected an integer"):
        load_profile("smoke", {"cohort.n_subjects": "7"})
    with pytest.raises(ConfigError, match=r"registration_metric: expected one of \['mattes_mi', 'correlation'\]"):
        load_profile("smoke", {"preprocessing.registration_metric": "mutual_information"})


def test_inconsistent_sizes_are_refused():
    with pytest.raises(ConfigError, match="divisible"):
        load_profile("smoke", {"data.shape": [20, 27, 20]})
    with pytest.raises(ConfigError, match="cross_attention_dim"):
        load_profile("smoke", {"diffusion.cross_attention_dim": 3})
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("huge")


def test_yaml_is_parsed_as_data_not_code(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile(path)
