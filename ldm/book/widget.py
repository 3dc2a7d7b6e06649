"""The interactive sampler: covariates in natural units, a sampler, a seed -> a brain, shown and saved.

    app = SamplerApp(pipeline, out_dir="runs/demo/samples/interactive")
    display(app.widget)

All logic is in plain methods (``covariates``, ``generate``, ``save``, ``render``) that the buttons call,
so the tests drive it from Python exactly as a reader clicks it. Sliders reach beyond the UK Biobank
range (normalised -0.5 .. 2) so Fig. 4's extrapolation can be tried; each shows its normalised value.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from ..data.covariates import normalise
from ..sampling.export import save_samples
from ..sampling.pipeline import Pipeline, default_steps, generate
from ..sampling.solvers import SAMPLERS
from .figures import VIEWS, orthogonal_slices, stamp

LOW, HIGH = -0.5, 2.0  # slider range in normalised units: beyond 0..1 is extrapolation


class SamplerApp:
    def __init__(self, pipe: Pipeline, out_dir: str | Path):
        self.pipe, self.out_dir = pipe, Path(out_dir)
        p = pipe.profile
        self.sliders: dict[str, w.FloatSlider] = {}
        for cov in p.data.covariates[1:]:  # age, ventricular volume, brain volume (sex is a toggle)
            span = cov.max - cov.min
            start = cov.min + 0.5 * span
            self.sliders[cov.name] = w.FloatSlider(
                value=start, min=cov.min + LOW * span, max=cov.min + HIGH * span, step=span / 100,
                description=f"{cov.name.replace('_', ' ')} ({cov.unit})", readout_format=".4g",
                style={"description_width": "170px"}, layout=w.Layout(width="520px"))
        self.sex = w.ToggleButtons(options=["F", "M"], value="F", description="sex")
        self.normalised = w.HTML()
        sampler, steps = default_steps(p)
        self.sampler = w.Dropdown(options=list(SAMPLERS), value=sampler, description="sampler")
        self.steps = w.IntSlider(value=steps, min=5, max=200, step=5, description="steps")
        self.guidance = w.FloatSlider(value=p.sampling.guidance_scale, min=0.0, max=5.0, step=0.25,
                                      description="guidance", disabled=not p.diffusion.null_token)
        self.seed = w.IntText(value=0, description="seed")
        self.slice = w.IntSlider(value=p.data.shape[2] // 2, min=0, max=p.data.shape[2] - 1,
                                 description="axial slice")
        self.generate_button = w.Button(description="Generate", button_style="primary")
        self.save_button = w.Button(description="Save NIfTI + TSV", disabled=True)
        self.status = w.HTML()
        self.image = w.Output()
        self.volume: np.ndarray | None = None
        self.figure: plt.Figure | None = None
        self.last: dict | None = None
        for s in (*self.sliders.values(), self.sex):
            s.observe(lambda _: self._show_normalised(), names="value")
        self.slice.observe(lambda _: self.render(), names="value")
        self.generate_button.on_click(lambda _: self.generate())
        self.save_button.on_click(lambda _: self.save())
        self._show_normalised()
        self.widget = w.VBox([
            w.HBox([self.sex, self.normalised]), *self.sliders.values(),
            w.HBox([self.sampler, self.steps]), w.HBox([self.guidance, self.seed]),
            w.HBox([self.generate_button, self.save_button, self.status]), self.slice, self.image])

    def covariates(self) -> torch.Tensor:
        """(1, 4) normalised covariates from the current widget values."""
        values = {"sex": self.sex.value, **{k: s.value for k, s in self.sliders.items()}}
        return torch.from_numpy(normalise(values, self.pipe.profile.data.covariates))[None]

    def _show_normalised(self) -> None:
        c = self.covariates()[0].tolist()
        names = [cv.name for cv in self.pipe.profile.data.covariates]
        flags = ["" if 0 <= v <= 1 else " (extrapolated)" for v in c]
        self.normalised.value = "normalised: " + ", ".join(
            f"{n.replace('_', ' ')} {v:.2f}{f}" for n, v, f in zip(names, c, flags))

    def generate(self) -> np.ndarray:
        """Sample one brain for the current settings and draw it."""
        c = self.covariates()
        self.status.value = "generating ..."
        guidance = self.guidance.value if self.pipe.profile.diffusion.null_token else 1.0
        self.volume = generate(self.pipe, c, [int(self.seed.value)], sampler=self.sampler.value,
                               steps=int(self.steps.value), guidance_scale=guidance)[0]
        self.last = {"covariates": c, "seed": int(self.seed.value), "sampler": self.sampler.value,
                     "guidance": guidance}
        self.save_button.disabled = False
        self.status.value = f"seed {self.seed.value}, {self.sampler.value}, guidance {guidance:g}"
        self.render()
        return self.volume

    def render(self) -> None:
        """Draw three orthogonal views of the current sample (axial at the slice slider) into the output."""
        if self.volume is None:
            return
        p = self.pipe.profile
        index = (p.data.shape[0] // 2, p.data.shape[1] // 2, int(self.slice.value))
        fig, axes = plt.subplots(1, 3, figsize=(8, 3))
        for ax, sl, name in zip(axes, orthogonal_slices(self.volume, index), VIEWS):
            ax.imshow(sl, origin="lower", cmap="gray", vmin=0, vmax=1)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
        stamp(fig, p.name, self.pipe.weights, "generated")
        if self.figure is not None:
            plt.close(self.figure)
        self.figure = fig  # kept, so a test (or a caller) can read what is shown
        self.image.clear_output(wait=True)
        with self.image:
            display(fig)
        plt.close(fig)

    def save(self) -> Path:
        """Write the current sample as NIfTI on the MNI grid, and its row in samples.tsv."""
        if self.volume is None or self.last is None:
            raise RuntimeError("generate a sample first")
        table = save_samples(self.volume[None], self.last["covariates"], [self.last["seed"]], self.out_dir,
                             self.pipe.profile, self.last["sampler"], self.pipe.weights,
                             guidance_scale=self.last["guidance"])
        path = self.out_dir / table["file"].iloc[-1]
        self.status.value = f"saved {path}"
        return path
