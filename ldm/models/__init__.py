"""Networks and what they compute with, built from a profile: the autoencoder, the diffusion UNet and the
patch discriminator (``networks``), the noise schedule and prediction targets (``schedule``), the latent
space (``latents``), the GAN baselines (``baselines``), the brain-age CNN (``brain_age``), MedicalNet
features (``perceptual``) and the conversion of the official MONAI bundle (``official``). Nothing here
trains."""
