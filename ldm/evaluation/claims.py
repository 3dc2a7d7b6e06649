"""The paper's claims as checks on measured numbers, with the thresholds written beside each verdict.

A claim holds or not from the numbers of one results record (``table1.json``); its threshold is part of
the claim and is stored with the verdict, so a reader of the results file sees what was tested, not only
"yes". An interval verdict (``interval_verdict``) says which of two models is lower only when a 95%
bootstrap interval of their difference excludes zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# thresholds of chapter 4's claims (the paper states the claims qualitatively; these make them checkable)
TABLE1_THRESHOLDS = {
    "ms_ssim_vs_real": 0.05,  # |MS-SSIM(sample pairs) - MS-SSIM(real pairs)|: "about as diverse as real images"
    "ddim_fid_ratio": 1.25,  # FID(DDIM) / FID(DDPM) on the same seeds: "DDIM loses little"
    "ddim_speedup": 10.0,  # s/sample DDPM / DDIM: "more than 10x faster"
    "plausible_fraction": 0.95,  # samples above the lowest real test subject's correlation with the mean image
    "fast_fid_ratio": 1.25,  # FID(DPM-Solver++) / FID(DDIM)
    "fast_ms_ssim": 0.02,  # |MS-SSIM(DPM-Solver++) - MS-SSIM(DDIM)|
}


@dataclass(frozen=True)
class Claim:
    claim: str
    holds: bool
    measured: str  # the numbers the verdict rests on
    threshold: str


def interval_verdict(ci95: tuple[float, float], first: str, second: str) -> str:
    """Which of two models has the lower value of a difference ``first - second`` with a 95% interval:
    "<first> lower", "<second> lower", or "not resolved at this n" when the interval contains 0."""
    lo, hi = ci95
    return f"{first} lower" if hi < 0 else f"{second} lower" if lo > 0 else "not resolved at this n"


def table1_claims(record: dict, fast: str, thresholds: dict[str, float] = TABLE1_THRESHOLDS) -> list[Claim]:
    """Chapter 4's claims checked on its ``table1.json`` record (``rows``, ``seconds_per_sample``,
    ``fid_on_ddpm_seeds``, ``plausible_fraction``); ``fast`` names the DPM-Solver++ row."""
    t, rows, s = thresholds, record["rows"], record["seconds_per_sample"]
    ldm, real, fast_row = rows["LDM + DDIM"], rows["Real images"], rows[fast]
    same = record["fid_on_ddpm_seeds"]
    gan_fid = min(rows["LSGAN"]["fid"], rows["VAE-GAN"]["fid"])
    gan_ms = min(rows["LSGAN"]["ms_ssim"], rows["VAE-GAN"]["ms_ssim"])
    speedup = s["LDM"] / s["LDM + DDIM"]
    plausible = record["plausible_fraction"]["LDM + DDIM"]
    return [
        Claim("LDM samples are about as diverse as real images (MS-SSIM of pairs within "
              f"{t['ms_ssim_vs_real']:g} of real)", abs(ldm["ms_ssim"] - real["ms_ssim"]) <= t["ms_ssim_vs_real"],
              f"{ldm['ms_ssim']:.3f} vs {real['ms_ssim']:.3f}", f"|difference| <= {t['ms_ssim_vs_real']:g}"),
        Claim(f"DDIM-50 loses little against DDPM-1000 (FID within {t['ddim_fid_ratio'] - 1:.0%}, both on DDPM's "
              f"{same['n']} seeds)", same["LDM + DDIM"] <= t["ddim_fid_ratio"] * same["LDM"],
              f"{same['LDM + DDIM']:.4g} vs {same['LDM']:.4g}", f"ratio <= {t['ddim_fid_ratio']:g}"),
        Claim(f"DDIM-50 is more than {t['ddim_speedup']:g}x faster than DDPM-1000", speedup > t["ddim_speedup"],
              f"{speedup:.1f}x", f"> {t['ddim_speedup']:g}x"),
        Claim(f"LDM samples are plausible brains (>= {t['plausible_fraction']:.0%} above the lowest real subject)",
              plausible >= t["plausible_fraction"], f"{plausible:.0%}", f">= {t['plausible_fraction']:.0%}"),
        Claim("LDM (DDIM) beats both GAN baselines on FID", ldm["fid"] < gan_fid,
              f"{ldm['fid']:.4g} vs {gan_fid:.4g}", "lower than the better GAN"),
        Claim(f"DPM-Solver++ in {fast.rsplit(' ', 1)[-1]} steps keeps DDIM-50's quality (FID within "
              f"{t['fast_fid_ratio'] - 1:.0%}, MS-SSIM within {t['fast_ms_ssim']:g})",
              fast_row["fid"] <= t["fast_fid_ratio"] * ldm["fid"]
              and abs(fast_row["ms_ssim"] - ldm["ms_ssim"]) <= t["fast_ms_ssim"],
              f"FID {fast_row['fid']:.4g} vs {ldm['fid']:.4g}, MS-SSIM {fast_row['ms_ssim']:.3f} vs "
              f"{ldm['ms_ssim']:.3f}", f"FID ratio <= {t['fast_fid_ratio']:g}, |MS-SSIM difference| <= "
              f"{t['fast_ms_ssim']:g}"),
        Claim("LDM samples are more diverse than the GANs' (lower MS-SSIM of pairs)", ldm["ms_ssim"] < gan_ms,
              f"{ldm['ms_ssim']:.3f} vs {gan_ms:.3f}", "lower than the lower GAN"),
    ]


def claims_record(claims: list[Claim], thresholds: dict[str, float] = TABLE1_THRESHOLDS) -> dict:
    """What a results file stores: every claim with its verdict, measured numbers and threshold."""
    return {"thresholds": dict(thresholds), "claims": [asdict(c) for c in claims]}
