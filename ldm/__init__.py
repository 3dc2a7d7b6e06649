"""ldm: the thin library behind the executable edition of Pinaya, Tudosiu et al. (2022).

Modules, one concern each: ``config`` (profiles), ``template`` (MNI152 anatomy), ``cohort`` (the
embedded, generated cohort), ``io`` (safe reading and atomic writing), ``data`` (finding a cohort on
disk), ``covariates`` (normalisation), ``preprocess`` (registration to MNI), ``parallel`` (per-subject
work over processes), ``plotting`` (figures with their provenance stamp), ``book`` (run the notebooks,
build the book).
"""

__version__ = "0.1.0"
