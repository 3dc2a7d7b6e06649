"""Sampling: the solvers and their registry (``solvers``), networks + schedule as one pipeline and
``generate`` (``pipeline``), the decode in bounded memory (``tiled_decode``), writing samples and cohorts
(``export``) and the command line (``cli``: ``python -m ldm.sample``). Nothing here imports training."""
