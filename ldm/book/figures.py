"""Figures shared by the notebooks. Every figure carries a stamp: profile, weights and data that made it."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

VIEWS = ("sagittal", "coronal", "axial")


def stamp(fig: plt.Figure, profile: str, weights: str = "none (no network)", data: str = "embedded cohort") -> None:
    """Write what made this figure along its bottom edge (never omitted: numbers without it mislead)."""
    text = f"profile: {profile} | weights: {weights} | data: {data}"
    width = max(40, int(fig.get_figwidth() * 17))  # characters of 7-pt text per line across the figure
    fig.text(0.005, 0.003, "\n".join(textwrap.wrap(text, width)), fontsize=7, color="0.35", ha="left", va="bottom")


def orthogonal_slices(vol: np.ndarray, index: Sequence[int] | None = None) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices of a RAS-indexed [x, y, z] volume, for ``imshow(origin='lower')``:
    superior (or anterior) up, and the subject's right on the right (neurological convention)."""
    i, j, k = index if index is not None else [s // 2 for s in vol.shape]
    return [vol[i, :, :].T, vol[:, j, :].T, vol[:, :, k].T]


def show_orthogonal(axes, vol: np.ndarray, voxel_mm: Sequence[float] = (1, 1, 1), index=None,
                    title: str | None = None, vmax: float | None = None, cmap: str = "gray") -> None:
    """Draw three orthogonal views of ``vol`` into three axes, with the physical aspect ratio."""
    vx, vy, vz = voxel_mm
    aspects = (vz / vy, vz / vx, vy / vx)
    vmax = vmax if vmax is not None else float(np.percentile(vol, 99.5)) or 1.0
    for ax, sl, aspect, name in zip(axes, orthogonal_slices(vol, index), aspects, VIEWS):
        ax.imshow(sl, origin="lower", cmap=cmap, vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=8)
    if title:
        axes[0].set_ylabel(title, fontsize=9)


def canonical_array(img: nib.Nifti1Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A raw scan reoriented to RAS (axes swapped and flipped, not resampled) and its voxel sizes."""
    can = nib.as_closest_canonical(img)
    return np.asarray(can.dataobj, dtype=np.float32), tuple(float(z) for z in can.header.get_zooms()[:3])


def registration_figure(raw: nib.Nifti1Image, processed: np.ndarray, voxel_mm: float, template: np.ndarray,
                        profile: str, title: str = "") -> plt.Figure:
    """Before / after registration in three views, with the template's outline on the result."""
    fig, axes = plt.subplots(3, 3, figsize=(8, 8.4))
    arr, zooms = canonical_array(raw)
    show_orthogonal(axes[0], arr, zooms, title="raw scan (RAS, native grid)")
    show_orthogonal(axes[1], processed, (voxel_mm,) * 3, title="preprocessed", vmax=1)
    show_orthogonal(axes[2], processed, (voxel_mm,) * 3, title="+ template outline", vmax=1)
    for ax, sl in zip(axes[2], orthogonal_slices(template)):
        ax.contour(sl, levels=[0.25], colors="tab:red", linewidths=0.6, origin="lower")
    fig.suptitle(title or "Rigid registration to MNI152 2009", fontsize=10)
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    stamp(fig, profile)
    return fig


def montage(volumes: Sequence[np.ndarray], labels: Sequence[str], profile: str, ncols: int = 8,
            view: str = "axial", weights: str = "none (no network)", data: str = "embedded cohort",
            title: str = "") -> plt.Figure:
    """One mid slice per volume in a grid: the quick look that catches a failed subject."""
    n = len(volumes)
    nrows = max(1, int(np.ceil(n / ncols)))
    axis = VIEWS.index(view)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.7 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, vol, label in zip(axes.ravel(), volumes, labels):
        ax.imshow(orthogonal_slices(vol)[axis], origin="lower", cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97 if title else 1))
    stamp(fig, profile, weights, data)
    return fig


def covariate_figure(cohort, profile: str, data: str = "embedded cohort") -> plt.Figure:
    """Distributions of the four covariates and their relation to age (the paper's cohort beside ours)."""
    import pandas as pd
    import seaborn as sns

    df = cohort.copy()
    df["sex"] = pd.Categorical(np.where(df["sex"] > 0.5, "M", "F"), categories=["F", "M"])
    df["ventricles (mL)"] = df["ventricular_volume"] / 1000
    df["brain (mL)"] = df["brain_volume"] / 1000
    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    sns.histplot(df, x="age", hue="sex", bins=20, ax=axes[0, 0], element="step")
    axes[0, 0].axvline(63.6, color="k", ls="--", lw=1)
    axes[0, 0].set_title("age (paper: 63.6 ± 7.5, 44-82, 47% male)", fontsize=9)
    sns.histplot(df, x="ventricles (mL)", hue="sex", bins=20, ax=axes[0, 1], element="step")
    axes[0, 1].set_title("ventricular CSF (UKB range 7.0-171.4 mL)", fontsize=9)
    sns.histplot(df, x="brain (mL)", hue="sex", bins=20, ax=axes[0, 2], element="step")
    axes[0, 2].set_title("brain, normalised for head size (UKB 1144-1794 mL)", fontsize=9)
    for ax, y in zip(axes[1, :2], ["ventricles (mL)", "brain (mL)"]):
        sns.regplot(df, x="age", y=y, ax=ax, scatter_kws={"s": 8, "alpha": 0.6}, line_kws={"color": "k"})
        r = np.corrcoef(df["age"], df[y])[0, 1]
        ax.set_title(f"{y} vs age: r = {r:+.2f}", fontsize=9)
    sns.regplot(df, x="ventricles (mL)", y="brain (mL)", ax=axes[1, 2], scatter_kws={"s": 8, "alpha": 0.6},
                line_kws={"color": "k"})
    r = np.corrcoef(df["ventricles (mL)"], df["brain (mL)"])[0, 1]
    axes[1, 2].set_title(f"brain vs ventricles: r = {r:+.2f}", fontsize=9)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    stamp(fig, profile, data=data)
    return fig


def loss_curves(history, columns: Sequence[str], profile: str, weights: str, title: str = "",
                smooth: int = 25) -> plt.Figure:
    """Training curves: raw values faint, a running mean on top; one panel per loss term."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3), squeeze=False)
    for ax, col in zip(axes[0], columns):
        if col not in history:  # e.g. converted official weights: no history came with them
            ax.text(0.5, 0.5, f"no {col} history\n({weights})", ha="center", va="center", fontsize=8, wrap=True)
            ax.set_title(col, fontsize=9)
            continue
        y = history[col].to_numpy(dtype=float)
        ax.plot(history["step"], y, color="0.75", lw=0.6)
        if len(y) >= smooth:
            kernel = np.ones(smooth) / smooth
            ax.plot(history["step"].iloc[smooth - 1:], np.convolve(y, kernel, mode="valid"), color="tab:blue")
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("step")
        if np.all(y > 0):
            ax.set_yscale("log")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95 if title else 1))
    stamp(fig, profile, weights)
    return fig


def volume_rows(volumes: Sequence[np.ndarray], labels: Sequence[str], voxel_mm: float, profile: str,
                weights: str, data: str = "embedded cohort", title: str = "") -> plt.Figure:
    """Three orthogonal views per volume, one row each (real vs reconstructed, or samples)."""
    fig, axes = plt.subplots(len(volumes), 3, figsize=(7, 2.6 * len(volumes) + 0.4), squeeze=False)
    for row, vol, label in zip(axes, volumes, labels):
        show_orthogonal(row, vol, (voxel_mm,) * 3, title=label, vmax=1)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97 if title else 1))
    stamp(fig, profile, weights, data)
    return fig


def sweep_figure(rows: Sequence[tuple[str, Sequence[str], Sequence[np.ndarray]]], voxel_mm: float, profile: str,
                 weights: str, views: Sequence[str] = ("coronal", "axial"), title: str = "") -> plt.Figure:
    """Fig. 2/4 layout: one block per sweep (``(name, column labels, volumes)``), one row per view,
    one column per conditioning value. Same seed along a row, so only the covariate changes."""
    ncols = max(len(v) for _, _, v in rows)
    nrows = len(rows) * len(views)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols + 0.6, 1.7 * nrows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for b, (name, labels, vols) in enumerate(rows):
        for v, view in enumerate(views):
            r = b * len(views) + v
            for c, (label, vol) in enumerate(zip(labels, vols)):
                ax = axes[r, c]
                sl = orthogonal_slices(vol)[VIEWS.index(view)]
                ax.imshow(sl, origin="lower", cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                          aspect=1.0)
                if v == 0:
                    ax.set_title(label, fontsize=7)
            axes[r, 0].axis("on")
            axes[r, 0].set_xticks([])
            axes[r, 0].set_yticks([])
            axes[r, 0].set_ylabel(f"{name}\n{view}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.96 if title else 1))
    stamp(fig, profile, weights, "generated")
    return fig


def correlation_figure(panels: Sequence[dict], profile: str, weights: str, title: str = "") -> plt.Figure:
    """Fig. 3 layout: per panel a scatter of ``x`` vs ``y`` with a regression line (seaborn) and Pearson r,
    with the paper's r beside ours. Each panel: x, y, xlabel, ylabel, title, paper_r (or None)."""
    import seaborn as sns

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, p in zip(axes[0], panels):
        x, y = np.asarray(p["x"], dtype=float), np.asarray(p["y"], dtype=float)
        sns.regplot(x=x, y=y, ax=ax, scatter_kws={"s": 12, "alpha": 0.7}, line_kws={"color": "C3"})
        r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 else float("nan")
        paper = f"; paper r = {p['paper_r']:.3f}" if p.get("paper_r") is not None else ""
        ax.set_title(f"{p['title']}\nours r = {r:.3f} (n = {len(x)}){paper}", fontsize=9)
        ax.set_xlabel(p["xlabel"], fontsize=8)
        ax.set_ylabel(p["ylabel"], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95 if title else 1))
    stamp(fig, profile, weights)
    return fig


def similarity_histogram(groups: Sequence[tuple[str, np.ndarray]], threshold: float, profile: str, weights: str,
                         title: str = "") -> plt.Figure:
    """The memorisation audit: each group's NCC to its nearest training subject, with the copy threshold."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    values = np.concatenate([np.asarray(v, float) for _, v in groups])
    bins = np.linspace(values.min() - 1e-3, max(values.max(), threshold) + 1e-3, 40)
    for name, v in groups:
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name} (n = {len(v)})", density=True)
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.4f}")
    ax.set_xlabel("NCC with the nearest training subject (1 = identical)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    stamp(fig, profile, weights)
    return fig


# Fig. 3's two rows: (target key, measured key, title, real panel's title and axes, samples' x axis, y axis)
FIG3 = {"ventricular_volume": ("target_ml", "ventricles_ml", "Fig. 3: ventricular volume",
                               "real test subjects (measurement ceiling)", "ground truth (mL)",
                               "conditioning ventricular volume (mL)", "measured (mL)"),
        "age": ("target_age", "age", "Fig. 3: brain age", "real test subjects (model ceiling)", "age (years)",
                "conditioning age (years)", "predicted brain age (years)")}


def fig3_figure(measured: dict, covariate: str, real_x: Sequence, real_y: Sequence, paper_r: float, profile: str,
                weights: str) -> plt.Figure:
    """One row of Fig. 3 (``covariate``: ventricular_volume or age): the real test subjects first (``real_x``
    against ``real_y``: the ceiling the measurement reaches on real brains), then the samples of each
    guidance scale w, ``measured[w]`` (``ldm.evaluation.conditioning.conditioning_numbers``)."""
    target, key, title, real_title, real_xlabel, xlabel, ylabel = FIG3[covariate]
    panels = [{"x": real_x, "y": real_y, "paper_r": None, "title": real_title, "xlabel": real_xlabel,
               "ylabel": ylabel},
              *({"x": m[target], "y": m[key], "paper_r": paper_r, "title": f"samples, guidance {w:g}",
                 "xlabel": xlabel, "ylabel": ylabel} for w, m in measured.items())]
    return correlation_figure(panels, profile, weights, title=title)


def closest_pairs_figure(pairs: Sequence[tuple[np.ndarray, dict, int, str]], train: np.ndarray, train_ids: Sequence,
                         voxel_mm: float, profile: str, weights: str) -> plt.Figure:
    """Chapter 8: each (volumes, audit, index, name) sample above its nearest training subject."""
    vols, labels = [], []
    for source, result, i, name in pairs:
        j = int(result["sample_nn"][i])
        vols += [source[i], train[j]]
        labels += [f"{name} {i} (NCC {result['sample_ncc'][i]:.4f})", f"nearest training subject {train_ids[j]}"]
    return volume_rows(vols, labels, voxel_mm, profile, weights, data="generated + training split",
                       title="Closest pairs: sample above its nearest training subject")


def fig1_figure(real: np.ndarray, samples: dict, seeds: Sequence[int], voxel_mm: float, profile: str, weights: str,
                show: int = 2) -> plt.Figure:
    """Fig. 1 in the paper's order: ``show`` real volumes, then as many of each GAN's and the LDM's samples
    (DDPM, then DDIM, labelled by seed), one row each."""
    sets = [("real", real), ("VAE-GAN", samples["VAE-GAN"]), ("LSGAN", samples["LSGAN"]),
            ("LDM (DDPM)", samples["LDM"]), ("LDM + DDIM", samples["LDM + DDIM"])]
    labels = [f"{name} seed {seeds[i]}" if name.startswith("LDM") else f"{name} {i}"
              for name, _ in sets for i in range(show)]
    return volume_rows([v for _, vs in sets for v in vs[:show]], labels, voxel_mm, profile, weights,
                       data="test split + generated", title="Fig. 1: real, GAN baselines and LDM samples")


def extrapolation_figure(table, covariate, profile: str, weights: str) -> plt.Figure:
    """Fig. 4's numbers: measured ventricular volume against the normalised input, one line per seed, the
    training range shaded and the requested volume (the input in mL) dashed. ``table``: seed, input,
    measured_ml; ``covariate``: the ventricular-volume ``Covariate`` (its min-max range)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.axvspan(0, 1, color="0.9", label="training range")
    xs = np.linspace(table["input"].min(), table["input"].max(), 50)
    ax.plot(xs, (xs * (covariate.max - covariate.min) + covariate.min) / 1000, "k--", lw=1, label="input in mL")
    for s, g in table.groupby("seed"):
        ax.plot(g["input"], g["measured_ml"], "o-", label=f"seed {s}")
    ax.set_xlabel("conditioning ventricular volume (normalised)")
    ax.set_ylabel("measured ventricular volume (mL)")
    ax.legend(fontsize=7)
    stamp(fig, profile, weights, "generated")
    return fig
