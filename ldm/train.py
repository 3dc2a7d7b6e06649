"""``python -m ldm.train``: train one network of a run (``ldm.training.cli``); a thin entry point, see ``--help``."""

import sys

from ldm.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
