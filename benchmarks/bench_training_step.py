"""Seconds per training step of the profile's autoencoder and diffusion model: the steps the training loops
run (``ldm.training.steps``), in fp32 and with bf16 autocast (``training.precision``), on this machine.

    python benchmarks/bench_training_step.py --profile demo --repeats 3
    python benchmarks/bench_training_step.py --profile paper --device cuda    # on a GPU: also peak GPU memory

Appends one record to ``benchmarks/results/training_step.json``: machine, versions, date, and for each
network and precision the median seconds per step after one warm-up, and on a GPU the peak GPU memory.
The autoencoder step is ``autoencoder_step`` after the adversarial warm-up (L1 + KL + the patch
discriminator's generator term, then the discriminator's own step; + the perceptual term when the
profile names MedicalNet weights), the phase that most of a run's steps are in. The diffusion step is
``diffusion_step`` (noising, the profile's prediction target, MSE) plus the EMA update, on the global
batch of the profile in one process, with the loops' channels-last 3D memory format.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from datetime import UTC, datetime

import torch
from common import RESULTS_DIR, append_record

from ldm.config import load_profile
from ldm.models.networks import build_autoencoder, build_patch_discriminator, build_unet
from ldm.models.schedule import alphas_cumprod, schedule_betas
from ldm.runtime import CHANNELS_LAST, hardware, sample_generator
from ldm.training.steps import AutoencoderPass, autoencoder_step, diffusion_draws, diffusion_step, ema_update

RESULTS = RESULTS_DIR / "training_step.json"
PRECISIONS = ("fp32", "bf16")


def timed(step, repeats: int, device: torch.device) -> dict:
    """Median seconds of ``repeats`` steps after one warm-up (allocations, kernel selection); on a GPU also
    the peak memory the steps allocated."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    out = {"s_per_step": round(statistics.median(times), 4)}
    if device.type == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def autoencoder_bench(profile, repeats: int, device: torch.device) -> dict:
    cfg = profile.training
    torch.manual_seed(0)
    ae = build_autoencoder(profile.autoencoder).to(device, memory_format=CHANNELS_LAST)
    disc = build_patch_discriminator(cfg.discriminator_channels, cfg.discriminator_layers).to(device)
    opt_g = torch.optim.Adam(ae.parameters(), cfg.autoencoder_lr)
    opt_d = torch.optim.Adam(disc.parameters(), cfg.autoencoder_lr)
    perceptual = None
    if cfg.perceptual_weights:
        from ldm.models.perceptual import MedicalNetPerceptualLoss

        perceptual = MedicalNetPerceptualLoss(cfg.perceptual_weights).to(device)
    b = cfg.autoencoder_batch_size
    x = torch.rand(b, 1, *profile.data.shape).to(device, memory_format=CHANNELS_LAST)
    eps = torch.randn(b, profile.autoencoder.latent_channels, *profile.latent_shape).to(device)
    model, step = AutoencoderPass(ae), cfg.adversarial_warmup_steps  # the adversarial term is on from here
    return timed(lambda: autoencoder_step(model, disc, opt_g, opt_d, x, eps, step, cfg, device, perceptual),
                 repeats, device)


def diffusion_bench(profile, repeats: int, device: torch.device) -> dict:
    cfg = profile.training
    torch.manual_seed(0)
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels).to(device, memory_format=CHANNELS_LAST)
    ema = build_unet(profile.diffusion, profile.autoencoder.latent_channels).to(device).requires_grad_(False)
    opt = torch.optim.Adam(unet.parameters(), cfg.diffusion_lr)
    abar = alphas_cumprod(schedule_betas(profile.scheduler))
    b = cfg.diffusion_batch_size
    z0 = torch.randn(b, profile.autoencoder.latent_channels, *profile.latent_shape).to(device)
    c = torch.rand(b, 4).to(device)
    gens = [sample_generator(cfg.seed, 0, j) for j in range(b)]
    draws = diffusion_draws(gens, z0.shape[1:], profile.scheduler.num_train_timesteps, cfg.condition_dropout)
    noise, t, present = (v.to(device) for v in draws)

    def step():
        diffusion_step(unet, opt, z0, c, noise, t, present, abar, profile, device)
        ema_update(ema, unet, 100, cfg.ema_decay)

    return timed(step, repeats, device)


def bench(profile, repeats: int, device: torch.device) -> dict:
    out = {}
    for precision in PRECISIONS:
        p = dataclasses.replace(profile, training=dataclasses.replace(profile.training, precision=precision))
        ae = autoencoder_bench(p, repeats, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # each network's peak is its own
        unet = diffusion_bench(p, repeats, device)
        out[precision] = {f"{net}_{k}": v for net, r in (("autoencoder", ae), ("unet", unet)) for k, v in r.items()}
        print(precision, out[precision], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: the visible GPU")
    args = ap.parse_args()
    profile = load_profile(args.profile)
    device = torch.device(args.device)
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": hardware(),
              "profile": profile.name, "device": str(device), "threads": torch.get_num_threads(),
              "step": "ldm.training.steps (autoencoder after the adversarial warm-up; diffusion + EMA)",
              "batch": {"autoencoder": profile.training.autoencoder_batch_size,
                        "unet": profile.training.diffusion_batch_size},
              "results": bench(profile, args.repeats, device)}
    append_record(RESULTS, record, indent=2)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
