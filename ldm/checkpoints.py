"""Which trained networks a notebook uses: the shipped ones, freshly trained ones, or a folder you give.

``checkpoints/<profile>/`` holds networks trained by this project's own commands (see its RECORD.md):
the weights only (EMA for the diffusion model), in half precision, with the profile they were trained
under and their loss history. A notebook's ``weights`` parameter picks the source:

    "auto"    the shipped checkpoints of the profile if there are any, else train (smoke always trains)
    "train"   train from scratch in the run folder (the one switch that retrains everything)
    a folder  any folder holding autoencoder.pt / diffusion.pt written by ``ldm.train`` or ``export``

The evaluation networks (brain age, the GAN baselines) follow the same rule through ``obtain``: from the
weights folder when it has them, else trained (or resumed) in the run folder for the profile's budget.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Profile
from .train import check_architecture, load_checkpoint, save_checkpoint, train_on_images

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
# what a shipped checkpoint keeps: enough to rebuild, check and describe the network, not to resume it
KEEP = ("kind", "step", "history", "config", "perceptual", "world_size", "seconds", "latent_mean", "latent_std",
        "age_mean", "age_std", "origin")


def shipped_dir(profile: Profile) -> Path | None:
    folder = SHIPPED_DIR / profile.name
    return folder if (folder / "autoencoder.pt").is_file() else None


def resolve_weights(weights: str, profile: Profile) -> Path | None:
    """The folder to load networks from, or None when they are to be trained in the run folder."""
    if weights == "train":
        return None
    if weights == "auto":
        return shipped_dir(profile)
    folder = Path(weights)
    if not (folder / "autoencoder.pt").is_file():
        raise FileNotFoundError(f"weights={weights!r}: no autoencoder.pt in that folder "
                                f"(expected 'auto', 'train' or a folder of checkpoints)")
    return folder


def load_checked(path: Path, profile: Profile, section: str) -> dict:
    """A checkpoint, refused unless it was trained with this profile's architecture."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    ck = load_checkpoint(path)
    check_architecture(ck, profile, section, path)
    return ck


def obtain(kind: str, weights: str, profile: Profile, run: Path, progress: bool = False) -> tuple[dict, str]:
    """(checkpoint, one-line description) of the ``brain_age``, ``lsgan`` or ``vaegan`` network.

    Loaded from the ``weights`` folder when it holds ``<kind>.pt``; otherwise trained on the run's
    training split into ``run/models`` (a finished checkpoint there is reused, a partial one resumed)."""
    folder = resolve_weights(weights, profile)
    if folder is not None and (folder / f"{kind}.pt").is_file():
        ck = load_checked(folder / f"{kind}.pt", profile, kind)
        return ck, describe(ck, folder / f"{kind}.pt")
    if folder is not None:
        print(f"{folder} has no {kind}.pt: training it in {run / 'models'} ({profile.name} profile budget)")
    ck = load_checked(train_on_images(kind, profile, run, progress=progress), profile, kind)
    return ck, describe(ck, None)


def describe(ck: dict, source: Path | None) -> str:
    """One line for figures: where the network came from and how long it trained."""
    if "origin" in ck:
        return f"{ck['kind']}: {ck['origin']} (converted)"
    where = "trained in this run" if source is None else f"loaded from {_short(source)}"
    extra = f", perceptual: {ck['perceptual']}" if ck.get("kind") == "autoencoder" else ""
    return f"{ck['kind']} {where}, {ck['step']} steps{extra}"


def export(src: Path, dst: Path, ema: bool = True) -> Path:
    """A training checkpoint -> a shipped one: weights (EMA for diffusion) in float16, no optimiser."""
    ck = load_checkpoint(src)
    state = ck["ema"] if ema and "ema" in ck else ck["model"]
    out = {k: ck[k] for k in KEEP if k in ck}
    out["model"] = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    out["weights"] = "ema" if ema and "ema" in ck else "model"
    save_checkpoint(dst, out)
    return dst


def model_state(ck: dict, ema: bool = True) -> dict[str, torch.Tensor]:
    """The state dict to load: EMA weights when a training checkpoint has them (shipped ones hold one)."""
    return ck["ema"] if ema and "ema" in ck else ck["model"]


def _short(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(SHIPPED_DIR.parent))
    except ValueError:
        return str(path)
