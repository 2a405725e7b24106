"""Calibration of face search (``fit.py`` writes ``match/face_calibration.json``)."""
