"""ldm: the thin library behind the executable edition of Pinaya, Tudosiu et al. (2022).

The folders are the pipeline, in order:

    data/        the MNI152 anatomy, the embedded cohort, loading BIDS or tables, covariates, preprocessing
    models/      the networks (autoencoder, UNet, discriminators, GAN baselines, brain-age CNN), the noise
                 schedule and prediction targets, MedicalNet features, the official-weights conversion
    training/    one step per network, the training loops, checkpoints' save/resume, the CLI, shipping
    sampling/    the solvers, the pipeline and ``generate``, tiled decoding, cohort export
    evaluation/  Table 1's metrics, diagnostics, ventricles, conditioning, claims and verdicts, privacy
    book/        the notebook runner, figures with their provenance stamp, the interactive sampler

beside small shared modules: ``config`` (profiles), ``io`` (safe reading and atomic writing), ``runtime``
(devices, DDP, autocast, per-sample randomness), ``checkpoints`` (the checkpoint format), ``run`` (the run
folder) and ``numbers`` (the paper's numbers). ``train``, ``sample``, ``official`` and ``ship`` are the
command-line entry points (``python -m ldm.train`` ...); ``python -m ldm.book`` builds the book.
Sampling and evaluation never import training.
"""

__version__ = "0.1.0"
