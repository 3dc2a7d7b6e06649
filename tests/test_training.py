"""Training: checkpoints that resume after SIGKILL to the same weights, torchrun DDP equal to one
process, safe loading, and the paper-size networks' parameter counts."""

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ldm.checkpoints import load_checkpoint
from ldm.config import load_profile
from ldm.models.networks import build_networks, count_parameters
from ldm.runtime import default_device, global_batch
from ldm.training.autoencoder import train_autoencoder

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_paper_networks_have_the_bundles_parameter_counts():
    ae, unet = build_networks(load_profile("paper"), device="meta")  # no memory, no forward pass
    assert count_parameters(ae) == 13_766_248
    assert count_parameters(unet) == 553_168_899


@pytest.mark.parametrize("name", ["smoke", "demo"])
def test_small_profiles_run_a_forward_pass(name):
    p = load_profile(name)
    ae, unet = build_networks(p)
    x = torch.rand(1, 1, *p.data.shape)
    with torch.no_grad():
        mu, _ = ae.encode(x)
        assert mu.shape == (1, p.autoencoder.latent_channels, *p.latent_shape)
        assert ae.decode(mu).shape == x.shape
        from ldm.models.networks import condition_vector, conditioning_inputs

        x_in, ctx = conditioning_inputs(mu, condition_vector(torch.rand(1, 4), p.diffusion.null_token))
        assert unet(x=x_in, timesteps=torch.tensor([10]), context=ctx).shape == mu.shape


def test_networks_go_to_this_processs_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert default_device() == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a torchrun rank uses its own GPU
    assert default_device() == torch.device("cuda", 1)


def test_global_batches_cover_each_epoch_once():
    idx = np.concatenate([global_batch(s, 10, 5, seed=3) for s in range(4)])
    assert sorted(idx[:10]) == list(range(10)) and sorted(idx[10:]) == list(range(10))
    assert not np.array_equal(idx[:10], idx[10:]), "a new permutation every epoch"


@pytest.fixture()
def latents(tmp_path):
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "latents.pt"
    torch.save({"latents": torch.randn(12, 3, 10, 14, 10, generator=g), "covariates": torch.rand(12, 4, generator=g)},
               path)
    return path


def _train_cmd(run_dir, latents, steps, extra=()):
    overrides = json.dumps({"training.checkpoint_every": 3, "training.diffusion_batch_size": 4})
    return [*extra, "-m", "ldm.train", "diffusion", "--profile", "smoke", "--overrides", overrides,
            "--run-dir", str(run_dir), "--latents", str(latents), "--steps", str(steps)]


def _run(cmd, env_extra=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kw)


def _weights(run_dir):
    return load_checkpoint(Path(run_dir) / "models" / "diffusion.pt")


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(tmp_path, latents):
    steps = 12
    whole = _run([sys.executable, *_train_cmd(tmp_path / "whole", latents, steps)])
    assert whole.returncode == 0, whole.stderr[-2000:]

    run = tmp_path / "killed"
    ckpt = run / "models" / "diffusion.pt"
    # the run kills itself right after its step-6 checkpoint (training.checkpoint_every 3): mid-run, never a race
    killed = _run([sys.executable, *_train_cmd(run, latents, steps)], env_extra={"LDM_KILL_AT": "diffusion:6"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert load_checkpoint(ckpt)["step"] == 6
    resumed = _run([sys.executable, *_train_cmd(run, latents, steps)])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _weights(tmp_path / "whole"), _weights(run)
    assert a["step"] == b["step"] == steps
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    for key in a["ema"]:
        torch.testing.assert_close(a["ema"][key], b["ema"][key], rtol=0, atol=0)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, latents):
    steps = 6
    one = _run([sys.executable, *_train_cmd(tmp_path / "one", latents, steps)])
    assert one.returncode == 0, one.stderr[-2000:]
    two = _run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2",
                *_train_cmd(tmp_path / "two", latents, steps)])
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert b["world_size"] == 2 and a["world_size"] == 1
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-5)


def test_checkpoints_refuse_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    smoke = load_profile("smoke")
    images = torch.rand(4, 1, *smoke.data.shape)
    train_autoencoder(smoke, images, tmp_path, steps=2, progress=False)
    wider = load_profile("smoke", {"autoencoder.channels": [16, 64]})
    with pytest.raises(ValueError, match=r"autoencoder\.pt: checkpoint was trained with a different autoencoder"):
        train_autoencoder(wider, images, tmp_path, steps=3, progress=False)


def test_autoencoder_resumes_to_the_same_weights(tmp_path):
    """Stopped after 3 steps and resumed to 6 (adversarial term and BatchNorm statistics included)."""
    smoke = load_profile("smoke", {"training.adversarial_warmup_steps": 2, "training.checkpoint_every": 3})
    images = torch.rand(6, 1, *smoke.data.shape, generator=torch.Generator().manual_seed(0))
    train_autoencoder(smoke, images, tmp_path / "whole", steps=6, progress=False)
    train_autoencoder(smoke, images, tmp_path / "parts", steps=3, progress=False)
    train_autoencoder(smoke, images, tmp_path / "parts", steps=6, progress=False)
    a = load_checkpoint(tmp_path / "whole" / "autoencoder.pt")
    b = load_checkpoint(tmp_path / "parts" / "autoencoder.pt")
    for part in ("model", "discriminator"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=0, atol=0)
    assert a["history"] == b["history"]


def test_ema_forgets_the_initialisation_in_a_short_run(tmp_path):
    """With warm-up, after 20 steps the EMA is far closer to the trained weights than to the initial ones."""
    smoke = load_profile("smoke", {"training.ema_decay": 0.999, "training.diffusion_lr": 1.0e-3})
    from ldm.training.diffusion import train_diffusion

    z = torch.randn(8, 3, 10, 14, 10, generator=torch.Generator().manual_seed(0))
    c = torch.rand(8, 4, generator=torch.Generator().manual_seed(1))
    train_diffusion(smoke, z, c, tmp_path / "run", steps=20, progress=False)
    ck = load_checkpoint(tmp_path / "run" / "diffusion.pt")
    from ldm.models.networks import build_unet

    torch.manual_seed(smoke.training.seed)  # the initial weights, rebuilt as train_diffusion builds them
    w0 = build_unet(smoke.diffusion, smoke.autoencoder.latent_channels).state_dict()
    key = next(k for k in ck["model"] if k.endswith("weight") and ck["model"][k].ndim > 1)
    to_trained = (ck["ema"][key] - ck["model"][key]).norm()
    to_init = (ck["ema"][key] - w0[key]).norm()
    assert to_trained < to_init


def test_decoder_finetuning_keeps_the_encoder_bit_for_bit(tmp_path):
    """After training.autoencoder_steps the encoder is frozen: every latent stays what it was (so a
    diffusion model trained on them stays valid) while the decoder, adversarial term on, goes on learning."""
    smoke = load_profile("smoke", {"training.autoencoder_steps": 3, "training.decoder_finetune_steps": 3,
                                   "training.adversarial_warmup_steps": 3, "training.checkpoint_every": 3})
    images = torch.rand(6, 1, *smoke.data.shape, generator=torch.Generator().manual_seed(0))
    train_autoencoder(smoke, images, tmp_path, steps=3, progress=False)
    before = load_checkpoint(tmp_path / "autoencoder.pt")
    train_autoencoder(smoke, images, tmp_path, progress=False)  # the profile's 3 + 3 steps
    after = load_checkpoint(tmp_path / "autoencoder.pt")
    assert after["step"] == 6
    ae = build_networks(smoke)[0]
    # everything that maps an image to its latent (mu, sigma), named here, independently of the training loop
    frozen = {name for name, _ in ae.named_parameters() if name.startswith(("encoder.", "quant_conv_"))}
    assert frozen and any(name.startswith("quant_conv_mu") for name in frozen)
    for name in frozen:
        torch.testing.assert_close(after["model"][name], before["model"][name], rtol=0, atol=0, msg=name)
    changed = [n for n, _ in ae.named_parameters() if n not in frozen
               and not torch.equal(after["model"][n], before["model"][n])]
    assert {n.split(".")[0] for n in changed} >= {"decoder", "post_quant_conv"}
    assert all(h["generator_adversarial"] > 0 for h in after["history"][3:])  # the adversarial term joined


@pytest.mark.slow
def test_decoder_finetuning_runs_under_two_process_ddp(tmp_path, preprocessed):
    """The encoder gets no gradient in the decoder phase: DDP must be told, or it stops with an error."""
    overrides = json.dumps({"training.autoencoder_steps": 1, "training.decoder_finetune_steps": 2,
                            "training.adversarial_warmup_steps": 1})
    run = tmp_path / "run"
    run.mkdir()
    (run / "preprocessed").symlink_to(preprocessed[0], target_is_directory=True)
    two = _run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "ldm.train", "autoencoder",
                "--profile", "smoke", "--overrides", overrides, "--run-dir", str(run)])
    assert two.returncode == 0, two.stderr[-3000:]
    ck = load_checkpoint(run / "models" / "autoencoder.pt")
    assert ck["step"] == 3 and ck["world_size"] == 2


@pytest.mark.slow
def test_diffusion_refuses_to_resume_on_other_latents(tmp_path):
    """A diffusion checkpoint left from an earlier autoencoder must not silently go on training (or be
    finished) on new latents: the error names the file, and the checkpoint is left as it was."""
    from ldm.training.diffusion import train_diffusion
    from ldm.training.state import StaleCheckpointError

    smoke = load_profile("smoke")
    z = torch.randn(8, 3, 10, 14, 10, generator=torch.Generator().manual_seed(0))
    c = torch.rand(8, 4, generator=torch.Generator().manual_seed(1))
    path = train_diffusion(smoke, z, c, tmp_path, steps=2, progress=False)
    train_diffusion(smoke, z, c, tmp_path, steps=3, progress=False)  # the same latents resume
    assert load_checkpoint(path)["step"] == 3
    before = path.read_bytes()
    with pytest.raises(StaleCheckpointError, match=str(path)):
        train_diffusion(smoke, 2 * z + 1, c, tmp_path, steps=4, progress=False)
    assert path.read_bytes() == before


def test_cached_latents_follow_their_autoencoder(tmp_path):
    """latents.pt names the autoencoder checkpoint it was encoded by; another checkpoint makes it stale."""
    from ldm.training.diffusion import latents_are_current, save_latents

    ae = tmp_path / "autoencoder.pt"
    torch.save({"model": {"w": torch.zeros(3)}}, ae)
    path = save_latents(tmp_path / "latents.pt", torch.zeros(2, 3, 1, 1, 1), torch.zeros(2, 4), ae)
    assert latents_are_current(path, ae)
    torch.save({"model": {"w": torch.ones(3)}}, ae)  # the autoencoder was retrained
    assert not latents_are_current(path, ae)
    torch.save({"latents": torch.zeros(2, 3, 1, 1, 1), "covariates": torch.zeros(2, 4)}, path)  # an old file
    assert not latents_are_current(path, ae)
    assert not latents_are_current(tmp_path / "missing.pt", ae)


def test_training_and_sampling_need_no_registration_library(tmp_path):
    """A GPU host that trains or samples from packed or preprocessed data needs no SimpleITK (only
    preprocessing registers images): the training, checkpoint and sampling modules import without it."""
    (tmp_path / "SimpleITK.py").write_text("raise ImportError('SimpleITK is not installed here')\n")
    code = ("import ldm.train, ldm.sample, ldm.checkpoints, ldm.run, ldm.training.cli, ldm.sampling.pipeline, "
            "ldm.sampling.export, ldm.evaluation.ventricles, ldm.evaluation.privacy, ldm.training.privacy_control")
    proc = _run([sys.executable, "-c", code], env_extra={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    fails = _run([sys.executable, "-c", "import ldm.data.preprocess"], env_extra={"PYTHONPATH": str(tmp_path)})
    assert "SimpleITK is not installed here" in fails.stderr  # the fake module is really in the way


def test_training_curves_are_tensorboard_events_once_per_step_across_a_resume(tmp_path):
    """Beside the TSV history, ``models/tensorboard/<kind>/`` holds TensorBoard events, read back here by
    TensorBoard's own reader: every step once, with the history's values, after a run and its resumption."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ldm.training.diffusion import train_diffusion

    smoke = load_profile("smoke", {"training.checkpoint_every": 2})
    z = torch.randn(8, 3, 10, 14, 10, generator=torch.Generator().manual_seed(0))
    c = torch.rand(8, 4, generator=torch.Generator().manual_seed(1))
    train_diffusion(smoke, z, c, tmp_path, steps=4, progress=False)
    train_diffusion(smoke, z, c, tmp_path, steps=6, progress=False)  # resumed from step 4
    history = load_checkpoint(tmp_path / "diffusion.pt")["history"]
    events = EventAccumulator(str(tmp_path / "tensorboard" / "diffusion"))
    events.Reload()
    assert events.Tags()["scalars"] == ["loss"]
    scalars = events.Scalars("loss")
    assert [s.step for s in scalars] == [h["step"] for h in history] == list(range(1, 7))
    assert [s.value for s in scalars] == pytest.approx([h["loss"] for h in history], rel=1e-6)
    assert not list((tmp_path / "tensorboard").glob(".*")), "no temporary folder left"
