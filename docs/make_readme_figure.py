"""The README's figure: samples of the shipped demo model along the ventricular-volume axis.

    .venv/bin/python docs/make_readme_figure.py      # writes docs/samples_demo.png (~30 s on a CPU)
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from ldm.book.figures import sweep_figure
from ldm.checkpoints import shipped_dir
from ldm.config import load_profile
from ldm.data.covariates import sweep
from ldm.sampling.pipeline import default_steps, generate, load_pipeline

profile = load_profile("demo")
pipe = load_pipeline(profile, shipped_dir(profile))
values = [0.05, 0.3, 0.6, 0.95]
base = {"sex": "F", "age": 63, "ventricular_volume": 25_000, "brain_volume": 1_450_000}
sampler, steps = default_steps(profile)
vols = generate(pipe, sweep(base, "ventricular_volume", values, profile), [7] * len(values), sampler=sampler,
                steps=steps)
fig = sweep_figure([("ventricles", [f"ventricular volume {v:g}" for v in values], list(vols))],
                   profile.data.voxel_size_mm, profile.name, pipe.weights,
                   title=f"Demo model ({sampler}, {steps} steps): one seed, ventricular volume rising")
fig.savefig(Path(__file__).with_name("samples_demo.png"), dpi=110)
