"""Face search: a FAISS index over every face descriptor of a case, and enrollments searched in it.

The index is exact (``IndexFlatL2`` inside ``IndexIDMap2``, ids = ``faces.id`` in the case
store): descriptors are compared by Euclidean distance, which is what the calibration measures.
It lives beside the database as ``faces.faiss``; new faces are appended (``add``), never
rebuilt, and a missing or stale file is rebuilt from the database, which stays the source of
truth.

Search is incremental: the case remembers up to which face id every enrollment was searched
(``faces_searched_upto``); after a scan only newer faces are matched, and a new enrollment is
matched against all faces. Because the combined distance ``(nearest + mean) / 2`` is never
below the nearest template's distance, a FAISS range search of each template within the
threshold finds every candidate; exact distances to all templates are then computed for them.
Cost of brute force: docs/faces.md.

When the case's templates are locked under a passphrase (``store/templatelock.py``), searching
needs it: ``search_new_faces`` raises TemplatesLocked without it and marks nothing searched, so
the next search given the passphrase finds every face that waited
(``CaseStore.faces_awaiting_search``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from reclaim.faces.calibration import Calibration, calibration, combine_distances
from reclaim.faces.pipeline import DESCRIPTOR_DIM, descriptor_from_bytes
from reclaim.store import CaseStore
from reclaim.store.faces import FACES_SEARCHED_UPTO
from reclaim.store.templatelock import Passphrase

__all__ = [
    "INDEX_FILE",
    "FaceIndex",
    "match_templates",
    "open_index",
    "search_enrollment",
    "search_new_faces",
]

INDEX_FILE = "faces.faiss"
_META_INDEX = "faces_index"
_META_SEARCHED = FACES_SEARCHED_UPTO


class FaceIndex:
    """Exact L2 index of face descriptors keyed by face id (ids only grow)."""

    def __init__(self) -> None:
        self.index = faiss.IndexIDMap2(faiss.IndexFlatL2(DESCRIPTOR_DIM))
        self.max_id = 0

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray | Iterable[int], vectors: np.ndarray) -> None:
        """Append faces; ids must be larger than every id already in the index."""
        ida = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        vec = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, DESCRIPTOR_DIM)
        if ida.shape[0] != vec.shape[0]:
            raise ValueError(f"{ida.shape[0]} ids for {vec.shape[0]} vectors")
        if not ida.shape[0]:
            return
        if int(ida.min()) <= self.max_id or np.any(np.diff(ida) <= 0):
            raise ValueError("face ids must be new and increasing")
        self.index.add_with_ids(vec, ida)
        self.max_id = int(ida[-1])

    def within(self, queries: np.ndarray, radius: float) -> np.ndarray:
        """Ids of faces within Euclidean ``radius`` of any query, sorted, unique."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, DESCRIPTOR_DIM)
        # FAISS compares squared distances with "<"; widen by a hair so "≤ radius" holds.
        _, _, ids = self.index.range_search(q, float(radius) ** 2 * (1 + 1e-6) + 1e-12)
        return np.unique(np.asarray(ids, dtype=np.int64))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(ids), DESCRIPTOR_DIM), dtype=np.float32)
        for n, i in enumerate(ids):
            out[n] = self.index.reconstruct(int(i))
        return out

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> FaceIndex:
        idx = cls()
        loaded = faiss.read_index(str(path))
        if loaded.d != DESCRIPTOR_DIM or not isinstance(loaded, faiss.IndexIDMap2):
            raise ValueError("not a face index")
        idx.index = loaded
        ids = faiss.vector_to_array(loaded.id_map)
        idx.max_id = int(ids.max()) if ids.size else 0
        return idx


def _add_from_store(index: FaceIndex, store: CaseStore) -> int:
    added = 0
    for batch in store.iter_face_descriptors(after_id=index.max_id):
        ids = np.array([b[0] for b in batch], dtype=np.int64)
        vecs = np.stack([descriptor_from_bytes(b[1]) for b in batch])
        index.add(ids, vecs)
        added += len(batch)
    return added


def open_index(store: CaseStore) -> FaceIndex:
    """The case's face index, brought up to date with the database (and saved if it changed)."""
    path = store.root / INDEX_FILE
    index: FaceIndex | None = None
    try:
        meta = json.loads(store.meta_get(_META_INDEX) or "null")
    except json.JSONDecodeError:
        meta = None
    if isinstance(meta, dict) and path.exists():
        try:
            index = FaceIndex.load(path)
        except (RuntimeError, ValueError):
            index = None
        if index is not None and (
            len(index) != meta.get("count")
            or index.max_id != meta.get("max_id")
            or store.count_faces_upto(index.max_id) != len(index)
        ):
            index = None  # stale or foreign file: rebuild from the database
    rebuilt = index is None
    if index is None:
        index = FaceIndex()
    added = _add_from_store(index, store)
    if rebuilt or added:
        index.save(path)
        store.meta_set(_META_INDEX, json.dumps({"count": len(index), "max_id": index.max_id}))
    return index


def match_templates(
    vectors: np.ndarray, templates: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nearest, mean, combined) distance of each vector to a set of templates."""
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, DESCRIPTOR_DIM)
    t = np.asarray(templates, dtype=np.float64).reshape(-1, DESCRIPTOR_DIM)
    d = np.sqrt(np.maximum(((v[:, None, :] - t[None, :, :]) ** 2).sum(axis=2), 0.0))
    return combine_distances(d)


def search_enrollment(
    store: CaseStore,
    index: FaceIndex,
    enrollment_id: int,
    cal: Calibration | None = None,
    *,
    after_id: int = 0,
    passphrase: Passphrase = None,
) -> int:
    """Match one enrollment against the faces of the index with id > ``after_id`` and store
    the findings. Returns how many items became new findings. ``passphrase`` (or its
    ``TemplateKey``): needed when the case's templates are locked (TemplatesLocked)."""
    cal = cal or calibration()
    temps = store.enrollment_templates(enrollment_id, passphrase)
    if not temps:
        return 0
    t = np.stack([descriptor_from_bytes(b) for b in temps])
    ids = index.within(t, cal.threshold)
    ids = ids[ids > after_id]
    if not ids.size:
        return 0
    nearest, mean, comb = match_templates(index.vectors(ids), t)
    keep = comb <= cal.threshold
    items = store.face_items(int(i) for i in ids[keep])
    best: dict[str, tuple[int, float, float, float, int]] = {}
    for fid, n, m, c in zip(ids[keep], nearest[keep], mean[keep], comb[keep], strict=True):
        sha = items[int(fid)]
        prev = best.get(sha)
        count = (prev[4] if prev else 0) + 1
        if prev is None or c < prev[3]:
            best[sha] = (int(fid), float(n), float(m), float(c), count)
        else:
            best[sha] = (*prev[:4], count)
    rows = [
        (enrollment_id, sha, fid, c, n, m, cal.score(c), count)
        for sha, (fid, n, m, c, count) in best.items()
    ]
    return store.upsert_findings(rows)


def search_new_faces(
    store: CaseStore, cal: Calibration | None = None, *, passphrase: Passphrase = None
) -> int:
    """Match every enrollment against the faces added since the last search. Returns how many
    new findings were made. Cheap when nothing is new or nobody is enrolled.

    When the case's templates are locked, ``passphrase`` (or its ``TemplateKey``) is needed:
    TemplatesLocked (WrongPassphrase) is raised before anything is searched, and the faces stay
    waiting for the next search that has it."""
    if not store.has_enrollments():
        # Nobody to search for: a future enrollment searches every face anyway.
        store.meta_set(_META_SEARCHED, str(store.max_face_id()))
        return 0
    cal = cal or calibration()
    upto = int(store.meta_get(_META_SEARCHED) or 0)
    if store.max_face_id() <= upto:
        return 0
    key = store.template_key(passphrase)  # one scrypt for every enrollment
    index = open_index(store)
    new = sum(
        search_enrollment(store, index, e["id"], cal, after_id=upto, passphrase=key)
        for e in store.enrollments()
    )
    store.meta_set(_META_SEARCHED, str(index.max_id))
    return new
