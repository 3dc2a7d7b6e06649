"""The book: the runner that executes the notebooks and builds the HTML (``runner``, ``python -m ldm.book``),
the figures they draw with their provenance stamp (``figures``), and the interactive sampler (``widget``)."""
