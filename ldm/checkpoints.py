"""The one checkpoint format: what a saved network holds, how it is read, checked and chosen.

A checkpoint is a dict of plain data (tensors, numbers, strings), written atomically and read with
``torch.load(weights_only=True)``: ``kind``, ``step``, ``history`` (the loss per step), ``config`` (the
profile it was trained under, as JSON text), ``seconds``, the state dicts, and whatever the network needs
back (latent statistics, age mean and sd). A checkpoint loads only into the architecture it was trained
with (``check_architecture``).

``checkpoints/<profile>/`` holds networks trained by this project's own commands (see its RECORD.md):
the weights only (EMA for the diffusion model), in half precision (``export_checkpoint``). A notebook's
``weights`` parameter picks the source (``resolve_weights``):

    "auto"    the shipped checkpoints of the profile if there are any, else train (smoke always trains)
    "train"   train from scratch in the run folder (the one switch that retrains everything)
    a folder  any folder holding autoencoder.pt / diffusion.pt written by ``ldm.train`` or ``export_checkpoint``

Sampling and evaluation read checkpoints through this module alone; training writes them through it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .config import Profile
from .io import atomic_path

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


# what a shipped checkpoint keeps: enough to rebuild, check and describe the network, not to resume it
KEEP = ("kind", "step", "history", "config", "perceptual", "world_size", "seconds", "latent_mean", "latent_std",
        "age_mean", "age_std", "origin")


def save_checkpoint(path: str | Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint as data only: a pickled object inside is refused, not executed."""
    return torch.load(path, map_location="cpu", weights_only=True)


def config_record(profile: Profile) -> str:
    """The profile's numbers, as JSON text (plain data, loadable with weights_only)."""
    return json.dumps({"name": profile.name, "fingerprint": profile.fingerprint(), **profile.to_dict()}, default=list)


# profile keys added after checkpoints had been saved, with the value every run before them used: a saved
# config reads as if written today, so a new key does not make every earlier checkpoint look stale
ADDED_KEYS = {"preprocessing.registration_metric": "mattes_mi"}


def saved_config(ck: dict) -> dict:
    """The profile a checkpoint was trained with (its ``config`` record), keys added since filled in."""
    saved = json.loads(ck["config"])
    for key, value in ADDED_KEYS.items():
        *sections, leaf = key.split(".")
        node = saved
        for section in sections:
            node = node.setdefault(section, {})
        node.setdefault(leaf, value)
    return saved


# what a checkpoint's network depends on, per kind: dotted keys of the profile. Training budgets (steps,
# learning rates) are left out on purpose, so a run can be resumed with more steps.
ARCHITECTURE_KEYS = {
    "autoencoder": ("autoencoder",),
    "diffusion": ("autoencoder", "diffusion", "scheduler"),
    "brain_age": ("data.shape", "brain_age.channels"),
    "lsgan": ("data.shape", "baselines.latent_dim", "baselines.generator_channels",
              "baselines.discriminator_channels"),
}
ARCHITECTURE_KEYS["vaegan"] = ARCHITECTURE_KEYS["lsgan"]


def check_architecture(ck: dict, profile: Profile, section: str, path: Path) -> None:
    """A checkpoint resumes (or loads) only into the architecture it was trained with."""
    saved = saved_config(ck)
    now = json.loads(config_record(profile))
    for key in ARCHITECTURE_KEYS[section]:
        was, want = _dotted(saved, key), _dotted(now, key)
        if was != want:
            raise ValueError(f"{path}: checkpoint was trained with a different {key} "
                             f"(saved {was}, profile {want}); use another run folder")


def _dotted(tree: dict, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def differing_statistic(ck: dict, same: dict[str, torch.Tensor], rtol: float, atol: float) -> str | None:
    """The first name in ``same`` (name -> tensor, e.g. the latents' mean and std) whose value stored in
    the checkpoint ``ck`` differs beyond the tolerances; None when all agree."""
    return next((k for k, now in same.items() if not torch.allclose(ck[k].float(), now, rtol=rtol, atol=atol)), None)


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in blocks: which autoencoder checkpoint a set of latents came from."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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


def describe(ck: dict, source: Path | None) -> str:
    """One line for figures: where the network came from and how long it trained."""
    if "origin" in ck:
        return f"{ck['kind']}: {ck['origin']} (converted)"
    where = "trained in this run" if source is None else f"loaded from {_short(source)}"
    extra = f", perceptual: {ck['perceptual']}" if ck.get("kind") == "autoencoder" else ""
    return f"{ck['kind']} {where}, {ck['step']} steps{extra}"


def export_checkpoint(src: Path, dst: Path, ema: bool = True) -> Path:
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
