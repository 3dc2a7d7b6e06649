"""Data, in pipeline order: the MNI152 anatomy (``template``), the embedded cohort generated from it
(``cohort``), finding a cohort on disk and reading a preprocessed one back (``loading``), conditioning
covariates (``covariates``), registration to MNI (``preprocess``) onto the profile's grid (``grid``), and
per-subject work over processes (``parallel``)."""
