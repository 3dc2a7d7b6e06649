"""How much of the demo LDM's FID gap to the LSGAN is the scanner noise its decoder does not produce?

    python experiments/2026-11-27-demo-retrain/fid_noise_texture.py --run-dir runs/demo \\
        [--weights checkpoints/demo] [--n-samples 40]

On the VALIDATION split (chapter 4 reports the test split; nothing here is chosen on it): the noise sd of
the training images by the wavelet MAD estimator (``ldm.evaluation.diagnostics.noise_sd``), then the FID
(against the training split, the profile's feature extractor) and MS-SSIM of pairs of the real validation
images, their autoencoder reconstructions, DDIM samples with validation covariates and the LSGAN's samples,
each as it is and with white noise of 0.5, 1 and 2 times that sd added
(``ldm.evaluation.diagnostics.add_white_noise``). Appends one record to
``benchmarks/results/fid_noise_texture.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from eval_demo_variants import volumes

from ldm.checkpoints import load_checked
from ldm.config import load_profile
from ldm.data.covariates import cohort_draw
from ldm.data.loading import load_preprocessed
from ldm.evaluation.diagnostics import add_white_noise, noise_sd, reconstruct, sample_set_metrics
from ldm.evaluation.metrics import feature_extractor
from ldm.io import atomic_write_text
from ldm.models.baselines import load_generator, sample_gan
from ldm.runtime import machine
from ldm.sampling.pipeline import generate, load_pipeline

FACTORS = (0.0, 0.5, 1.0, 2.0)  # multiples of the estimated sd


def append_record(path: Path, record: dict) -> None:
    """Add ``record`` to the JSON list in ``path``, atomically (as benchmarks/common.py does)."""
    old = json.loads(path.read_text()) if path.is_file() else []
    atomic_write_text(path, json.dumps([*old, record], indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/demo")
    ap.add_argument("--weights", default="checkpoints/demo")
    ap.add_argument("--n-samples", type=int, default=40)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--out", default="benchmarks/results/fid_noise_texture.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    prof = load_profile("demo")
    pre = load_preprocessed(Path(args.run_dir) / "preprocessed")
    train, val = volumes(pre[pre["split"] == "train"]), volumes(pre[pre["split"] == "validation"])
    extractor = feature_extractor(prof.metrics.fid_weights)
    reference = extractor(train)
    sd = noise_sd(train)
    pipe = load_pipeline(prof, Path(args.weights))
    n = args.n_samples
    lsgan = load_generator(load_checked(Path(args.weights) / "lsgan.pt", prof, "lsgan"), prof)
    sets = {
        "real validation images": val,
        "autoencoder reconstructions": reconstruct(pipe.autoencoder, torch.from_numpy(val)[:, None])[:, 0].numpy(),
        "LDM + DDIM samples": generate(pipe, cohort_draw(pre[pre["split"] == "validation"], n, seed=args.seed),
                                       list(range(args.seed, args.seed + n)), sampler="ddim"),
        "LSGAN samples": sample_gan(lsgan, n, seed=args.seed)[:, 0].numpy(),
    }
    rows = []
    for name, vols in sets.items():
        for k in FACTORS:
            noisy = add_white_noise(vols, k * sd) if k else vols
            m = sample_set_metrics(noisy, reference, extractor, prof.metrics)
            rows.append({"set": name, "noise_sd": k * sd, "noise_factor": k, "n": m["n"], "fid": m["fid"],
                         "ms_ssim": m["ms_ssim"], "4_g_r_ssim": m["4_g_r_ssim"]})
            print(f"{name:30s} + noise {k:.1f} x {sd:.4f}: FID {m['fid']:.4f}  MS-SSIM {m['ms_ssim']:.3f}", flush=True)
    append_record(Path(args.out), {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "split": "validation",
        "weights": pipe.weights, "feature_extractor": extractor.name,
        "noise_sd_training_images": sd, "estimator": "wavelet MAD (ldm.evaluation.diagnostics.noise_sd)",
        "guidance_scale": prof.sampling.guidance_scale, "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1)})


if __name__ == "__main__":
    main()
