"""Shipped checkpoints: each matches the current profile of its folder, so a stale one fails loudly;
export keeps what sampling needs and nothing that could resume (or hide) a different run."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from ldm.checkpoints import (
    SHIPPED_DIR,
    export_checkpoint,
    load_checked,
    model_state,
    resolve_weights,
    save_checkpoint,
    saved_config,
)
from ldm.config import load_profile
from ldm.models.baselines import build_generator
from ldm.models.brain_age import build_brain_age
from ldm.models.networks import build_autoencoder, build_unet
from ldm.sampling.pipeline import generate, load_pipeline
from ldm.training.ship import TRAINED_BY, network_profile

TRAINING_KEYS = {
    "autoencoder": ("autoencoder_steps", "autoencoder_batch_size", "autoencoder_lr", "kl_weight", "perceptual_weight",
                    "perceptual_weights", "adversarial_weight", "adversarial_warmup_steps", "seed"),
    "diffusion": ("diffusion_steps", "diffusion_batch_size", "diffusion_lr", "ema_decay", "condition_dropout", "seed"),
}
# the profile sections a shipped network must have been trained with, whole (budgets included): its own,
# and those that made its training data (the embedded cohort and its preprocessing), so that a change to
# either (say, another registration metric) fails here until the networks are retrained
DATA = ("data", "cohort", "preprocessing")
SECTIONS = {"autoencoder": (*DATA, "autoencoder"), "diffusion": (*DATA, "autoencoder", "diffusion", "scheduler"),
            "brain_age": (*DATA, "brain_age"), "lsgan": (*DATA, "baselines"), "vaegan": (*DATA, "baselines")}
SHIPPED = sorted(p for p in SHIPPED_DIR.glob("*/*.pt")) if SHIPPED_DIR.is_dir() else []


def _network(kind, profile):
    if kind == "autoencoder":
        return build_autoencoder(profile.autoencoder)
    if kind == "diffusion":
        return build_unet(profile.diffusion, profile.autoencoder.latent_channels)
    if kind == "brain_age":
        return build_brain_age(profile.brain_age, profile.data.shape)
    return build_generator(profile.baselines, profile.data.shape)


@pytest.mark.parametrize("path", SHIPPED, ids=[f"{p.parent.name}/{p.name}" for p in SHIPPED])
def test_shipped_checkpoint_matches_its_profile(path):
    name = path.stem
    assert name in TRAINED_BY, f"{path}: not a network ldm.ship makes"
    profile = network_profile(name, path.parent.name)  # the privacy control: its own small profile
    kind = TRAINED_BY[name][2]
    ck = load_checked(path, profile, kind)  # refuses another architecture, naming the key
    saved = saved_config(ck)  # keys added since read as every earlier run had them
    for section in SECTIONS[kind]:
        now = json.loads(json.dumps(asdict(getattr(profile, section)), default=list))
        assert saved[section] == now, f"{path}: trained with another {section} section; retrain (make checkpoints)"
    # and with this profile's training settings for this network (how it was made, not only its shape)
    now = asdict(profile.training)
    for key in TRAINING_KEYS.get(kind, ()):
        assert saved["training"][key] == now[key], f"{path}: trained with training.{key}={saved['training'][key]}"
    _network(kind, profile).load_state_dict(model_state(ck))  # strict: every shape matches
    assert ck["weights"] in ("ema", "model") and ck["history"][-1]["step"] == ck["step"]
    if kind == "diffusion":
        assert ck["latent_mean"].shape == ck["latent_std"].shape == (profile.autoencoder.latent_channels,)
    if kind == "brain_age":
        assert 40 < ck["age_mean"] < 90 and ck["age_std"] > 0
    record = json.loads((path.parent / "record.json").read_text())
    assert record["checkpoints"][name]["steps"] == ck["step"]


def test_a_key_added_since_reads_as_every_earlier_run_had_it():
    """``preprocessing.registration_metric`` came after the first shipped networks: a checkpoint saved without
    it reads as Mattes MI (what made their data); a shipped one matches a profile only under its own metric."""
    old = {"config": json.dumps({"preprocessing": {"registration_iterations": 100}})}
    assert saved_config(old)["preprocessing"] == {"registration_iterations": 100, "registration_metric": "mattes_mi"}
    new = {"config": json.dumps({"preprocessing": {"registration_metric": "correlation"}})}
    assert saved_config(new)["preprocessing"]["registration_metric"] == "correlation"  # a saved value is kept
    if not (SHIPPED_DIR / "demo" / "autoencoder.pt").is_file():
        return
    saved = saved_config(load_checked(SHIPPED_DIR / "demo" / "autoencoder.pt", load_profile("demo"), "autoencoder"))
    for metric in ("mattes_mi", "correlation"):
        now = asdict(load_profile("demo", {"preprocessing.registration_metric": metric}).preprocessing)
        assert (saved["preprocessing"] == now) == (metric == saved["preprocessing"]["registration_metric"])


def test_shipped_folder_is_small():
    total = sum(p.stat().st_size for p in SHIPPED_DIR.rglob("*") if p.is_file()) if SHIPPED_DIR.is_dir() else 0
    assert total < 40e6, f"checkpoints/ holds {total / 1e6:.1f} MB; the budget is 40 MB"


def test_export_keeps_weights_in_half_precision_without_optimiser(tmp_path):
    profile = load_profile("smoke")
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels)
    ema = {k: v + 1 for k, v in unet.state_dict().items()}
    src = tmp_path / "diffusion.pt"
    save_checkpoint(src, {"kind": "diffusion", "step": 3, "model": unet.state_dict(), "ema": ema,
                          "optimizer": {"state": {}, "param_groups": []}, "history": [{"step": 3, "loss": 1.0}],
                          "config": json.dumps({}), "latent_mean": torch.zeros(3), "latent_std": torch.ones(3)})
    ck = torch.load(export_checkpoint(src, tmp_path / "out.pt"), weights_only=True)
    assert "optimizer" not in ck and "ema" not in ck and ck["weights"] == "ema"
    key = next(k for k, v in ema.items() if v.is_floating_point())
    assert ck["model"][key].dtype == torch.float16
    torch.testing.assert_close(ck["model"][key].float(), ema[key].float(), atol=1e-2, rtol=1e-3)


def test_weights_parameter_is_checked(tmp_path):
    profile = load_profile("smoke")
    assert resolve_weights("train", profile) is None
    assert resolve_weights("auto", profile) is None  # no shipped smoke checkpoints: train
    with pytest.raises(FileNotFoundError, match="autoencoder.pt"):
        resolve_weights(str(tmp_path), profile)


def test_channels_last_changes_the_layout_not_the_samples():
    """``sampling.channels_last`` (faster on a CPU for the demo networks) stores the weights channels-last;
    the shipped demo networks then give the same volumes as in the contiguous layout, to float noise."""
    if not (SHIPPED_DIR / "demo" / "diffusion.pt").is_file():
        pytest.skip("no shipped demo checkpoints")
    pipes = {flag: load_pipeline(load_profile("demo", {"sampling.channels_last": flag}), SHIPPED_DIR / "demo")
             for flag in (True, False)}
    for flag, pipe in pipes.items():
        for net in (pipe.unet, pipe.autoencoder):
            conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.in_channels > 1
                        and m.kernel_size == (3, 3, 3))
            assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d) == flag
    c = torch.tensor([[0.0, 0.5, 0.3, 0.6], [1.0, 0.2, 0.7, 0.4]])
    a, b = (generate(pipes[flag], c, [1, 2], sampler="dpm++", steps=5) for flag in (True, False))
    assert a.shape == (2, *load_profile("demo").data.shape)
    np.testing.assert_allclose(a, b, atol=2e-3)
