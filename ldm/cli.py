"""The ``ldm`` command: one entry point for what the package's modules do.

    ldm preprocess --profile demo                      # the embedded cohort, registered to MNI
    ldm train autoencoder --profile demo --run-dir runs/demo
    ldm train diffusion --profile demo --run-dir runs/demo
    ldm sample --profile demo --n 100 --out runs/demo/export
    ldm convert --bundle /path/to/brain_image_synthesis_latent_diffusion_model --out runs/paper/official
    ldm book --profile demo                            # run every notebook, build the HTML book
    ldm ship --profile demo                            # retrain and export the shipped checkpoints

``ldm <command> --help`` shows each command's options and examples. ``python -m ldm.train`` (and
``ldm.sample``, ``ldm.official``, ``ldm.ship``, ``ldm.book``) run the same code; ``torchrun -m ldm.train``
and ``torchrun -m ldm.sample`` spread training or an export over processes.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module whose main(argv) runs it, one line for the list)
COMMANDS = {
    "preprocess": ("ldm.data.cli", "generate the embedded cohort or read yours, register every scan to MNI"),
    "train": ("ldm.training.cli", "train the autoencoder, the diffusion model, brain age or a GAN baseline"),
    "sample": ("ldm.sampling.cli", "export a synthetic cohort: NIfTI files and participants.tsv"),
    "convert": ("ldm.models.official", "convert the official MONAI bundle's weights to this edition's checkpoints"),
    "book": ("ldm.book.runner", "execute the notebooks with papermill and build the book"),
    "ship": ("ldm.training.ship", "retrain and export a profile's shipped checkpoints, with their record"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: ldm <command> [options]\n\ncommands:\n" + "\n".join(lines) + "\n\n" + __doc__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ldm: unknown command {name!r}; one of {', '.join(COMMANDS)} (ldm --help)", file=sys.stderr)
        return 2
    sys.argv[0] = f"ldm {name}"  # argparse names the command in its usage line
    return importlib.import_module(COMMANDS[name][0]).main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
