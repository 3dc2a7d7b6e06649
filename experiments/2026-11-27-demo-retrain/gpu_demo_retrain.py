"""Retrain the demo autoencoder (several recipes side by side) and, on each, the demo diffusion model,
on one GPU, from a packed copy of a demo run's training split; export each pair for evaluation here.

Why: the demo's FID and MS-SSIM gap came from its first autoencoder (notebook 04's diagnostic rows:
reconstructions of real subjects scored what the samples scored), which 800 CPU steps left blurry.
A GPU affords many more steps, with and without the adversarial term, in minutes. The first run of
2026-11-27 on one NVIDIA H200 and the choice among its variants: benchmarks/results/demo_variants_2026-11-27.md
(``adv005`` was the pair shipped then). The networks shipped now (checkpoints/demo/RECORD.md) came from
the ``long`` variant and the evaluation networks, run by gpu_retrain_call.sh beside this file: README.md here.

Commands from the repository root, with E=experiments/2026-11-27-demo-retrain:

    # here (CPU): pack the training split (lossless to 8e-6: uint16 fixed point, lzma)
    python $E/gpu_demo_retrain.py pack --run-dir runs/demo --to .gpu
    # on the GPU machine: every variant at once, all stopped by --budget seconds from the start
    python $E/gpu_demo_retrain.py train --data .gpu --out $OUT --budget 450 [--variants adv005]
    # after any change to the training data (cohort, preprocessing), the networks that judge the samples
    # (brain age, the two GANs) must be retrained too: name them beside the variants
    python $E/gpu_demo_retrain.py train --data .gpu --out $OUT --variants adv005,brain_age,lsgan,vaegan
    # the autoencoder alone for the whole budget, exported every 2000 steps (choose on validation, then
    # train the diffusion model on it here: python -m ldm.train diffusion --profile demo --run-dir <run>)
    LDM_SNAPSHOT_EVERY=2000 python $E/gpu_demo_retrain.py train --data .gpu --out $OUT --variants adv005_ae
    # here again: compare them on the validation split
    python $E/eval_demo_variants.py --variants checkpoints/demo <unpacked variant folders>
    # the shipped recipe with a longer autoencoder, and the shipped recipe itself, in one run (``long``:
    # see long_run); its final diffusion model, if the budget ended it early, resumes here on a CPU
    LDM_SNAPSHOT_EVERY=2000 python $E/gpu_demo_retrain.py train --data .gpu --out $OUT --variants long

Each variant is the demo profile with a few ``training`` overrides (VARIANTS; under "profile", those of
other sections). Its step counts are set from its own measured speed, so all finish inside the budget:
a short probe run times the autoencoder steps, the rest of the autoencoder's share of the budget sets
``autoencoder_steps`` (the learning rate is constant, so a run of N steps is the same whatever its
planned length), then likewise the diffusion model. The networks are trained by ``ldm.training``'s own
functions; each variant's checkpoints are exported as shipped ones (``ldm.checkpoints.export_checkpoint``:
float16, EMA) into ``<out>/<variant>.tar`` with its log.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

# name -> training overrides; warm-up is a fraction of the steps the variant can afford
VARIANTS = {
    "l1": {"autoencoder_batch_size": 8, "adversarial_weight": 0.0},
    "adv005": {"autoencoder_batch_size": 8, "adversarial_weight": 0.005, "warmup_fraction": 0.4},
    "adv02": {"autoencoder_batch_size": 8, "adversarial_weight": 0.02, "warmup_fraction": 0.4},
    # the shipped recipe for as many steps as the whole budget allows, no diffusion model (that one can
    # then train on a CPU: python -m ldm.train diffusion, ~1 h); with LDM_SNAPSHOT_EVERY, how far more
    # steps go (validation reconstruction FID fell from 0.0217 at 3500 steps to 0.0204 at 5100)
    "adv005_ae": {"autoencoder_batch_size": 8, "adversarial_weight": 0.005, "warmup_fraction": 0.4, "ae_share": 1.0},
    # the shipped recipe with a smaller UNet ("profile": other sections' overrides): sampling is most of the
    # book's time, and it takes x0.76 of the shipped UNet's time a step (benchmarks/bench_unet_size.py);
    # trained on a CPU on the shipped autoencoder it nearly tied the shipped UNet
    # (benchmarks/results/demo_unet_size_2026-11-27.md)
    "adv005_unet32x48": {"autoencoder_batch_size": 8, "adversarial_weight": 0.005, "warmup_fraction": 0.4,
                         "profile": {"diffusion.channels": [32, 48], "diffusion.num_head_channels": [0, 24]}},
}
DISCRIMINATOR_COST = 1.6   # an adversarial step's cost relative to an L1 step (CPU measured 1.3; margin)
AE_SHARE = float(os.environ.get("LDM_AE_SHARE", 0.72))  # of each variant's time: autoencoder; the rest: diffusion
SNAPSHOT_EVERY = int(os.environ.get("LDM_SNAPSHOT_EVERY", 0))  # also export the autoencoder every N steps (0: no)
MAX_AE_STEPS, MAX_DIFFUSION_STEPS = 30000, 6000
# trained beside the variants when named in --variants: the networks that judge samples (chapters 4-5)
EVALUATION_NETWORKS = ("brain_age", "lsgan", "vaegan")
# LDM_DRY_RUN=1 (a CPU check of the whole path): probes of 2 steps, step counts in units of 1
PROBE, WARMUP_STEPS, UNIT = (2, 1, 1) if os.environ.get("LDM_DRY_RUN") else (60, 20, 100)


def pack(run: Path, to: Path) -> None:
    """The run's training split: volumes as uint16 fixed point (|error| <= 7.7e-6), lzma-compressed with
    the two byte planes apart (the high bytes compress well), and its covariates as JSON."""
    from ldm.data.loading import load_preprocessed, volumes_and_covariates

    train = load_preprocessed(run / "preprocessed").query("split == 'train'")
    images, covariates = volumes_and_covariates(train)
    q = np.round(images.numpy()[:, 0] * 65535).astype(np.uint16)
    to.mkdir(parents=True, exist_ok=True)
    (to / "train.u16.xz").write_bytes(lzma.compress(np.stack([q >> 8, q & 255]).astype(np.uint8).tobytes()))
    (to / "train.json").write_text(json.dumps({"shape": list(q.shape), "ids": list(train["participant_id"]),
                                               "covariates": covariates.tolist(),
                                               "ages": train["age"].astype(float).tolist()}))
    print(f"packed {len(q)} volumes into {to}: {(to / 'train.u16.xz').stat().st_size / 1e6:.1f} MB")


def unpack(data: Path):
    import torch

    meta = json.loads((data / "train.json").read_text())
    planes = np.frombuffer(lzma.decompress((data / "train.u16.xz").read_bytes()), np.uint8).reshape(2, *meta["shape"])
    q = (planes[0].astype(np.uint16) << 8) | planes[1]
    images = torch.from_numpy(q.astype(np.float32) / 65535)[:, None]
    ages = torch.tensor(meta["ages"], dtype=torch.float32) if "ages" in meta else None  # older packs lack them
    return images, torch.tensor(meta["covariates"], dtype=torch.float32), ages


def torch_backends() -> None:
    """cuDNN autotuning: every process here runs the same few shapes thousands of times."""
    import torch

    torch.backends.cudnn.benchmark = True


def evaluation_network(name: str, data: Path, out: Path) -> None:
    """The brain-age CNN or a GAN baseline, with the demo profile's own step count (they do not depend on
    the autoencoder, so they train beside the variants; needed whenever the training data changed)."""
    from ldm.checkpoints import load_checkpoint
    from ldm.config import load_profile
    from ldm.training.brain_age import train_brain_age
    from ldm.training.gans import train_gan

    torch_backends()
    images, _, ages = unpack(data)
    profile = load_profile("demo")
    steps = PROBE if os.environ.get("LDM_DRY_RUN") else None
    t0 = time.time()
    if name == "brain_age":
        if ages is None:
            raise SystemExit(f"{data}/train.json has no ages: pack again (gpu_demo_retrain.py pack)")
        path = train_brain_age(profile, images, ages, out, steps=steps, progress=False)
    else:
        path = train_gan(name, profile, images, out, steps=steps, progress=False)
    ck = load_checkpoint(path)
    print(f"[{name}] {ck['step']} steps in {time.time() - t0:.1f} s; final {ck['history'][-1]}", flush=True)


def training_overrides(values: dict) -> dict:
    return {f"training.{k}": v for k, v in values.items()}


def _steps_for(seconds: float, per_step: float, cap: int) -> int:
    return int(max(UNIT, min(cap, math.floor(seconds / per_step / UNIT) * UNIT)))


def one(name: str, data: Path, out: Path, deadline: float) -> None:
    """One variant: probe, autoencoder, encode, probe, diffusion; each step count set by the time left."""
    import torch

    from ldm.checkpoints import export_checkpoint, load_checkpoint
    from ldm.config import load_profile
    from ldm.models.latents import encode
    from ldm.models.networks import build_autoencoder
    from ldm.training.autoencoder import train_autoencoder
    from ldm.training.diffusion import train_diffusion

    torch_backends()
    log = lambda *a: print(f"[{name} {time.time() - T0:6.1f}s]", *a, flush=True)  # noqa: E731
    over = dict(VARIANTS[name])
    warmup_fraction = over.pop("warmup_fraction", 0.0)
    ae_share = over.pop("ae_share", AE_SHARE)
    sections = over.pop("profile", {})  # dotted overrides of other sections (e.g. a smaller UNet)

    def variant_profile(**training):  # the demo profile, this variant's overrides, and ``training`` on top
        return load_profile("demo", {**sections, **training_overrides({**over, **training})})

    images, covariates, _ = unpack(data)
    base = variant_profile()
    t0 = time.time()
    train_autoencoder(base, images, out, steps=WARMUP_STEPS, progress=False)  # cudnn autotuning, allocations
    t1 = time.time()
    train_autoencoder(base, images, out, steps=WARMUP_STEPS + PROBE, progress=False)
    per_step = (time.time() - t1) / PROBE
    ae_end = T0 + ae_share * (deadline - T0) - (20 if ae_share >= 1 else 0)  # the same margin as the diffusion's
    adversarial = over["adversarial_weight"] > 0
    mix = (1 - warmup_fraction) * (DISCRIMINATOR_COST if adversarial else 1) + warmup_fraction
    n_ae = max(WARMUP_STEPS + PROBE, _steps_for(ae_end - time.time(), per_step * mix, MAX_AE_STEPS))
    warmup = UNIT * round(warmup_fraction * n_ae / UNIT) if adversarial else base.training.adversarial_warmup_steps
    log(f"autoencoder: {per_step * 1000:.1f} ms/step (probe, after {t1 - t0:.1f} s warm-up): {n_ae} steps, "
        f"adversarial from {warmup}")
    steps = {"autoencoder_steps": n_ae, "adversarial_warmup_steps": warmup}
    profile = variant_profile(**steps)
    # in stretches (each resumes the last: the learning rate is constant, so this is one run)
    for stop in range(SNAPSHOT_EVERY, n_ae, SNAPSHOT_EVERY) if SNAPSHOT_EVERY else ():
        if stop > WARMUP_STEPS + PROBE:
            train_autoencoder(profile, images, out, steps=stop, progress=False)
            export_checkpoint(out / "autoencoder.pt", out / f"autoencoder_step{stop}.pt")
    train_autoencoder(profile, images, out, progress=False)  # resumes after the probe's steps (same run)
    ck = load_checkpoint(out / "autoencoder.pt")
    log(f"autoencoder done: {ck['step']} steps, final l1 {ck['history'][-1]['l1']:.4f}")
    if ae_share >= 1:
        return
    ae = build_autoencoder(profile.autoencoder)
    ae.load_state_dict(ck["model"])
    latents = encode(ae, images, device="cuda" if torch.cuda.is_available() else "cpu")
    train_diffusion(profile, latents, covariates, out, steps=WARMUP_STEPS, progress=False)
    t1 = time.time()
    train_diffusion(profile, latents, covariates, out, steps=WARMUP_STEPS + PROBE, progress=False)
    per_step = (time.time() - t1) / PROBE
    n_diff = max(WARMUP_STEPS + PROBE, _steps_for(deadline - 20 - time.time(), per_step, MAX_DIFFUSION_STEPS))
    log(f"diffusion: {per_step * 1000:.1f} ms/step (probe): {n_diff} steps")
    profile = variant_profile(**steps, diffusion_steps=n_diff)
    train_diffusion(profile, latents, covariates, out, progress=False)
    ck = load_checkpoint(out / "diffusion.pt")
    log(f"diffusion done: {ck['step']} steps, final loss {ck['history'][-1]['loss']:.4f}")


LONG_AE_SHARE = float(os.environ.get("LDM_LONG_AE_SHARE", 0.7))  # ``long``: of the budget, the autoencoder's
SHIPPED_AE_STEPS = 35 * UNIT  # the shipped recipe's autoencoder_steps (3500 on a GPU)


def long_run(data: Path, out: Path, deadline: float) -> None:
    """``long``: the demo profile's training section as it is (adversarial from step 1400), its autoencoder
    trained for LONG_AE_SHARE of the budget, in stretches (one run: the learning rate is constant), exported
    at 3500 steps and every SNAPSHOT_EVERY. At 3500 steps, the shipped recipe's autoencoder on this data, a
    second process trains the profile's diffusion model on that export; when the autoencoder stops, this
    process trains one on the final export. Both stop at the profile's steps or the deadline; the final one,
    if stopped early, is kept whole (optimiser too), so that ``python -m ldm.train diffusion`` on a CPU
    resumes it as one run.

    Time decides the autoencoder's length (no probe): a step costs more once the discriminator joins, and
    other processes share the GPU for a while, so a step count planned from a probe would be off."""
    from ldm.checkpoints import export_checkpoint
    from ldm.config import load_profile
    from ldm.training.autoencoder import train_autoencoder

    torch_backends()
    log = lambda *a: print(f"[long {time.time() - T0:6.1f}s]", *a, flush=True)  # noqa: E731
    profile = load_profile("demo")
    images, _, _ = unpack(data)
    ae_end = T0 + LONG_AE_SHARE * (deadline - T0)
    step, child = 0, None
    while True:
        t = time.time()
        step += 5 * UNIT
        train_autoencoder(profile, images, out, steps=step, progress=False)
        took = time.time() - t
        log(f"autoencoder step {step}: {took / (5 * UNIT) * 1000:.1f} ms/step over the last stretch")
        if step == SHIPPED_AE_STEPS or (SNAPSHOT_EVERY and step % SNAPSHOT_EVERY == 0):
            export_checkpoint(out / "autoencoder.pt", out / f"autoencoder_step{step}.pt")
        if step == SHIPPED_AE_STEPS:
            child = subprocess.Popen([sys.executable, __file__, "diffusion-on", "--autoencoder",
                                      str(out / f"autoencoder_step{step}.pt"), "--data", str(data),
                                      "--work", str(out / f"on_step{step}"), "--deadline", str(deadline)],
                                     stdout=open(out / f"on_step{step}.log", "w"), stderr=subprocess.STDOUT)
        if time.time() + 1.2 * took > ae_end:
            break
    export_checkpoint(out / "autoencoder.pt", out / f"autoencoder_step{step}.pt")
    log(f"autoencoder done: {step} steps")
    diffusion_on(out / f"autoencoder_step{step}.pt", data, out / "final", deadline, keep_whole=True)
    if child is not None:
        child.wait(timeout=max(1.0, deadline + 5 - time.time()))


def diffusion_on(autoencoder: Path, data: Path, work: Path, deadline: float, keep_whole: bool = False) -> None:
    """The demo profile's diffusion model on the latents of an exported autoencoder (as the book encodes
    them), in stretches until its steps or the deadline; exported, or, with ``keep_whole``, when it stopped
    early, kept as the training checkpoint (optimiser and all) to be resumed."""
    from ldm.checkpoints import export_checkpoint, load_checkpoint, model_state
    from ldm.config import load_profile
    from ldm.models.latents import encode
    from ldm.models.networks import build_autoencoder
    from ldm.training.diffusion import train_diffusion

    torch_backends()
    log = lambda *a: print(f"[{work.name} {time.time() - T0:6.1f}s]", *a, flush=True)  # noqa: E731
    profile = load_profile("demo")
    images, covariates, _ = unpack(data)
    ae = build_autoencoder(profile.autoencoder)
    ae.load_state_dict({k: v.float() for k, v in model_state(load_checkpoint(autoencoder)).items()})
    latents = encode(ae, images)
    total, step = profile.training.diffusion_steps, 0
    while step < total:
        t = time.time()
        step = min(total, step + 2 * UNIT)
        train_diffusion(profile, latents, covariates, work, steps=step, progress=False)
        took = time.time() - t
        log(f"diffusion step {step}: {took / (2 * UNIT) * 1000:.1f} ms/step over the last stretch")
        if time.time() + 1.2 * took > deadline - 10:
            break
    if step < total and keep_whole:  # to resume elsewhere (36 MB: the device returns 64 MiB in all)
        log(f"diffusion stopped at {step} of {total} steps, kept whole (autoencoder {autoencoder.name})")
        return
    (work / "ship").mkdir(parents=True, exist_ok=True)
    export_checkpoint(work / "diffusion.pt", work / "ship" / "diffusion.pt")
    (work / "diffusion.pt").unlink()
    log(f"diffusion done: {step} of {total} steps, exported (autoencoder {autoencoder.name})")


def export_variant(name: str, work: Path, out: Path) -> None:
    from ldm.checkpoints import export_checkpoint

    if name == "long":
        with tarfile.open(out / f"{name}.tar", "w") as tar:
            for f in sorted(work.rglob("*")):
                if f.is_file() and f.name != "autoencoder.pt" and not f.name.startswith("."):  # not a temporary
                    tar.add(f, arcname=str(f.relative_to(work)))
        return
    ship = work / "ship"
    ship.mkdir(exist_ok=True)
    for kind in ("autoencoder", "diffusion", *EVALUATION_NETWORKS):
        if (work / f"{kind}.pt").is_file():
            export_checkpoint(work / f"{kind}.pt", ship / f"{kind}.pt")
    with tarfile.open(out / f"{name}.tar", "w") as tar:
        snapshots = sorted(work.glob("autoencoder_step*.pt"))  # exported already
        for f in sorted(ship.glob("*.pt")) + snapshots + sorted(work.glob("*_history.tsv")) + [work / "log.txt"]:
            if f.is_file():
                tar.add(f, arcname=f.name)


def train(data: Path, out: Path, budget: float, work: Path, names: list[str]) -> None:
    """The variants at once, one process each (the GPU is far from full with one), stopped at the budget."""
    deadline = T0 + budget
    procs = {}
    for name in names:
        (work / name).mkdir(parents=True, exist_ok=True)
        fh = open(work / name / "log.txt", "w")
        env = {**os.environ, "OMP_NUM_THREADS": "4", "PYTHONUNBUFFERED": "1", "LDM_T0": str(T0)}
        procs[name] = subprocess.Popen([sys.executable, __file__, "one", "--variant", name, "--data", str(data),
                                        "--work", str(work / name), "--deadline", str(deadline)],
                                       stdout=fh, stderr=subprocess.STDOUT, env=env)
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline + 10:
        time.sleep(2)
    for name, p in procs.items():
        if p.poll() is None:
            print(f"{name}: still running at the budget's end; stopped (its last checkpoint is exported)")
            p.kill()
        p.wait()
        export_variant(name, work / name, out)
        print(f"--- {name} (exit {p.returncode})\n" + (work / name / "log.txt").read_text()[-3000:], flush=True)


T0 = float(os.environ.get("LDM_T0", time.time()))

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["pack", "train", "one", "diffusion-on"])
    ap.add_argument("--autoencoder", default="", help="diffusion-on: an exported autoencoder")
    ap.add_argument("--run-dir", default="runs/demo")
    ap.add_argument("--to", default=".gpu")
    ap.add_argument("--data", default=".gpu")
    ap.add_argument("--out", default="runs/gpu_retrain")
    ap.add_argument("--work", default="/tmp/gpu_retrain")
    ap.add_argument("--budget", type=float, default=450)
    ap.add_argument("--variant", default="")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"train: comma-separated names, of {list(VARIANTS)}, long and {list(EVALUATION_NETWORKS)}")
    ap.add_argument("--deadline", type=float, default=0)
    args = ap.parse_args()
    if args.what == "pack":
        pack(Path(args.run_dir), Path(args.to))
    elif args.what == "one" and args.variant == "long":
        long_run(Path(args.data), Path(args.work), args.deadline)
    elif args.what == "diffusion-on":
        diffusion_on(Path(args.autoencoder), Path(args.data), Path(args.work), args.deadline)
    elif args.what == "one" and args.variant in EVALUATION_NETWORKS:
        evaluation_network(args.variant, Path(args.data), Path(args.work))
    elif args.what == "one":
        one(args.variant, Path(args.data), Path(args.work), args.deadline)
    else:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        train(Path(args.data), Path(args.out), args.budget, Path(args.work), args.variants.split(","))
