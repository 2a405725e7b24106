"""Enrollment: a person's consented face templates, and their deletion for good.

A person enrolls her own face from a few reference photos so that reclaim can look for her in
everything scanned into the case. Rules:

* **Consent first.** Without ``consent=True`` nothing is read. The consent record keeps who
  consented, when (UTC), and the exact text that was shown (``consent_text``).
* **One usable face per reference photo.** A photo is refused, with the reason, when it holds
  no face, more than one face, a face smaller than ``MIN_FACE_PX``, a face too blurred
  (sharpness < ``MIN_BLUR``: measured, the descriptor of such a face drifts by ≥ 0.3, half the
  distance that separates people) or turned away (pose > ``MAX_POSE``). Reference photos must
  also look like one person (each within ``MAX_REFERENCE_SPREAD`` of the others): a photo of
  someone else among them is refused. Any refusal refuses the whole enrollment; nothing is kept.
* **Templates, never photos.** Only the 384 numbers of each face (and its size, sharpness and
  pose) are stored. No photo, file name or photo hash is kept.
* **Unenroll deletes for good**: templates, consent record and findings, with SQLite's
  ``secure_delete``, a truncated write-ahead log and a rebuilt database file
  (``CaseStore.delete_enrollment``).
* **The evidence trail and the case lock are kept here**, whichever front end calls: an
  enrollment and a deletion each write their custody entry, and hold the case lock while they
  write. A scan holds that lock for its whole run, so enrolling or unenrolling while one runs is
  refused (``CaseBusy``, naming the run) after ``LOCK_WAIT_S``: an enrollment in the middle of a
  scan would leave the rest of that scan unsearched for her, and a deletion cannot empty the
  write-ahead log while the scan writes to it.
* **Templates can be locked under a passphrase** (``lock_templates``; issue 20): sealed with
  AES-256-GCM under a scrypt key (``store/templatelock.py``), the clear copies wiped as unenroll
  wipes. Enrolling into a locked case then needs the passphrase, and so does face search;
  everything else works without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reclaim.errors import InputError, MediaError, StoreError
from reclaim.faces.pipeline import Face, FaceOptions, descriptor_to_bytes, find_faces
from reclaim.match.faces import open_index, search_enrollment
from reclaim.media import Media, MediaLimits
from reclaim.report.custody import CustodyLog
from reclaim.store import CaseStore
from reclaim.store.templatelock import Passphrase, TemplatesLocked, locked_message

__all__ = [
    "CONSENT_TEXT",
    "LOCK_WAIT_S",
    "MAX_POSE",
    "MAX_REFERENCE_SPREAD",
    "MIN_BLUR",
    "MIN_FACE_PX",
    "ConsentRequired",
    "Enrolled",
    "EnrollmentRefused",
    "consent_text",
    "enroll",
    "lock_templates",
    "reference_face",
    "unenroll",
    "unlock_templates",
]

MIN_FACE_PX = 80  # a reference face smaller than this gives a poor template
MIN_BLUR = 10.0  # sharpness (Laplacian variance of the aligned chip) below this: too blurred
MAX_POSE = 0.3  # yaw proxy above this: turned away from the camera
OTHER_FACE_PX = 40  # a second face at least this big makes the photo ambiguous
# Reference photos further apart than this are not one person. With descriptor v3, 1.05 turns
# away as many same-person LFW pairs (2.2 %, calibration half) as dlib's usual 0.6 did with v2,
# and lets fewer different-person pairs through (0.19 % instead of 2.4 %).
MAX_REFERENCE_SPREAD = 1.05
MAX_REFERENCE_PHOTOS = 20

#: Seconds an enrollment or a deletion waits for the case lock (held by another enrollment or
#: deletion for the time of its write) before it is refused.
LOCK_WAIT_S = 5.0

#: Reference photos are read with the CNN fallback allowed a larger image than in scans.
REFERENCE_OPTIONS = FaceOptions(cnn_max_pixels=400_000)

CONSENT_VERSION = 1
CONSENT_TEXT = (
    "Consent to face search (reclaim, consent text v{version}). "
    "I, {who}, agree that reclaim computes face templates — numbers describing a face, not "
    "the photos — from the reference photos I chose, for the person enrolled as {name!r}, "
    "stores them in this case folder on this computer, and uses them only to search the "
    "material scanned into this case for pictures of that person. The photos themselves are "
    "not kept and nothing is sent anywhere. This consent can be withdrawn at any time with "
    "`reclaim unenroll`, which deletes the templates, this record and the findings for good."
)


class ConsentRequired(InputError):
    """Enrollment was asked for without recorded consent."""


class EnrollmentRefused(InputError):
    """A reference photo (or the set of them) cannot make a good template; says why."""


@dataclass(frozen=True)
class Enrolled:
    """The outcome of an enrollment."""

    enrollment_id: int
    name: str
    templates: int
    findings: int
    items_not_searched: int  # scanned items whose faces were never looked for


CONSENT_TEXT_FR = (
    "Consentement à la recherche de visage (reclaim, texte de consentement v{version}). "
    "Moi, {who}, j'accepte que reclaim calcule des modèles de visage — des nombres qui décrivent "
    "un visage, pas les photos — à partir des photos de référence que j'ai choisies, pour la "
    "personne enregistrée sous le nom {name!r}, les conserve dans ce dossier sur cet ordinateur "
    "et s'en serve uniquement pour chercher des images de cette personne dans ce qui a été "
    "analysé dans ce dossier. Les photos elles-mêmes ne sont pas conservées et rien n'est envoyé "
    "nulle part. Ce consentement peut être retiré à tout moment (« Supprimer définitivement » ou "
    "`reclaim unenroll`), ce qui efface pour de bon les modèles, cet enregistrement et les "
    "résultats."
)


def consent_text(name: str, who: str | None = None, lang: str = "en") -> str:
    """The exact consent text shown to (and stored for) ``who`` enrolling ``name``.

    ``lang``: "en" or "fr"; the text stored is the one shown, in the language it was shown in.
    """
    template = CONSENT_TEXT_FR if lang == "fr" else CONSENT_TEXT
    return template.format(version=CONSENT_VERSION, who=who or name, name=name)


def reference_face(data: bytes, label: str, limits: MediaLimits | None = None) -> Face:
    """The one usable face of a reference photo; EnrollmentRefused with the reason otherwise."""
    try:
        media = Media(data, limits or MediaLimits())
        if media.kind != "photo":
            raise EnrollmentRefused(f"{label}: not a photo; reference photos must be still images")
        rgb = np.asarray(media.image(max_side=REFERENCE_OPTIONS.max_side), dtype=np.uint8)
    except MediaError as e:
        raise EnrollmentRefused(f"{label}: cannot be read ({e})") from e
    try:
        faces = find_faces(rgb, REFERENCE_OPTIONS)
    except RuntimeError as e:  # dlib refuses some degenerate images
        raise EnrollmentRefused(f"{label}: the face detector could not process it") from e
    if not faces:
        raise EnrollmentRefused(
            f"{label}: no face found; use a photo where your face is clearly visible"
        )
    others = [f for f in faces[1:] if f.size >= OTHER_FACE_PX]
    if others:
        raise EnrollmentRefused(
            f"{label}: {1 + len(others)} faces found; use a photo with only your face in it"
        )
    f = faces[0]
    if f.size < MIN_FACE_PX:
        raise EnrollmentRefused(
            f"{label}: the face is too small ({f.size} px, at least {MIN_FACE_PX} px needed); "
            "use a closer or larger photo"
        )
    if f.blur < MIN_BLUR:
        raise EnrollmentRefused(
            f"{label}: the face is too blurred (sharpness {f.blur:.1f}, at least {MIN_BLUR:g} "
            "needed); use a sharper photo"
        )
    if f.pose > MAX_POSE:
        raise EnrollmentRefused(
            f"{label}: the face is turned away (pose {f.pose:.2f}, at most {MAX_POSE:g}); "
            "use a photo looking at the camera"
        )
    return f


def _check_same_person(faces: list[tuple[str, Face]]) -> None:
    if len(faces) < 2:
        return
    vecs = np.stack([f.descriptor for _, f in faces]).astype(np.float64)
    d = np.sqrt(((vecs[:, None, :] - vecs[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(d, np.nan)
    # The photo furthest from all others is the odd one out.
    med = np.nanmedian(d, axis=1)
    worst = int(np.argmax(med))
    if med[worst] > MAX_REFERENCE_SPREAD:
        raise EnrollmentRefused(
            f"{faces[worst][0]}: does not look like the same person as the other reference "
            f"photos (distance {med[worst]:.2f} > {MAX_REFERENCE_SPREAD}); use photos of one "
            "person only"
        )


def enroll(
    store: CaseStore,
    name: str,
    photos: list[Path],
    *,
    consent: bool,
    consented_by: str | None = None,
    search: bool = True,
    lang: str = "en",
    actor: str | None = None,
    passphrase: Passphrase = None,
) -> Enrolled:
    """Enroll ``name`` from reference photos and search the case's faces for her; write the
    "enrollment" custody entry (``actor``: who did it, default this computer's user).

    Raises ConsentRequired without consent, EnrollmentRefused (one line per refused photo,
    joined) when a photo cannot make a good template, StoreError when the name is taken,
    CaseBusy while a scan runs in the case, TemplatesLocked (WrongPassphrase) when the case's
    templates are locked and no (a wrong) ``passphrase`` is given: checked before any photo is
    read.
    """
    name = name.strip()
    if not name:
        raise InputError("give the enrolled person a name (--name)")
    if not consent:
        raise ConsentRequired(
            "enrollment needs consent: read the consent text and run again with --consent"
        )
    if not photos:
        raise InputError("give at least one reference photo")
    if len(photos) > MAX_REFERENCE_PHOTOS:
        raise InputError(f"at most {MAX_REFERENCE_PHOTOS} reference photos")
    if not passphrase and store.templates_locked():
        raise TemplatesLocked(locked_message("enrolling"))
    key = store.template_key(passphrase)  # a locked case: seal her templates under it
    refused: list[str] = []
    faces: list[tuple[str, Face]] = []
    for p in photos:
        label = p.name
        try:
            if not p.is_file():
                raise EnrollmentRefused(f"{label}: no such file")
            size, cap = p.stat().st_size, MediaLimits().max_bytes
            if size > cap:  # refused before reading: a huge file is never loaded into memory
                raise EnrollmentRefused(
                    f"{label}: cannot be read (file of {size} bytes exceeds the {cap} byte cap)"
                )
            faces.append((label, reference_face(p.read_bytes(), label)))
        except EnrollmentRefused as e:
            refused.append(str(e))
        except OSError as e:
            refused.append(f"{label}: cannot be read ({e.strerror or e})")
    if refused:
        raise EnrollmentRefused("; ".join(refused))
    _check_same_person(faces)
    text = consent_text(name, consented_by, lang)
    templates = [(descriptor_to_bytes(f.descriptor), f.size, f.blur, f.pose) for _, f in faces]
    with store.writing(LOCK_WAIT_S):
        eid = store.add_enrollment(name, consented_by or name, text, templates, key)
        CustodyLog(store.root).append(
            "enrollment", {"name": name, "templates": len(templates)}, actor=actor
        )
        found = 0
        if search:
            found = search_enrollment(store, open_index(store), eid, passphrase=key)
    return Enrolled(eid, name, len(templates), found, len(store.items_without_faces()))


def unenroll(store: CaseStore, name: str, *, actor: str | None = None) -> None:
    """Delete an enrollment for good and write the "deletion" custody entry.

    Raises InputError when nobody has that name, CaseBusy while a scan runs in the case, and
    StoreError when the deletion is done but another program keeps old copies in the
    write-ahead log (the custody entry is written: the enrollment is gone).
    """
    with store.writing(LOCK_WAIT_S):
        try:
            deleted = store.delete_enrollment(name)
        except StoreError:
            if any(e["name"] == name for e in store.enrollments()):
                raise
            _log_deletion(store, name, actor)
            raise
        if deleted:
            _log_deletion(store, name, actor)
    if not deleted:
        known = ", ".join(repr(e["name"]) for e in store.enrollments()) or "none"
        raise InputError(f"no enrollment named {name!r} in this case (enrolled: {known})")


def _log_deletion(store: CaseStore, name: str, actor: str | None) -> None:
    CustodyLog(store.root).append("deletion", {"enrollment": name}, actor=actor)


def lock_templates(store: CaseStore, passphrase: str) -> int:
    """Seal every face template of the case under ``passphrase`` and wipe the clear copies
    (``CaseStore.lock_templates``), holding the case lock. Returns how many were sealed (0:
    they were locked already, the wipe was done again). Raises InputError for a passphrase too
    short, WrongPassphrase when locked under another, CaseBusy while a scan runs."""
    with store.writing(LOCK_WAIT_S):
        return store.lock_templates(passphrase)


def unlock_templates(store: CaseStore, passphrase: Passphrase) -> int:
    """Put the case's face templates back in the clear, holding the case lock. Returns how
    many were opened (0: they were not locked). Raises TemplatesLocked/WrongPassphrase without
    the right passphrase, CaseBusy while a scan runs."""
    with store.writing(LOCK_WAIT_S):
        return store.unlock_templates(passphrase)
