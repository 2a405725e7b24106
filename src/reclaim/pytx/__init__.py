"""reclaim as a python-threatexchange (pytx) extension.

``TX_MANIFEST`` makes a reclaim platform service an exchange that pytx's CLI and any HMA
deployment can fetch from (``reclaim``: ``reclaim.pytx.exchange``), and adds the signal types
reclaim banks and pytx lacks (``md5``, ``sha256``, ``vpdq``: ``reclaim.pytx.signals``)::

    pip install 'reclaim[exchange]'
    threatexchange config extensions add reclaim.pytx
    threatexchange config collab edit reclaim MY_PARTNER --create \\
        --url https://reclaim.example.org --bank NCII_HASHES
    RECLAIM_API_TOKEN=rcl_… threatexchange fetch
    threatexchange match photo suspect.jpg

Needs the ``threatexchange`` package (the ``exchange`` extra); importing it loads no web
framework.
"""

from __future__ import annotations

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest

from reclaim.pytx.exchange import (
    ReclaimCheckpoint,
    ReclaimCollabConfig,
    ReclaimCredentials,
    ReclaimRecord,
    ReclaimSignalExchangeAPI,
    ReclaimSignalMetadata,
)
from reclaim.pytx.signals import FileMD5Signal, FileSHA256Signal, ReclaimVPDQSignal

__all__ = [
    "SIGNAL_TYPES",
    "TX_MANIFEST",
    "FileMD5Signal",
    "FileSHA256Signal",
    "ReclaimCheckpoint",
    "ReclaimCollabConfig",
    "ReclaimCredentials",
    "ReclaimRecord",
    "ReclaimSignalExchangeAPI",
    "ReclaimSignalMetadata",
    "ReclaimVPDQSignal",
]

#: The signal types reclaim banks that pytx (1.2) does not have.
SIGNAL_TYPES = (FileMD5Signal, FileSHA256Signal, ReclaimVPDQSignal)

TX_MANIFEST = ThreatExchangeExtensionManifest(
    signal_types=SIGNAL_TYPES,
    apis=(ReclaimSignalExchangeAPI,),
)
