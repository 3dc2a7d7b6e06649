"""Seconds per sample of the paper-size diffusion loop: the MONAI bundle's own loop against ours.

    .venv/bin/python benchmarks/bench_sampling.py                  # random weights, CPU or the visible GPU
    .venv/bin/python benchmarks/bench_sampling.py --bundle-unet bundle/models/diffusion_model.pth

Same weights, same machine, same noise, one run:
- **baseline**, the bundle's loop: MONAI-Generative 0.2's ``DiffusionModelUNet`` (the class the bundle
  ships) in fp32 under ``torch.no_grad``, batch 1, MONAI's ``DDIMScheduler`` stepping the bundle's 50-step
  grid (980, 960, ..., 0), the covariates concatenated as channels and given as the cross-attention token.
- **ours**: the same weights converted by ``ldm.models.official.convert`` into MONAI 1.6's network, called through
  ``ldm.sampling.pipeline.eps_function`` (the path every notebook uses), under ``torch.inference_mode``, with the
  options below measured per network call, and DPM-Solver++(2M) in 20 calls (``ldm.sampling.solvers``; on the
  demo profile its Table 1 metrics match DDIM-50's: see notebook 04).
Per-call options: channels-last memory format, batch 4 (seconds per sample), bf16 autocast (only where the
hardware has bf16 arithmetic; the record says whether it has: ``bf16_arithmetic``).
Output differences: our DDIM loop against the bundle loop on the same grid (shows the loops compute the
same thing: float noise only) and our fast sampler against the bundle's DDIM-50 (a different solver:
with random weights this is only a sanity bound; the quality evidence is the demo Table 1).
The latent decode is not part of the loop: ``bench_tiled_decode.py`` measures it.
Appends a record (machine, versions, date, seconds per sample, ratios) to ``results/sampling_speed.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from datetime import UTC, datetime

import torch
from common import RESULTS_DIR, append_record

from ldm.config import load_profile
from ldm.models.networks import build_unet, condition_vector, conditioning_inputs
from ldm.models.official import convert, read_state
from ldm.models.schedule import schedule_betas
from ldm.runtime import machine
from ldm.sampling.pipeline import Pipeline, eps_function
from ldm.sampling.solvers import ddim_sample, ddim_timesteps, dpm_solver_pp_sample

RESULTS = RESULTS_DIR / "sampling_speed.json"
COVARIATES = [1.0, 0.5, 0.4, 0.6]  # sex, age, ventricles, brain volume, normalised


def bundle_unet(profile, weights: str = "", seed: int = 0) -> torch.nn.Module:
    """The bundle's network class with its released weights (``weights``, md5-checked) or random ones
    (MONAI zero-initialises output layers: perturbed, so the prediction depends on every layer)."""
    from generative.networks.nets import DiffusionModelUNet

    d, a = profile.diffusion, profile.autoencoder
    torch.manual_seed(seed)
    unet = DiffusionModelUNet(
        spatial_dims=3, in_channels=a.latent_channels + 4, out_channels=a.latent_channels, num_channels=d.channels,
        num_res_blocks=d.num_res_blocks, attention_levels=d.attention_levels, norm_num_groups=d.norm_num_groups,
        norm_eps=d.norm_eps, resblock_updown=d.resblock_updown, num_head_channels=list(d.num_head_channels),
        with_conditioning=True, transformer_num_layers=d.transformer_num_layers,
        cross_attention_dim=d.cross_attention_dim, upcast_attention=d.upcast_attention)
    if weights:
        unet.load_state_dict(read_state(weights, "diffusion"))
        return unet.eval()
    with torch.no_grad():
        for q in unet.parameters():
            q.add_(0.02 * torch.randn_like(q))
    return unet.eval()


@torch.no_grad()
def bundle_loop(unet, noise: torch.Tensor, c: torch.Tensor, steps: int) -> torch.Tensor:
    """The bundle's sampler: scheduler.step on the network's eps, one sample at a time."""
    from monai.networks.schedulers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015,
                          beta_end=0.0205, clip_sample=False)
    sched.set_timesteps(steps)
    sched.timesteps = torch.tensor(ddim_timesteps(1000, steps))  # MONAI-Generative 0.2's grid
    x = noise
    x_in_c, context = conditioning_inputs(x, c)
    cond_channels = x_in_c[:, x.shape[1]:]
    for t in sched.timesteps:
        eps = unet(torch.cat([x, cond_channels], 1), timesteps=torch.tensor([int(t)], device=x.device),
                   context=context)
        x, _ = sched.step(eps, int(t), x)
    return x


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_call(fn, device, repeats: int) -> float:
    fn()  # warm-up (allocator, kernels)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle-unet", default="", help="the bundle's models/diffusion_model.pth (default: random)")
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--fast-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3, help="timed network calls per option")
    ap.add_argument("--check-steps", type=int, default=10, help="steps of the loop-equivalence check")
    ap.add_argument("--fast-first", action="store_true", help="time the fast loop before the baseline")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    profile = load_profile("paper")
    baseline_unet = bundle_unet(profile, args.bundle_unet).to(device)
    weights = "released bundle weights" if args.bundle_unet else "random (seed 0)"
    ours = convert(build_unet(profile.diffusion, profile.autoencoder.latent_channels),
                   {k: v.cpu() for k, v in baseline_unet.state_dict().items()}, "bundle_unet").to(device).eval()
    betas = schedule_betas(profile.scheduler)
    pipe = Pipeline(profile, None, ours, torch.zeros(3), torch.ones(3), betas, weights, device)
    shape = (profile.autoencoder.latent_channels, *profile.latent_shape)
    noise = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    c = torch.tensor([COVARIATES], device=device)
    cvec = condition_vector(c, null_token=False)
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
              "weights": f"{weights}: MONAI-Generative DiffusionModelUNet, converted by ldm.official for ours",
              "latent": list(shape), "calls": {}}
    log = lambda *a: print(*a, flush=True)  # noqa: E731

    # 1. the loops compute the same thing (short grid: float noise only)
    with torch.inference_mode():
        ours_short = ddim_sample(eps_function(pipe, c), noise.clone(), betas, steps=args.check_steps)
    theirs_short = bundle_loop(baseline_unet, noise.clone(), cvec, args.check_steps)
    record["ddim_loop_max_abs_diff"] = float((ours_short - theirs_short).abs().max())
    record["check_steps"] = args.check_steps
    log("loop equivalence, max |diff|:", record["ddim_loop_max_abs_diff"])

    # 2. per network call, per sample: which options help on this machine
    t = torch.full((1,), 500, device=device, dtype=torch.long)

    def call(net, batch: int, channels_last: bool = False, bf16: bool = False, mode=torch.no_grad):
        x_in, context = conditioning_inputs(noise.expand(batch, *shape), cvec.expand(batch, -1))
        if channels_last:
            x_in = x_in.contiguous(memory_format=torch.channels_last_3d)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

        def run():
            with mode(), autocast:
                net(x=x_in, timesteps=t.expand(batch), context=context)
        return run

    options = {"bundle net, no_grad, fp32, batch 1": (baseline_unet, 1, False, False, torch.no_grad),
               "ours, inference_mode, fp32, batch 1": (ours, 1, False, False, torch.inference_mode),
               "ours, inference_mode, fp32, channels-last, batch 1": (ours, 1, True, False, torch.inference_mode),
               "ours, inference_mode, fp32, batch 4": (ours, 4, False, False, torch.inference_mode)}
    if bf16_supported(device):
        options["ours, inference_mode, bf16 autocast, batch 4"] = (ours, 4, False, True, torch.inference_mode)
    record["bf16_arithmetic"] = bf16_supported(device)
    for name, (net, batch, cl, bf16, mode) in options.items():
        if cl:
            net = net.to(memory_format=torch.channels_last_3d)
        seconds = per_call(call(net, batch, cl, bf16, mode), device, args.repeats) / batch
        if cl:
            net.to(memory_format=torch.contiguous_format)
        record["calls"][name] = round(seconds, 4)
        log(f"{name}: {seconds:.3f} s per call per sample")
    best = min((k for k in record["calls"] if k.startswith("ours")), key=record["calls"].get)
    _, batch, cl, bf16, _ = options[best]
    record["fast_options"] = best

    # 3. whole loops: the bundle's DDIM-50 at batch 1 against our fast sampler with the best options
    #    (--fast-first swaps the order: a second run in the other order shows any drift of the machine)
    def run_baseline():
        sync(device)
        t0 = time.perf_counter()
        out = bundle_loop(baseline_unet, noise.clone(), cvec, args.ddim_steps)
        sync(device)
        record["baseline_s_per_sample"] = round(time.perf_counter() - t0, 2)
        log("baseline DDIM-50 loop:", record["baseline_s_per_sample"], "s per sample")
        return out

    def run_fast():
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        if cl:
            ours.to(memory_format=torch.channels_last_3d)
        x = noise.expand(batch, *shape).clone()
        sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode(), autocast:
            out = dpm_solver_pp_sample(eps_function(pipe, c.expand(batch, -1)), x, betas, steps=args.fast_steps)
        sync(device)
        record["fast_s_per_sample"] = round((time.perf_counter() - t0) / batch, 2)
        log("fast loop:", record["fast_s_per_sample"], "s per sample")
        return out

    if args.fast_first:
        fast, base = run_fast(), run_baseline()
    else:
        base, fast = run_baseline(), run_fast()
    record["order"] = "fast first" if args.fast_first else "baseline first"
    record["fast_sampler"] = f"DPM-Solver++(2M), {args.fast_steps} calls, batch {batch}"
    record["speedup"] = round(record["baseline_s_per_sample"] / record["fast_s_per_sample"], 2)
    diff = (fast[:1].float() - base).abs()
    record["fast_vs_baseline_max_abs_diff"] = float(diff.max())
    record["fast_vs_baseline_mean_abs_diff"] = float(diff.mean())
    record["baseline_latent_sd"] = float(base.std())
    log(json.dumps(record, indent=1))
    append_record(RESULTS, record)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
