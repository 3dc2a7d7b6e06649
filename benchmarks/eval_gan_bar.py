"""The bar a demo diffusion model must pass: FID of GAN baselines' samples, measured as
``eval_demo_variants.py`` measures the diffusion models' (same feature extractor, the run's training split
as reference, seeds from 5000), at each sample count asked for (FID falls with n, so compare at equal n).

    python benchmarks/eval_gan_bar.py --run-dir runs/demo --gans checkpoints/demo/lsgan.pt runs/new/lsgan.pt --n 40 80
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval_demo_variants import volumes  # noqa: E402

from ldm.baselines import load_generator, sample_gan  # noqa: E402
from ldm.checkpoints import load_checked  # noqa: E402
from ldm.config import load_profile  # noqa: E402
from ldm.metrics import feature_extractor, fid_from_features  # noqa: E402
from ldm.numbers import machine  # noqa: E402
from ldm.preprocess import load_preprocessed  # noqa: E402


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
