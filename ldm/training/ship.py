"""Train a profile's shipped checkpoints in one recorded run, and export them to ``checkpoints/<profile>/``.

    ldm ship --profile demo    # what `make checkpoints` runs: a day on 2 CPU cores, minutes on a GPU

Every step is one of the project's own commands, run as a subprocess and timed:

    1. the 01_preprocessing notebook (cohort + preprocessing) into the run folder
    2. python -m ldm.train autoencoder
    3. python -m ldm.train diffusion    (encodes the training split first)
    4. python -m ldm.train brain_age    (Fig. 3's age panel)
    5. python -m ldm.train lsgan, vaegan (Table 1's baselines)
    6. python -m ldm.training.privacy_control  (chapter 8's over-fitted positive control, on the new autoencoder)
    7. export: weights only (EMA for the diffusion model) in float16, with the profile inside

``--only brain_age,lsgan`` trains and exports just those networks and adds them to the existing record.

A step whose output is complete is skipped on a rerun (each is resumable), so a killed run goes on.
``RECORD.md`` / ``record.json`` beside the checkpoints give the commit, the commands, the hardware, the
versions, the wall time of each step and the training curves.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..book.figures import loss_curves
from ..checkpoints import SHIPPED_DIR, export_checkpoint, load_checked
from ..config import load_profile
from ..io import atomic_write_text
from ..runtime import hardware
from .privacy_control import control_profile

ROOT = Path(__file__).resolve().parents[2]
CURVES = {"autoencoder": ["l1", "kl", "generator_adversarial", "discriminator"], "diffusion": ["loss"],
          "brain_age": ["l1_years"], "lsgan": ["generator_adversarial", "discriminator"],
          "vaegan": ["l1", "kl", "generator_adversarial", "discriminator"], "privacy_control": ["loss"]}
NETWORKS = tuple(CURVES)
# network -> (the command that trains it in RUN, its checkpoint in RUN/models, its profile section kind)
TRAINED_BY = {kind: (["-m", "ldm.train", kind], f"{kind}.pt", kind) for kind in NETWORKS if kind != "privacy_control"}
TRAINED_BY["privacy_control"] = (["-m", "ldm.training.privacy_control"], "privacy_control/diffusion.pt", "diffusion")


def network_profile(kind: str, profile: str):
    """The profile a shipped network was trained under: the control's is ``control_profile``."""
    return control_profile(profile) if kind == "privacy_control" else load_profile(profile)


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ldm", "configs", "notebooks"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def run_step(name: str, cmd: list[str], log: Path) -> dict:
    print(f"[ship] {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    print(f"[ship] {name}: {seconds:.0f} s", flush=True)
    shown = ["python" if c == sys.executable else c for c in cmd]  # no machine-specific path in the record
    return {"step": name, "command": " ".join(shown), "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")  # here, not at import: importing hardware() must not change a notebook's backend
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--run-dir", default="", help="default runs/<profile>-ship")
    ap.add_argument("--out", default="", help="default checkpoints/<profile>")
    ap.add_argument("--only", default=",".join(NETWORKS), help=f"comma-separated subset of {','.join(NETWORKS)}")
    args = ap.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    if unknown := sorted(set(only) - set(NETWORKS)):
        ap.error(f"--only: unknown network {unknown[0]!r} (expected some of {', '.join(NETWORKS)})")
    profile = load_profile(args.profile)
    run = Path(args.run_dir or f"runs/{profile.name}-ship")
    out = Path(args.out) if args.out else SHIPPED_DIR / profile.name
    run.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    log = run / "ship.log"
    py = sys.executable
    started = datetime.now(UTC).isoformat(timespec="seconds")
    code = commit()  # at the start: the code that trains
    t_all = time.perf_counter()
    steps = [run_step("preprocessing", [py, "-m", "ldm.book", "--profile", args.profile, "--run-dir", str(run),
                                        "--only", "01_preprocessing", "--no-build"], log)]
    steps += [run_step(kind, [py, *TRAINED_BY[kind][0], "--profile", args.profile, "--run-dir", str(run)], log)
              for kind in NETWORKS if kind in only]
    record = {"profile": profile.name, "profile_fingerprint": profile.fingerprint(), "commit": code,
              "command": f"python -m ldm.ship --profile {args.profile}", "started": started,
              "wall_seconds": round(time.perf_counter() - t_all, 1), "hardware": hardware(), "steps": steps,
              "checkpoints": {}}
    for kind in [k for k in NETWORKS if k in only]:
        _, file, section = TRAINED_BY[kind]
        src = run / "models" / file
        ck = load_checked(src, network_profile(kind, args.profile), section)
        export_checkpoint(src, out / f"{kind}.pt")
        record["checkpoints"][kind] = checkpoint_entry(kind, ck, out, profile.name)
    if set(only) != set(NETWORKS) and (out / "record.json").is_file():
        record = merge_records(json.loads((out / "record.json").read_text()), record, args.only)
    atomic_write_text(out / "record.json", json.dumps(record, indent=2))
    atomic_write_text(out / "RECORD.md", render_record(record))
    print(f"[ship] exported to {out} in {record['wall_seconds']:.0f} s")
    return 0


def checkpoint_entry(kind: str, ck: dict, out: Path, profile: str, training_seconds: float | None = None) -> dict:
    """The record's entry for ``out/<kind>.pt`` (exported from ``ck``), with its training curves drawn beside
    it. ``training_seconds`` replaces the checkpoint's own count, which holds only its last process's time
    (a run resumed elsewhere, or trained in stretches)."""
    fig = loss_curves(pd.DataFrame(ck["history"]), CURVES[kind], profile,
                      f"{kind}, {ck['step']} steps (shipped run)", title=f"{kind} training")
    fig.savefig(out / f"{kind}_curves.png", dpi=80)
    seconds = ck["seconds"] if training_seconds is None else training_seconds
    return {"file": f"{kind}.pt", "steps": ck["step"], "training_seconds": round(seconds, 1),
            "bytes": (out / f"{kind}.pt").stat().st_size, "final_loss": ck["history"][-1]}


def merge_records(old: dict, new: dict, only: str) -> dict:
    """A partial run (``--only``) joins the record of the earlier run: each run keeps its own commit,
    hardware and times, listed in ``runs``; the checkpoints are the union (the new ones win)."""
    keys = ("command", "profile_fingerprint", "commit", "started", "wall_seconds", "hardware", "steps")
    runs = old.pop("runs", None) or [{k: old[k] for k in keys if k in old}]
    this = {k: new[k] for k in keys}
    this["command"] = f"{new['command']} --only {only}"
    checkpoints = {**old.get("checkpoints", {}), **new["checkpoints"]}
    merged = {**old, "profile_fingerprint": new["profile_fingerprint"], "runs": [*runs, this],
              "checkpoints": checkpoints}
    merged["wall_seconds"] = round(sum(r["wall_seconds"] for r in merged["runs"]), 1)
    return merged


def render_record(r: dict) -> str:
    lines = [f"# Shipped `{r['profile']}` checkpoints", "",
             f"Profile fingerprint `{r['profile_fingerprint']}`. Made by "
             f"{'these runs' if 'runs' in r else 'this run'}:", ""]
    for run in r.get("runs", [r]):
        hw = run["hardware"]
        lines += [f"## `{run['command']}` (started {run['started']})", "",
                  f"Code commit `{run['commit']}`. Hardware: {hw['cpu']}, {hw['threads']} torch threads, "
                  f"GPU: {hw['gpu'] or 'none'}; Python {hw['python']}, torch {hw['torch']}, MONAI {hw['monai']}.",
                  "", "| step | command | wall time |", "|---|---|---|"]
        lines += [f"| {s['step']} | `{s['command']}` | {s['seconds'] / 60:.1f} min |" for s in run["steps"]]
        lines += [f"| total | | {run['wall_seconds'] / 60:.1f} min |", ""]
    lines += ["## Checkpoints", "", "| checkpoint | steps | size | final losses |", "|---|---|---|---|"]
    for c in r["checkpoints"].values():
        losses = ", ".join(f"{k} {v:.4g}" for k, v in c["final_loss"].items() if k != "step")
        lines.append(f"| {c['file']} | {c['steps']} | {c['bytes'] / 1e6:.1f} MB | {losses} |")
    lines += ["", *(f"Note: {n}" for n in r.get("notes", []))]
    curves = ", ".join(f"`{k}_curves.png`" for k in r["checkpoints"])
    lines += ["", f"Curves: {curves}. Weights are float16; the diffusion model's are its EMA.",
              "Retrain everything with `weights=\"train\"` in the notebooks (`make book WEIGHTS=train`)",
              "or rerun `make checkpoints`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
