"""Ship the networks of a GPU retrain (``gpu_retrain_call.sh`` beside this file) as the demo checkpoints, with
their record.

    python experiments/2026-11-27-demo-retrain/ship_gpu_retrain.py \\
        --autoencoder runs/gpu_long/long/autoencoder_step9000.pt --diffusion runs/long_final/models/diffusion.pt \\
        --evaluation runs/gpu_long --runs runs/gpu_long/runs.json

Each network is exported into ``checkpoints/demo`` (float16; the diffusion model's EMA) with its curves,
and ``record.json`` / ``RECORD.md`` are written anew from ``--runs`` (a JSON list of runs: command,
started, commit, hardware, steps with measured seconds, notes), as ``ldm.ship`` writes them; the privacy
control then joins with ``python -m ldm.ship --only privacy_control``.

The saved profile of each network must equal the current demo profile, except ``training.autoencoder_steps``:
the long autoencoder ran in stretches until a time budget, not to a planned count, so the profile it was
started under says the shipped recipe's 3500. Each network's saved profile is set to the current one (which
names the steps the autoencoder actually took) only after that check; any other difference stops here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ldm.checkpoints import (
    SHIPPED_DIR,
    config_record,
    export_checkpoint,
    load_checkpoint,
    save_checkpoint,
    saved_config,
)
from ldm.config import load_profile
from ldm.io import atomic_write_text
from ldm.training.ship import checkpoint_entry, render_record

MAY_DIFFER = {("training", "autoencoder_steps")}


def restamp(src: Path, dst: Path, profile) -> dict:
    """``src`` (exported, or a training checkpoint to export) saved as ``dst`` with the current profile as its
    saved one, after checking that nothing but MAY_DIFFER differs."""
    ck = load_checkpoint(src)
    if "weights" not in ck:  # a training checkpoint (the resumed diffusion model); the rest came exported
        ck = load_checkpoint(export_checkpoint(src, dst))
    saved, now = saved_config(ck), json.loads(config_record(profile))
    for section in now:
        if section in ("name", "fingerprint") or saved.get(section) == now[section]:
            continue
        if not isinstance(now[section], dict):
            raise SystemExit(f"{src}: saved {section} {saved.get(section)!r}, profile {now[section]!r}")
        for key in set(now[section]) | set(saved.get(section, {})):
            if saved.get(section, {}).get(key) != now[section].get(key) and (section, key) not in MAY_DIFFER:
                raise SystemExit(f"{src}: trained with {section}.{key}={saved.get(section, {}).get(key)!r}, "
                                 f"the profile says {now[section].get(key)!r}")
    if ck["kind"] == "autoencoder" and ck["step"] != profile.training.autoencoder_steps:
        raise SystemExit(f"{src}: {ck['step']} steps; set training.autoencoder_steps to that first")
    ck["config"] = config_record(profile)
    save_checkpoint(dst, ck)
    return ck


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--autoencoder", required=True, type=Path)
    ap.add_argument("--diffusion", required=True, type=Path)
    ap.add_argument("--evaluation", required=True, type=Path, help="folder with brain_age/, lsgan/, vaegan/")
    ap.add_argument("--runs", required=True, type=Path)
    args = ap.parse_args()
    profile = load_profile("demo")
    out = SHIPPED_DIR / "demo"
    sources = {"autoencoder": args.autoencoder, "diffusion": args.diffusion,
               **{k: args.evaluation / k / f"{k}.pt" for k in ("brain_age", "lsgan", "vaegan")}}
    runs = json.loads(args.runs.read_text())
    # the whole training time of a network trained in stretches or resumed elsewhere, from the runs' logs
    seconds = {k: v for r in runs for k, v in r.pop("training_seconds", {}).items()}
    record = {"profile": "demo", "profile_fingerprint": profile.fingerprint(), **{
        k: runs[0][k] for k in ("command", "commit", "started", "hardware", "steps")},
        "wall_seconds": round(sum(s["seconds"] for r in runs for s in r["steps"]), 1),
        "checkpoints": {}, "notes": [n for r in runs for n in r.pop("notes", [])],
        "runs": [{**r, "wall_seconds": round(sum(s["seconds"] for s in r["steps"]), 1)} for r in runs]}
    for kind, src in sources.items():
        ck = restamp(src, out / f"{kind}.pt", profile)
        record["checkpoints"][kind] = checkpoint_entry(kind, ck, out, "demo", seconds.get(kind))
    atomic_write_text(out / "record.json", json.dumps(record, indent=2))
    atomic_write_text(out / "RECORD.md", render_record(record))
    print(f"shipped {', '.join(sources)} to {out}")


if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    main()
