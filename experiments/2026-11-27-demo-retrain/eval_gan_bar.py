"""The bar a demo diffusion model must pass: FID of GAN baselines' samples, measured as
``eval_demo_variants.py`` (beside this file) measures the diffusion models' (same feature extractor, the run's
training split as reference, seeds from 5000), at each sample count asked for (FID falls with n, so compare
at equal n).

    python experiments/2026-11-27-demo-retrain/eval_gan_bar.py --run-dir runs/demo \\
        --gans checkpoints/demo/lsgan.pt runs/new/lsgan.pt --n 40 80
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval_demo_variants import volumes

from ldm.checkpoints import load_checked
from ldm.config import load_profile
from ldm.data.loading import load_preprocessed
from ldm.evaluation.metrics import feature_extractor, fid_from_features
from ldm.models.baselines import load_generator, sample_gan
from ldm.runtime import machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/demo")
    ap.add_argument("--gans", nargs="+", required=True, help="lsgan.pt / vaegan.pt checkpoints")
    ap.add_argument("--n", nargs="+", type=int, default=[40, 80])
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    prof = load_profile("demo")
    pre = load_preprocessed(Path(args.run_dir) / "preprocessed")
    extractor = feature_extractor(prof.metrics.fid_weights)
    reference = extractor(volumes(pre[pre["split"] == "train"]))
    rows = []
    for path in map(Path, args.gans):
        ck = load_checked(path, prof, path.stem)  # the file is named by its kind, as shipped
        samples = sample_gan(load_generator(ck, prof), max(args.n), seed=args.seed)[:, 0].numpy()
        features = extractor(samples)
        row = {"gan": str(path), "steps": ck["step"],
               "fid": {n: fid_from_features(features[:n], reference) for n in args.n}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    record = {"profile": prof.name, "machine": machine(), "extractor": extractor.name, "run_dir": args.run_dir,
              "seed": args.seed, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
