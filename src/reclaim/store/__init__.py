"""Case store: everything a scan learnt, in a SQLite database inside the case directory.

One case directory = one person's (or one investigation's) material: ``case.sqlite`` plus
``blobs/`` for bytes reclaim downloaded itself, ``.lock`` (the one-writer lock) and the custody
log. The store holds every SQL statement run on a case, split by concern into parts that are
mixins of one base, as the platform store is (``reclaim.platform.store``):

- ``schema``: the tables (the case format) and bringing an older case up to date;
- ``base``: opening a case, the kernel case lock and ``writing()``, transactions, ``meta``, and
  rows read by column name (``Columns``);
- ``items``: runs, items, signals, sightings and blobs — what a scan records;
- ``faces``: faces, enrollments (consent, templates) and findings (``Finding``);
- ``checks``: manipulation checks;
- ``decisions``: the person's decisions on items;
- ``shields``: the face shields she gave platforms;
- ``requests``: the removal requests she makes, with their history;
- ``case``: ``CaseStore``, the parts composed.

Mixins rather than repositories the store holds: callers keep one object and one call per query
(``store.findings()``), and a part never calls another's methods (a scan's one transaction per
item writes faces and checks through the module functions ``faces.insert_faces`` and
``checks.insert_check``), so none needs the others to be read.
"""

from reclaim.store.case import CaseStore, FaceRecord, Finding, ItemRecord, SightingRecord

__all__ = ["CaseStore", "FaceRecord", "Finding", "ItemRecord", "SightingRecord"]
