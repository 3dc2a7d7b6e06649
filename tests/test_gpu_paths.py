"""The notebooks' evaluation paths give the CPU's answers on a GPU. Runs only where CUDA is available.

Each path runs twice on the same inputs, once on the CPU and once on ``cuda``: the three samplers through
``generate`` (the same seeds: a seed's noise is drawn on the host, so it is the same brain on either device),
reconstructions, latents, FID features, a GAN generator's samples and brain-age predictions; and the privacy
control trains and samples on the GPU (only that it runs is checked). The networks are the smoke profile's
with random weights, built here, so no shipped checkpoints or run folder are needed. The GPU runs with
PyTorch's defaults, as the notebooks do (TF32 convolutions on Ampere and later).

This replaces ``benchmarks/check_gpu_paths.py``, whose one run (shipped demo networks, one NVIDIA H200, TF32)
is ``benchmarks/results/gpu_paths.json``: images and latents within 0.0018 (mean <= 1.6e-4), FID features
within 1.6e-4, brain age within 0.0018 years. The tolerances below are those figures with a margin of about
3 for the maxima and 4 for the means; a device bug (a tensor left on the other device, noise drawn on
the GPU) moves a brain by tenths, far beyond them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_random_checkpoints

from ldm.evaluation.diagnostics import reconstruct
from ldm.evaluation.metrics import feature_extractor
from ldm.models.baselines import build_generator, load_generator, sample_gan
from ldm.models.brain_age import build_brain_age, load_brain_age, predict_age
from ldm.models.latents import encode
from ldm.sampling.pipeline import generate, load_pipeline
from ldm.sampling.solvers import SAMPLERS
from ldm.training.privacy_control import control_profile, train_memoriser

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: compares each evaluation path on it with the CPU")

DEVICES = ("cpu", "cuda")
N = 2  # volumes per path
SEEDS = list(range(100, 100 + N))
# (max, mean) absolute difference allowed, in the path's units; benchmarks/results/gpu_paths.json measured
# images 0.0018 / 1.2e-4, latents 0.0018 / 1.6e-4, features 1.6e-4 / 2.3e-5, ages 0.0018 / 9e-4 years
TOLERANCE = {"image": (5e-3, 5e-4), "latent": (5e-3, 5e-4), "features": (1e-3, 1e-4), "years": (1e-2, 5e-3)}


@pytest.fixture(scope="module")
def nets(tmp_path_factory, smoke):
    """The smoke profile's networks with random weights on both devices, loaded as the notebooks load
    theirs, and the inputs every device gets: smooth random volumes in [0, 1] and covariates."""
    folder = write_random_checkpoints(smoke, tmp_path_factory.mktemp("random_checkpoints"))
    torch.manual_seed(1)
    gan = {"model": build_generator(smoke.baselines, smoke.data.shape).state_dict()}
    brain_age = {"model": build_brain_age(smoke.brain_age, smoke.data.shape).state_dict(),
                 "age_mean": 63.0, "age_std": 7.5}
    noise = torch.rand(N, 1, *smoke.data.shape, generator=torch.Generator().manual_seed(2))
    images = F.avg_pool3d(noise, 3, stride=1, padding=1, count_include_pad=False)
    return SimpleNamespace(profile=smoke, pipes={d: load_pipeline(smoke, folder, device=d) for d in DEVICES},
                           gan=gan, brain_age=brain_age, images=images, volumes=images[:, 0].numpy(),
                           covariates=torch.rand(N, 4, generator=torch.Generator().manual_seed(0)))


def _sampler(name: str):
    return lambda nets, d: generate(nets.pipes[d], nets.covariates, SEEDS, sampler=name)


# id -> (units, the path run on device d)
PATHS = {
    **{f"generate-{name}": ("image", _sampler(name)) for name in SAMPLERS},
    "reconstruct": ("image", lambda nets, d: reconstruct(nets.pipes[d].autoencoder, nets.images)),
    "encode": ("latent", lambda nets, d: encode(nets.pipes[d].autoencoder, nets.images, device=d)),
    "fid-features": ("features", lambda nets, d: feature_extractor("", device=d)(nets.volumes)),
    "sample-gan": ("image", lambda nets, d: sample_gan(load_generator(nets.gan, nets.profile, device=d), N, seed=3)),
    "predict-age": ("years", lambda nets, d: predict_age(load_brain_age(nets.brain_age, nets.profile, device=d),
                                                         nets.volumes)),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_the_gpu_gives_the_cpus_answer(nets, path):
    units, run = PATHS[path]
    cpu, gpu = (np.asarray(run(nets, d), dtype=np.float64) for d in DEVICES)
    assert cpu.shape == gpu.shape
    assert cpu.std() > 0, "constant output: the comparison would pass whatever the GPU did"
    diff = np.abs(cpu - gpu)
    max_abs, mean_abs = TOLERANCE[units]
    assert diff.max() <= max_abs and diff.mean() <= mean_abs, (
        f"{path}: max |cpu - cuda| {diff.max():.3g} (allowed {max_abs:g}), mean {diff.mean():.3g} "
        f"(allowed {mean_abs:g}); values sd {cpu.std():.3g}")


def test_the_privacy_control_trains_and_samples_on_the_gpu(nets, tmp_path):
    """Two training steps of the over-fitted control on the GPU, then a sample (the path whose UNet once sat
    on the CPU): that it runs, on the GPU, is the check."""
    pipe = train_memoriser(control_profile("smoke"), nets.pipes["cuda"], nets.volumes, nets.covariates, tmp_path,
                           steps=2)
    assert next(pipe.unet.parameters()).device.type == "cuda"
    sample = generate(pipe, nets.covariates[:1], SEEDS[:1])
    assert sample.shape == (1, *nets.profile.data.shape) and np.isfinite(sample).all()
