"""How many steps the over-fitted privacy control needs before chapter 8's audit flags its samples.

    .venv/bin/python benchmarks/bench_privacy_control.py --run-dir runs/demo --steps 800,1600,2400

The control (``ldm.training.privacy_control.train_memoriser``: the profile's diffusion model made small, trained on
``privacy.control_subjects`` training subjects through the shipped autoencoder) is trained in a scratch
folder, resuming from one step count to the next; at each, ``privacy.control_samples`` samples (w = 1,
seeds 4000...) are audited as notebook 08 does: against the real test subjects, and against the test
subjects passed through the autoencoder (blur-matched). Appends to
``benchmarks/results/privacy_control_steps.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from common import RESULTS_DIR, append_record

from ldm.checkpoints import resolve_weights
from ldm.config import load_profile
from ldm.data.loading import load_preprocessed
from ldm.evaluation.diagnostics import reconstruct
from ldm.evaluation.privacy import audit, head_mask
from ldm.runtime import machine
from ldm.sampling.pipeline import generate, load_pipeline
from ldm.training.privacy_control import control_profile, control_subjects, train_memoriser


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--run-dir", default="runs/demo")
    ap.add_argument("--steps", default="800,1600,2400")
    ap.add_argument("--seed", type=int, default=4000)
    args = ap.parse_args()
    prof = load_profile(args.profile)
    pipe = load_pipeline(prof, resolve_weights("auto", prof) or Path(args.run_dir) / "models")
    pre = load_preprocessed(Path(args.run_dir) / "preprocessed")

    def volumes(split):
        paths = pre[pre["split"] == split]["image"]
        return np.stack([np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in paths])

    train, test = volumes("train"), volumes("test")
    mask = head_mask(train)
    recon_test = reconstruct(pipe.autoencoder, torch.from_numpy(test)[:, None])[:, 0].numpy()
    cfg = prof.privacy
    images, covariates, rows = control_subjects(pre, cfg.control_subjects)
    m, k = cfg.control_samples, cfg.control_subjects
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for steps in (int(s) for s in args.steps.split(",")):
            control_prof = control_profile(args.profile, {"privacy.control_steps": steps})
            t0 = time.perf_counter()
            control = train_memoriser(control_prof, pipe, images, covariates, scratch, steps=steps)
            seconds = time.perf_counter() - t0
            samples = generate(control, covariates[np.arange(m) % k], [args.seed + i for i in range(m)],
                               guidance_scale=1.0)
            real, blur = audit(samples, train, test, mask), audit(samples, train, recon_test, mask)
            row = {"steps": steps, "train_seconds_from_previous": round(seconds, 1),
                   "flagged_vs_real_test": real["flag_rate"], "flagged_vs_blur_matched": blur["flag_rate"],
                   "nearest_is_memorised": float(np.isin(real["sample_nn"], np.arange(k)).mean()),
                   "median_ncc": float(np.median(real["sample_ncc"])), "threshold_real": real["threshold"],
                   "threshold_blur_matched": blur["threshold"]}
            print(json.dumps(row), flush=True)
            results.append(row)
    append_record(RESULTS_DIR / "privacy_control_steps.json", {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "profile": prof.name,
        "networks": pipe.weights, "control_subjects": list(rows["participant_id"]), "control_samples": m,
        "n_test": len(test), "rows": results})


if __name__ == "__main__":
    main()
