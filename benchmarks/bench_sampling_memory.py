"""Does memory stay flat over a long sampling run? Resident memory after every batch of a cohort export.

    .venv/bin/python benchmarks/bench_sampling_memory.py --n 160 --batch 8 --sampler dpm++ --steps 20

Exports ``--n`` samples of the demo profile with the shipped checkpoints through ``ldm.sampling.export.export``
(the path of ``python -m ldm.sample``: sampling, decoding, NIfTI + sidecar writes) into a temporary
folder, one batch at a time, and reads the process's resident memory (``/proc/self/statm``) after each.
The first two batches warm up allocators and caches; the claim is that from there on memory does not
grow with the number of samples: the fitted slope (MB per 100 samples) stays near zero.
Appends a record (machine, versions, date, the RSS series, the slope) to ``results/sampling_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from common import RESULTS_DIR, append_record

from ldm.checkpoints import resolve_weights
from ldm.config import load_profile
from ldm.runtime import machine
from ldm.sampling.export import export
from ldm.sampling.pipeline import load_pipeline

RESULTS = RESULTS_DIR / "sampling_memory.json"


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sampler", default="dpm++")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    profile = load_profile(args.profile, {"sampling.ddim_steps": args.steps})
    pipe = load_pipeline(profile, resolve_weights("auto", profile), device="cpu")  # process memory: a CPU measurement
    rng = np.random.default_rng(0)
    covariates = torch.from_numpy(rng.uniform(0, 1, (args.n, 4)).astype(np.float32))
    covariates[:, 0] = covariates[:, 0].round()
    series, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for k in range(args.batch, args.n + 1, args.batch):
            export(pipe, covariates[:k], out, batch_size=args.batch, sampler=args.sampler, progress=False)
            series.append((k, round(rss_mb(), 1)))
            print(f"{k} samples: RSS {series[-1][1]} MB", flush=True)
        files = len(list(Path(out).glob("*.nii.gz")))
    seconds = time.perf_counter() - t0
    k, rss = np.array(series[2:], dtype=float).T  # after two warm-up batches
    slope = float(np.polyfit(k, rss, 1)[0] * 100)
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "torch": torch.__version__, "profile": profile.name, "weights": pipe.weights,
              "sampler": f"{args.sampler}, {args.steps} steps", "batch": args.batch, "samples": args.n,
              "files_written": files, "seconds": round(seconds, 1), "rss_mb_after_batches": series,
              "slope_mb_per_100_samples": round(slope, 2), "rss_range_after_warmup_mb": [min(rss), max(rss)]}
    print(json.dumps(record, indent=1))
    append_record(RESULTS, record)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
