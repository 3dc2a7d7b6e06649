"""The locked set-up: ``requirements/cpu.txt`` and ``gpu.txt`` (``make lock``) cover pyproject.toml, agree with
each other, pin every package with a hash, and the environment running these tests is the locked one."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {name: ROOT / "requirements" / f"{name}.txt" for name in ("cpu", "gpu")}


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile style lock file."""
    out, current = {}, None
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            current = canonicalize_name(m.group(1))
            out[current] = (m.group(2), [])
        elif current and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            out[current][1].append(h.group(1))
        elif line and not line.startswith(" "):
            current = None
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    build = [ln for ln in (ROOT / "requirements" / "build.in").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    return [Requirement(r) for r in (*project["dependencies"], *project["optional-dependencies"]["dev"], *build)]


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_pins_every_declared_requirement_within_its_bounds(lock):
    pinned = read_lock(LOCKS[lock])
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{LOCKS[lock].name}: {req} is not locked; run `make lock`"
        version = Version(pinned[name][0])
        assert req.specifier.contains(version, prereleases=True), f"{LOCKS[lock].name}: {name} {version} vs {req}"
    assert all(hashes for _, hashes in pinned.values()), "every locked package has a hash"


def test_cpu_and_gpu_locks_pin_the_same_versions_but_torch():
    cpu, gpu = read_lock(LOCKS["cpu"]), read_lock(LOCKS["gpu"])
    shared = set(cpu) & set(gpu)
    assert set(cpu) <= set(gpu), "the GPU lock adds CUDA libraries only"
    assert {n: (cpu[n][0], gpu[n][0]) for n in shared if cpu[n][0] != gpu[n][0]} == {
        "torch": ("2.13.0+cpu", "2.13.0")}
    extra = set(gpu) - set(cpu)
    assert all(n.startswith(("nvidia-", "cuda-")) or n == "triton" for n in extra), sorted(extra)


def test_the_tests_run_in_the_locked_environment():
    """What `make test` installed is the lock, version for version (an environment made otherwise, e.g. by
    hand, fails here: its numbers would not be the book's)."""
    wrong = {}
    for name, (version, _) in read_lock(LOCKS["cpu"]).items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (installed, version)
    assert wrong == {}, f"installed vs locked: {wrong}; `make test` installs the lock"


def test_binder_installs_the_cpu_lock_and_fetches_nothing_when_run():
    """Binder / NeuroLibre (repo2docker) build the same locked environment; the post-build step only installs
    the package and runs an ``ldm`` command that needs no network."""
    requirements = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert "-r ../requirements/cpu.txt" in requirements
    python = (ROOT / "binder" / "runtime.txt").read_text().strip()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python.startswith("python-") and Version(python.removeprefix("python-")) in SpecifierSet(requires)
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    commands = [ln for ln in post.read_text().splitlines() if ln.strip() and not ln.startswith(("#", "set "))]
    assert all(ln.split()[0] in ("pip", "ldm") for ln in commands), commands
    assert not any(word in post.read_text() for word in ("curl", "wget", "http", "git clone"))
