"""``python -m ldm.sample``: export a synthetic cohort (``ldm.sampling.cli``); a thin entry point, see ``--help``."""

import sys

from ldm.sampling.cli import main

if __name__ == "__main__":
    sys.exit(main())
