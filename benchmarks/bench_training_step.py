"""Seconds per training step of the profile's autoencoder and UNet: fp32 contiguous vs channels-last 3D,
and bf16 autocast, on this machine (the numbers behind the demo profile's budget).

    .venv/bin/python benchmarks/bench_training_step.py --profile demo --repeats 3
    python benchmarks/bench_training_step.py --profile paper --device cuda    # on a GPU: also peak GPU memory

Appends one record to ``benchmarks/results/training_step.json``: machine, versions, date, and for each
network and variant the median seconds per step (Adam, global batch of the profile, after one warm-up) and,
on a GPU, the peak GPU memory of its steps. The step is the reconstruction (L1) or denoising (MSE) loss
alone: the autoencoder's discriminator and perceptual network are not in it.
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


def bench(profile, repeats: int, device: torch.device) -> dict:
    out = {}
    lat = profile.autoencoder.latent_channels
    for variant, (fmt, bf16) in VARIANTS.items():
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        torch.manual_seed(0)
        ae = build_autoencoder(profile.autoencoder).to(device, memory_format=fmt)
        opt = torch.optim.Adam(ae.parameters(), 1e-4)
        x = torch.rand(profile.training.autoencoder_batch_size, 1, *profile.data.shape).to(device, memory_format=fmt)

        def ae_step(ae=ae, opt=opt, x=x, amp=amp):
            with amp:
                mu, s = ae.encode(x)
                r = ae.decode(mu + s * torch.randn_like(s))
            loss = F.l1_loss(r.float(), x)
            opt.zero_grad()
            loss.backward()
            opt.step()

        ae_result = timed(ae_step, repeats, device)
        del ae, opt, x  # before the UNet, so each network's peak is its own
        if device.type == "cuda":
            torch.cuda.empty_cache()
        unet = build_unet(profile.diffusion, lat).to(device, memory_format=fmt)
        opt_u = torch.optim.Adam(unet.parameters(), 1e-4)
        b = profile.training.diffusion_batch_size
        z = torch.randn(b, lat, *profile.latent_shape).to(device)
        c = condition_vector(torch.rand(b, 4), profile.diffusion.null_token).to(device)

        def unet_step(unet=unet, opt=opt_u, z=z, c=c, amp=amp, fmt=fmt):
            x_in, ctx = conditioning_inputs(z, c)
            with amp:
                pred = unet(x=x_in.contiguous(memory_format=fmt),
                            timesteps=torch.randint(0, 1000, (len(z),), device=z.device), context=ctx)
            loss = F.mse_loss(pred.float(), z)
            opt.zero_grad()
            loss.backward()
            opt.step()

        unet_result = timed(unet_step, repeats, device)
        del unet, opt_u
        if device.type == "cuda":
            torch.cuda.empty_cache()
        out[variant] = {f"{net}_{k}": v for net, r in (("autoencoder", ae_result), ("unet", unet_result))
                        for k, v in r.items()}
        print(variant, out[variant], flush=True)
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
              "platform": platform.platform(), "profile": profile.name, "device": str(device),
              "batch": {"autoencoder": profile.training.autoencoder_batch_size,
                        "unet": profile.training.diffusion_batch_size},
              "results": bench(profile, args.repeats, device)}
    append_record(RESULTS, record, indent=2)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
