"""A run folder: where every notebook and command of one run reads and writes.

    runs/<profile>/
        cohort/          the embedded cohort (BIDS, ground truth in derivatives/)
        preprocessed/    MNI-aligned volumes in [0, 1], manifest.tsv, rigid transforms
        models/          checkpoints and training histories
        results/         the numbers the book reports, one JSON file per notebook
        samples/         generated NIfTI files and their tables
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import Profile
from .data.loading import load_preprocessed
from .io import atomic_write_text


@dataclass(frozen=True)
class Run:
    root: Path

    @classmethod
    def of(cls, profile: Profile, run_dir: str | Path = "") -> Run:
        """The run folder ``run_dir``, or ``runs/<profile>`` when it is empty (the notebooks' default)."""
        return cls(Path(run_dir or f"runs/{profile.name}"))

    @property
    def cohort(self) -> Path:
        return self.root / "cohort"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def manifest(self, status: str = "ok") -> pd.DataFrame:
        """The preprocessed subjects (those with ``status``; "" for every row), image paths absolute."""
        return load_preprocessed(self.preprocessed, status)

    def split(self, name: str) -> pd.DataFrame:
        """The preprocessed subjects of one split (train, validation or test)."""
        table = self.manifest()
        return table[table["split"] == name]

    def write_results(self, name: str, record: dict) -> Path:
        """``results/<name>.json``, written atomically (indented JSON)."""
        path = self.results / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=2))
        return path

    def read_results(self, name: str) -> dict:
        path = self.results / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else {}
