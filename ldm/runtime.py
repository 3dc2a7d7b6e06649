"""Where and how a process computes: devices, torchrun's ranks, autocast, and per-sample randomness.

Training, sampling and evaluation all use it; it imports nothing of theirs. The rule behind the random
parts: a sample's batch position, noise and timestep are functions of (seed, step, position in the global
batch) alone, never of the rank or of how the batch is split, so a run resumed from a checkpoint and a run
split over N ranks follow the same trajectory as one uninterrupted process.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

# channels-last 3D convolutions: measured 27% faster (AE) and 10% faster (UNet) training steps on a
# 2-core AMD EPYC CPU (benchmarks/bench_training_step.py); same numbers, another memory layout
CHANNELS_LAST = torch.channels_last_3d


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


def autocast(device: torch.device, precision: str):
    if precision == "bf16" and (device.type == "cuda" or torch.backends.mkldnn.is_available()):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def split_batch(global_batch_size: int, world: int) -> int:
    if global_batch_size % world:
        raise ValueError(f"global batch {global_batch_size} does not split evenly over {world} ranks")
    return global_batch_size // world


def unwrap(m):
    return m.module if isinstance(m, DDP) else m


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def kill_point(name: str) -> None:
    """SIGKILL this process when the environment's ``LDM_KILL_AT`` equals ``name`` (e.g. "autoencoder:4", after
    that checkpoint is on disk): the tests' deterministic stand-in for a machine dying at a known point."""
    if os.environ.get("LDM_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def cpu_name(default: str = "") -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() is often just the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default or platform.processor() or platform.machine()


def hardware() -> dict:
    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "threads": torch.get_num_threads(), "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "monai": __import__("monai").__version__, "platform": platform.platform()}


def machine() -> str:
    """One line naming the hardware a number was measured on (results files record it)."""
    hw = hardware()
    return f"{hw['gpu'] or hw['cpu']} ({hw['threads']} threads), torch {hw['torch']}, {platform.system()}"
