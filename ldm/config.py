"""Profiles: every number that sizes a run, loaded from ``configs/<name>.yaml`` and validated.

One code path, three sets of numbers (``smoke``, ``demo``, ``paper``). A profile is a tree of frozen
dataclasses; loading checks every key and type against the dataclass fields, so a typo or a wrong type
is one error that names the file and the dotted key, never a silent default. Rules between numbers sit
beside the dataclass whose numbers they relate (``problems()``); rules across sections sit on ``Profile``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
PROFILES = ("smoke", "demo", "paper")


class ConfigError(ValueError):
    """A profile or override is invalid; the message names the file and the dotted key."""


# (key, message) for each broken rule, lazily so that loading can stop at the first. A section's keys are
# relative to it (``shape``), because a section does not know its name in the profile; Profile's are dotted.
Problems = Iterator[tuple[str, str]]


@dataclass(frozen=True)
class Covariate:
    """One conditioning variable: its column in a participants table and its min-max range.

    Normalised value = (natural - min) / (max - min); values outside [0, 1] are allowed (extrapolation).
    """

    name: str
    column: str
    min: float
    max: float
    unit: str


@dataclass(frozen=True)
class DataConfig:
    voxel_size_mm: float
    shape: tuple[int, int, int]
    fov_center_mm: tuple[float, float, float]  # MNI (RAS) coordinate of the centre of the crop box
    intensity_percentiles: tuple[float, float]  # robust [low, high] percentiles mapped to 0 and 1
    covariates: tuple[Covariate, ...]

    def problems(self) -> Problems:
        if self.voxel_size_mm <= 0:
            yield "voxel_size_mm", "must be positive"
        if any(s <= 0 for s in self.shape):
            yield "shape", "must be positive"
        lo, hi = self.intensity_percentiles
        if not 0 <= lo < hi <= 100:
            yield "intensity_percentiles", f"need 0 <= low < high <= 100, got {lo}, {hi}"
        names = [c.name for c in self.covariates]
        if names != ["sex", "age", "ventricular_volume", "brain_volume"]:
            yield "covariates", f"must be sex, age, ventricular_volume, brain_volume in that order, got {names}"
        for i, c in enumerate(self.covariates):
            if not c.max > c.min:
                yield f"covariates[{i}]", f"max must exceed min for {c.name}"


@dataclass(frozen=True)
class CohortConfig:
    """The embedded, generated cohort (see ``ldm.cohort``)."""

    n_subjects: int
    seed: int
    split_fractions: tuple[float, float, float]  # train, validation, test
    template_voxel_mm: float  # resolution at which the MNI152 anatomy is deformed
    raw_voxel_mm: tuple[float, ...]  # voxel sizes a raw scan may have along each axis
    max_rotation_deg: float  # head position in the scanner: uniform in +-this, per axis
    max_translation_mm: float

    def problems(self) -> Problems:
        if self.n_subjects < 3:
            yield "n_subjects", "need at least 3 (one per split)"
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or min(self.split_fractions) <= 0:
            yield "split_fractions", "must be positive and sum to 1"
        if not self.raw_voxel_mm or min(self.raw_voxel_mm) < self.template_voxel_mm:
            yield "raw_voxel_mm", "raw voxels must not be finer than cohort.template_voxel_mm"


@dataclass(frozen=True)
class PreprocessingConfig:
    registration_voxel_mm: float  # rigid registration runs on images at this resolution
    registration_iterations: int
    # Mattes MI works across contrasts; correlation assumes the scan looks like the T1 template (T1w does)
    # and lands nearer a converged reference, in 60% of the time (benchmarks/results/registration_*.{json,md})
    registration_metric: Literal["mattes_mi", "correlation"]
    interpolation: Literal["linear", "bspline"]


@dataclass(frozen=True)
class AutoencoderConfig:
    channels: tuple[int, ...]
    latent_channels: int
    num_res_blocks: int
    norm_num_groups: int
    norm_eps: float
    attention_levels: tuple[bool, ...]
    with_encoder_nonlocal_attn: bool
    with_decoder_nonlocal_attn: bool

    def problems(self) -> Problems:
        yield from _level_problems(self)


@dataclass(frozen=True)
class DiffusionConfig:
    channels: tuple[int, ...]
    num_res_blocks: int
    attention_levels: tuple[bool, ...]
    norm_num_groups: int
    norm_eps: float
    resblock_updown: bool
    num_head_channels: tuple[int, ...]
    transformer_num_layers: int
    cross_attention_dim: int  # number of covariates, + 1 with null_token
    upcast_attention: bool
    # Beyond the paper (issue 10 levers; the paper profile keeps the paper's choices):
    latent_normalisation: Literal["global_std", "per_channel"]  # paper: one scale factor 1/std
    null_token: bool  # a "covariates present" flag input, so the model also learns p(z) (classifier-free guidance)

    def problems(self) -> Problems:
        yield from _level_problems(self)
        if len(self.num_head_channels) != len(self.channels):
            yield "num_head_channels", "needs one entry per level of channels"


def _level_problems(cfg: AutoencoderConfig | DiffusionConfig) -> Problems:
    """The rules the autoencoder and the UNet share: one entry per level, GroupNorm divides every width."""
    if len(cfg.attention_levels) != len(cfg.channels):
        yield "attention_levels", "needs one entry per level of channels"
    if any(c % cfg.norm_num_groups for c in cfg.channels):
        yield "channels", f"each must be divisible by norm_num_groups={cfg.norm_num_groups}"


@dataclass(frozen=True)
class SchedulerConfig:
    num_train_timesteps: int
    schedule: Literal["scaled_linear_beta", "linear_beta", "cosine"]
    beta_start: float
    beta_end: float
    prediction_type: Literal["epsilon", "v_prediction", "sample"]

    def problems(self) -> Problems:
        if not 0 < self.beta_start < self.beta_end < 1:
            yield "beta_end", "need 0 < beta_start < beta_end < 1"


@dataclass(frozen=True)
class TrainingConfig:
    """Both training runs (paper 2.2). Batch sizes are global: split over the ranks of a torchrun job."""

    autoencoder_steps: int
    autoencoder_batch_size: int
    autoencoder_lr: float
    kl_weight: float
    perceptual_weight: float  # used only when perceptual_weights names a file
    perceptual_weights: str  # path to MedicalNet ResNet-10 weights; "" = no perceptual term (recorded)
    adversarial_weight: float
    adversarial_warmup_steps: int  # the adversarial term joins after this many steps
    # Beyond the paper (issue 10): after autoencoder_steps, this many more steps train the decoder alone
    # (encoder frozen, as Stable Diffusion's fine-tuned decoders): sharper images, the same latent space
    decoder_finetune_steps: int
    discriminator_channels: int
    discriminator_layers: int  # each halves the volume: 3 needs at least ~40 voxels a side
    diffusion_steps: int
    diffusion_batch_size: int
    diffusion_lr: float
    ema_decay: float
    condition_dropout: float  # fraction of samples trained unconditionally (needs diffusion.null_token)
    precision: Literal["fp32", "bf16"]  # bf16 autocast where the device supports it
    checkpoint_every: int
    seed: int

    def problems(self) -> Problems:
        if not 0 <= self.condition_dropout < 1:
            yield "condition_dropout", "must be in [0, 1)"
        if not 0 <= self.ema_decay < 1:
            yield "ema_decay", "must be in [0, 1)"
        if self.checkpoint_every < 1:
            yield "checkpoint_every", "must be at least 1"


@dataclass(frozen=True)
class SamplingConfig:
    sampler: Literal["ddim", "ddpm", "dpm++"]  # the default of the notebooks, the export CLI and the widget
    ddim_steps: int
    dpm_steps: int  # DPM-Solver++(2M) network calls (beyond the paper; Table 1 compares it with DDIM)
    ddim_eta: float
    guidance_scale: float  # classifier-free guidance w: eps_u + w (eps_c - eps_u); 1 = conditional only
    batch_size: int
    n_samples: int
    channels_last: bool  # sample with channels-last 3D weights on a CPU (benchmarks/bench_memory_format.py)


@dataclass(frozen=True)
class MetricsConfig:
    n_pairs: int  # sample pairs for MS-SSIM / 4-G-R-SSIM diversity
    fid_n_samples: int  # samples per set for Table 1 (DDIM)
    ddpm_n_samples: int  # DDPM takes 1000 network calls per sample: fewer on a CPU
    fid_weights: str  # MedicalNet weights (resnet_50_23dataset.pth) for FID; "" = the named fallback extractor
    ms_ssim_kernel_size: int
    ms_ssim_sigma: float
    ms_ssim_weights: tuple[float, ...]

    def problems(self) -> Problems:
        if self.ms_ssim_kernel_size % 2 == 0:
            yield "ms_ssim_kernel_size", "must be odd"


@dataclass(frozen=True)
class BrainAgeConfig:
    """The brain-age CNN of Fig. 3 (Cole et al. 2017): one conv-ReLU-conv-BN-ReLU-maxpool block per entry."""

    channels: tuple[int, ...]  # Cole et al.: 8, 16, 32, 64, 128 (channels double, each block halves the volume)
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int


@dataclass(frozen=True)
class BaselinesConfig:
    """The GAN baselines of Table 1: a 3D LSGAN (Mao et al. 2017) and a 3D VAE-GAN (Larsen et al. 2016)."""

    latent_dim: int
    generator_channels: tuple[int, ...]  # widest first; one 2x upsampling each, from data.shape / 2**len
    discriminator_channels: tuple[int, ...]  # narrowest first; one stride-2 convolution each
    steps: int
    batch_size: int
    lr: float
    kl_weight: float  # VAE-GAN: KL(q(z|x) || N(0, I))
    reconstruction_weight: float  # VAE-GAN: L1 between a volume and its reconstruction (Kwon et al. 2019)
    seed: int


@dataclass(frozen=True)
class PrivacyConfig:
    """The memorisation audit (notebook 08; ``ldm.evaluation.privacy``) and its positive control."""

    n_samples: int  # samples audited against the training split
    control_subjects: int  # the over-fitted control memorises this many training subjects
    control_steps: int  # its training steps (many epochs over those few subjects)
    control_samples: int


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    data: DataConfig
    cohort: CohortConfig
    preprocessing: PreprocessingConfig
    autoencoder: AutoencoderConfig
    diffusion: DiffusionConfig
    scheduler: SchedulerConfig
    training: TrainingConfig
    sampling: SamplingConfig
    metrics: MetricsConfig
    brain_age: BrainAgeConfig
    baselines: BaselinesConfig
    privacy: PrivacyConfig
    source: str = field(default="", compare=False)  # the file it was read from

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Spatial shape of the autoencoder's latent (one 2x downsampling per extra level)."""
        factor = 2 ** (len(self.autoencoder.channels) - 1)
        return tuple(s // factor for s in self.data.shape)

    def problems(self) -> Problems:
        """Every broken rule as (dotted key, message): each section's own, in field order, then those across
        sections, which may rely on each section being sound on its own."""
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "problems"):  # not name, description, nor sections with no rules of their own
                for key, msg in section.problems():
                    yield f"{f.name}.{key}", msg
        ae_factor = 2 ** (len(self.autoencoder.channels) - 1)
        if any(s % ae_factor for s in self.data.shape):
            yield "data.shape", f"must be divisible by the autoencoder's downsampling {ae_factor}"
        unet_factor = 2 ** (len(self.diffusion.channels) - 1)
        if any(s % unet_factor for s in self.latent_shape):
            yield ("diffusion.channels",
                   f"latent {self.latent_shape} not divisible by the UNet's downsampling {unet_factor}")
        if self.diffusion.cross_attention_dim != len(self.data.covariates) + self.diffusion.null_token:
            yield ("diffusion.cross_attention_dim", "must equal the number of covariates (one token of them), "
                   "plus 1 with diffusion.null_token")
        if self.training.condition_dropout > 0 and not self.diffusion.null_token:
            yield ("training.condition_dropout", "needs diffusion.null_token: true (the model must be told which "
                   "samples are unconditional)")
        if self.sampling.guidance_scale != 1.0 and not self.diffusion.null_token:
            yield "sampling.guidance_scale", "guidance needs an unconditional model: diffusion.null_token: true"
        if not 0 < self.sampling.ddim_steps <= self.scheduler.num_train_timesteps:
            yield "sampling.ddim_steps", "must be in 1..num_train_timesteps"
        if not 0 < self.sampling.dpm_steps <= self.scheduler.num_train_timesteps:
            yield "sampling.dpm_steps", "must be in 1..num_train_timesteps"
        if 2 ** len(self.brain_age.channels) > min(self.data.shape):
            yield "brain_age.channels", f"{len(self.brain_age.channels)} blocks halve {self.data.shape} below one voxel"
        gan_factor = 2 ** len(self.baselines.generator_channels)
        if any(s % gan_factor for s in self.data.shape):
            yield ("baselines.generator_channels", f"data.shape {self.data.shape} not divisible by the generator's "
                   f"upsampling {gan_factor}")
        if 2 ** len(self.baselines.discriminator_channels) > min(self.data.shape):
            yield "baselines.discriminator_channels", "too many stride-2 layers for data.shape"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("source")
        return out

    def fingerprint(self) -> str:
        """Short hash of the numbers (not the file name): outputs record it to detect stale results."""
        return config_fingerprint(*(getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"))


def config_fingerprint(*sections: Any) -> str:
    """Short hash of some config sections' numbers, e.g. preprocessing records (data, preprocessing)."""
    blob = [dataclasses.asdict(s) if dataclasses.is_dataclass(s) else s for s in sections]
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=list).encode()).hexdigest()[:12]


def load_profile(profile: str | Path = "smoke", overrides: dict[str, Any] | None = None) -> Profile:
    """Load a profile by name (``smoke``, ``demo``, ``paper``) or path, apply overrides, validate.

    ``overrides`` maps dotted keys to values, e.g. ``{"cohort.n_subjects": 8}``; the notebooks pass
    their papermill ``overrides`` parameter straight through.
    """
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        if str(profile) not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}: expected one of {PROFILES} or a .yaml path")
        path = CONFIG_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: profile file not found")
    try:
        raw = yaml.safe_load(path.read_text())  # data only: never evaluated
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw = _apply_overrides(raw, overrides or {}, path)
    profile_obj = _build(Profile, raw, where=str(path), prefix="")
    profile_obj = dataclasses.replace(profile_obj, source=str(path))
    problem = next(profile_obj.problems(), None)  # the first broken rule only: one clear error
    if problem is not None:
        key, msg = problem
        raise ConfigError(f"{path}: {key}: {msg}")
    return profile_obj


def _apply_overrides(raw: dict, overrides: dict[str, Any], path: Path) -> dict:
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        keys = str(dotted).split(".")
        node = raw
        for i, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                raise ConfigError(f"{path}: override {dotted!r}: unknown key {'.'.join(keys[: i + 1])!r}")
            if i == len(keys) - 1:
                node[key] = value
            else:
                node = node[key]
    return raw


def _build(cls: type, data: Any, where: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix or '<top>'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {_join(prefix, unknown[0])!r} (allowed: {sorted(fields)})")
    kwargs = {}
    for name in fields:
        key = _join(prefix, name)
        if name not in data:
            raise ConfigError(f"{where}: missing key {key!r}")
        kwargs[name] = _coerce(hints[name], data[name], where, key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str, key: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and return it in canonical form (tuples, floats)."""
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {key}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(arg, value, where, key)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {key}: {value!r} matches none of {args}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: {key}: expected null, got {value!r}")
        return None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: {key}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(a, v, where, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} at {key}")  # a bug in this module, not in the file


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name

