"""Seconds to sample with the profile's networks in the contiguous against the channels-last 3D memory format.

    .venv/bin/python benchmarks/bench_memory_format.py                      # demo, shipped checkpoints
    .venv/bin/python benchmarks/bench_memory_format.py --profile smoke --weights runs/smoke/models

``ldm.sampling.pipeline.generate`` (the path of every notebook: the profile's sampler, steps and guidance, then the
decode) on ``--n`` samples, the two formats alternating ``--repeats`` times on the same pipeline, so drifts
in the machine's speed hit both. The volumes of the two formats are compared voxel by voxel. Sets
``sampling.channels_last`` of a profile. Appends a record (machine, versions, date) to
``results/memory_format.json``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import torch
from common import RESULTS_DIR, append_record

from ldm.checkpoints import resolve_weights
from ldm.config import load_profile
from ldm.runtime import machine
from ldm.sampling.pipeline import generate, load_pipeline

RESULTS = RESULTS_DIR / "memory_format.json"
FORMATS = {"contiguous": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--weights", default="auto", help="a models folder; auto: the shipped checkpoints")
    ap.add_argument("--n", type=int, default=16, help="samples per timing (one batch at the demo's batch size)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    profile = load_profile(args.profile)
    pipe = load_pipeline(profile, resolve_weights(args.weights, profile) or args.weights, device="cpu")
    c = torch.rand(args.n, 4, generator=torch.Generator().manual_seed(0))
    seeds = list(range(args.n))
    seconds = {name: [] for name in FORMATS}
    volumes = {}
    for _ in range(args.repeats):
        for name, fmt in FORMATS.items():
            pipe.unet.to(memory_format=fmt)
            pipe.autoencoder.to(memory_format=fmt)
            t0 = time.perf_counter()
            volumes[name] = generate(pipe, c, seeds)
            seconds[name].append(round(time.perf_counter() - t0, 2))
    median = {name: float(np.median(s)) for name, s in seconds.items()}
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "profile": profile.name, "weights": pipe.weights,
        "sampler": profile.sampling.sampler, "dpm_steps": profile.sampling.dpm_steps,
        "ddim_steps": profile.sampling.ddim_steps, "guidance_scale": profile.sampling.guidance_scale,
        "n_samples": args.n, "batch_size": profile.sampling.batch_size, "seconds": seconds,
        "median_seconds": median, "channels_last_speedup": round(median["contiguous"] / median["channels_last_3d"], 3),
        "max_abs_diff": float(np.abs(volumes["contiguous"] - volumes["channels_last_3d"]).max()),
        "profile_channels_last": profile.sampling.channels_last,
    }
    append_record(RESULTS, record)
    print({k: record[k] for k in ("median_seconds", "channels_last_speedup", "max_abs_diff")})


if __name__ == "__main__":
    main()
