"""``python -m ldm``: the ``ldm`` command (``ldm.cli``)."""

import sys

from ldm.cli import main

sys.exit(main())
