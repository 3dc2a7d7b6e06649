"""Seconds per sampling step of smaller demo UNets on this machine: what a retrain could save in the book.

    .venv/bin/python benchmarks/bench_unet_size.py [--batch 8] [--steps 30] [--repeats 3]

Sampling is most of the demo book's time (chapter 4's DDPM-1000, DDIM-50 and DPM-Solver++ rows, and
chapters 5-8), and a sampling step is one UNet call on the guided batch (2 x ``--batch``: the conditional
and the unconditional halves of classifier-free guidance), mostly 3D convolutions. Each candidate is the
demo profile with a few ``diffusion`` overrides (CANDIDATES), checked by ``load_profile``, with random
weights (speed does not depend on them), in the profile's memory format and thread count. The candidates
take turns ``--repeats`` times, so a drift in the machine's speed hits all of them. Quality is not
measured here: it needs each candidate trained (``experiments/2026-11-27-demo-retrain/gpu_demo_retrain.py``,
variants ``adv005_unet*``). Appends a record (machine, versions, date) to ``results/unet_size.json``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import torch
from common import RESULTS_DIR, append_record

from ldm.config import load_profile
from ldm.models.networks import build_unet
from ldm.models.schedule import schedule_betas
from ldm.runtime import machine
from ldm.sampling.pipeline import Pipeline, eps_function

RESULTS = RESULTS_DIR / "unet_size.json"
# name -> demo profile overrides (the diffusion section); the first is the shipped network
CANDIDATES = {
    "shipped: channels 32-64": {},
    "channels 32-48": {"diffusion.channels": [32, 48], "diffusion.num_head_channels": [0, 24]},
    "channels 24-48": {"diffusion.channels": [24, 48], "diffusion.num_head_channels": [0, 24],
                       "diffusion.norm_num_groups": 8},
    "channels 16-32": {"diffusion.channels": [16, 32], "diffusion.num_head_channels": [0, 16],
                       "diffusion.norm_num_groups": 8},
    "channels 32-64, plain up/down": {"diffusion.resblock_updown": False},
}


def pipeline(overrides: dict) -> Pipeline:
    profile = load_profile("demo", overrides)
    torch.manual_seed(0)
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels)
    fmt = torch.channels_last_3d if profile.sampling.channels_last else torch.contiguous_format
    c = profile.autoencoder.latent_channels
    return Pipeline(profile, None, unet.to(memory_format=fmt).eval(), torch.zeros(c), torch.ones(c),
                    schedule_betas(profile.scheduler), "random (seed 0)", torch.device("cpu"))


@torch.inference_mode()
def seconds_per_step(pipe: Pipeline, batch: int, steps: int) -> float:
    p = pipe.profile
    g = torch.Generator().manual_seed(0)
    eps = eps_function(pipe, torch.rand(batch, 4, generator=g), p.sampling.guidance_scale)
    z = torch.randn(batch, p.autoencoder.latent_channels, *p.latent_shape, generator=g)
    eps(z, 999)  # first call: allocations, kernel selection
    t0 = time.perf_counter()
    for i in range(steps):
        eps(z, 999 - i)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8, help="samples per call (chapter 4's DDPM batch: 8)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    pipes = {name: pipeline(over) for name, over in CANDIDATES.items()}
    seconds = {name: [] for name in pipes}
    for _ in range(args.repeats):
        for name, pipe in pipes.items():
            seconds[name].append(round(seconds_per_step(pipe, args.batch, args.steps), 4))
    median = {name: float(np.median(s)) for name, s in seconds.items()}
    base = median[next(iter(CANDIDATES))]
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "profile": "demo", "weights": "random (seed 0)",
        "guidance_scale": pipes[next(iter(pipes))].profile.sampling.guidance_scale,
        "batch": args.batch, "steps_timed": args.steps, "candidates": CANDIDATES,
        "parameters": {name: sum(p.numel() for p in pipe.unet.parameters()) for name, pipe in pipes.items()},
        "seconds_per_step": seconds, "median_seconds_per_step": median,
        "time_vs_shipped": {name: round(m / base, 3) for name, m in median.items()},
    }
    append_record(RESULTS, record)
    for name in pipes:
        print(f"{name:32s} {record['parameters'][name]:>9,d} parameters  {median[name]:.4f} s/step  "
              f"x{record['time_vs_shipped'][name]:.2f}")


if __name__ == "__main__":
    main()
