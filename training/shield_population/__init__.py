"""The face shield's public population mean (``fit.py`` writes
``src/reclaim/models/shield_population.json``)."""
