"""Manipulation and generation detectors: provenance, pixel signals (face-region consistency,
face blend, AI-image statistics, CLIP probes), their fusion, explanation maps, nudity triage;
``check`` is the orchestrator."""
