"""Do the notebooks' evaluation paths run on a GPU, and give the CPU's answers? For a CUDA machine.

    python benchmarks/check_gpu_paths.py                      # shipped demo checkpoints, cuda vs cpu
    python benchmarks/check_gpu_paths.py --device cpu         # the same script end to end on a CPU (diffs 0)

Each path the notebooks take is run twice on the same inputs, once on the CPU and once on ``--device``:
sampling with each sampler (same seeds, so the same brains up to float rounding: the noise is drawn on the
host), reconstructions, latents, FID features, GAN samples and brain-age predictions. The largest and mean
absolute differences go to ``results/gpu_paths.json`` with the machine; an exception on the device is
recorded as that path's result, and the script goes on. The privacy control (train a diffusion model on a
few subjects' latents, then sample from it) is run for 2 steps on the device only: that it runs is the check.
Inputs are the shipped demo networks and their own samples, so no data folder is needed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import RESULTS_DIR, append_record  # noqa: E402

from ldm.baselines import load_generator, sample_gan  # noqa: E402
from ldm.brain_age import load_brain_age, predict_age  # noqa: E402
from ldm.checkpoints import load_checked, resolve_weights  # noqa: E402
from ldm.config import load_profile  # noqa: E402
from ldm.evaluate import reconstruct  # noqa: E402
from ldm.generate import generate, load_pipeline  # noqa: E402
from ldm.metrics import feature_extractor  # noqa: E402
from ldm.numbers import machine  # noqa: E402
from ldm.privacy import control_profile, train_memoriser  # noqa: E402
from ldm.train import encode  # noqa: E402


def record_error(name: str, device: str, err: Exception, record: dict) -> None:
    """A path that fails on a device is this script's finding, not its end."""
    record["paths"][name] = {"error on " + device: f"{type(err).__name__}: {err}",
                             "traceback": traceback.format_exc(limit=3)}
    print(f"{name}: FAILED on {device}: {err}")


def compare(name: str, run, devices: tuple[str, str], record: dict) -> np.ndarray | None:
    """``run(device)`` on both devices; the CPU's answer (a numpy array) is returned for later paths."""
    out = {}
    for device in devices:
        t0 = time.perf_counter()
        try:
            out[device] = np.asarray(run(device), dtype=np.float64)
        except Exception as err:
            record_error(name, device, err, record)
            return out.get(devices[0])
        record["paths"].setdefault(name, {})[f"seconds on {device}"] = round(time.perf_counter() - t0, 3)
    a, b = out[devices[0]], out[devices[1]]
    diff = np.abs(a - b)
    record["paths"][name].update(shape=list(a.shape), max_abs_diff=float(diff.max()),
                                 mean_abs_diff=float(diff.mean()), value_sd=float(a.std()))
    print(f"{name}: max |cpu - {devices[1]}| {diff.max():.3g}, mean {diff.mean():.3g} (values sd {a.std():.3g})")
    return a


def runs(name: str, run, device: str, record: dict) -> None:
    """``run(device)`` completes on the device (its result is not compared)."""
    t0 = time.perf_counter()
    try:
        run(device)
        record["paths"][name] = {f"seconds on {device}": round(time.perf_counter() - t0, 3)}
        print(f"{name}: ran on {device}")
    except Exception as err:
        record_error(name, device, err, record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="the device to check against the CPU")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--n", type=int, default=2, help="samples per sampler")
    ap.add_argument("--out", default=str(RESULTS_DIR / "gpu_paths.json"))
    args = ap.parse_args()
    prof = load_profile(args.profile)
    shipped = resolve_weights("auto", prof)
    if shipped is None:
        raise SystemExit(f"no shipped checkpoints for the {prof.name} profile")
    devices = ("cpu", args.device)
    record = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "machine": machine(),
              "torch": torch.__version__, "device": args.device, "profile": prof.name, "weights": str(shipped),
              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "paths": {}}
    pipes = {d: load_pipeline(prof, shipped, device=d) for d in devices}
    c = torch.rand(args.n, 4, generator=torch.Generator().manual_seed(0))
    seeds = list(range(100, 100 + args.n))
    vols = None
    for sampler in ("dpm++", "ddim", "ddpm"):
        got = compare(f"generate ({sampler})", lambda d, s=sampler: generate(pipes[d], c, seeds, sampler=s),
                      devices, record)
        vols = got if vols is None else vols
    if vols is None:
        raise SystemExit("no sampler ran on the CPU")
    x = torch.from_numpy(vols.astype(np.float32))[:, None]
    compare("reconstruct", lambda d: reconstruct(pipes[d].autoencoder, x), devices, record)
    compare("encode", lambda d: encode(pipes[d].autoencoder, x, device=d), devices, record)
    compare("FID features (fallback ResNet-10)", lambda d: feature_extractor("", device=d)(vols), devices, record)
    for kind in ("lsgan", "vaegan"):
        ck = load_checked(shipped / f"{kind}.pt", prof, kind)
        compare(f"sample_gan ({kind})", lambda d, ck=ck: sample_gan(load_generator(ck, prof, device=d), args.n, seed=3),
                devices, record)
    ck = load_checked(shipped / "brain_age.pt", prof, "brain_age")
    compare("predict_age", lambda d: predict_age(load_brain_age(ck, prof, device=d), vols), devices, record)
    with tempfile.TemporaryDirectory() as tmp:
        control = control_profile(args.profile)
        runs("privacy control: 2 training steps, then a sample",
             lambda d: generate(train_memoriser(control, pipes[d], vols.astype(np.float32), c, tmp, steps=2),
                                c[:1], seeds[:1]), args.device, record)
    append_record(Path(args.out), record)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
