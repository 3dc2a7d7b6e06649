"""Run the book: execute every notebook listed in ``_toc.yml`` with papermill, then build the HTML.

    ldm book --profile demo            # what `make book` runs
    ldm book --profile smoke --only 01_preprocessing --no-build
    ldm book --profile demo --weights train   # retrain every network instead of the shipped ones
    ldm book --profile demo --only 04_sampling_quality -p n_samples 200 -p seed 7 --no-build

Parameters given with ``-p`` are checked against each notebook's ``parameters`` cell before anything runs:
an unknown name or a value of another type than the default's is one error naming the notebook and the
parameter (papermill itself would pass both on and fail later, or not at all).

Notebooks run in ``_toc.yml`` order from the repository root, each reading the previous ones' outputs in
one run folder (``runs/<profile>`` unless ``--run-dir``); the executed copies go to ``book/notebooks/``,
which jupyter-book builds with execution off (they are already executed).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
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


def declared_parameters(src: Path) -> dict[str, object]:
    """The defaults of a notebook's ``parameters`` cell, by name, read as data (``ast.literal_eval``)."""
    cells = json.loads(Path(src).read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{src}: no cell tagged 'parameters'")
    source = "".join(cell["source"])
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(source).body
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}


def _same_type(value: object, default: object) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def check_parameters(src: Path, params: dict, declared: dict | None = None) -> dict:
    """``params`` if the notebook declares each with a default of the same type (an int is a float);
    otherwise one error naming the notebook, the parameter and the expected type. ``declared``: the
    notebook's ``declared_parameters``, when the caller has read them already."""
    declared = declared_parameters(src) if declared is None else declared
    for name, value in params.items():
        if name not in declared:
            raise ValueError(f"{Path(src).name}: unknown parameter {name!r}; its parameters are {sorted(declared)}")
        default = declared[name]
        if not _same_type(value, default):
            raise TypeError(f"{Path(src).name}: parameter {name!r} must be {type(default).__name__} "
                            f"(default {default!r}), got {type(value).__name__} {value!r}")
    return params


def notebook_parameters(name: str, profile: str, run_dir: str, overrides: dict | None = None,
                        root: Path = ROOT, common: dict | None = None, given: dict | None = None) -> dict:
    """What ``name`` is run with: the run's settings and the ``common`` ones (e.g. ``weights``) where it
    declares them, and every ``given`` one it declares, type-checked. Raises before anything runs."""
    src = root / "notebooks" / f"{name}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(f"{src}: listed in _toc.yml as {EXECUTED_DIR}/{name} but missing")
    declared = declared_parameters(src)
    run = {"profile": profile, "run_dir": run_dir, "overrides": overrides or {}, **(common or {})}
    params = {k: v for k, v in {**run, **(given or {})}.items() if k in declared}
    return check_parameters(src, params, declared)


def run_notebook(name: str, profile: str, run_dir: str, overrides: dict | None = None, root: Path = ROOT,
                 extra: dict | None = None, given: dict | None = None) -> float:
    """Execute ``notebooks/<name>.ipynb`` into ``book/notebooks/<name>.ipynb``; returns seconds taken."""
    import papermill as pm

    params = notebook_parameters(name, profile, run_dir, overrides, root, extra, given)
    src = root / "notebooks" / f"{name}.ipynb"
    dst = root / EXECUTED_DIR / f"{name}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
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
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a notebook parameter (VALUE read as YAML data, as papermill -y does), for every "
                         "selected notebook that declares NAME; checked before anything runs")
    args = ap.parse_args(argv)
    overrides = json.loads(args.overrides)
    run_dir = args.run_dir or f"runs/{Path(args.profile).stem}"
    given = {name: yaml.safe_load(value) for name, value in args.parameter}
    names = [n for n in toc_notebooks() if not args.only or n in args.only]
    if args.only and (unknown := sorted(set(args.only) - set(names))):
        ap.error(f"--only: {unknown} not in _toc.yml (notebooks: {toc_notebooks()})")
    used = set()
    for name in names:  # every check before the first notebook runs: nothing is half-done by a typo
        used |= set(notebook_parameters(name, args.profile, run_dir, overrides, common={"weights": args.weights},
                                        given=given))
    if unused := sorted(set(given) - used):
        ap.error(f"-p {unused[0]}: no selected notebook has this parameter")
    timings = []
    for name in names:
        print(f"[book] running {name} (profile {args.profile}) ...", flush=True)
        seconds = run_notebook(name, args.profile, run_dir, overrides, extra={"weights": args.weights},
                               given=given)
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
