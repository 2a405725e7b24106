"""reclaim: find, document and stop the spread of non-consensual synthetic intimate imagery.

reclaim never generates, edits, swaps or undresses an image. It reads collections, computes
signals (hashes today), and records where every item was seen.
"""

import os as _os

__version__ = "0.1.0"

# onnxruntime (1.29 and later) sends telemetry to Microsoft from Linux and macOS too: process,
# model and session events, with a device identifier (its own docs; seen here as lookups of
# mobile.events.data.microsoft.com from a face scan). reclaim lets nothing phone home, so it is
# turned off here, before any reclaim module loads onnxruntime; scan workers inherit it.
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"
