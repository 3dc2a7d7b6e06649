"""Seconds per training step of the profile's autoencoder and UNet: fp32 contiguous vs channels-last 3D,
and bf16 autocast, on this machine (the numbers behind the demo profile's budget).

    .venv/bin/python benchmarks/bench_training_step.py --profile demo --repeats 3

Appends one record to ``benchmarks/results/training_step.json``: machine, versions, date, and for each
network and variant the median seconds per step (Adam, global batch of the profile, after one warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import RESULTS_DIR, append_record  # noqa: E402

from ldm.config import load_profile  # noqa: E402
from ldm.networks import build_autoencoder, build_unet, condition_vector, conditioning_inputs  # noqa: E402
from ldm.ship import hardware  # noqa: E402

RESULTS = RESULTS_DIR / "training_step.json"
VARIANTS = {"fp32": (torch.contiguous_format, False), "channels_last_3d": (torch.channels_last_3d, False),
            "channels_last_3d+bf16": (torch.channels_last_3d, True)}


def timed(step, repeats: int) -> float:
    step()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(profile, repeats: int) -> dict:
    out = {}
    lat = profile.autoencoder.latent_channels
    for variant, (fmt, bf16) in VARIANTS.items():
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        torch.manual_seed(0)
        ae = build_autoencoder(profile.autoencoder).to(memory_format=fmt)
        opt = torch.optim.Adam(ae.parameters(), 1e-4)
        x = torch.rand(profile.training.autoencoder_batch_size, 1, *profile.data.shape).to(memory_format=fmt)

        def ae_step(ae=ae, opt=opt, x=x, amp=amp):
            with amp:
                mu, s = ae.encode(x)
                r = ae.decode(mu + s * torch.randn_like(s))
            loss = F.l1_loss(r.float(), x)
            opt.zero_grad()
            loss.backward()
            opt.step()

        unet = build_unet(profile.diffusion, lat).to(memory_format=fmt)
        opt_u = torch.optim.Adam(unet.parameters(), 1e-4)
        b = profile.training.diffusion_batch_size
        z = torch.randn(b, lat, *profile.latent_shape)
        c = condition_vector(torch.rand(b, 4), profile.diffusion.null_token)

        def unet_step(unet=unet, opt=opt_u, z=z, c=c, amp=amp, fmt=fmt):
            x_in, ctx = conditioning_inputs(z, c)
            with amp:
                pred = unet(x=x_in.contiguous(memory_format=fmt), timesteps=torch.randint(0, 1000, (len(z),)),
                            context=ctx)
            loss = F.mse_loss(pred.float(), z)
            opt.zero_grad()
            loss.backward()
            opt.step()

        out[variant] = {"autoencoder_s_per_step": round(timed(ae_step, repeats), 3),
                        "unet_s_per_step": round(timed(unet_step, repeats), 3)}
        print(variant, out[variant], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    profile = load_profile(args.profile)
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": hardware(),
              "platform": platform.platform(), "profile": profile.name,
              "batch": {"autoencoder": profile.training.autoencoder_batch_size,
                        "unet": profile.training.diffusion_batch_size},
              "results": bench(profile, args.repeats)}
    append_record(RESULTS, record, indent=2)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
