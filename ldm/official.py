"""``python -m ldm.official``: convert the MONAI bundle's weights (``ldm.models.official``); see ``--help``."""

import sys

from ldm.models.official import main

if __name__ == "__main__":
    sys.exit(main())
