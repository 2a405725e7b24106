"""Faces, enrollments and findings (issue 3): the faces found in items, the people enrolled with
their consent and face templates, and which items show them.

A scan writes an item's faces in the item's own transaction (``insert_faces``, called by the
``items`` part); everything else here is read by face search (``reclaim.match.faces``), written
by enrollment (``reclaim.enroll``) and shown as findings (``reclaim.findings``). A finding row is
read by column name into ``Finding`` in one step, its item's manipulation check joined in.

Her templates may be locked under a passphrase (``templatelock``): then every stored template is
sealed, and ``enrollment_templates`` / ``add_enrollment`` need the passphrase or its key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from reclaim.errors import StoreError
from reclaim.sources.base import Locator
from reclaim.store.base import TOOL, CaseBase, Columns, Group, now_iso
from reclaim.store.shields import count_sealed, open_shields, seal_shields
from reclaim.store.templatelock import (
    PASSPHRASE_ENV,
    KdfParams,
    Passphrase,
    TemplateKey,
    TemplatesLocked,
    WrongPassphrase,
    check_new_passphrase,
    is_sealed,
    locked_message,
)


@dataclass
class FaceRecord:
    """One detected face, ready to store (``descriptor``: 1,024 bytes, 256 float32 LE)."""

    box: tuple[int, int, int, int]
    size: int
    detector: str
    confidence: float
    blur: float
    pose: float
    quality: float
    descriptor: bytes
    frame: int | None = None
    timestamp_s: float | None = None


@dataclass(frozen=True)
class Finding:
    """A matching face: which item, where in it, how close, how sure, for whom."""

    enrollment: str
    item_sha256: str
    box: tuple[int, int, int, int]
    distance: float
    nearest: float
    mean: float
    score: float
    faces_matched: int
    kind: str
    locator: Locator | None
    sightings: int
    found_at: str
    frame: int | None = None
    timestamp_s: float | None = None
    face_size: int | None = None
    detector: str | None = None
    check: dict[str, Any] | None = None  # the item's manipulation check: verdict, score, level

    def as_record(self) -> dict[str, Any]:
        """One JSON object for ``reclaim findings --json``."""
        loc = self.locator
        rec: dict[str, Any] = {
            "item_sha256": self.item_sha256,
            "locator": (
                {"kind": loc.kind, "path": loc.path, "member": loc.member, "meta": loc.meta}
                if loc is not None
                else None
            ),
            "where": loc.display() if loc is not None else None,
            "sightings": self.sightings,
            "enrollment": self.enrollment,
            "score": round(self.score, 4),
            "distance": round(self.distance, 4),
            "nearest": round(self.nearest, 4),
            "mean": round(self.mean, 4),
            "box": list(self.box),
            "kind": self.kind,
            "faces_matched": self.faces_matched,
            "found_at": self.found_at,
        }
        if self.frame is not None:
            rec["frame"] = self.frame
            rec["timestamp_s"] = self.timestamp_s
        rec["check"] = self.check
        return rec


def _check_summary(verdict: str | None, score: float, level: str) -> dict[str, Any] | None:
    return None if verdict is None else {"verdict": verdict, "score": score, "level": level}


FINDING = Columns(
    Finding,
    "e.name AS enrollment, f.item_sha256, fa.left, fa.top, fa.right, fa.bottom, f.distance, "
    "f.nearest, f.mean, f.score, f.faces_matched, i.kind, "
    "(SELECT s.locator FROM sightings s WHERE s.item_sha256 = f.item_sha256 "
    " ORDER BY s.id LIMIT 1) AS locator, "
    "(SELECT COUNT(*) FROM sightings s WHERE s.item_sha256 = f.item_sha256) AS sightings, "
    "f.found_at, fa.frame, fa.timestamp_s, fa.size AS face_size, fa.detector, "
    "c.verdict AS check_verdict, c.score AS check_score, c.level AS check_level",
    box=Group(("left", "top", "right", "bottom"), lambda *b: tuple(int(v) for v in b)),
    locator=lambda text: Locator.from_json(text) if text else None,
    check=Group(("check_verdict", "check_score", "check_level"), _check_summary),
)


def insert_faces(
    c: sqlite3.Connection,
    sha256: str,
    faces: list[FaceRecord],
    frames: int,
    error: str | None,
    ts: str,
) -> int:
    """Record the faces of one item once (a later analysis of the same bytes adds nothing)."""
    cur = c.execute(
        "INSERT OR IGNORE INTO face_scans(item_sha256, faces, frames, error, analyzer, "
        "analyzed_at) VALUES (?,?,?,?,?,?)",
        (sha256, len(faces), frames, error, TOOL, ts),
    )
    if cur.rowcount == 0 or not faces:
        return 0
    c.executemany(
        "INSERT INTO faces(item_sha256, frame, timestamp_s, left, top, right, bottom, size, "
        "detector, confidence, blur, pose, quality, descriptor) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (sha256, f.frame, f.timestamp_s, *f.box, f.size, f.detector, f.confidence,
             f.blur, f.pose, f.quality, f.descriptor)
            for f in faces
        ],
    )  # fmt: skip
    return len(faces)


#: ``meta`` key: the face id up to which every enrollment was searched (``match.faces``).
FACES_SEARCHED_UPTO = "faces_searched_upto"


class FaceStore(CaseBase):
    """Faces, enrollments (consent, templates) and findings."""

    # -- faces -------------------------------------------------------------------------------
    def items_without_faces(self) -> list[str]:
        """Decoded photos and videos whose faces were never looked for, oldest first."""
        rows = self.conn.execute(
            "SELECT sha256 FROM items i WHERE kind IN ('photo', 'video') AND error IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM face_scans f WHERE f.item_sha256 = i.sha256) "
            "ORDER BY first_seen_at, sha256"
        ).fetchall()
        return [r[0] for r in rows]

    def face_counts(self) -> dict[str, int]:
        return {
            "items_searched_for_faces": self._count("SELECT COUNT(*) FROM face_scans"),
            "faces": self._count("SELECT COUNT(*) FROM faces"),
            "enrollments": self._count("SELECT COUNT(*) FROM enrollments"),
            "findings": self._count("SELECT COUNT(*) FROM findings"),
        }

    def max_face_id(self) -> int:
        return self._count("SELECT COALESCE(MAX(id), 0) FROM faces")

    def faces_awaiting_search(self) -> int:
        """Faces found since the last face search, not yet matched against the enrolled people
        (0 when nobody is enrolled: a future enrollment searches every face). They wait while
        the templates are locked and no passphrase was given."""
        if not self.has_enrollments():
            return 0
        upto = int(self.meta_get(FACES_SEARCHED_UPTO) or 0)
        return self._count("SELECT COUNT(*) FROM faces WHERE id > ?", (upto,))

    def count_faces_upto(self, face_id: int) -> int:
        return self._count("SELECT COUNT(*) FROM faces WHERE id <= ?", (face_id,))

    def iter_face_descriptors(
        self, after_id: int = 0, batch: int = 20_000
    ) -> Iterator[list[tuple[int, bytes]]]:
        """(face id, descriptor bytes) of faces with id > ``after_id``, in id order, in batches."""
        last = after_id
        while True:
            rows = self.conn.execute(
                "SELECT id, descriptor FROM faces WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            yield [(int(fid), bytes(desc)) for fid, desc in rows]
            last = int(rows[-1][0])

    def face_items(self, face_ids: Iterable[int]) -> dict[int, str]:
        """Item sha256 of each face id."""
        ids = list(face_ids)
        out: dict[int, str] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ",".join("?" * len(part))
            for fid, sha in self.conn.execute(
                f"SELECT id, item_sha256 FROM faces WHERE id IN ({q})", part
            ):
                out[int(fid)] = sha
        return out

    def item_faces(self, sha256: str) -> list[dict[str, Any]]:
        """The faces found in an item, in the order they were found."""
        rows = self._dicts(
            "SELECT id, frame, timestamp_s, left, top, right, bottom, size, detector, confidence, "
            "blur, pose, quality FROM faces WHERE item_sha256=? ORDER BY id",
            (sha256,),
        )
        return [
            {
                "face_id": r["id"],
                "frame": r["frame"],
                "timestamp_s": r["timestamp_s"],
                "box": [r["left"], r["top"], r["right"], r["bottom"]],
                "size": r["size"],
                "detector": r["detector"],
                "confidence": r["confidence"],
                "blur": r["blur"],
                "pose": r["pose"],
                "quality": r["quality"],
            }
            for r in rows
        ]

    # -- enrollments -------------------------------------------------------------------------
    def has_enrollments(self) -> bool:
        return self.conn.execute("SELECT 1 FROM enrollments LIMIT 1").fetchone() is not None

    def add_enrollment(
        self,
        name: str,
        consented_by: str,
        consent_text: str,
        templates: list[tuple[bytes, int, float, float]],
        passphrase: Passphrase = None,
    ) -> int:
        """Store an enrollment, its consent record and its templates (descriptor, size, blur,
        pose) in one transaction; sealed under the passphrase when the case's templates are
        locked. Raises StoreError when the name is taken, TemplatesLocked (WrongPassphrase)
        when they are locked and no (a wrong) passphrase is given."""
        ts = now_iso()
        key = self.template_key(passphrase)
        with self.transaction() as c:
            if key is not None and self._lock_salt() != key.params.salt:
                raise WrongPassphrase("the case's template lock changed meanwhile; try again")
            if key is None and self.templates_locked():
                raise TemplatesLocked(locked_message("enrolling"))
            if c.execute("SELECT 1 FROM enrollments WHERE name=?", (name,)).fetchone():
                raise StoreError(
                    f"{name!r} is already enrolled in this case; unenroll first to replace it"
                )
            cur = c.execute("INSERT INTO enrollments(name, created_at) VALUES (?, ?)", (name, ts))
            eid = int(cur.lastrowid or 0)
            c.execute(
                "INSERT INTO consents(enrollment_id, consented_by, consented_at, consent_text, "
                "tool) VALUES (?,?,?,?,?)",
                (eid, consented_by, ts, consent_text, TOOL),
            )
            # Row ids are chosen here so that a sealed template is bound to its own row: the
            # clear bytes of a locked case never reach the database, not even for a moment.
            tid = self._count("SELECT COALESCE(MAX(id), 0) FROM templates")
            rows = []
            for d, size, blur, pose in templates:
                tid += 1
                rows.append(
                    (tid, eid, d if key is None else key.seal(eid, tid, d), size, blur, pose)
                )
            c.executemany(
                "INSERT INTO templates(id, enrollment_id, descriptor, size, blur, pose) "
                "VALUES (?,?,?,?,?,?)",
                rows,
            )
        return eid

    def enrollments(self) -> list[dict[str, Any]]:
        """Each enrollment (id, name, created_at), its consent record (consented_by,
        consented_at, consent_text) and how many templates and findings it has."""
        return self._dicts(
            "SELECT e.id, e.name, e.created_at, c.consented_by, c.consented_at, c.consent_text, "
            "(SELECT COUNT(*) FROM templates t WHERE t.enrollment_id = e.id) AS templates, "
            "(SELECT COUNT(*) FROM findings f WHERE f.enrollment_id = e.id) AS findings "
            "FROM enrollments e LEFT JOIN consents c ON c.enrollment_id = e.id ORDER BY e.id"
        )

    def enrollment_templates(
        self, enrollment_id: int, passphrase: Passphrase = None
    ) -> list[bytes]:
        """The clear templates (descriptor bytes) of an enrollment, in the order stored.

        When the case's templates are locked, ``passphrase`` (or the ``TemplateKey`` derived
        from it) is needed: TemplatesLocked without it, WrongPassphrase with a wrong one. It is
        ignored for a case whose templates are in the clear."""
        key = self.template_key(passphrase)
        rows = self.conn.execute(
            "SELECT id, descriptor FROM templates WHERE enrollment_id=? ORDER BY id",
            (enrollment_id,),
        ).fetchall()
        if key is None:
            return [bytes(r[1]) for r in rows]
        return [key.open(enrollment_id, int(r[0]), bytes(r[1])) for r in rows]

    # -- templates locked under a passphrase (store/templatelock.py) ---------------------------
    def templates_locked(self) -> bool:
        """True when the case's templates are sealed under a passphrase."""
        return self.conn.execute("SELECT 1 FROM template_lock").fetchone() is not None

    def _lock_salt(self) -> bytes | None:
        row = self.conn.execute("SELECT kdf FROM template_lock").fetchone()
        return None if row is None else KdfParams.from_json(str(row[0])).salt

    def template_key(self, passphrase: Passphrase) -> TemplateKey | None:
        """The key that opens the case's templates (None when they are not locked; a
        ``TemplateKey`` given is checked and returned). Raises TemplatesLocked when they are
        locked and no passphrase is given, WrongPassphrase when it is not theirs."""
        row = self.conn.execute("SELECT kdf, verifier FROM template_lock").fetchone()
        if row is None:
            return None
        if passphrase is None or passphrase == "":
            raise TemplatesLocked(locked_message())
        params = KdfParams.from_json(str(row[0]))
        if isinstance(passphrase, TemplateKey):
            key = passphrase
            if key.params != params:
                raise WrongPassphrase("this key belongs to another template lock")
        else:
            key = TemplateKey.derive(passphrase, params)
        key.check(bytes(row[1]))
        return key

    def lock_templates(self, passphrase: str) -> int:
        """Seal every template of every enrollment, and every face shield's JSON
        (``store/shields.py``: its codes invert to her face with the platform's public key),
        under ``passphrase``, then wipe the clear copies from ``case.sqlite`` and its write-ahead
        log as ``delete_enrollment`` does. Returns how many templates were sealed now (0 when
        they were locked already: the passphrase is checked, any shield still in the clear
        sealed, and the wipe done again). Raises InputError for a passphrase too short,
        WrongPassphrase when they are locked under another, StoreError when another program
        keeps old copies in the write-ahead log (run it again once it is closed)."""
        sealed = 0
        self.conn.execute("PRAGMA secure_delete=ON")  # freed cells are zeroed, not left
        if not self.templates_locked():
            check_new_passphrase(passphrase)
            key = TemplateKey.derive(passphrase, KdfParams.new())
            with self.transaction() as c:
                if self.templates_locked():
                    raise StoreError("the templates were locked meanwhile; nothing was changed")
                c.execute(
                    "INSERT INTO template_lock(id, kdf, verifier, locked_at) VALUES (1, ?, ?, ?)",
                    (key.params.to_json(), key.verifier(), now_iso()),
                )
                rows = c.execute("SELECT id, enrollment_id, descriptor FROM templates").fetchall()
                for tid, eid, desc in rows:
                    if is_sealed(bytes(desc)):
                        raise StoreError(
                            f"template {tid} is sealed although the case is not locked"
                        )
                    c.execute(
                        "UPDATE templates SET descriptor=? WHERE id=?",
                        (key.seal(int(eid), int(tid), bytes(desc)), tid),
                    )
                sealed = len(rows)
                seal_shields(c, key)
        else:
            opener = self.template_key(passphrase)
            assert opener is not None
            with self.transaction() as c:
                seal_shields(c, opener)  # any left in the clear (made by an older reclaim)
        done = "the templates are locked"
        self._wipe_wal(done)
        self.conn.execute("VACUUM")
        self._wipe_wal(done)
        return sealed

    def unlock_templates(self, passphrase: Passphrase) -> int:
        """Put every template, and every sealed shield, back in the clear and remove the lock
        (WrongPassphrase with a wrong passphrase). Returns how many templates were opened; 0
        when not locked.

        With no template left (everyone unenrolled) and no active shield sealed no passphrase
        is needed: a forgotten one then never keeps her from enrolling again. Active sealed
        shields need it (TemplatesLocked), or to be revoked first, which needs none."""
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM templates LIMIT 1").fetchone() is None:
                active = count_sealed(c, active_only=True)
                if not active:
                    c.execute("DELETE FROM template_lock")
                    return 0
                if passphrase is None or passphrase == "":
                    raise TemplatesLocked(
                        f"{active} shield(s) of this case are locked with the passphrase of its "
                        "face templates: give it to unlock them (--passphrase-file or the "
                        f"{PASSPHRASE_ENV} environment variable), or, if it is forgotten, revoke "
                        "them first (reclaim shield revoke needs no passphrase)"
                    )
        key = self.template_key(passphrase)
        if key is None:
            return 0
        with self.transaction() as c:
            rows = c.execute("SELECT id, enrollment_id, descriptor FROM templates").fetchall()
            for tid, eid, desc in rows:
                clear = key.open(int(eid), int(tid), bytes(desc))
                c.execute("UPDATE templates SET descriptor=? WHERE id=?", (clear, tid))
            open_shields(c, key)
            c.execute("DELETE FROM template_lock")
        return len(rows)

    def delete_enrollment(self, name: str) -> bool:
        """Delete an enrollment for good: templates, consent record and findings.

        ``secure_delete`` overwrites the freed content with zeros, then the WAL is checkpointed
        and truncated and the database rebuilt (VACUUM), so no copy of the templates is left in
        ``case.sqlite`` or its ``-wal`` file. Returns False when no such enrollment exists.
        Raises StoreError when another connection keeps the WAL from being emptied.
        """
        self.conn.execute("PRAGMA secure_delete=ON")
        with self.transaction() as c:
            row = c.execute("SELECT id FROM enrollments WHERE name=?", (name,)).fetchone()
            if row is None:
                return False
            eid = int(row[0])
            for table in ("findings", "templates", "consents"):
                c.execute(f"DELETE FROM {table} WHERE enrollment_id=?", (eid,))
            c.execute("DELETE FROM enrollments WHERE id=?", (eid,))
        self._wipe_wal()
        self.conn.execute("VACUUM")
        self._wipe_wal()
        return True

    def _wipe_wal(self, done: str = "the deletion is done") -> None:
        busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreError(
                f"{done} but another program still reads this case, so old copies "
                "remain in its write-ahead log; close it and run the command again"
            )

    # -- findings ----------------------------------------------------------------------------
    def upsert_findings(
        self, rows: Iterable[tuple[int, str, int, float, float, float, float, int]]
    ) -> int:
        """Write findings (enrollment id, item sha256, face id, distance, nearest, mean, score,
        faces matched), keeping the closest face per (enrollment, item). Returns how many
        (enrollment, item) pairs were new."""
        ts = now_iso()
        new = 0
        with self.transaction() as c:
            for eid, sha, fid, dist, nearest, mean, score, n in rows:
                existed = c.execute(
                    "SELECT 1 FROM findings WHERE enrollment_id=? AND item_sha256=?", (eid, sha)
                ).fetchone()
                c.execute(
                    "INSERT INTO findings(enrollment_id, item_sha256, face_id, distance, nearest, "
                    "mean, score, faces_matched, found_at) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT(enrollment_id, item_sha256) DO UPDATE SET "
                    "faces_matched=MAX(faces_matched, excluded.faces_matched), "
                    "face_id=CASE WHEN excluded.distance < distance THEN excluded.face_id "
                    "ELSE face_id END, "
                    "nearest=CASE WHEN excluded.distance < distance THEN excluded.nearest "
                    "ELSE nearest END, "
                    "mean=CASE WHEN excluded.distance < distance THEN excluded.mean ELSE mean END, "
                    "score=CASE WHEN excluded.distance < distance THEN excluded.score "
                    "ELSE score END, "
                    "distance=MIN(distance, excluded.distance)",
                    (eid, sha, fid, dist, nearest, mean, score, n, ts),
                )
                new += existed is None
        return new

    def findings(self, name: str | None = None, *, item: str | None = None) -> list[Finding]:
        """Findings (of ``name``'s enrollment, of ``item``), best (highest score, then smallest
        distance) first, each with its item's check (None when the item was not checked)."""
        where: list[str] = []
        args: list[Any] = []
        if name is not None:
            where.append("e.name = ?")
            args.append(name)
        if item is not None:
            where.append("f.item_sha256 = ?")
            args.append(item)
        return self._records(
            FINDING,
            f"SELECT {FINDING.sql} FROM findings f "
            "JOIN enrollments e ON e.id = f.enrollment_id "
            "JOIN items i ON i.sha256 = f.item_sha256 JOIN faces fa ON fa.id = f.face_id "
            "LEFT JOIN checks c ON c.item_sha256 = f.item_sha256 "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY f.score DESC, f.distance ASC, f.item_sha256",
            tuple(args),
        )
