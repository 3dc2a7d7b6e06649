"""Reliability on shared clusters: bad notebook parameters, full or read-only output folders, a killed
autoencoder run. (The other bad-input cases live beside the code they test: images and tables in
test_data.py, profiles in test_config.py, checkpoints in test_training.py and test_checkpoints.py, the
official weights' checksum in test_official.py, killed exports in test_export.py; book/reliability.md
lists them all.)"""

import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from ldm.book import runner as book
from ldm.checkpoints import load_checkpoint, save_checkpoint
from ldm.io import OutputError, atomic_write_table, write_nifti
from ldm.training.state import resume

ROOT = Path(__file__).resolve().parent.parent


# --- notebook parameters ---------------------------------------------------------------------------

def test_declared_parameters_are_read_as_data():
    declared = book.declared_parameters(ROOT / "notebooks" / "04_sampling_quality.ipynb")
    assert declared["profile"] == "demo" and declared["n_samples"] == 0 and declared["overrides"] == {}


@pytest.mark.parametrize("value,ok", [(100, True), ("ten", False), (2.5, False), (True, False), (None, False)])
def test_an_int_parameter_takes_only_ints(value, ok):
    src = ROOT / "notebooks" / "04_sampling_quality.ipynb"
    if ok:
        assert book.check_parameters(src, {"n_samples": value}) == {"n_samples": value}
    else:
        with pytest.raises(TypeError, match=r"04_sampling_quality\.ipynb: parameter 'n_samples' must be int"):
            book.check_parameters(src, {"n_samples": value})


def test_a_float_parameter_takes_an_int_and_a_none_default_takes_anything():
    src = ROOT / "notebooks" / "01_preprocessing.ipynb"
    assert book.check_parameters(src, {"qc_min_ncc": 1})
    assert book.check_parameters(ROOT / "notebooks" / "05_conditioning.ipynb", {"guidance": 1.5})


def test_bad_parameters_stop_the_book_before_anything_runs(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(book, "run_notebook", lambda *a, **k: ran.append(a) or 0.0)
    monkeypatch.setattr(book, "build_html", lambda *a, **k: ran.append("html"))
    with pytest.raises(TypeError, match=r"04_sampling_quality\.ipynb: parameter 'n_samples' must be int .*'ten'"):
        book.main(["--profile", "smoke", "-p", "n_samples", "ten"])
    with pytest.raises(SystemExit):
        book.main(["--profile", "smoke", "-p", "n_sampels", "10"])
    assert "-p n_sampels: no selected notebook has this parameter" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        book.main(["--profile", "smoke", "--only", "04_sampling_qualty"])
    assert ran == []  # not one notebook started, so no earlier output was touched
    book.main(["--profile", "smoke", "--only", "04_sampling_quality", "-p", "n_samples", "12", "--no-build"])
    assert ran[0][0] == "04_sampling_quality"


def test_parameters_a_notebook_does_not_declare_are_not_passed_to_it():
    params = book.notebook_parameters("01_preprocessing", "smoke", "runs/x", common={"weights": "auto"})
    assert "weights" not in params and params["profile"] == "smoke"
    with pytest.raises(ValueError, match=r"01_preprocessing\.ipynb: unknown parameter 'seed'"):
        book.check_parameters(ROOT / "notebooks" / "01_preprocessing.ipynb", {"seed": 3})


# --- full and read-only output folders ----------------------------------------------------------------

def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_names_the_file_and_keeps_the_earlier_version(tmp_path, monkeypatch):
    path = tmp_path / "sample.nii.gz"
    write_nifti(path, np.ones((4, 5, 6), np.float32), np.eye(4))
    before = path.read_bytes()
    monkeypatch.setattr(nib, "save", _no_space)
    with pytest.raises(OutputError, match=r"sample\.nii\.gz: cannot write: No space left on device") as err:
        write_nifti(path, np.zeros((4, 5, 6), np.float32), np.eye(4))
    assert err.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.nii.gz"]  # no temporary file left


def test_a_full_disk_at_a_checkpoint_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "models" / "diffusion.pt"
    save_checkpoint(path, {"step": 10, "model": {"w": torch.ones(3)}})
    monkeypatch.setattr(torch, "save", _no_space)
    with pytest.raises(OutputError, match=r"diffusion\.pt: cannot write"):
        save_checkpoint(path, {"step": 20, "model": {"w": torch.zeros(3)}})
    assert load_checkpoint(path)["step"] == 10


def test_a_read_only_folder_names_the_file(tmp_path, monkeypatch):
    def denied(*args, **kwargs):  # what mkstemp raises in a folder without write permission (even as root)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputError, match=r"results[/\\]table\.tsv: cannot write: Permission denied"):
        atomic_write_table(pd.DataFrame({"a": [1]}), tmp_path / "results" / "table.tsv")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_really_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"ro[/\\]x\.nii\.gz: cannot write"):
            write_nifti(folder / "x.nii.gz", np.ones((3, 3, 3), np.float32), np.eye(4))
    finally:
        folder.chmod(0o700)


# --- safe loading ----------------------------------------------------------------------------------

def test_a_resumed_run_removes_what_a_save_killed_midway_left(tmp_path, smoke):
    # SIGKILL during a checkpoint write leaves the temporary copy (no finally runs); the next run clears it
    path = tmp_path / "autoencoder.pt"
    left = [tmp_path / ".autoencoder.k1ll3d.tmp.pt", tmp_path / ".autoencoder.0ther.tmp.pt"]
    others = [tmp_path / ".diffusion.k1ll3d.tmp.pt", tmp_path / "autoencoder.tmp.pt"]  # not this file's: kept
    for f in left + others:
        f.write_bytes(b"half a checkpoint")
    assert resume(path, smoke, "autoencoder", {}) == (0, [])  # also with no checkpoint yet
    assert not any(f.exists() for f in left) and all(f.exists() for f in others)


def test_every_torch_load_is_weights_only():
    """A pickle payload is refused only where ``weights_only=True`` is passed: no call may forget it."""
    import ast

    calls = []
    for path in sorted(p for folder in ("ldm", "benchmarks", "experiments") for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append((f"{path.name}:{node.lineno}", safe))
    assert len(calls) >= 3, calls  # the checkpoint loader, the official weights, the benchmarks
    assert [c for c, safe in calls if not safe] == []


# --- a killed autoencoder run ----------------------------------------------------------------------

def _ae_cmd(run: Path, steps: int) -> list[str]:
    overrides = '{"training.checkpoint_every": 2, "training.adversarial_warmup_steps": 3}'
    return [sys.executable, "-m", "ldm.train", "autoencoder", "--profile", "smoke", "--overrides", overrides,
            "--run-dir", str(run), "--steps", str(steps)]


@pytest.mark.slow
def test_autoencoder_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, preprocessed):
    """SIGKILL after a checkpoint (not a clean stop): the resumed run ends bit for bit where an
    uninterrupted one does, adversarial term and discriminator included."""
    steps = 8
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name in ("whole", "killed"):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "preprocessed").symlink_to(preprocessed[0], target_is_directory=True)
    whole = subprocess.run(_ae_cmd(runs["whole"], steps), cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]

    ckpt = runs["killed"] / "models" / "autoencoder.pt"
    # the run kills itself right after its step-4 checkpoint is on disk (training.checkpoint_every 2)
    killed = subprocess.run(_ae_cmd(runs["killed"], steps), cwd=ROOT, env={**env, "LDM_KILL_AT": "autoencoder:4"},
                            capture_output=True, text=True, timeout=900)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert load_checkpoint(ckpt)["step"] == 4
    resumed = subprocess.run(_ae_cmd(runs["killed"], steps), cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_checkpoint(runs["whole"] / "models" / "autoencoder.pt")
    b = load_checkpoint(ckpt)
    assert a["step"] == b["step"] == steps
    for part in ("model", "discriminator"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=0, atol=0, msg=f"{part}.{key}")
    assert a["history"] == b["history"]
    assert not list((runs["killed"] / "models").glob(".*tmp*"))  # no half-written file left behind
