"""The fusion of the pixel signals: its data (every image's signals, cached) and its fit."""
