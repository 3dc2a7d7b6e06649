"""The paper's released networks: the MONAI model-zoo bundle -> this edition's checkpoints.

    ldm convert --bundle /path/to/brain_image_synthesis_latent_diffusion_model --out runs/paper/official

The bundle ``brain_image_synthesis_latent_diffusion_model`` (trained by the paper's authors with MONAI
Generative 0.2) holds ``models/autoencoder.pth`` and ``models/diffusion_model.pth``: state dicts of
networks with exactly the paper profile's shapes. MONAI 1.4+ renamed some parameters (the attention
projections); each network's ``load_old_state_dict`` maps them, and this module refuses a file with a
parameter the mapping did not use. Nothing is downloaded: you give the files, their md5 is checked
against the released ones (``--no-md5-check`` for weights of your own in that format).

The output folder holds ``autoencoder.pt`` and ``diffusion.pt`` in this edition's format (the paper
profile inside; latent statistics from the bundle's scale factor, 1.0 for the released weights), so every
notebook loads them with ``weights=<folder>`` and ``profile=paper``, and ``ldm.sample`` exports from them.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch

from ..checkpoints import config_record, save_checkpoint
from ..config import Profile, load_profile
from .networks import build_autoencoder, build_unet

BUNDLE = "brain_image_synthesis_latent_diffusion_model"
RELEASED_MD5 = {"autoencoder": "329e97b3085643ff235f11f049856242", "diffusion": "21c3047556fb671caf0556f1cce6ef22"}
FILES = {"autoencoder": "models/autoencoder.pth", "diffusion": "models/diffusion_model.pth"}


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_state(path: str | Path, kind: str, check_md5: bool = True) -> dict[str, torch.Tensor]:
    """A bundle state dict, read as data only, after checking it is the released file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {kind} weights not found. They are in the MONAI model-zoo bundle "
                                f"{BUNDLE} ({FILES[kind]}); download it yourself "
                                f"(python -m monai.bundle download --name {BUNDLE}) and pass its folder")
    if check_md5 and (got := md5(path)) != RELEASED_MD5[kind]:
        raise ValueError(f"{path}: md5 {got} is not the released {kind} weights' {RELEASED_MD5[kind]}; "
                         f"pass --no-md5-check for other weights in the bundle's format")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (a MONAI Generative network's)")
    return state


def convert(network: torch.nn.Module, old: dict[str, torch.Tensor], path: str | Path) -> torch.nn.Module:
    """Load a MONAI Generative state dict into the MONAI network; every old parameter must be used."""
    left = dict(old)  # load_old_state_dict pops what it uses
    network.load_old_state_dict(left)
    if left:
        raise ValueError(f"{path}: {len(left)} parameters have no place in the {type(network).__name__} of the "
                         f"paper profile (e.g. {sorted(left)[:3]}): not this bundle's architecture")
    return network


def convert_bundle(autoencoder: str | Path, diffusion: str | Path, out: str | Path, profile: Profile | None = None,
                   scale_factor: float = 1.0, check_md5: bool = True) -> Path:
    """Write ``out/autoencoder.pt`` and ``out/diffusion.pt`` from the bundle's two files."""
    profile = profile or load_profile("paper")
    out = Path(out)
    ae = convert(build_autoencoder(profile.autoencoder), read_state(autoencoder, "autoencoder", check_md5),
                 autoencoder)
    unet = convert(build_unet(profile.diffusion, profile.autoencoder.latent_channels),
                   read_state(diffusion, "diffusion", check_md5), diffusion)
    c = profile.autoencoder.latent_channels
    common = {"step": 0, "history": [], "config": config_record(profile), "world_size": 1, "seconds": 0.0,
              "weights": "model", "origin": f"official MONAI bundle {BUNDLE}"}
    save_checkpoint(out / "autoencoder.pt", {"kind": "autoencoder", "model": ae.state_dict(),
                                             "perceptual": "as released", **common})
    # the bundle's diffusion model sees z * scale_factor: mean 0, std 1 / scale_factor in our terms
    latents = {"latent_mean": torch.zeros(c), "latent_std": torch.full((c,), 1 / scale_factor)}
    save_checkpoint(out / "diffusion.pt", {"kind": "diffusion", "model": unet.state_dict(), **latents, **common})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help=f"the {BUNDLE} folder (holding models/*.pth)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--scale-factor", type=float, default=1.0, help="the bundle's latent scale factor (1.0)")
    ap.add_argument("--no-md5-check", action="store_true")
    args = ap.parse_args(argv)
    bundle = Path(args.bundle)
    out = convert_bundle(bundle / FILES["autoencoder"], bundle / FILES["diffusion"], args.out,
                         scale_factor=args.scale_factor, check_md5=not args.no_md5_check)
    print(f"wrote {out}/autoencoder.pt and {out}/diffusion.pt; use them with profile=paper, weights={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
