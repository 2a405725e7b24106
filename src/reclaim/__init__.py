"""reclaim: find, document and stop the spread of non-consensual synthetic intimate imagery.

reclaim never generates, edits, swaps or undresses an image. It reads collections, computes
signals (hashes today), and records where every item was seen.
"""

__version__ = "0.1.0"
