"""Compare demo autoencoder + diffusion variants (e.g. from ``gpu_demo_retrain.py`` beside this file) on the
VALIDATION split only, so that choosing one never looks at the test subjects that Table 1 reports on.

    python experiments/2026-11-27-demo-retrain/eval_demo_variants.py --run-dir runs/demo \\
        --variants checkpoints/demo runs/gpu/l1 ...

For each variant folder (holding autoencoder.pt and diffusion.pt): reconstructions of the validation
subjects (L1 inside the head, PSNR, FID against the training split, MS-SSIM of pairs) and samples drawn
with validation covariates by the profile's default sampler (FID, MS-SSIM of pairs, fraction plausible:
correlation with the training mean image at least the lowest validation subject's; ventricle conditioning r:
the requested volume against chapter 5's measurement; seconds a sample). Each pair's UNet is built as its
checkpoint was trained (a variant may have another size). Beside each FID, the FID with white noise at the
training images' own level added (``ldm.evaluation.diagnostics.noise_sd``; a diagnostic of how much of it is
missing texture, ``benchmarks/results/fid_noise_texture_2026-11-27.md``; the choice stays on the FID as
decoded). Writes a markdown table and a figure (one axial slice per variant: a reconstruction and two
samples) to ``--out``.

A variant may also be an autoencoder file alone (e.g. the ``autoencoder_step<N>.pt`` snapshots of
``gpu_demo_retrain.py``), or a folder without ``diffusion.pt``: then only its reconstructions are scored.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import nibabel as nib
import numpy as np
import torch

from ldm.checkpoints import load_checked, model_state, saved_config
from ldm.config import load_profile
from ldm.data.covariates import cohort_draw, natural
from ldm.data.loading import load_preprocessed
from ldm.evaluation.diagnostics import (
    add_white_noise,
    mean_image_correlation,
    noise_sd,
    reconstruct,
    reconstruction_metrics,
    sample_set_metrics,
)
from ldm.evaluation.metrics import feature_extractor, fid_from_features
from ldm.evaluation.ventricles import calibrate, ventricle_measure
from ldm.models.networks import build_autoencoder
from ldm.runtime import machine
from ldm.sampling.pipeline import generate, load_pipeline


def volumes(table):
    return np.stack([np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in table["image"]])


def unet_label(row: dict, prof) -> str:
    """' (UNet 32-48)' for a variant whose UNet is not the profile's; '' otherwise."""
    channels = row.get("unet_channels")
    same = channels is None or list(channels) == list(prof.diffusion.channels)
    return "" if same else f" (UNet {'-'.join(map(str, channels))})"


def fid_with_noise(volumes, noise: float, reference, extractor) -> float:
    """FID of ``volumes`` with white noise of sd ``noise`` added (the diagnostic beside each FID)."""
    return fid_from_features(extractor(add_white_noise(volumes, noise)), reference)


def evaluate(folder: Path, prof, val, reference, extractor, floor, mean_image, n_samples: int, seed: int,
             guidance: float | None, noise: float, measure) -> dict:
    ae_file = folder if folder.suffix == ".pt" else folder / "autoencoder.pt"
    if folder.suffix == ".pt" or not (folder / "diffusion.pt").is_file():  # an autoencoder alone
        ck = load_checked(ae_file, prof, "autoencoder")
        ae = build_autoencoder(prof.autoencoder)
        ae.load_state_dict(model_state(ck))
        return autoencoder_row(ae, ck, ae_file, prof, val, reference, extractor, noise)
    # a variant may have another UNet (gpu_demo_retrain.py's "profile" overrides): build the one it was trained as
    dm = torch.load(folder / "diffusion.pt", weights_only=True)
    unet = saved_config(dm)["diffusion"]
    pipe = load_pipeline(load_profile("demo", {f"diffusion.{k}": v for k, v in unet.items()}), folder)
    row = autoencoder_row(pipe.autoencoder, torch.load(ae_file, weights_only=True), folder, prof, val, reference,
                          extractor, noise)
    t0 = time.perf_counter()
    c = cohort_draw(VAL_TABLE, n_samples, seed=seed)
    samples = generate(pipe, c, list(range(seed, seed + n_samples)), guidance_scale=guidance)
    seconds = (time.perf_counter() - t0) / n_samples
    # conditioning (chapter 5's Fig. 3 panel): requested ventricular volume against the one measured
    ventricle_r = float(np.corrcoef(natural(c, prof, "ventricular_volume"), measure(samples))[0, 1])
    row.update(diffusion_steps=dm["step"], diffusion_final_loss=dm["history"][-1]["loss"],
               unet_channels=unet["channels"],
               samples={**sample_set_metrics(samples, reference, extractor, prof.metrics),
                        "plausible": float((mean_image_correlation(samples, mean_image) >= floor).mean()),
                        "fid_with_noise": fid_with_noise(samples, noise, reference, extractor),
                        "ventricle_r": ventricle_r, "seconds_per_sample": seconds},
               _show=(row["_show"][0], samples[0], samples[1]))
    return row


def autoencoder_row(ae, ck: dict, variant: Path, prof, val, reference, extractor, noise: float) -> dict:
    """A variant's recipe (from its autoencoder checkpoint ``ck``) and ``ae``'s reconstructions of the
    validation volumes; ``samples`` stays None until a diffusion model adds them."""
    recons = reconstruct(ae, torch.from_numpy(val)[:, None])
    rec = reconstruction_metrics(torch.from_numpy(val)[:, None], recons)
    recons = recons[:, 0].numpy()
    cfg = json.loads(ck["config"])["training"]
    return {"variant": str(variant), "autoencoder_steps": ck["step"], "adversarial_weight": cfg["adversarial_weight"],
            "adversarial_warmup_steps": cfg["adversarial_warmup_steps"], "batch": cfg["autoencoder_batch_size"],
            "diffusion_steps": None,
            "reconstruction": {**rec, **sample_set_metrics(recons, reference, extractor, prof.metrics),
                               "fid_with_noise": fid_with_noise(recons, noise, reference, extractor)},
            "samples": None, "_show": (recons[0], None, None)}


def main() -> None:
    global VAL_TABLE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/demo")
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--n-samples", type=int, default=40)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--out", default="benchmarks/results/demo_variants")
    ap.add_argument("--guidance", type=float, default=None, help="default: the profile's sampling.guidance_scale")
    args = ap.parse_args()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = load_profile("demo")
    pre = load_preprocessed(Path(args.run_dir) / "preprocessed")
    VAL_TABLE = pre[pre["split"] == "validation"]
    train_table = pre[pre["split"] == "train"]
    train, val = volumes(train_table), volumes(VAL_TABLE)
    measure = calibrate(ventricle_measure(prof.data), train, train_table["ventricular_volume"])
    extractor = feature_extractor(prof.metrics.fid_weights)
    reference = extractor(train)
    mean_image = train.mean(0)
    floor = float(mean_image_correlation(val, mean_image).min())
    real = sample_set_metrics(val, reference, extractor, prof.metrics)
    noise = noise_sd(train)
    real["fid_with_noise"] = fid_with_noise(val, noise, reference, extractor)
    rows = []
    for v in args.variants:
        rows.append(evaluate(Path(v), prof, val, reference, extractor, floor, mean_image, args.n_samples, args.seed,
                             args.guidance, noise, measure))
        print(json.dumps({k: x for k, x in rows[-1].items() if k != "_show"}), flush=True)
    guidance = prof.sampling.guidance_scale if args.guidance is None else args.guidance
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# Demo variants on the validation split ({len(val)} subjects)", "",
             f"Machine: {machine()}. FID features: {extractor.name}; reference: {len(train)} training volumes. "
             f"Samples: {args.n_samples}, {prof.sampling.sampler} {prof.sampling.dpm_steps} steps, guidance "
             f"{guidance}, covariates drawn from the validation subjects.", "",
             f"Real validation images: FID {real['fid']:.4f} ({real['fid_with_noise']:.4f} with noise), MS-SSIM of "
             f"pairs {real['ms_ssim']:.3f}. With noise: white noise of sd {noise:.4f}, the training images' own "
             "level (wavelet MAD).", "",
             "| variant | AE steps (batch) | adversarial (from step) | diffusion steps | recon L1 head | recon PSNR "
             "| recon FID (with noise) | recon MS-SSIM | sample FID (with noise) | sample MS-SSIM | plausible "
             "| ventricle r | s/sample |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rc, s = r["reconstruction"], r["samples"]
        sampled = (f"{s['fid']:.4f} ({s['fid_with_noise']:.4f}) | {s['ms_ssim']:.3f} | {s['plausible']:.0%} | "
                   f"{s['ventricle_r']:.3f} | {s['seconds_per_sample']:.2f}"
                   if s is not None
                   else "no diffusion model | | | | ")
        lines.append(f"| {r['variant']} | {r['autoencoder_steps']} ({r['batch']}) | {r['adversarial_weight']:g} "
                     f"({r['adversarial_warmup_steps']}) | {r['diffusion_steps'] or '-'}{unet_label(r, prof)} | "
                     f"{rc['l1_inside_head']:.4f} | {rc['psnr_db']:.2f} | "
                     f"{rc['fid']:.4f} ({rc['fid_with_noise']:.4f}) | {rc['ms_ssim']:.3f} | "
                     f"{sampled} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    shown = [{k: x for k, x in r.items() if k != "_show"} for r in rows]
    out.with_suffix(".json").write_text(json.dumps({"real": real, "noise_sd": noise, "rows": shown}, indent=2))
    fig, axes = plt.subplots(len(rows) + 1, 3, figsize=(7, 2.6 * (len(rows) + 1)))
    z = val.shape[-1] // 2
    for ax, img, title in zip(axes[0], (val[0], val[1], val[2]), ("real 0", "real 1", "real 2")):
        ax.imshow(np.rot90(img[:, :, z]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    for row, r in zip(axes[1:], rows):
        for ax, img, title in zip(row, r["_show"], ("reconstruction of real 0", "sample", "sample")):
            if img is None:
                continue
            ax.imshow(np.rot90(img[:, :, z]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{Path(r['variant']).name}: {title}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"demo profile, validation split; {extractor.name}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=90)
    print(f"wrote {out.with_suffix('.md')}")


VAL_TABLE = None

if __name__ == "__main__":
    main()
