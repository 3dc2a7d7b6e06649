"""A training run's state on disk: save its progress atomically, resume it, refuse a stale checkpoint."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from ..checkpoints import check_architecture, config_record, differing_statistic, load_checkpoint, save_checkpoint
from ..config import Profile
from ..io import atomic_write_table, leftover_temporaries
from ..runtime import kill_point

log = logging.getLogger(__name__)


class StaleCheckpointError(RuntimeError):
    """A checkpoint that would resume on other data than it was trained on."""


def save_progress(out: Path, kind: str, step: int, history: list[dict], profile: Profile, t0: float,
                  **state) -> Path:
    """The checkpoint ``out/<kind>.pt`` (kind, step, loss history, profile record, seconds, and ``state``:
    the state dicts and whatever else the network needs back) and its curves ``out/<kind>_history.tsv``,
    both written atomically: a kill never leaves either half-written; and the same curves as TensorBoard
    events in ``out/tensorboard/<kind>/`` (``tensorboard --logdir <run>/models/tensorboard``). Only rank 0
    calls it."""
    path = out / f"{kind}.pt"
    save_checkpoint(path, {"kind": kind, "step": step, "history": history, "config": config_record(profile),
                           "seconds": time.perf_counter() - t0, **state})
    atomic_write_table(pd.DataFrame(history), out / f"{kind}_history.tsv")
    write_tensorboard(history, out / "tensorboard" / kind)
    kill_point(f"{kind}:{step}")  # tests: a SIGKILL at a known checkpoint, never a race
    return path


def write_tensorboard(history: list[dict], folder: Path) -> Path | None:
    """A TensorBoard event file of a loss history (one scalar per column and step) in ``folder``, replaced
    whole at every save, so a resumed run's curves are the whole run's, never doubled. Returns None (and
    writes nothing) when the ``tensorboard`` package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    tmp, old = folder.with_name(f".{folder.name}.tmp"), folder.with_name(f".{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    with SummaryWriter(log_dir=str(tmp)) as writer:
        for row in history:
            for name, value in row.items():
                if name != "step":
                    writer.add_scalar(name, value, row["step"])
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


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
