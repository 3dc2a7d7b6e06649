"""Every number the paper reports, beside ours: the registry behind the book's "paper numbers" page.

Each entry names the paper's value, the results file a notebook writes (``runs/<profile>/results/``) and
the path of our value inside it. The page is built from these files only, so it shows what the last run
of each notebook measured, with that run's profile, weights and machine; a number not measured yet says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class PaperNumber:
    quantity: str
    paper: float | str
    notebook: str
    file: str  # in runs/<profile>/results/
    path: tuple[str, ...]  # keys into the JSON; a last key ending in "*" matches every key with that prefix


# Table 1 of the paper: (FID, MS-SSIM, 4-G-R-SSIM) per row, in the paper's order
PAPER_TABLE1 = {"LSGAN": (0.0231, 0.9997, 0.9969), "VAE-GAN": (0.1576, 0.9671, 0.8719),
                "LDM": (0.0076, 0.6555, 0.3883), "LDM + DDIM": (0.0080, 0.6704, 0.3957),
                "Real images": (0.0005, 0.6536, 0.3909)}
# seconds per sample (mean, sd) on one NVIDIA TITAN RTX at 1 mm (160 x 224 x 160), paper section 3
PAPER_SECONDS = {"LDM": (142.3, 1.6), "LDM + DDIM": (7.6, 0.2)}
PAPER_SECONDS_WHERE = "TITAN RTX, 1 mm"
# Fig. 3: Pearson r between the conditioning value and the value measured on samples
PAPER_FIG3_R = {"ventricular_volume": 0.972, "age": 0.692}
NB04, NB05, NB06 = "04_sampling_quality", "05_conditioning", "06_extrapolation"


def paper_seconds(row: str) -> str:
    """The paper's seconds per sample of a Table 1 row, as it prints them: "7.6 ± 0.2 (TITAN RTX, 1 mm)"."""
    mean, sd = PAPER_SECONDS[row]
    return f"{mean:g} ± {sd:g} ({PAPER_SECONDS_WHERE})"


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    *(PaperNumber(f"Table 1 {metric}, {row}", PAPER_TABLE1[row][i], NB04, "table1.json", ("rows", row, key))
      for row in PAPER_TABLE1 for i, (metric, key) in enumerate((("FID", "fid"), ("MS-SSIM", "ms_ssim"),
                                                                 ("4-G-R-SSIM", "4_g_r_ssim")))),
    PaperNumber("Sample pairs for MS-SSIM / 4-G-R-SSIM", 1000, NB04, "table1.json", ("rows", "LDM + DDIM", "n_pairs")),
    PaperNumber("Seconds per sample, DDPM 1000 steps", paper_seconds("LDM"), NB04, "table1.json",
                ("seconds_per_sample", "LDM")),
    PaperNumber("Seconds per sample, DDIM 50 steps", paper_seconds("LDM + DDIM"), NB04, "table1.json",
                ("seconds_per_sample", "LDM + DDIM")),
    PaperNumber("Samples measured for Fig. 3", 1000, NB05, "conditioning.json", ("n",)),
    PaperNumber("Fig. 3 r, conditioning vs measured ventricular volume", PAPER_FIG3_R["ventricular_volume"], NB05,
                "conditioning.json",
                ("ventricle_r_guidance_*",)),
    PaperNumber("Fig. 3 r, conditioning vs predicted brain age", PAPER_FIG3_R["age"], NB05, "conditioning.json",
                ("age_r_guidance_*",)),
    PaperNumber("Ventricle measurement vs ground truth on real subjects, r", "SynthSeg (not reported)", NB05,
                "conditioning.json", ("measurement_on_real", "r")),
    PaperNumber("Brain-age CNN on real test subjects, MAE (years)", "not reported", NB05,
                "conditioning.json", ("brain_age_on_real", "mae_years")),
    PaperNumber("Fig. 4 ventricles grow past the training range (mL per unit above 1)", "qualitative: huge at 1.5, 1.9",
                NB06, "extrapolation.json", ("slope_above_1_ml_per_unit",)),
)


def _find(tree, path: tuple[str, ...]) -> list[tuple[str, object]]:
    """(label, value) pairs at ``path``; a wildcard last key gives one pair per matching key."""
    for key in path[:-1]:
        tree = tree.get(key) if isinstance(tree, dict) else None
    if not isinstance(tree, dict):
        return []
    last = path[-1]
    if last.endswith("*"):
        return [(k[len(last) - 1:], v) for k, v in tree.items() if k.startswith(last[:-1])]
    return [("", tree[last])] if last in tree else []


def paper_numbers(results: str | Path) -> pd.DataFrame:
    """One row per paper number (and per setting where we measured it several ways, e.g. guidance)."""
    results = Path(results)
    rows = []
    for entry in PAPER_NUMBERS:
        path = results / entry.file
        record = json.loads(path.read_text()) if path.is_file() else {}
        found = _find(record, entry.path)
        base = {"paper": entry.paper, "notebook": entry.notebook, "profile": record.get("profile", ""),
                "weights": record.get("weights", ""), "machine": record.get("machine", "not recorded")}
        if not found:
            rows.append({"quantity": entry.quantity, "ours": "not measured yet", **base})
        for label, value in found:
            setting = f" (guidance {label})" if label else ""
            rows.append({"quantity": entry.quantity + setting, "ours": value, **base})
    return pd.DataFrame(rows, columns=["quantity", "paper", "ours", "profile", "weights", "machine",
                                       "notebook"])
