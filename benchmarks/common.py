"""What the benchmarks share: peak memory, and appending a record to a results file."""

from __future__ import annotations

import json
import resource
from pathlib import Path

from ldm.io import atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (``ru_maxrss`` is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def append_record(path: Path, record: dict, indent: int = 1) -> None:
    """Add ``record`` to the JSON list in ``path``, atomically: a failed write keeps the earlier records."""
    old = json.loads(path.read_text()) if path.is_file() else []
    atomic_write_text(path, json.dumps([*old, record], indent=indent) + "\n")
