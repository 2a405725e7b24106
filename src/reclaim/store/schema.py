"""The case format: ``case.sqlite``'s tables, and how an older case is brought up to date.

A case made by any earlier reclaim opens: every statement here is ``CREATE … IF NOT EXISTS``, so
opening a case adds the tables it lacks (cases made before face search gained its tables this
way) and changes nothing that is there. ``SCHEMA_VERSION`` is stamped in ``meta`` when a case is
created; a case stamped with a newer version is refused (``base.CaseBase.open``). Changing a
table here changes the case format: a case and a pack made before must open after.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1
DB_NAME = "case.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    sources TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,           -- running | done | failed (interrupted = running, owner gone)
    pid INTEGER,
    stats TEXT
);
CREATE TABLE IF NOT EXISTS items (
    sha256 TEXT PRIMARY KEY,
    md5 TEXT NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,             -- photo | video | other
    format TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    duration_s REAL,
    info TEXT,
    error TEXT,                     -- decode error: the item is kept, its pixels could not be read
    blob TEXT,                      -- path under the case dir when reclaim holds its own copy
    first_seen_at TEXT NOT NULL,
    analyzed_at TEXT NOT NULL,
    analyzer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signals (
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    signal TEXT NOT NULL,
    value TEXT NOT NULL,
    quality INTEGER,
    PRIMARY KEY (item_sha256, signal)
);
CREATE TABLE IF NOT EXISTS sightings (
    id INTEGER PRIMARY KEY,
    locator_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    locator TEXT NOT NULL,
    item_sha256 TEXT REFERENCES items(sha256),
    fingerprint TEXT,
    error TEXT,                     -- set when no bytes could be had (missing, refused, unreadable)
    run_id INTEGER REFERENCES runs(id),
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sightings_place
    ON sightings(locator_key, COALESCE(item_sha256, ''));
CREATE INDEX IF NOT EXISTS sightings_item ON sightings(item_sha256);
CREATE INDEX IF NOT EXISTS signals_value ON signals(signal, value);
-- the person's decisions on items (append-only; the latest counts): reclaim.decisions
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    enrollment TEXT,
    decision TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions(item_sha256, id);
"""

# Faces and face search (issue 3). New tables only: older cases gain them when opened.
_FACE_SCHEMA = """
CREATE TABLE IF NOT EXISTS face_scans (   -- items whose faces were looked for
    item_sha256 TEXT PRIMARY KEY REFERENCES items(sha256),
    faces INTEGER NOT NULL,
    frames INTEGER NOT NULL,        -- frames looked at (1 for a still photo)
    error TEXT,                     -- why faces could not be looked for (item decoded fine)
    analyzer TEXT NOT NULL,
    analyzed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    frame INTEGER,                  -- video/animation frame (NULL for a still photo)
    timestamp_s REAL,
    left INTEGER NOT NULL, top INTEGER NOT NULL, right INTEGER NOT NULL, bottom INTEGER NOT NULL,
    size INTEGER NOT NULL,
    detector TEXT NOT NULL,
    confidence REAL NOT NULL,
    blur REAL NOT NULL,
    pose REAL NOT NULL,
    quality REAL NOT NULL,
    descriptor BLOB NOT NULL        -- 384 little-endian float32 (descriptor v3)
);
CREATE INDEX IF NOT EXISTS faces_item ON faces(item_sha256);
CREATE TABLE IF NOT EXISTS enrollments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consents (
    enrollment_id INTEGER PRIMARY KEY REFERENCES enrollments(id) ON DELETE CASCADE,
    consented_by TEXT NOT NULL,
    consented_at TEXT NOT NULL,
    consent_text TEXT NOT NULL,     -- the exact text shown
    tool TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (   -- face templates only, never the photos
    id INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    descriptor BLOB NOT NULL,
    size INTEGER NOT NULL,
    blur REAL NOT NULL,
    pose REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (    -- best matching face per (enrollment, item)
    id INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    face_id INTEGER NOT NULL REFERENCES faces(id),
    distance REAL NOT NULL,         -- (nearest + mean) / 2 over the enrollment's templates
    nearest REAL NOT NULL,
    mean REAL NOT NULL,
    score REAL NOT NULL,
    faces_matched INTEGER NOT NULL,
    found_at TEXT NOT NULL,
    UNIQUE (enrollment_id, item_sha256)
);
CREATE TABLE IF NOT EXISTS shields (     -- face shields she gave platforms (issue 20)
    id INTEGER PRIMARY KEY,
    shield_id TEXT NOT NULL UNIQUE,  -- pseudonymous id the platform knows it by
    enrollment_name TEXT NOT NULL,   -- whose templates (kept after unenroll: she can revoke)
    platform TEXT NOT NULL,          -- the tenant's name at the platform
    platform_url TEXT,               -- the service's base URL, when she gave one
    epoch INTEGER NOT NULL,          -- the platform's key epoch it was made under
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    revocation_secret BLOB NOT NULL, -- 32 bytes: stays with her, opens the receipt's commitment
    signing_key BLOB NOT NULL,       -- 32 bytes: this shield's own Ed25519 key (raw)
    shield TEXT NOT NULL             -- the exported shield (JSON): protected templates, receipt
);
CREATE TABLE IF NOT EXISTS checks (      -- is it manipulated or generated, and why (issue 6)
    item_sha256 TEXT PRIMARY KEY REFERENCES items(sha256),
    verdict TEXT NOT NULL,
    score REAL NOT NULL,            -- fused, calibrated: higher = more likely manipulated
    level TEXT NOT NULL,            -- which signals ran: "metadata" | "faces" | "full"
    record TEXT NOT NULL,           -- the check as JSON (signals with fr/en evidence)
    analyzer TEXT NOT NULL,
    checked_at TEXT NOT NULL
);
-- While template_lock has its row, every templates.descriptor is sealed, not clear float32.
CREATE TABLE IF NOT EXISTS template_lock (  -- her templates sealed under a passphrase (issue 20)
    id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row while the templates are locked
    kdf TEXT NOT NULL,              -- scrypt parameters and salt (JSON): store/templatelock.py
    verifier BLOB NOT NULL,         -- a fixed text sealed under the key: tells a wrong passphrase
    locked_at TEXT NOT NULL
);
-- Removal requests she makes for a confirmed item, one per (item, place, destination), and every
-- change to them (issue 22): reclaim.requests. A request holds its letter, never an image.
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    place_key TEXT NOT NULL DEFAULT '',  -- Locator.key of the place it is about ('': the item)
    place TEXT,                     -- that Locator (JSON); NULL: wherever the item is
    destination TEXT NOT NULL,      -- a destination id (reclaim/requests/destinations/*.toml)
    lang TEXT NOT NULL,             -- fr | en: the letter's language
    status TEXT NOT NULL,           -- draft | sent | acknowledged | removed | refused | reappeared
    created_at TEXT NOT NULL,
    sent_at TEXT,
    deadline TEXT,                  -- when the next step is due (NULL: nothing is waited for)
    deadline_legal INTEGER NOT NULL DEFAULT 0,  -- 1: the law's clock; 0: reclaim's follow-up
    escalation INTEGER NOT NULL DEFAULT 0,      -- escalation steps she has taken
    letter TEXT NOT NULL,           -- the drafted text, as she sends it
    updated_at TEXT NOT NULL,
    UNIQUE (item_sha256, place_key, destination)
);
CREATE TABLE IF NOT EXISTS request_events (  -- append-only history of each request
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES requests(id),
    at TEXT NOT NULL,
    event TEXT NOT NULL,            -- drafted | status | escalated
    status TEXT NOT NULL,           -- the request's status after the event
    deadline TEXT,                  -- its deadline after the event
    note TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS request_events_request ON request_events(request_id, id);
"""


# Keep watch (issue 22): the sources she asked to watch, what each watched URL answered last,
# what changed, where alerts go and the hashes of her private photos (reclaim.watch,
# reclaim.alerts). New tables only: older cases gain them when opened.
_WATCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS watch_sources (  -- what `reclaim watch` scans again
    id INTEGER PRIMARY KEY,
    spec TEXT NOT NULL UNIQUE,      -- absolute path: a folder, an export, an archive, a URL list
    kind TEXT NOT NULL,             -- folder | telegram | archive | file | urllist
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_urls (     -- the last answer of each watched URL
    url TEXT PRIMARY KEY,
    state TEXT NOT NULL,            -- online | gone | unreachable
    item_sha256 TEXT,               -- what it served when last online
    detail TEXT,                    -- the HTTP status, or why it could not be read
    checked_at TEXT NOT NULL,
    changed_at TEXT NOT NULL,       -- when the state last changed
    run_id INTEGER
);
CREATE TABLE IF NOT EXISTS watch_events (   -- what a watch run found changed
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    kind TEXT NOT NULL,             -- new_place | reappeared | removed | replaced
    reason TEXT,                    -- new_place: confirmed | face | protected | similar
    sighting_id INTEGER,            -- new_place: the place (sightings.id)
    url TEXT,                       -- URL events
    item_sha256 TEXT,
    request_id INTEGER,             -- reappeared: the removal request it reopened
    detail TEXT,
    at TEXT NOT NULL,
    alerted_at TEXT                 -- when an alert counted it (NULL: not yet)
);
CREATE UNIQUE INDEX IF NOT EXISTS watch_events_place
    ON watch_events(sighting_id) WHERE kind = 'new_place';
CREATE INDEX IF NOT EXISTS watch_events_url ON watch_events(url, id);
CREATE TABLE IF NOT EXISTS alert_targets (  -- where alerts go (none by default)
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL UNIQUE,    -- file:PATH, an http(s) webhook or an Apprise URL (secret)
    lang TEXT NOT NULL,             -- fr | en
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS protected_hashes (  -- her `reclaim protect` hashes, numbers only
    signal_type TEXT NOT NULL,      -- HMA name: md5 | video_md5 | pdq | vpdq
    signal TEXT NOT NULL,           -- canonical value
    quality INTEGER,
    added_at TEXT NOT NULL,
    PRIMARY KEY (signal_type, signal)
);
"""


def apply_schema(conn: sqlite3.Connection) -> str | None:
    """Create what the case lacks; return its stamped schema version (None: a new case)."""
    conn.executescript(_SCHEMA)
    conn.executescript(_FACE_SCHEMA)
    conn.executescript(_WATCH_SCHEMA)
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return None if row is None else str(row[0])
