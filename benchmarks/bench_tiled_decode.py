"""Peak memory and time of decoding one 160x224x160 volume: whole (stock) against ``ldm.sampling.tiled_decode``.

    .venv/bin/python benchmarks/bench_tiled_decode.py --tiles 20x28x80 16x16x80

The paper profile's autoencoder (13.8 M parameters; random weights with seed 0, or ``--weights`` a folder
made by ``python -m ldm.official``) decodes one latent 3x20x28x20 (N(0, 1), seed 0). Each mode runs in
its own process, so ``ru_maxrss`` is that mode's peak: the process's whole resident memory (Python, torch,
the network) and, separately, what the decode added on top of the process before it. The tiled decodes are
compared voxel by voxel with the whole decode (max and mean absolute difference; images are not clamped).
Appends a record (machine, versions, date, seconds, peak memory, differences) to ``results/tiled_decode.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from common import RESULTS_DIR, append_record, peak_rss_mb

from ldm.config import load_profile
from ldm.models.networks import build_autoencoder
from ldm.runtime import machine
from ldm.sampling.tiled_decode import decode_tiled

RESULTS = RESULTS_DIR / "tiled_decode.json"


def autoencoder(weights: str) -> torch.nn.Module:
    profile = load_profile("paper")
    if weights:
        from ldm.sampling.pipeline import load_pipeline

        return load_pipeline(profile, weights, device="cpu").autoencoder
    torch.manual_seed(0)
    return build_autoencoder(profile.autoencoder).eval()


def child(mode: str, weights: str, reference: str) -> dict:
    """One decode in this process; prints its record as JSON."""
    ae = autoencoder(weights)
    z = torch.randn(1, 3, 20, 28, 20, generator=torch.Generator().manual_seed(0))
    before = peak_rss_mb()
    t0 = time.perf_counter()
    with torch.inference_mode():
        if mode == "whole":
            x = ae.decode(z)
        else:
            x = decode_tiled(ae, z, tuple(int(v) for v in mode.split("x")))
    seconds = time.perf_counter() - t0
    record = {"mode": mode, "seconds": round(seconds, 1), "peak_rss_mb": round(peak_rss_mb()),
              "added_mb": round(peak_rss_mb() - before), "process_before_mb": round(before)}
    if mode == "whole":
        torch.save(x, reference)
    else:
        whole = torch.load(reference, weights_only=True)
        record["max_abs_diff"] = float((x - whole).abs().max())
        record["mean_abs_diff"] = float((x - whole).abs().mean())
        record["whole_mean_abs"] = float(whole.abs().mean())
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", nargs="*", default=["20x28x80"], help="tile sizes on the 80x112x80 grid")
    ap.add_argument("--weights", default="", help="folder of converted official weights (default: random)")
    ap.add_argument("--note", default="", help="recorded with the results (e.g. what else ran)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--reference", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.weights, args.reference)))
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        reference = str(Path(tmp) / "whole.pt")
        for mode in ["whole", *args.tiles]:
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--weights", args.weights,
                                  "--reference", reference], check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "weights": args.weights or "random (seed 0)", "volume": [160, 224, 160], "runs": runs,
              "note": args.note}
    append_record(RESULTS, record)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
