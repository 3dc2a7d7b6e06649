import math
import re

import pytest
import yaml

from ldm.config import CONFIG_DIR, ConfigError, load_profile


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_shipped_profiles_load(name):
    assert load_profile(name).name == name


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


def _covariates(index=None, **edit):
    """The smoke profile's covariates, with ``edit`` applied to the one at ``index``."""
    covs = yaml.safe_load((CONFIG_DIR / "smoke.yaml").read_text())["data"]["covariates"]
    if index is not None:
        covs[index] = {**covs[index], **edit}
        covs[index] = {k: v for k, v in covs[index].items() if v is not None}  # None drops a key
    return covs


# One case per rule: (profile, overrides, the dotted key the error must name, a piece of that rule's message).
# The message piece tells apart rules that share a key (data.shape: positive, divisible, a list, 3 values).
RULES = {
    # types, checked while building the dataclasses
    "override names an unknown key": ("smoke", {"cohort.n_subjectz": 7}, "cohort.n_subjectz", "override"),
    "unknown key": ("smoke", {"data.covariates": _covariates(0, colour="red")}, "data.covariates[0].colour",
                    "unknown key"),
    "missing key": ("smoke", {"data.covariates": _covariates(0, unit=None)}, "data.covariates[0].unit",
                    "missing key"),
    "section not a mapping": ("smoke", {"privacy": 3}, "privacy", "expected a mapping"),
    "literal": ("smoke", {"preprocessing.registration_metric": "mutual_information"},
                "preprocessing.registration_metric", "expected one of ['mattes_mi', 'correlation']"),
    "tuple not a list": ("smoke", {"data.shape": 20}, "data.shape", "expected a list"),
    "tuple length": ("smoke", {"data.fov_center_mm": [0.0, -18.0]}, "data.fov_center_mm", "expected 3 values"),
    "bool": ("smoke", {"diffusion.null_token": 1}, "diffusion.null_token", "expected true/false"),
    "int": ("smoke", {"cohort.n_subjects": 24.0}, "cohort.n_subjects", "expected an integer"),
    "float": ("smoke", {"data.voxel_size_mm": "8"}, "data.voxel_size_mm", "expected a number"),
    "str": ("smoke", {"training.perceptual_weights": None}, "training.perceptual_weights", "expected a string"),
    # each section's own rules
    "voxel size": ("smoke", {"data.voxel_size_mm": 0.0}, "data.voxel_size_mm", "must be positive"),
    "shape positive": ("smoke", {"data.shape": [-20, 28, 20]}, "data.shape", "must be positive"),
    "percentiles": ("smoke", {"data.intensity_percentiles": [99.5, 0.5]}, "data.intensity_percentiles",
                    "need 0 <= low < high <= 100"),
    "covariate order": ("smoke", {"data.covariates": _covariates()[::-1]}, "data.covariates",
                        "must be sex, age, ventricular_volume, brain_volume in that order"),
    "covariate range": ("smoke", {"data.covariates": _covariates(1, min=82, max=44)}, "data.covariates[1]",
                        "max must exceed min for age"),
    "subjects": ("smoke", {"cohort.n_subjects": 2}, "cohort.n_subjects", "need at least 3"),
    "splits": ("smoke", {"cohort.split_fractions": [0.5, 0.2, 0.2]}, "cohort.split_fractions",
               "must be positive and sum to 1"),
    "raw voxels": ("smoke", {"cohort.raw_voxel_mm": [2.0, 5.0]}, "cohort.raw_voxel_mm",
                   "must not be finer than cohort.template_voxel_mm"),
    "autoencoder levels": ("smoke", {"autoencoder.attention_levels": [False]}, "autoencoder.attention_levels",
                           "needs one entry per level"),
    "autoencoder groups": ("smoke", {"autoencoder.channels": [16, 36]}, "autoencoder.channels",
                           "divisible by norm_num_groups=8"),
    "unet levels": ("smoke", {"diffusion.attention_levels": [False]}, "diffusion.attention_levels",
                    "needs one entry per level"),
    "unet groups": ("smoke", {"diffusion.channels": [32, 60]}, "diffusion.channels", "divisible by norm_num_groups=8"),
    "head channels": ("smoke", {"diffusion.num_head_channels": [0]}, "diffusion.num_head_channels",
                      "needs one entry per level"),
    "betas": ("smoke", {"scheduler.beta_end": 0.001}, "scheduler.beta_end", "need 0 < beta_start < beta_end < 1"),
    "condition dropout range": ("smoke", {"training.condition_dropout": 1.0}, "training.condition_dropout",
                                "must be in [0, 1)"),
    "ema": ("smoke", {"training.ema_decay": 1.0}, "training.ema_decay", "must be in [0, 1)"),
    "checkpoints": ("smoke", {"training.checkpoint_every": 0}, "training.checkpoint_every", "must be at least 1"),
    "ms-ssim kernel": ("smoke", {"metrics.ms_ssim_kernel_size": 4}, "metrics.ms_ssim_kernel_size", "must be odd"),
    # rules across sections
    "shape vs autoencoder": ("smoke", {"data.shape": [20, 27, 20]}, "data.shape",
                             "divisible by the autoencoder's downsampling 2"),
    "latent vs unet": ("smoke", {"diffusion.channels": [32, 64, 64], "diffusion.attention_levels": [False, True, True],
                                 "diffusion.num_head_channels": [0, 32, 32]}, "diffusion.channels",
                       "not divisible by the UNet's downsampling 4"),
    "cross-attention width": ("smoke", {"diffusion.cross_attention_dim": 4}, "diffusion.cross_attention_dim",
                              "must equal the number of covariates"),
    "dropout needs null token": ("paper", {"training.condition_dropout": 0.1}, "training.condition_dropout",
                                 "needs diffusion.null_token: true"),
    "guidance needs null token": ("paper", {"sampling.guidance_scale": 2.0}, "sampling.guidance_scale",
                                  "guidance needs an unconditional model"),
    "ddim steps": ("smoke", {"sampling.ddim_steps": 1001}, "sampling.ddim_steps", "must be in 1..num_train_timesteps"),
    "dpm steps": ("smoke", {"sampling.dpm_steps": 0}, "sampling.dpm_steps", "must be in 1..num_train_timesteps"),
    "brain-age depth": ("smoke", {"brain_age.channels": [2, 4, 8, 16, 32]}, "brain_age.channels",
                        "5 blocks halve (20, 28, 20) below one voxel"),
    "generator depth": ("smoke", {"baselines.generator_channels": [8, 8, 8]}, "baselines.generator_channels",
                        "not divisible by the generator's upsampling 8"),
    "discriminator depth": ("demo", {"baselines.discriminator_channels": [8, 8, 8, 8, 8, 8]},
                            "baselines.discriminator_channels", "too many stride-2 layers for data.shape"),
}


@pytest.mark.parametrize(("profile", "overrides", "key", "message"), RULES.values(), ids=RULES.keys())
def test_each_rule_is_one_error_naming_its_key(profile, overrides, key, message):
    # the key whole, as the error writes it ("where: key: ..." or "... key 'key'"), not a prefix of a longer one
    with pytest.raises(ConfigError, match=rf"[ ']{re.escape(key)}(: |')") as err:
        load_profile(profile, overrides)
    assert message in str(err.value), "another rule on the same key fired first"
