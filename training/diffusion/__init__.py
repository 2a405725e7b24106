"""Detectors of diffusion-generated and diffusion-inpainted images (issue 21): data, features
and the leave-one-family-out fit of ``models/diffusion_probe.json``."""
