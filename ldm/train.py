"""Training loops for the autoencoder and the latent diffusion model (paper 2.2), one process or many.

    python -m ldm.train autoencoder --profile smoke --run-dir runs/smoke
    python -m ldm.train diffusion   --profile smoke --run-dir runs/smoke
    python -m ldm.train brain_age|lsgan|vaegan --profile smoke --run-dir runs/smoke   (ldm.brain_age, ldm.baselines)
    torchrun --nproc_per_node 2 -m ldm.train diffusion --profile smoke --run-dir runs/smoke

Reproducibility is designed in, not hoped for: the global batch of step k, each sample's noise and
each sample's timestep are functions of (seed, k, position in the global batch) alone. So a run killed
and resumed from its last checkpoint, and a run split over N ranks (each taking every N-th sample of
the global batch; DDP averages the gradients), follow the same trajectory as one uninterrupted process.
Checkpoints are written atomically and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from .config import Profile, load_profile
from .io import atomic_path, atomic_write_table, leftover_temporaries
from .networks import build_autoencoder, build_discriminator, build_unet, condition_vector, conditioning_inputs
from .sampling import add_noise, alphas_cumprod, schedule_betas

log = logging.getLogger(__name__)
# channels-last 3D convolutions: measured 27% faster (AE) and 10% faster (UNet) training steps on a
# 2-core AMD EPYC CPU (benchmarks/bench_training_step.py); same numbers, another memory layout
CHANNELS_LAST = torch.channels_last_3d
COVARIATE_COLUMNS = ("sex_norm", "age_norm", "ventricular_volume_norm", "brain_volume_norm")


# --- processes, seeds, checkpoints --------------------------------------------------------------


def default_device() -> torch.device:
    """Where this process runs its networks, for training and evaluation alike: its GPU when there is one
    (torchrun's ``LOCAL_RANK``, else the first), else the CPU. ``CUDA_VISIBLE_DEVICES=""`` forces the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for one without any, e.g. a stand-in in a test)."""
    return next(module.parameters(), torch.empty(0)).device


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device): from torchrun's environment, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    device = default_device()
    if cuda:
        torch.cuda.set_device(device)
    return rank, world, device


def global_batch(step: int, n: int, batch: int, seed: int) -> np.ndarray:
    """Dataset indices of the global batch at ``step``: consecutive slices of per-epoch permutations."""
    pos = step * batch + np.arange(batch)
    epochs = pos // n
    out = np.empty(batch, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        out[epochs == e] = perm[pos[epochs == e] % n]
    return out


def sample_generator(seed: int, step: int, position: int) -> torch.Generator:
    """The generator of one sample of one step: the same whatever the rank or batch split."""
    state = np.random.SeedSequence([seed, step, position]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def save_checkpoint(path: str | Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_progress(out: Path, kind: str, step: int, history: list[dict], profile: Profile, t0: float,
                  **state) -> Path:
    """The checkpoint ``out/<kind>.pt`` (kind, step, loss history, profile record, seconds, and ``state``:
    the state dicts and whatever else the network needs back) and its curves ``out/<kind>_history.tsv``,
    both written atomically: a kill never leaves either half-written."""
    path = out / f"{kind}.pt"
    save_checkpoint(path, {"kind": kind, "step": step, "history": history, "config": _config_record(profile),
                           "seconds": time.perf_counter() - t0, **state})
    atomic_write_table(pd.DataFrame(history), out / f"{kind}_history.tsv")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint as data only: a pickled object inside is refused, not executed."""
    return torch.load(path, map_location="cpu", weights_only=True)


def autocast(device: torch.device, precision: str):
    if precision == "bf16" and (device.type == "cuda" or torch.backends.mkldnn.is_available()):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- data ----------------------------------------------------------------------------------------


def load_volumes(manifest: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed volumes (N, 1, D, H, W) in [0, 1] and normalised covariates (N, 4) of a manifest."""
    vols = np.stack([np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in manifest["image"]])
    covs = manifest[list(COVARIATE_COLUMNS)].to_numpy(np.float32, copy=True)  # writable: torch shares it
    return torch.from_numpy(vols)[:, None], torch.from_numpy(covs)


# --- the autoencoder ----------------------------------------------------------------------------


class _AutoencoderPass(torch.nn.Module):
    """encode -> reparameterise with given noise -> decode, as one forward (so DDP sees it). With
    ``freeze_encoder`` the encoding is a constant: only the decoder learns."""

    def __init__(self, ae):
        super().__init__()
        self.ae = ae

    def forward(self, x: torch.Tensor, eps: torch.Tensor, freeze_encoder: bool = False):
        with torch.no_grad() if freeze_encoder else contextlib.nullcontext():
            mu, sigma = self.ae.encode(x)
        return self.ae.decode(mu + sigma * eps), mu, sigma


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)), summed over latent voxels, averaged over the batch."""
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-12) - 1)
    return kl.flatten(1).sum(1).mean()


def train_autoencoder(profile: Profile, images: torch.Tensor, out_dir: str | Path, steps: int | None = None,
                      progress: bool = True) -> Path:
    """L1 + KL (+ perceptual when weights are given) + patch adversarial after a warm-up. Returns the
    checkpoint path. Resumes from ``out_dir/autoencoder.pt`` when it holds fewer steps.

    Steps from ``training.autoencoder_steps`` on (``training.decoder_finetune_steps`` of them) train the
    decoder alone: the encoder, and so every latent a diffusion model learns from, stays bit for bit
    what it was, while the decoder (with the adversarial term, if it has joined) learns sharper images."""
    cfg = profile.training
    steps = cfg.autoencoder_steps + cfg.decoder_finetune_steps if steps is None else steps
    rank, world, device = setup_distributed()
    out = Path(out_dir)
    ckpt_path = out / "autoencoder.pt"
    torch.manual_seed(cfg.seed)  # initial weights: identical on every rank
    ae = build_autoencoder(profile.autoencoder).to(device, memory_format=CHANNELS_LAST)
    disc = build_discriminator(cfg.discriminator_channels, cfg.discriminator_layers).to(device)
    opt_g = torch.optim.Adam(ae.parameters(), lr=cfg.autoencoder_lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.autoencoder_lr)
    start, history = resume(ckpt_path, profile, "autoencoder", {
        "model": ae, "discriminator": disc, "optimizer": opt_g, "optimizer_discriminator": opt_d})
    perceptual = None
    if cfg.perceptual_weights:
        from .perceptual import MedicalNetPerceptualLoss

        perceptual = MedicalNetPerceptualLoss(cfg.perceptual_weights).to(device)
    model = _AutoencoderPass(ae)
    if world > 1:  # the encoder gets no gradient while the decoder is fine-tuned
        model, disc = DDP(model, find_unused_parameters=cfg.decoder_finetune_steps > 0), DDP(disc)
    adv = PatchAdversarialLoss(criterion="least_squares")
    per_rank = _split(cfg.autoencoder_batch_size, world)
    t0 = time.perf_counter()
    for step in tqdm(range(start, steps), desc="autoencoder", disable=not progress or rank > 0,
                     initial=start, total=steps):
        idx = global_batch(step, len(images), cfg.autoencoder_batch_size, cfg.seed)[rank::world]
        x = images[idx].to(device, memory_format=CHANNELS_LAST)
        latent_shape = (profile.autoencoder.latent_channels, *profile.latent_shape)
        eps = torch.stack([torch.randn(latent_shape, generator=sample_generator(cfg.seed, step, rank + world * j))
                           for j in range(per_rank)]).to(device)
        decoder_only = step >= cfg.autoencoder_steps
        with autocast(device, cfg.precision):
            recon, mu, sigma = model(x, eps, freeze_encoder=decoder_only)
        recon, mu, sigma = recon.float(), mu.float(), sigma.float()
        l1 = F.l1_loss(recon, x)
        kl = kl_divergence(mu, sigma)
        loss = l1 if decoder_only else l1 + cfg.kl_weight * kl  # KL is a constant for the decoder
        p_loss = torch.zeros(())
        if perceptual is not None:
            p_loss = perceptual(recon, x)
            loss = loss + cfg.perceptual_weight * p_loss
        adversarial = step >= cfg.adversarial_warmup_steps and cfg.adversarial_weight > 0
        g_adv = torch.zeros(())
        if adversarial:
            g_adv = adv(disc(recon)[-1], target_is_real=True, for_discriminator=False)
            loss = loss + cfg.adversarial_weight * g_adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        d_loss = torch.zeros(())
        if adversarial:
            # one forward over fakes and reals together: DDP allows one forward per backward
            logits = disc(torch.cat([recon.detach(), x]))[-1]
            fake = adv(logits[: len(x)], target_is_real=False, for_discriminator=True)
            real = adv(logits[len(x):], target_is_real=True, for_discriminator=True)
            d_loss = cfg.adversarial_weight * 0.5 * (fake + real)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        history.append({"step": step + 1, "l1": l1.item(), "kl": kl.item(), "perceptual": p_loss.item(),
                        "generator_adversarial": g_adv.item(), "discriminator": d_loss.item()})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
            if rank == 0:
                save_progress(out, "autoencoder", step + 1, history, profile, t0, model=ae.state_dict(),
                              discriminator=_unwrap(disc).state_dict(), optimizer=opt_g.state_dict(),
                              optimizer_discriminator=opt_d.state_dict(),
                              perceptual=cfg.perceptual_weights or "none", world_size=world)
            _barrier(world)
    return ckpt_path


# --- latents and the diffusion model -------------------------------------------------------------


@torch.no_grad()
def encode(ae, images: torch.Tensor, batch: int = 8, device: str | torch.device | None = None) -> torch.Tensor:
    """Latent means z_mu of a set of volumes (the deterministic encoding the diffusion model learns), on the
    CPU; computed on ``device`` (default: ``default_device()``), where ``ae`` is moved."""
    device = torch.device(device or default_device())
    ae = ae.to(device).eval()
    return torch.cat([ae.encode(images[i:i + batch].to(device))[0].float().cpu() for i in range(0, len(images), batch)])


def latent_statistics(latents: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per latent channel, by which the diffusion model sees (z - mean) / std.

    ``global_std`` is the paper's (Rombach et al.'s) scale factor: mean 0 and one std for all channels.
    ``per_channel`` standardises each channel, for latents whose channels differ in spread."""
    c = latents.shape[1]
    if mode == "global_std":
        return torch.zeros(c), latents.std().repeat(c)
    if mode == "per_channel":
        per = latents.transpose(0, 1).flatten(1)
        return per.mean(1), per.std(1)
    raise ValueError(f"unknown latent_normalisation {mode!r}")


def _channel_view(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return v.to(z).view(1, -1, *(1,) * (z.ndim - 2))


def normalise_latents(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (z - _channel_view(mean, z)) / _channel_view(std, z)


def denormalise_latents(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return z * _channel_view(std, z) + _channel_view(mean, z)


def train_diffusion(profile: Profile, latents: torch.Tensor, covariates: torch.Tensor, out_dir: str | Path,
                    steps: int | None = None, progress: bool = True) -> Path:
    """Epsilon (or v) prediction on normalised latents with hybrid conditioning; EMA of the weights.

    ``latents`` are raw z_mu; their normalisation (``latent_statistics``) is computed here and stored in
    the checkpoint, so sampling needs nothing else. With ``training.condition_dropout`` > 0, that fraction
    of samples is trained unconditionally (the null token), which classifier-free guidance needs."""
    cfg = profile.training
    steps = cfg.diffusion_steps if steps is None else steps
    rank, world, device = setup_distributed()
    out = Path(out_dir)
    ckpt_path = out / "diffusion.pt"
    latent_mean, latent_std = latent_statistics(latents, profile.diffusion.latent_normalisation)
    z_all = normalise_latents(latents, latent_mean, latent_std)
    torch.manual_seed(cfg.seed)
    unet = build_unet(profile.diffusion, profile.autoencoder.latent_channels).to(device, memory_format=CHANNELS_LAST)
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.Adam(unet.parameters(), lr=cfg.diffusion_lr)
    # a checkpoint left from other latents (the autoencoder changed) must not resume on these
    start, history = resume(ckpt_path, profile, "diffusion", {"model": unet, "ema": ema, "optimizer": opt},
                            same={"latent_mean": latent_mean, "latent_std": latent_std})
    model = DDP(unet) if world > 1 else unet
    sched = profile.scheduler
    betas = schedule_betas(sched)
    abar = alphas_cumprod(betas)
    per_rank = _split(cfg.diffusion_batch_size, world)
    t0 = time.perf_counter()
    for step in tqdm(range(start, steps), desc="diffusion", disable=not progress or rank > 0,
                     initial=start, total=steps):
        idx = global_batch(step, len(z_all), cfg.diffusion_batch_size, cfg.seed)[rank::world]
        z0, c = z_all[idx].to(device), covariates[idx].to(device)
        gens = [sample_generator(cfg.seed, step, rank + world * j) for j in range(per_rank)]
        noise = torch.stack([torch.randn(z0.shape[1:], generator=g) for g in gens]).to(device)
        t = torch.stack([torch.randint(0, sched.num_train_timesteps, (), generator=g) for g in gens]).to(device)
        present = torch.stack([(torch.rand((), generator=g) >= cfg.condition_dropout).float() for g in gens])
        zt = add_noise(z0, noise, t, abar)
        if sched.prediction_type == "epsilon":
            target = noise
        elif sched.prediction_type == "v_prediction":
            a = abar.to(device)[t].float().view(-1, *(1,) * (z0.ndim - 1))
            target = a.sqrt() * noise - (1 - a).sqrt() * z0
        else:
            target = z0
        x_in, context = conditioning_inputs(zt, condition_vector(c, profile.diffusion.null_token, present.to(device)))
        x_in = x_in.contiguous(memory_format=CHANNELS_LAST)
        with autocast(device, cfg.precision):
            pred = model(x=x_in, timesteps=t, context=context)
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # EMA with the usual warm-up: early on the average follows the weights closely, so a short run's
        # EMA is not mostly its random initialisation (0.999 over 1000 steps would keep 37% of it).
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        history.append({"step": step + 1, "loss": loss.item()})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
            if rank == 0:
                save_progress(out, "diffusion", step + 1, history, profile, t0, model=unet.state_dict(),
                              ema=ema.state_dict(), optimizer=opt.state_dict(), latent_mean=latent_mean,
                              latent_std=latent_std, world_size=world)
            _barrier(world)
    return ckpt_path


# --- helpers -------------------------------------------------------------------------------------


class StaleCheckpointError(RuntimeError):
    """A checkpoint that would resume on other data than it was trained on."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in blocks: which autoencoder checkpoint a set of latents came from."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _split(global_batch_size: int, world: int) -> int:
    if global_batch_size % world:
        raise ValueError(f"global batch {global_batch_size} does not split evenly over {world} ranks")
    return global_batch_size // world


def _unwrap(m):
    return m.module if isinstance(m, DDP) else m


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _config_record(profile: Profile) -> str:
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


def resume(path: Path, profile: Profile, section: str, parts: dict,
           same: dict[str, torch.Tensor] | None = None) -> tuple[int, list[dict]]:
    """Load each of ``parts`` (name in the checkpoint -> module or optimizer) from ``path`` if it exists;
    returns (steps done, loss history). A checkpoint of another architecture is refused, and so is one
    whose stored data statistics differ from ``same`` (name -> tensor: e.g. the latents' mean and std),
    which would resume training on other data (``StaleCheckpointError``; the file is left as it is).
    Half-written copies that a run killed while saving left beside ``path`` are removed first: no other
    process writes this checkpoint while a run starts on it (in DDP only rank 0 saves, after step 1)."""
    for tmp in leftover_temporaries(path):
        log.warning("removing %s: left by a run killed while it saved %s", tmp, path.name)
        tmp.unlink(missing_ok=True)
    if not path.is_file():
        return 0, []
    ck = load_checkpoint(path)
    check_architecture(ck, profile, section, path)
    if (key := differing_statistic(ck, same or {}, rtol=1e-4, atol=1e-6)) is not None:
        raise StaleCheckpointError(
            f"{path}: trained on other data (its {key} differs: the autoencoder changed?); "
            "move it away to train anew on these")
    for key, obj in parts.items():
        obj.load_state_dict(ck[key])
    return int(ck["step"]), list(ck["history"])


def differing_statistic(ck: dict, same: dict[str, torch.Tensor], rtol: float, atol: float) -> str | None:
    """The first name in ``same`` (name -> tensor, e.g. the latents' mean and std) whose value stored in
    the checkpoint ``ck`` differs beyond the tolerances; None when all agree."""
    return next((k for k, now in same.items() if not torch.allclose(ck[k].float(), now, rtol=rtol, atol=atol)), None)


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
    now = json.loads(_config_record(profile))
    for key in ARCHITECTURE_KEYS[section]:
        was, want = _dotted(saved, key), _dotted(now, key)
        if was != want:
            raise ValueError(f"{path}: checkpoint was trained with a different {key} "
                             f"(saved {was}, profile {want}); use another run folder")


def _dotted(tree: dict, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def write_latents(profile: Profile, run: Path, path: Path) -> Path:
    """Encode the run's training split with its autoencoder: {'latents', 'covariates'} at ``path``."""
    from .preprocess import load_preprocessed

    ck = load_checkpoint(run / "models" / "autoencoder.pt")
    check_architecture(ck, profile, "autoencoder", run / "models" / "autoencoder.pt")
    ae = build_autoencoder(profile.autoencoder)
    ae.load_state_dict(ck["model"])
    images, covariates = load_volumes(load_preprocessed(run / "preprocessed").query("split == 'train'"))
    return save_latents(path, encode(ae, images), covariates, run / "models" / "autoencoder.pt")


def save_latents(path: Path, latents: torch.Tensor, covariates: torch.Tensor, autoencoder: Path) -> Path:
    """{'latents', 'covariates', 'autoencoder_sha256'} at ``path``: the digest names the autoencoder
    checkpoint that encoded them, so latents left from an earlier autoencoder are never reused."""
    with atomic_path(path) as tmp:
        torch.save({"latents": latents, "covariates": covariates, "autoencoder_sha256": file_digest(autoencoder)}, tmp)
    return path


def latents_are_current(path: Path, autoencoder: Path) -> bool:
    """Whether ``path`` holds the latents of exactly this autoencoder checkpoint (written by write_latents)."""
    if not path.is_file():
        return False
    # memory-mapped: only the digest is read, not the (paper size: GBs of) latents
    return torch.load(path, weights_only=True, mmap=True).get("autoencoder_sha256") == file_digest(autoencoder)


def train_on_images(kind: str, profile: Profile, run: Path, steps: int | None = None, progress: bool = True) -> Path:
    """Train (or resume) a network that learns from the run's training-split volumes: the autoencoder,
    the brain-age CNN or a GAN baseline. Returns its checkpoint, ``run/models/<kind>.pt``."""
    from .preprocess import load_preprocessed

    train = load_preprocessed(run / "preprocessed").query("split == 'train'")
    images, _ = load_volumes(train)
    models = run / "models"
    if kind == "autoencoder":
        return train_autoencoder(profile, images, models, steps=steps, progress=progress)
    if kind == "brain_age":
        from .brain_age import train_brain_age

        ages = torch.tensor(train["age"].to_numpy(), dtype=torch.float32)
        return train_brain_age(profile, images, ages, models, steps=steps, progress=progress)
    if kind in ("lsgan", "vaegan"):
        from .baselines import train_gan

        return train_gan(kind, profile, images, models, steps=steps, progress=progress)
    raise ValueError(f"unknown network {kind!r}")


def main(argv: list[str] | None = None) -> None:

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["autoencoder", "diffusion", "brain_age", "lsgan", "vaegan"])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--overrides", default="{}")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--latents", default="", help="diffusion: a .pt of {'latents', 'covariates'} to train on")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    profile = load_profile(args.profile, json.loads(args.overrides))
    run = Path(args.run_dir)
    models = run / "models"
    if args.what != "diffusion":
        train_on_images(args.what, profile, run, steps=args.steps)
    else:
        latents_path = Path(args.latents) if args.latents else models / "latents.pt"
        rank, world, _ = setup_distributed()
        if not args.latents and rank == 0 and not latents_are_current(latents_path, models / "autoencoder.pt"):
            write_latents(profile, run, latents_path)  # missing, or encoded by another autoencoder
        _barrier(world)
        data = torch.load(latents_path, weights_only=True)
        train_diffusion(profile, data["latents"], data["covariates"], models, steps=args.steps)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
