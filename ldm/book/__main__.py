"""``python -m ldm.book``: run the notebooks and build the book (``ldm.book.runner``)."""

import sys

from ldm.book.runner import main

sys.exit(main())
