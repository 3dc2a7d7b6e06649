"""Memory and time of the memorisation audit's nearest-neighbour search at the paper's image size.

    .venv/bin/python benchmarks/bench_privacy.py --samples 64 --train 128 --query-batch 16 --chunk 16

Writes N sample and M training volumes of 160x224x160 float32 to files in a temporary folder (22.9 MB
each, one file per volume as a NIfTI cohort would be), then runs ``ldm.evaluation.privacy.nearest_neighbours``
reading both from disk: the queries in blocks of ``--query-batch``, the training set in chunks of
``--chunk``. Peak resident memory is what the
search added on top of the process before it (``ru_maxrss``); the claim is that it stays near
(query_batch + chunk) x 22.9 MB x ~2 (the volume and its normalised copy), whatever N and M are.
Appends a record (machine, versions, date, sizes, seconds, peak memory) to ``results/privacy_search.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from common import RESULTS_DIR, append_record, peak_rss_mb

from ldm.config import load_profile
from ldm.evaluation.privacy import nearest_neighbours
from ldm.runtime import hardware

RESULTS = RESULTS_DIR / "privacy_search.json"


class Volumes:
    """Volumes stored one file each, read only when sliced (what the search sees of a cohort on disk)."""

    def __init__(self, folder: Path, n: int, shape: tuple[int, ...], seed: int):
        folder.mkdir()
        rng = np.random.default_rng(seed)
        self.paths = []
        for i in range(n):  # one at a time: writing must not need the memory being measured
            self.paths.append(folder / f"{i:05d}.npy")
            np.save(self.paths[-1], rng.random(shape, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: slice) -> np.ndarray:
        return np.stack([np.load(p) for p in self.paths[index]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--train", type=int, default=128)
    ap.add_argument("--query-batch", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=16)
    args = ap.parse_args()
    shape = load_profile("paper").data.shape
    with tempfile.TemporaryDirectory() as tmp:
        samples = Volumes(Path(tmp) / "samples", args.samples, shape, 0)
        train = Volumes(Path(tmp) / "train", args.train, shape, 1)
        before = peak_rss_mb()
        t0 = time.perf_counter()
        nearest_neighbours(samples, lambda: (train[i:i + args.chunk] for i in range(0, args.train, args.chunk)),
                           query_batch=args.query_batch)
        seconds = time.perf_counter() - t0
        peak = peak_rss_mb()
    volume_mb = float(np.prod(shape)) * 4 / 1e6
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": hardware(), "shape": list(shape),
              "n_samples": args.samples, "n_train": args.train, "query_batch": args.query_batch, "chunk": args.chunk,
              "seconds": round(seconds, 1), "rss_before_mb": round(before), "peak_rss_mb": round(peak),
              "search_added_mb": round(peak - before), "volume_mb": round(volume_mb, 1),
              "all_samples_in_memory_would_be_mb": round(args.samples * volume_mb),
              "whole_train_in_memory_would_be_mb": round(args.train * volume_mb)}
    append_record(RESULTS, record, indent=2)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
