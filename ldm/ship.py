"""``python -m ldm.ship``: train and export the shipped checkpoints (``ldm.training.ship``); see ``--help``."""

import sys

from ldm.training.ship import main

if __name__ == "__main__":
    sys.exit(main())
