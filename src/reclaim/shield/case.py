"""Her side of face shields (issue 20): make a shield for a platform from her enrollment, give it
(by hand or sent), list her shields, revoke one. The CLI (``reclaim shield …``) and the web app
call these functions; each takes the case (an open ``CaseStore`` or its folder) and returns a
dataclass.

Rules kept here, whichever front end calls:

* **Consent first.** Without ``consent=True`` nothing is read. The consent text (en/fr) names
  the platform and what it may do, never her: the receipt is pseudonymous (a random shield id).
* **Nothing clear leaves the case.** Her templates are protected under the platform's intake
  key (``reclaim.shield.protocol.make_shield``) before anything is stored or sent; the custody
  log gets ids, the platform, the epoch, counts and the receipt's digest, never a template, a
  code or a secret.
* **A key is used once.** A new shield takes the platform's newest active key epoch that no
  earlier shield of this case used for that platform (revoked or not) and whose key no earlier
  shield used at all: the same face under the same key gives the same codes, so a renewal
  under a used key would be linkable to the shield it replaces. When none is left the platform
  must rotate its keys (``NoFreshEpoch``).
* **Only the platform she named is contacted**, at the address she gave (``https://``, or
  ``http://`` on this machine only): no redirect elsewhere, no proxy variables, a time limit
  and a size cap on every answer. A platform given as a saved intake-key file is never
  contacted; its shields are exported and their revocations written to a file for her to send.
* **Sealed in a locked case.** When her case's templates are locked under a passphrase, each
  shield's JSON is stored sealed under the same key (``store/shields.py``): its codes are made
  under the platform's public intake key, and with that key they invert to her face. Making,
  exporting and sending a shield then need the passphrase (``passphrase=``); listing and
  revoking do not (the revocation secret and signing key are not biometric and stay clear).
* **The case lock and the custody entries** ("shield.created", "shield.sent",
  "shield.exported", "shield.revoked") are taken and written here.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from reclaim import __version__
from reclaim.errors import InputError, StoreError
from reclaim.faces.describe import descriptor_from_bytes
from reclaim.report.custody import CustodyLog
from reclaim.shield.protocol import (
    INTAKE_FORMAT,
    MAX_RECEIPT_AGE_S,
    MAX_TEMPLATES,
    IntakeKey,
    Shield,
    ShieldRefused,
    canonical_json,
    make_shield,
    population,
)
from reclaim.store import CaseStore
from reclaim.store.case import now_iso
from reclaim.store.shields import ShieldRecord, open_shield_text
from reclaim.store.templatelock import Passphrase, TemplatesLocked, locked_message

__all__ = [
    "CONSENT_VERSION",
    "LOCK_WAIT_S",
    "ConsentRequired",
    "NoFreshEpoch",
    "PlatformError",
    "PlatformKeys",
    "Revoked",
    "Sent",
    "ShieldInfo",
    "consent_text",
    "create_shield",
    "enrollment_id",
    "export_shield",
    "intake_key_for",
    "list_shields",
    "parse_platform_url",
    "revocation_request",
    "revoke_shield",
    "send_shield",
    "write_private",
]

#: Seconds a shield's creation or revocation waits for the case lock (as enrollment does).
LOCK_WAIT_S = 5.0
#: Each exchange with a platform ends within this many seconds, whatever the server does.
TIMEOUT_S = 30.0
#: Largest answer read from a platform: an intake-key list, an intake or revocation answer.
MAX_KEYS_BYTES = 256 * 1024
MAX_ANSWER_BYTES = 64 * 1024
#: A platform offering more key epochs than this is refused (it publishes a few active ones).
MAX_KEYS = 32
#: Same-origin redirects followed when fetching intake keys.
MAX_REDIRECTS = 3
#: Shortest shield-id prefix a person may type.
MIN_PREFIX = 8
REVOCATION_FORMAT = "reclaim-shield-revocation/1"

CONSENT_VERSION = 1
_CONSENT = {
    "en": (
        "Consent to a face shield (reclaim, shield consent text v{version}). I agree that "
        "reclaim makes, from the face templates enrolled in my case, a protected form of my "
        'face for the platform "{platform}", and that this platform uses it only to recognise '
        "my face in photos and videos uploaded to it and to hold them for review by a person. "
        "The platform receives no photo and no face template of mine: only protected codes "
        "made with a key of this platform, which cannot be linked to the shields I give other "
        "platforms and from which a copy of the platform's database alone does not give my "
        "face back. This receipt names me only by a random shield id. I can withdraw this "
        "consent at any time by revoking the shield with the secret my reclaim keeps; the "
        "platform must then delete the shield and everything derived from it."
    ),
    "fr": (
        "Consentement à un bouclier de visage (reclaim, texte de consentement v{version}). "
        "J'accepte que reclaim fabrique, à partir des modèles de visage enregistrés dans mon "
        "dossier, une forme protégée de mon visage pour la plateforme « {platform} », et que "
        "cette plateforme s'en serve uniquement pour reconnaître mon visage dans les photos et "
        "vidéos qu'on y dépose et les retenir pour qu'une personne les examine. La plateforme "
        "ne reçoit aucune photo ni aucun modèle de visage de moi : seulement des codes "
        "protégés, faits avec une clé de cette plateforme, qui ne peuvent pas être reliés aux "
        "boucliers que je donne à d'autres plateformes et dont une copie de la base de données "
        "de la plateforme ne suffit pas à retrouver mon visage. Ce reçu ne me désigne que par "
        "un identifiant de bouclier tiré au hasard. Je peux retirer ce consentement à tout "
        "moment en révoquant le bouclier avec le secret que garde mon reclaim ; la plateforme "
        "doit alors supprimer le bouclier et tout ce qui en découle."
    ),
}


class ConsentRequired(InputError):
    """A shield was asked for without her explicit agreement."""


class NoFreshEpoch(InputError):
    """Every key epoch the platform offers was already used by a shield of this case."""


class PlatformError(InputError):
    """The platform could not be reached, or its answer was refused; says why and what to do."""


def consent_text(platform: str, lang: str = "en") -> str:
    """The exact text she agrees to (and the receipt carries) for a shield for ``platform``."""
    return _CONSENT[_lang(lang)].format(version=CONSENT_VERSION, platform=platform)


def _lang(lang: str) -> str:
    if lang not in _CONSENT:
        raise InputError(f"language {lang!r}: choose en or fr")
    return lang


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShieldInfo:
    """One shield as she sees it: never its templates or secrets."""

    shield_id: str
    enrollment: str
    platform: str
    platform_url: str | None
    epoch: int
    key_id: str
    templates: int
    created_at: str
    sent_at: str | None = None  # the last time reclaim sent it to the platform (custody log)
    revoked_at: str | None = None

    @property
    def status(self) -> str:
        """``revoked``, ``sent`` (to the platform by reclaim) or ``made`` (not sent by
        reclaim: given by hand, or not yet)."""
        return "revoked" if self.revoked_at else "sent" if self.sent_at else "made"

    def as_record(self) -> dict[str, Any]:
        """One JSON object for ``reclaim shield list --json``."""
        return {
            "shield_id": self.shield_id,
            "enrollment": self.enrollment,
            "platform": self.platform,
            "platform_url": self.platform_url,
            "epoch": self.epoch,
            "key_id": self.key_id,
            "templates": self.templates,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
            "revoked_at": self.revoked_at,
            "status": self.status,
        }


@dataclass(frozen=True)
class Sent:
    """A shield the platform accepted, and the status it answered."""

    shield: ShieldInfo
    status: str


@dataclass(frozen=True)
class Revoked:
    """A revoked shield: sent to the platform, or written as a request for her to send
    (``request``: its JSON text, holding the secret; ``path``: where it was written)."""

    shield: ShieldInfo
    sent: bool
    request: str | None = None
    path: Path | None = None


def _info(r: ShieldRecord, sent_at: str | None = None) -> ShieldInfo:
    return ShieldInfo(
        shield_id=r.shield_id,
        enrollment=r.enrollment_name,
        platform=r.platform,
        platform_url=r.platform_url,
        epoch=r.epoch,
        key_id=r.key_id,
        templates=r.template_count,
        created_at=r.created_at,
        sent_at=sent_at,
        revoked_at=r.revoked_at,
    )


# -- the platform's address and its intake keys -----------------------------------------------


@dataclass(frozen=True)
class PlatformAddress:
    """Where one tenant of a platform takes shields: ``{url}/intake-key``, ``{url}/intake``,
    ``{url}/revoke``."""

    url: str  # scheme://host[:port][/prefix]/shield/v1/TENANT (tenant percent-encoded)
    tenant: str
    origin: tuple[str, str, int]

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}"


_PATH = re.compile(r"^(?P<prefix>(?:/[^/]+)*)/shield/v1/(?P<tenant>[^/]+)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _bad_name(name: str) -> bool:
    return not name.strip() or len(name) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in name)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int]:
    u = urllib.parse.urlsplit(url)
    scheme = u.scheme.lower()
    try:
        port = u.port
    except ValueError:
        port = None
    return scheme, (u.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def parse_platform_url(text: str) -> PlatformAddress:
    """A platform as she names it: ``https://host[:port]/shield/v1/TENANT`` (an
    ``…/intake-key`` ending is accepted too). ``http://`` is allowed only for this machine (a
    platform run locally): shields are personal data and go over TLS everywhere else."""
    hint = "give the platform's shield address, like https://platform.example/shield/v1/NAME"
    try:
        u = urllib.parse.urlsplit(text.strip())
        port = u.port
    except ValueError as e:
        raise InputError(f"{text!r} is not a valid address: {hint}") from e
    scheme = u.scheme.lower()
    host = (u.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise InputError(f"{text!r} is not an http(s) address: {hint}")
    if u.username is not None or u.password is not None:
        raise InputError(f"{text!r}: an address with a user name or password is refused; {hint}")
    if u.query or u.fragment:
        raise InputError(f"{text!r}: an address with '?' or '#' is refused; {hint}")
    if scheme == "http" and not _is_loopback(host):
        raise InputError(
            f"{text!r}: shields are only sent over https:// (http:// is accepted for a platform "
            "on this computer only)"
        )
    path = u.path.rstrip("/")
    if path.endswith("/intake-key"):
        path = path[: -len("/intake-key")]
    m = _PATH.match(path)
    if m is None:
        raise InputError(f"{text!r} is not a platform's shield address: {hint}")
    tenant = urllib.parse.unquote(m["tenant"])
    if _bad_name(tenant):
        raise InputError(f"{text!r}: the platform's name in the address is empty or invalid")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    url = f"{scheme}://{netloc}{m['prefix']}/shield/v1/{urllib.parse.quote(tenant, safe='')}"
    return PlatformAddress(url, tenant, (scheme, host, port or _DEFAULT_PORTS[scheme]))


@dataclass(frozen=True)
class PlatformKeys:
    """A platform's active intake keys (newest epoch first) and, when she gave its address
    rather than a saved file, where to send shields and revocations."""

    platform: str
    url: str | None
    keys: tuple[IntakeKey, ...]

    @property
    def epochs(self) -> list[int]:
        return [k.epoch for k in self.keys]


def intake_key_for(
    spec: str | Path, *, transport: httpx.BaseTransport | None = None
) -> PlatformKeys:
    """The intake keys of the platform she names: an address
    (``https://host[:port]/shield/v1/TENANT``, fetched from ``…/intake-key``) or a saved
    intake-key file (one key, or the platform's ``{"platform", "keys": […]}`` answer).

    Raises PlatformError when the platform cannot be reached or answers no usable key,
    InputError for a bad address or file."""
    text = str(spec)
    if isinstance(spec, str) and "://" in text:
        addr = parse_platform_url(text)
        status, body, _ = _exchange(
            "GET", addr.endpoint("intake-key"), addr, cap=MAX_KEYS_BYTES, transport=transport
        )
        if status != 200:
            raise PlatformError(
                f"the platform at {addr.url} answered HTTP {status} when asked for its shield "
                f"keys{_detail(body)}; check the address"
            )
        platform, keys = _read_keys(_json(body, f"the platform at {addr.url}"), addr.tenant)
        return PlatformKeys(platform, addr.url, keys)
    path = Path(text)
    if not path.is_file():
        raise InputError(
            f"{text}: no such file; give the platform's address "
            "(https://…/shield/v1/NAME) or a saved intake-key file"
        )
    if path.stat().st_size > MAX_KEYS_BYTES:
        raise InputError(f"{text}: larger than {MAX_KEYS_BYTES // 1024} KiB: not an intake key")
    platform, keys = _read_keys(_json(path.read_bytes(), text), None)
    return PlatformKeys(platform, None, keys)


def _json(body: bytes, source: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise PlatformError(f"{source}: not a JSON intake key ({e})") from e


def _read_keys(doc: Any, tenant: str | None) -> tuple[str, tuple[IntakeKey, ...]]:
    """The usable keys of an intake-key document, newest epoch first."""
    if isinstance(doc, dict) and doc.get("format") == INTAKE_FORMAT:
        raw: Any = [doc]
        platform = doc.get("platform")
    elif isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        raw, platform = doc["keys"], doc.get("platform")
    else:
        raise PlatformError(f"not a reclaim intake key ({INTAKE_FORMAT}) nor a list of them")
    if not isinstance(platform, str) or _bad_name(platform):
        raise PlatformError("the intake key does not name its platform")
    if tenant is not None and platform != tenant:
        raise PlatformError(
            f"asked for the keys of {tenant!r}, the platform answered with those of {platform!r}"
        )
    if len(raw) > MAX_KEYS:
        raise PlatformError(f"the platform offers {len(raw)} keys (at most {MAX_KEYS} expected)")
    keys: dict[str, IntakeKey] = {}
    problems: list[str] = []
    digest = population().digest
    for item in raw:
        try:
            k = IntakeKey.from_json(item)
        except ShieldRefused as e:
            problems.append(str(e))
            continue
        if k.platform != platform:
            raise PlatformError(f"a key offered for {platform!r} names {k.platform!r}")
        if k.population != digest:
            problems.append(
                "a key was made for another reclaim version (population mean): update reclaim "
                "or ask the platform to"
            )
            continue
        keys[k.key_id] = k
    if not keys:
        why = problems[0] if problems else "it offers none"
        raise PlatformError(f"no usable shield key from {platform!r}: {why}")
    return platform, tuple(sorted(keys.values(), key=lambda k: -k.epoch))


def _detail(body: bytes) -> str:
    """The platform's own reason, if it gave one (short, printable)."""
    try:
        doc = json.loads(body)
        text = doc.get("detail") if isinstance(doc, dict) else None
    except (ValueError, RecursionError):
        text = None
    if not isinstance(text, str):
        return ""
    text = "".join(c for c in text if c.isprintable())[:300]
    return f" ({text})" if text else ""


def _exchange(
    method: str,
    url: str,
    addr: PlatformAddress,
    *,
    cap: int,
    content: bytes | None = None,
    transport: httpx.BaseTransport | None = None,
) -> tuple[int, bytes, str]:
    """One request to the platform (a GET follows redirects within its origin only): its
    status, body (at most ``cap`` bytes) and final URL. PlatformError when it cannot be had."""
    deadline = time.monotonic() + TIMEOUT_S
    headers = {"User-Agent": f"reclaim/{__version__}", "Accept": "application/json"}
    if content is not None:
        headers["Content-Type"] = "application/json"
    try:
        with httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(TIMEOUT_S),
            follow_redirects=False,
            trust_env=False,
            headers=headers,
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream(method, url, content=content) as r:
                    if r.is_redirect and method == "GET":
                        target = str(r.url.join(r.headers.get("location", "")))
                        to = _origin(target)
                        if to != addr.origin:
                            raise PlatformError(
                                f"the platform at {addr.url} redirects to another site "
                                f"({to[0]}://{to[1]}:{to[2]}); reclaim only contacts the "
                                "address you gave"
                            )
                        url = target
                        continue
                    declared = r.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > cap:
                        raise PlatformError(_too_big(addr, cap))
                    body = b""
                    for chunk in r.iter_bytes():
                        body += chunk
                        if len(body) > cap:
                            raise PlatformError(_too_big(addr, cap))
                        if time.monotonic() > deadline:
                            raise httpx.ReadTimeout("the answer took too long")
                    return r.status_code, body, url
    except httpx.HTTPError as e:
        raise PlatformError(
            f"could not reach the platform at {addr.url} ({type(e).__name__}: {e}); check the "
            "address and your connection, then try again"
        ) from e
    raise PlatformError(f"the platform at {addr.url} redirects too many times")


def _too_big(addr: PlatformAddress, cap: int) -> str:
    return f"the platform at {addr.url} answered more than {cap // 1024} KiB; refused"


# -- the case ---------------------------------------------------------------------------------


@contextmanager
def _opened(case: CaseStore | str | Path) -> Iterator[CaseStore]:
    if isinstance(case, CaseStore):
        yield case
        return
    with CaseStore.open(case) as store:
        yield store


def _record(store: CaseStore, shield_id: str) -> ShieldRecord:
    """The shield she names by its id or its first ``MIN_PREFIX``+ characters."""
    t = shield_id.strip().lower()
    r = store.shield(t)
    if r is not None:
        return r
    if len(t) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in t):
        raise InputError(
            f"give the shield's id (at least its first {MIN_PREFIX} characters), as "
            "`reclaim shield list` shows it"
        )
    found = store.shield_ids_with_prefix(t)
    if not found:
        raise InputError(f"no shield {t!r} in this case; `reclaim shield list` shows them")
    if len(found) > 1:
        raise InputError(f"{t!r} names more than one shield: give more of its id")
    r = store.shield(found[0])
    assert r is not None
    return r


def _sent_times(store: CaseStore) -> dict[str, str]:
    """When reclaim last sent each shield (from the custody log)."""
    out: dict[str, str] = {}
    for e in CustodyLog(store.root).entries():
        if e.get("action") == "shield.sent":
            sid = (e.get("details") or {}).get("shield_id")
            if isinstance(sid, str):
                out[sid] = str(e.get("at"))
    return out


def _shield_text(store: CaseStore, r: ShieldRecord, passphrase: Passphrase, action: str) -> str:
    """The shield's JSON, opened with the passphrase (or its key) when it is stored sealed.
    TemplatesLocked without one, WrongPassphrase with a wrong one."""
    if not r.sealed:
        return r.shield
    if passphrase is None or passphrase == "":
        raise TemplatesLocked(locked_message(action))
    key = store.template_key(passphrase)
    if key is None:
        raise StoreError(
            f"shield {r.shield_id} is stored sealed but the case's templates are not locked: "
            "revoke it and make a new one"
        )
    return open_shield_text(key, r.shield_id, r.shield)


def _clear_templates(
    store: CaseStore, enrollment_id: int, passphrase: Passphrase
) -> list[np.ndarray]:
    """Her enrollment's clear templates, read for the time of making the shield only (the
    passphrase opens them when the case's templates are locked)."""
    raw = store.enrollment_templates(enrollment_id, passphrase=passphrase)
    return [np.asarray(descriptor_from_bytes(b), dtype=np.float64) for b in raw]


def enrollment_id(store: CaseStore, name: str) -> int:
    """The id of the enrollment named ``name``; InputError, naming those enrolled, if none."""
    name = name.strip()
    rows = store.enrollments()
    for e in rows:
        if e["name"] == name:
            return int(e["id"])
    known = ", ".join(repr(e["name"]) for e in rows) or "none"
    raise InputError(
        f"no enrollment named {name!r} in this case (enrolled: {known}); a shield is made from "
        "an enrollment: run reclaim enroll first"
    )


def _fresh_key(store: CaseStore, pk: PlatformKeys) -> IntakeKey:
    """The newest key of ``pk`` whose epoch (for this platform) and key no shield of this case
    used. NoFreshEpoch otherwise."""
    epochs = store.epochs_used(pk.platform)
    key_ids = store.key_ids_used()
    for k in pk.keys:  # newest first
        if k.epoch not in epochs and k.key_id not in key_ids:
            return k
    raise NoFreshEpoch(
        f"the platform {pk.platform!r} has no fresh key epoch: it offers epoch(s) "
        f"{', '.join(map(str, sorted(pk.epochs)))} and this case already made shields under "
        f"{', '.join(map(str, sorted(epochs))) or 'the same keys'}. A new shield under a used "
        "key could be linked to the old one; ask the platform to rotate its shield keys, then "
        "try again"
    )


def create_shield(
    case: CaseStore | str | Path,
    name: str,
    platform_spec: str | Path | PlatformKeys,
    *,
    consent: bool = False,
    lang: str = "en",
    consent_by: str | None = None,
    passphrase: Passphrase = None,
    now: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ShieldInfo:
    """Make a shield of ``name``'s enrollment for a platform (an address, a saved intake-key
    file, or keys already fetched with :func:`intake_key_for`) and store it in the case, with
    its revocation secret and signing key; write the "shield.created" custody entry
    (``consent_by``: who agreed, the entry's actor; default this computer's user).

    ``consent`` must be True: she read ``consent_text(platform, lang)`` and agreed. The shield
    holds the enrollment's first ``MAX_TEMPLATES`` templates. Nothing is sent: see
    :func:`send_shield` and :func:`export_shield`.

    When the case's templates are locked the shield is stored sealed under their key (and
    the same ``passphrase``, or the ``TemplateKey`` derived from it, opens it for
    :func:`export_shield` and :func:`send_shield`).

    Raises ConsentRequired, InputError (no such enrollment, an active shield of hers for this
    platform already), TemplatesLocked (the case's templates are locked and ``passphrase`` is
    missing or wrong), NoFreshEpoch, PlatformError, CaseBusy while a scan runs.
    """
    lang = _lang(lang)
    name = name.strip()
    if not name:
        raise InputError("give the enrolled person's name (--name)")
    if not consent:
        raise ConsentRequired(
            "a shield needs her explicit agreement: read the consent text, then agree "
            "(answer yes, or pass --yes)"
        )
    if isinstance(platform_spec, PlatformKeys):
        pk = platform_spec
    else:
        pk = intake_key_for(platform_spec, transport=transport)
    text = consent_text(pk.platform, lang)
    with _opened(case) as store:
        eid = enrollment_id(store, name)
        if (passphrase is None or passphrase == "") and store.templates_locked():
            raise TemplatesLocked(locked_message("making a shield"))
        # derived once: it opens the templates and seals the shield (None: not locked)
        lock_key = store.template_key(passphrase)
        templates = _clear_templates(store, eid, lock_key)[:MAX_TEMPLATES]
        if not templates:
            raise InputError(f"the enrollment {name!r} holds no face template; enroll again")
        with store.writing(LOCK_WAIT_S):
            active = [
                r for r in store.shields(platform=pk.platform, enrollment=name) if not r.revoked_at
            ]
            if active:
                raise InputError(
                    f"{name!r} already has an active shield for {pk.platform!r} "
                    f"({active[0].shield_id}); revoke it first to renew it "
                    f"(reclaim shield revoke {active[0].shield_id[:MIN_PREFIX]})"
                )
            key = _fresh_key(store, pk)
            made = make_shield(templates, key, text, lang=lang, now=now)
            s = made.shield
            record = ShieldRecord(
                shield_id=s.shield_id,
                enrollment_name=name,
                platform=pk.platform,
                platform_url=pk.url,
                epoch=key.epoch,
                created_at=now_iso(),
                revoked_at=None,
                revocation_secret=made.revocation_secret,
                signing_key=made.signing_key,
                shield=s.dumps(),
            )
            store.add_shield(record, lock_key)
            CustodyLog(store.root).append(
                "shield.created",
                {
                    "shield_id": s.shield_id,
                    "platform": pk.platform,
                    "epoch": key.epoch,
                    "templates": len(s.templates),
                    "receipt_sha256": hashlib.sha256(
                        canonical_json(s.receipt.as_json())
                    ).hexdigest(),
                },
                actor=consent_by,
            )
        return _info(record)


def list_shields(case: CaseStore | str | Path) -> list[ShieldInfo]:
    """Her shields, oldest first."""
    with _opened(case) as store:
        sent = _sent_times(store)
        return [_info(r, sent.get(r.shield_id)) for r in store.shields()]


def export_shield(
    case: CaseStore | str | Path,
    shield_id: str,
    *,
    passphrase: Passphrase = None,
    actor: str | None = None,
) -> str:
    """The shield's JSON text, to give to the platform by hand (protected templates and the
    signed receipt: no clear template, no secret). Writes the "shield.exported" custody entry.
    Raises InputError for an unknown or revoked shield; TemplatesLocked (WrongPassphrase) when
    the case's templates are locked, so the shield is stored sealed, and no (a wrong)
    ``passphrase`` is given."""
    with _opened(case) as store:
        r = _record(store, shield_id)
        if r.revoked_at:
            raise InputError(
                f"shield {r.shield_id} was revoked on {r.revoked_at}; make a new one "
                "(reclaim shield create)"
            )
        text = _shield_text(store, r, passphrase, "exporting a shield")
        CustodyLog(store.root).append(
            "shield.exported",
            {"shield_id": r.shield_id, "platform": r.platform, "epoch": r.epoch},
            actor=actor,
        )
        return text


def send_shield(
    case: CaseStore | str | Path,
    shield_id: str,
    *,
    passphrase: Passphrase = None,
    actor: str | None = None,
    now: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Sent:
    """Send a shield to the platform's intake (the address it was made from) and write the
    "shield.sent" custody entry. Raises PlatformError when the platform cannot be reached or
    refuses it (with its reason), InputError for a revoked shield, a shield made from a saved
    key file, or one older than the platforms accept; TemplatesLocked (WrongPassphrase) when it
    is stored sealed and no (a wrong) ``passphrase`` is given, before anything is sent."""
    with _opened(case) as store:
        r = _record(store, shield_id)
        if r.revoked_at:
            raise InputError(f"shield {r.shield_id} was revoked on {r.revoked_at}; not sent")
        if not r.platform_url:
            raise InputError(
                f"shield {r.shield_id} was made from a saved intake-key file, so reclaim does "
                "not know where to send it: export it (reclaim shield export) and give the file "
                "to the platform"
            )
        text = _shield_text(store, r, passphrase, "sending a shield")
        made = Shield.loads(text).receipt.created_at
        age = (time.time() if now is None else now) - _utc(made)
        if age > MAX_RECEIPT_AGE_S:
            raise InputError(
                f"shield {r.shield_id} was made on {made}, more than "
                f"{MAX_RECEIPT_AGE_S / 86400:.0f} days ago, and platforms refuse it: revoke it "
                "(reclaim shield revoke --no-send) and make a new one"
            )
        addr = parse_platform_url(r.platform_url)
        status, body, _ = _exchange(
            "POST",
            addr.endpoint("intake"),
            addr,
            cap=MAX_ANSWER_BYTES,
            content=text.encode(),
            transport=transport,
        )
        if status == 409:
            raise PlatformError(
                f"the platform {r.platform!r} already holds shield {r.shield_id} (HTTP 409): "
                "nothing to send"
            )
        if status not in (200, 201):
            raise PlatformError(
                f"the platform {r.platform!r} refused the shield (HTTP {status}){_detail(body)}"
            )
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):
            answer = None
        if not isinstance(answer, dict) or answer.get("shield_id") != r.shield_id:
            raise PlatformError(
                f"the platform {r.platform!r} answered HTTP {status} but not for this shield; "
                "check with it that the shield was received"
            )
        answered = answer.get("status")
        shown = (
            "".join(c for c in answered if c.isprintable())[:60]
            if isinstance(answered, str)
            else "accepted"
        )
        entry = CustodyLog(store.root).append(
            "shield.sent",
            {"shield_id": r.shield_id, "platform": r.platform, "epoch": r.epoch},
            actor=actor,
        )
        return Sent(_info(r, str(entry["at"])), shown or "accepted")


def _utc(text: str) -> float:
    import calendar

    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def revocation_request(r: ShieldRecord) -> str:
    """What she (or anyone she asks) sends the platform to revoke ``r``: JSON holding the
    shield id and the secret that opens its receipt's commitment, and where to send it."""
    doc = {
        "format": REVOCATION_FORMAT,
        "shield_id": r.shield_id,
        "secret": base64.b64encode(r.revocation_secret).decode("ascii"),
        "platform": r.platform,
        "platform_url": r.platform_url,
        "revoke_url": f"{r.platform_url}/revoke" if r.platform_url else None,
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by her only, whole or not at all."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: Path, text: str) -> None:
    """Write a shield or a revocation request to ``path`` (mode 0600, atomic)."""
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such folder")
    _write_private(path, text)


def revoke_shield(
    case: CaseStore | str | Path,
    shield_id: str,
    *,
    send: bool = True,
    out: Path | None = None,
    actor: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Revoked:
    """Revoke a shield: with ``send``, post its secret to the platform's revocation endpoint;
    otherwise build the revocation request (written to ``out`` first, when given) for her to
    send. Then mark it revoked and write the "shield.revoked" custody entry. The case lock is
    held throughout, so a revocation the platform took is always recorded.

    Raises InputError for an unknown or already revoked shield, or ``send`` for a shield made
    from a saved key file; PlatformError when the platform cannot be reached or refuses."""
    with _opened(case) as store:
        r = _record(store, shield_id)
        if r.revoked_at:
            raise InputError(f"shield {r.shield_id} was already revoked on {r.revoked_at}")
        if send and not r.platform_url:
            raise InputError(
                f"shield {r.shield_id} was made from a saved intake-key file, so reclaim does "
                "not know where to send the revocation: use --no-send --out FILE and give the "
                "file to the platform"
            )
        with store.writing(LOCK_WAIT_S):
            request: str | None = None
            if send:
                _post_revocation(r, transport)
            else:
                request = revocation_request(r)
                if out is not None:
                    write_private(out, request)
            at = now_iso()
            if not store.mark_revoked(r.shield_id, at):
                raise InputError(f"shield {r.shield_id} was already revoked")
            CustodyLog(store.root).append(
                "shield.revoked",
                {
                    "shield_id": r.shield_id,
                    "platform": r.platform,
                    "epoch": r.epoch,
                    "sent": send,
                },
                actor=actor,
            )
        sent_at = _sent_times(store).get(r.shield_id)
        return Revoked(_info(replace(r, revoked_at=at), sent_at), send, request, out)


def _post_revocation(r: ShieldRecord, transport: httpx.BaseTransport | None) -> None:
    assert r.platform_url is not None
    addr = parse_platform_url(r.platform_url)
    body = json.dumps(
        {"shield_id": r.shield_id, "secret": base64.b64encode(r.revocation_secret).decode()}
    ).encode()
    status, answer, _ = _exchange(
        "POST",
        addr.endpoint("revoke"),
        addr,
        cap=MAX_ANSWER_BYTES,
        content=body,
        transport=transport,
    )
    if status == 403:
        raise PlatformError(
            f"the platform {r.platform!r} refused the revocation (HTTP 403): it does not know "
            f"shield {r.shield_id} or the secret does not match. If you never gave it this "
            "shield, revoke it here only: reclaim shield revoke --no-send"
        )
    if status not in (200, 204):
        raise PlatformError(
            f"the platform {r.platform!r} did not revoke the shield (HTTP {status})"
            f"{_detail(answer)}; try again later, or use --no-send --out FILE and send the "
            "request yourself"
        )
