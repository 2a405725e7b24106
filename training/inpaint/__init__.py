"""Calibration of the ``inpaint_region`` signal (where a photo's grain differs from the rest)."""
