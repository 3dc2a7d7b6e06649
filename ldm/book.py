"""Run the book: execute every notebook listed in ``_toc.yml`` with papermill, then build the HTML.

    python -m ldm.book --profile demo            # what `make book` runs
    python -m ldm.book --profile smoke --only 01_preprocessing --no-build
    python -m ldm.book --profile demo --weights train   # retrain every network instead of the shipped ones

Notebooks run in ``_toc.yml`` order from the repository root, each reading the previous ones' outputs in
one run folder (``runs/<profile>`` unless ``--run-dir``); the executed copies go to ``book/notebooks/``,
which jupyter-book builds with execution off (they are already executed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXECUTED_DIR = "book/notebooks"


def toc_notebooks(root: Path = ROOT) -> list[str]:
    """Names of the executed notebooks that ``_toc.yml`` lists (``book/notebooks/<name>``), in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node or "root" in node:
                files.append(str(node.get("file") or node.get("root")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    prefix = EXECUTED_DIR + "/"
    return [f[len(prefix):].removesuffix(".ipynb") for f in files if f.startswith(prefix)]


def run_notebook(name: str, profile: str, run_dir: str, overrides: dict | None = None, root: Path = ROOT,
                 extra: dict | None = None) -> float:
    """Execute ``notebooks/<name>.ipynb`` into ``book/notebooks/<name>.ipynb``; returns seconds taken."""
    import papermill as pm

    src = root / "notebooks" / f"{name}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(f"{src}: listed in _toc.yml as {EXECUTED_DIR}/{name} but missing")
    dst = root / EXECUTED_DIR / f"{name}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "run_dir": run_dir, "overrides": overrides or {}, **(extra or {})}
    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(dst), parameters=params, cwd=str(root), kernel_name="python3",
                        progress_bar=False, log_output=False)
    return time.perf_counter() - t0


def build_html(root: Path = ROOT) -> Path:
    """jupyter-book build with warnings as errors; returns the HTML folder."""
    jb = Path(sys.executable).parent / "jupyter-book"  # the venv's own, whatever PATH says
    cmd = [str(jb), "build", str(root), "--path-output", "book", "--warningiserror", "--keep-going"]
    subprocess.run(cmd, check=True, cwd=root)
    html = root / "book" / "_build" / "html"
    if not (html / "index.html").is_file():
        raise RuntimeError(f"jupyter-book finished but {html / 'index.html'} is missing")
    return html


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--run-dir", default="", help="default runs/<profile>")
    ap.add_argument("--overrides", default="{}", help='JSON, e.g. \'{"cohort.n_subjects": 50}\'')
    ap.add_argument("--weights", default="auto",
                    help="auto: shipped checkpoints/<profile> if any, else train; train: retrain all; or a folder")
    ap.add_argument("--only", nargs="*", help="run only these notebooks (names without .ipynb)")
    ap.add_argument("--no-build", action="store_true", help="execute notebooks, skip the HTML build")
    args = ap.parse_args(argv)
    overrides = json.loads(args.overrides)
    run_dir = args.run_dir or f"runs/{Path(args.profile).stem}"
    timings = []
    for name in toc_notebooks():
        if args.only and name not in args.only:
            continue
        print(f"[book] running {name} (profile {args.profile}) ...", flush=True)
        seconds = run_notebook(name, args.profile, run_dir, overrides, extra={"weights": args.weights})
        timings.append((name, seconds))
        print(f"[book] {name}: {seconds:.1f} s", flush=True)
    if not args.no_build:
        html = build_html()
        print(f"[book] built: {html / 'index.html'}")
    print("[book] notebook timings:")
    for name, seconds in timings:
        print(f"    {name:<28s} {seconds:8.1f} s")
    print(f"    {'total':<28s} {sum(s for _, s in timings):8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
