"""Training: one optimiser step per network (``steps``), its loop (``autoencoder``, ``diffusion``, ``gans``,
``brain_age``, ``privacy_control``), saving and resuming (``state``), load-or-train for the notebooks
(``obtain``), the command line (``cli``: ``python -m ldm.train``) and the recorded run that makes the
shipped checkpoints (``ship``: ``python -m ldm.ship``)."""
