"""Table 1 (paper section 3): the sample sets, their rows of metrics beside the paper's, and the comparisons.

The LDM rows are sampled with DDPM (all 1000 steps), DDIM (the paper's fast row) and DPM-Solver++ (beyond
the paper) on the same covariates and seeds; the GAN rows from their generators; the real-images row is
the held-out test split. Every set is scored against the training split's features by one extractor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..models.baselines import load_generator, sample_gan
from ..numbers import PAPER_SECONDS, PAPER_SECONDS_WHERE, PAPER_TABLE1
from ..sampling.pipeline import Pipeline, generate
from .claims import interval_verdict
from .diagnostics import diagnostic_sets, mean_image_correlation, noise_sd, sample_set_metrics
from .metrics import fid_difference_interval, fid_from_features

GANS = ("VAE-GAN", "LSGAN")


def fast_row_name(steps: int) -> str:
    return f"LDM + DPM-Solver++ {steps}"


def ldm_sets(pipe: Pipeline, covariates: torch.Tensor, seeds: Sequence[int], n_ddpm: int, fast_steps: int
             ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(samples, seconds per sample) of the LDM rows: DDPM on the first ``n_ddpm`` seeds, DDIM and
    DPM-Solver++ in ``fast_steps`` on all of them, each sample i conditioned on ``covariates[i]``."""
    samples, seconds = {}, {}
    n = len(seeds)
    for name, sampler, k, steps in (("LDM", "ddpm", n_ddpm, None), ("LDM + DDIM", "ddim", n, None),
                                    (fast_row_name(fast_steps), "dpm++", n, fast_steps)):
        t0 = time.perf_counter()
        samples[name] = generate(pipe, covariates[:k], list(seeds[:k]), sampler=sampler, steps=steps)
        seconds[name] = (time.perf_counter() - t0) / k
    return samples, seconds


def gan_sets(checkpoints: Mapping[str, dict], profile, n: int, seed: int
             ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(samples, seconds per sample) of each GAN checkpoint's generator, ``n`` samples from ``seed``."""
    samples, seconds = {}, {}
    for name, ck in checkpoints.items():
        generator = load_generator(ck, profile)
        t0 = time.perf_counter()
        samples[name] = sample_gan(generator, n, seed=seed)[:, 0].numpy()
        seconds[name] = (time.perf_counter() - t0) / n
    return samples, seconds


def speedup(seconds: Mapping[str, float]) -> str:
    """DDIM's speed-up over DDPM here, beside the paper's (``ldm.numbers.PAPER_SECONDS``)."""
    paper = PAPER_SECONDS["LDM"][0] / PAPER_SECONDS["LDM + DDIM"][0]
    return (f"DDIM {seconds['LDM'] / seconds['LDM + DDIM']:.1f}x faster than DDPM (paper: {paper:.1f}x, "
            f"{PAPER_SECONDS_WHERE})")


def score_sets(samples: Mapping[str, np.ndarray], extractor, reference: np.ndarray, cfg,
               real: np.ndarray | None = None) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """(Table 1 row per set, features per set) of every sample set, and of the ``real`` test images as the
    "Real images" row when given."""
    features = {name: extractor(v) for name, v in samples.items()}
    rows = {name: sample_set_metrics(v, reference, extractor, cfg, features=features[name])
            for name, v in samples.items()}
    if real is not None:
        rows["Real images"] = sample_set_metrics(real, reference, extractor, cfg)
    return rows, features


def paper_table(rows: Mapping[str, dict], seconds: Mapping[str, float], fast: str) -> pd.DataFrame:
    """Our rows beside the paper's (``ldm.numbers.PAPER_TABLE1``); the extra DPM-Solver++ row has no paper value."""
    paper = {**{m: v for m, v in PAPER_TABLE1.items() if m != "Real images"}, fast: (np.nan,) * 3,
             "Real images": PAPER_TABLE1["Real images"]}  # our extra row sits before the real images
    return pd.DataFrame([
        {"model": m, "FID (ours)": rows[m]["fid"], "FID (paper)": p[0],
         "MS-SSIM (ours)": rows[m]["ms_ssim"], "MS-SSIM (paper)": p[1],
         "4-G-R-SSIM (ours)": rows[m]["4_g_r_ssim"], "4-G-R-SSIM (paper)": p[2],
         "s/sample (ours)": seconds.get(m, np.nan), "n (ours)": rows[m]["n"]}
        for m, p in paper.items()]).set_index("model")


def ddim_on_ddpm_seeds(rows: Mapping[str, dict], features: Mapping[str, np.ndarray], reference: np.ndarray,
                       n_ddpm: int) -> dict:
    """FID of DDPM and of DDIM on DDPM's seeds: FID falls as the number of samples grows, so DDIM is judged
    against DDPM at DDPM's n."""
    return {"n": n_ddpm, "LDM": rows["LDM"]["fid"],
            "LDM + DDIM": fid_from_features(features["LDM + DDIM"][:n_ddpm], reference)}


def fid_gaps(features: Mapping[str, np.ndarray], reference: np.ndarray, model: str = "LDM + DDIM",
             others: Sequence[str] = ("LSGAN", "VAE-GAN")) -> dict[str, dict]:
    """FID(model) - FID(other) with its paired-bootstrap 95% interval and verdict, for each other set."""
    out = {}
    for other in others:
        gap = fid_difference_interval(features[model], features[other], reference)
        out[other] = {**gap, "verdict": interval_verdict(gap["ci95"], "LDM", other)}
    return out


def plausible_fractions(samples: Mapping[str, np.ndarray], train: np.ndarray, test: np.ndarray
                        ) -> tuple[dict[str, float], float]:
    """(fraction of each set's samples whose correlation with the training mean image is at least the
    lowest real test subject's, that floor)."""
    mean_image = train.mean(0)
    floor = float(mean_image_correlation(test, mean_image).min())
    return {name: float((mean_image_correlation(v, mean_image) >= floor).mean()) for name, v in samples.items()}, floor


def diagnostics_order(names: Sequence[str]) -> list[str]:
    """Chapter 4's diagnostic table order: real images first, then reconstructions, then LDM sets, each noisy
    variant after its clean one."""
    return sorted(names, key=lambda k: ("Real" not in k, "Autoencoder" not in k, "LDM" not in k, k))


def comparisons(rows: Mapping[str, dict], features: Mapping[str, np.ndarray], samples: Mapping[str, np.ndarray],
                reference: np.ndarray, train: np.ndarray, test: np.ndarray, n_ddpm: int) -> dict:
    """The record's comparisons below Table 1: DDIM against DDPM on DDPM's seeds, the LDM against each GAN
    (paired bootstrap), and the fraction of plausible samples per set."""
    plausible, floor = plausible_fractions(samples, train, test)
    return {"fid_on_ddpm_seeds": ddim_on_ddpm_seeds(rows, features, reference, n_ddpm),
            "fid_ldm_minus_gan": fid_gaps(features, reference), "plausible_fraction": plausible,
            "plausible_floor": floor}


def diagnostic_rows(autoencoder: torch.nn.Module, samples: Mapping[str, np.ndarray], train: np.ndarray,
                    test: np.ndarray, extractor, reference: np.ndarray, cfg) -> dict:
    """Chapter 4's diagnostics (``diagnostics.diagnostic_sets``): reconstructions, blurred real images, and
    real images, reconstructions, LDM and LSGAN samples with the training images' noise level added; with
    the LDM-LSGAN FID difference on the noisy sets. Returns the record's entries."""
    sd = noise_sd(train)
    sets = diagnostic_sets(autoencoder, test, noise=sd, samples={m: samples[m] for m in ("LDM + DDIM", "LSGAN")})
    rows, features = score_sets(sets, extractor, reference, cfg)
    noisy = [features[f"{m} + white noise (sd {sd:.3f})"] for m in ("LDM + DDIM", "LSGAN")]
    gap = fid_difference_interval(*noisy, reference)
    return {"diagnostics": rows, "noise_sd_training_images": sd,
            "fid_noisy_ldm_minus_lsgan": {**gap, "verdict": interval_verdict(gap["ci95"], "LDM", "LSGAN")}}


def diagnostics_table(rows: Mapping[str, dict], diagnostics: Mapping[str, dict]) -> pd.DataFrame:
    """The diagnostic rows beside Table 1's real, LDM (DDIM) and LSGAN rows, in ``diagnostics_order``."""
    shown = {"Real images": rows["Real images"], **diagnostics, "LDM + DDIM": rows["LDM + DDIM"],
             "LSGAN": rows["LSGAN"]}
    return pd.DataFrame([{"set": k, "FID": shown[k]["fid"], "MS-SSIM": shown[k]["ms_ssim"],
                          "4-G-R-SSIM": shown[k]["4_g_r_ssim"], "n": shown[k]["n"]}
                         for k in diagnostics_order(shown)]).set_index("set")
