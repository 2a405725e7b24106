"""Manipulation and generation detectors: provenance, pixel signals (face-region consistency,
face blend, AI-image statistics, CLIP probes), their fusion, explanation maps, nudity triage.
``check`` is the one orchestrator (what runs for an item), ``decide`` turns evidence into a
verdict, ``record`` is the typed result."""
