"""C2PA Content Credentials (``c2pa-python``): validation state, actions, IPTC
``digitalSourceType``, claim generator, signature issuer. Read strictly offline: remote manifests
and OCSP are never fetched and no network host is allowed."""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from reclaim.detectors.provenance.base import Finding, bilingual, clip
from reclaim.detectors.provenance.containers import jpeg_segments, png_chunks, webp_chunks
from reclaim.detectors.provenance.sourcetypes import classify_dst, dst_code
from reclaim.detectors.provenance.xmp import xmp_packets

#: c2pa-rs settings that keep reading strictly offline.
C2PA_OFFLINE_SETTINGS: dict[str, Any] = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "core": {"allowed_network_hosts": []},
}

_C2PA_MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "avif": "image/avif",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
}

# Actions that change what an image shows (vs. crop/resize/colour/transcode/publish).
_CONTENT_ACTIONS = {
    "c2pa.edited",
    "c2pa.drawing",
    "c2pa.placed",
    "c2pa.removed",
    "c2pa.filtered",
    "c2pa.unknown",
}
_HASH_MISMATCH = re.compile(r"^assertion\.\w*[hH]ash\.mismatch$")

_c2pa_lock = threading.Lock()
_c2pa_state: dict[str, Any] = {}


def _c2pa() -> tuple[Any, Any]:
    """(c2pa module, offline Context), made once per process (a forked worker makes its own)."""
    with _c2pa_lock:
        if _c2pa_state.get("pid") != os.getpid():
            mod = importlib.import_module("c2pa")
            settings = mod.Settings.from_dict(C2PA_OFFLINE_SETTINGS)
            try:
                _c2pa_state["ctx"] = mod.Context(settings=settings)
            finally:
                settings.close()
            _c2pa_state["mod"] = mod
            _c2pa_state["pid"] = os.getpid()
        return _c2pa_state["mod"], _c2pa_state["ctx"]


def _may_have_c2pa(data: bytes, fmt: str) -> bool:
    """Whether the container holds a C2PA store (JUMBF) or an XMP reference to a remote one.

    Structural for JPEG (APP11 JUMBF), PNG (``caBX``) and WebP (``C2PA``), so that a damaged
    file that merely contains the letters "c2pa" is not reported as carrying a manifest.
    """
    if b"c2pa" not in data and b"provenance" not in data:
        return False
    if fmt == "jpeg":
        for marker, payload in jpeg_segments(data):
            if marker == 0xEB and payload[:2] == b"JP":
                return True
    elif fmt == "png":
        if any(ctype == b"caBX" for ctype, _ in png_chunks(data)):
            return True
    elif fmt == "webp":
        if any(fourcc == b"C2PA" for fourcc, _ in webp_chunks(data)):
            return True
    else:
        return True
    return any("provenance" in x for x in xmp_packets(data, fmt))


def read_c2pa(data: bytes, fmt: str) -> dict[str, Any] | None:
    """The manifest store as a dict, None when there is none.

    Raises RuntimeError with the library's one-line message when a manifest is present but
    cannot be read (or is only referenced remotely: ``remote_url`` is then in the message).
    """
    mime = _C2PA_MIME.get(fmt)
    if mime is None or not _may_have_c2pa(data, fmt):
        return None
    mod, ctx = _c2pa()
    try:
        reader = mod.Reader.try_create(mime, io.BytesIO(data), None, ctx)
        if reader is None:
            return None
        with reader:
            store = json.loads(reader.json())
    except Exception as e:  # the library's errors, and anything else hostile bytes provoke
        raise RuntimeError(" ".join(str(e).split()) or type(e).__name__) from e
    if not isinstance(store, dict):
        raise RuntimeError("the manifest store is not a JSON object")
    return store


def _agent_name(agent: Any) -> str:
    """A softwareAgent (a name, or {name, version}) as one string."""
    if isinstance(agent, dict):
        name = str(agent.get("name", ""))
        ver = agent.get("version")
        return f"{name} {ver}".strip() if ver else name
    return str(agent) if agent else ""


def _claim_generator(m: dict[str, Any]) -> str:
    """The software that made a manifest (claim_generator_info, else claim_generator)."""
    info = m.get("claim_generator_info")
    if isinstance(info, list) and info:
        return ", ".join(_agent_name(i) for i in info if isinstance(i, dict))
    return str(m.get("claim_generator", "") or "")


def _actions(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The actions of a manifest's ``c2pa.actions`` assertions, in order."""
    out: list[dict[str, Any]] = []
    for a in m.get("assertions", []) or []:
        if not isinstance(a, dict) or not str(a.get("label", "")).startswith("c2pa.actions"):
            continue
        data = a.get("data") or {}
        for act in data.get("actions", []) or []:
            if isinstance(act, dict):
                out.append(act)
    return out


def c2pa_findings(data: bytes, fmt: str) -> list[Finding]:
    """Findings from C2PA Content Credentials (none when the file carries none)."""
    try:
        store = read_c2pa(data, fmt)
    except RuntimeError as e:
        return [_unreadable_finding(str(e))]
    if not store:
        return []
    return _c2pa_store_findings(store)


def _unreadable_finding(msg: str) -> Finding:
    """A manifest that cannot be read: only referenced online (never fetched), or damaged."""
    url = re.search(r"https?://\S+", msg) if "remote" in msg.lower() else None
    if url:
        u = url.group(0).rstrip(".,;)'\"")
        return Finding(
            "c2pa_remote",
            0.0,
            "info",
            bilingual(
                f"The file points to Content Credentials (C2PA) stored online at {u}; "
                "reclaim works offline and did not fetch them. Open the file in a "
                "Content Credentials viewer to see what they declare.",
                f"Le fichier renvoie à des Content Credentials (C2PA) en ligne à {u} ; "
                "reclaim travaille hors ligne et ne les a pas téléchargées. Ouvrez le "
                "fichier dans un lecteur de Content Credentials pour voir ce qu'elles "
                "déclarent.",
            ),
            {"remote_url": u},
        )
    return Finding(
        "c2pa",
        0.3,
        "edited",
        bilingual(
            "The file contains Content Credentials (C2PA) that cannot be read "
            f"({clip(msg, 100)}): it may have been altered or damaged after signing.",
            "Le fichier contient des Content Credentials (C2PA) illisibles "
            f"({clip(msg, 100)}) : il a pu être modifié ou abîmé après la signature.",
        ),
        {"error": clip(msg, 300)},
    )


_UNTRUSTED = "signingCredential.untrusted"


@dataclass(frozen=True)
class _Validation:
    """What a manifest store says about its active manifest's signature, in words (``en``,
    ``fr``: the phrase every C2PA sentence quotes)."""

    state: str
    failures: list[str]
    issuer: str
    generator: str
    active_label: Any
    en: str
    fr: str

    @property
    def hard_failures(self) -> list[str]:
        """Failures other than an untrusted signing certificate."""
        return [c for c in self.failures if c != _UNTRUSTED]

    @property
    def invalid(self) -> bool:
        return self.state == "Invalid" or bool(self.hard_failures)

    def details(self) -> dict[str, Any]:
        return {
            "validation_state": self.state,
            "failures": self.failures,
            "claim_generator": self.generator,
            "issuer": self.issuer,
            "untrusted": _UNTRUSTED in self.failures,
            "active_manifest": self.active_label,
        }


def _failure_codes(store: dict[str, Any]) -> list[str]:
    """The active manifest's failure codes (newer c2pa-rs), else the store's status codes."""
    results = store.get("validation_results") or {}
    failures = [
        str(s.get("code"))
        for s in ((results.get("activeManifest") or {}).get("failure") or [])
        if isinstance(s, dict)
    ]
    if not failures:
        failures = [
            str(s.get("code")) for s in store.get("validation_status") or [] if isinstance(s, dict)
        ]
    return failures


def _trust_phrases(state: str, issuer: str, hard_failures: list[str]) -> tuple[str, str]:
    """How far the signature can be trusted, in English and French."""
    if state == "Trusted":
        return (
            f"signed by “{issuer}”, signature valid, certificate trusted",
            f"signées par « {issuer} », signature valide, certificat de confiance",
        )
    if not hard_failures and state != "Invalid":
        return (
            f"signed by “{issuer}” with an untrusted certificate: the signature is intact but "
            "nobody vouches for the signer",
            f"signées par « {issuer} » avec un certificat non reconnu : la signature est "
            "intacte mais personne ne garantit l'identité du signataire",
        )
    codes = ", ".join(hard_failures[:4]) or state
    return (
        f"signed by “{issuer}”, but signature or hash checks FAILED ({codes})",
        f"signées par « {issuer} », mais la vérification de la signature ou des empreintes "
        f"a ÉCHOUÉ ({codes})",
    )


def _validation(store: dict[str, Any], manifests: dict[str, Any]) -> _Validation:
    active_label = store.get("active_manifest")
    active: dict[str, Any] = (manifests.get(active_label) or {}) if active_label else {}
    state = str(store.get("validation_state") or "")
    failures = _failure_codes(store)
    sig = active.get("signature_info") or {}
    issuer = str(sig.get("issuer") or sig.get("common_name") or "an unnamed signer")
    en, fr = _trust_phrases(state, issuer, [c for c in failures if c != _UNTRUSTED])
    return _Validation(state, failures, issuer, _claim_generator(active), active_label, en, fr)


def _source_type_finding(v: _Validation, label: str, action: str, dst: str, agent: str) -> Finding:
    """What one action's IPTC digital source type declares (capped at 0.9 when the signature
    or hashes failed)."""
    kind, score, en_phrase, fr_phrase = classify_dst(dst)
    if v.invalid and score > 0:
        score = min(score, 0.9)
    active = label == v.active_label
    where_en = "" if active else " (in an earlier version it was made from)"
    where_fr = "" if active else " (dans une version antérieure)"
    tool_en = f", tool: {agent}" if agent else ""
    tool_fr = f", outil : {agent}" if agent else ""
    en = f"Content Credentials (C2PA; {v.en}) declare this image as {en_phrase}{where_en}{tool_en}."
    fr = (
        f"Des Content Credentials (C2PA ; {v.fr}) déclarent cette image comme "
        f"{fr_phrase}{where_fr}{tool_fr}."
    )
    if kind == "info":
        en += " This is the signer's claim, not proof that it is real."
        fr += " C'est une déclaration du signataire, pas une preuve d'authenticité."
    details = {
        **v.details(),
        "manifest": label,
        "action": action,
        "digital_source_type": dst,
        "software_agent": agent,
    }
    return Finding("c2pa", score, kind, bilingual(en, fr), details)


@dataclass
class _Declared:
    """What the manifests' actions declare: a finding per (manifest, source type), and the
    active manifest's actions that change what the image shows and the others."""

    findings: list[Finding] = field(default_factory=list)
    content_edits: list[str] = field(default_factory=list)
    other_actions: list[str] = field(default_factory=list)


def _declared(manifests: dict[str, Any], v: _Validation) -> _Declared:
    """The active manifest first, then its ingredients' manifests (an image generated in one
    tool and edited in another carries the generation claim in the ingredient)."""
    out = _Declared()
    seen: set[tuple[str, str]] = set()
    ordered = ([v.active_label] if v.active_label in manifests else []) + [
        k for k in manifests if k != v.active_label
    ]
    for label in ordered:
        m = manifests[label] or {}
        for act in _actions(m):
            action = str(act.get("action", ""))
            if label == v.active_label:
                if action in _CONTENT_ACTIONS:
                    out.content_edits.append(action)
                elif action:
                    out.other_actions.append(action)
            dst = act.get("digitalSourceType")
            if not dst or (label, dst_code(str(dst))) in seen:
                continue
            seen.add((label, dst_code(str(dst))))
            agent = _agent_name(act.get("softwareAgent")) or _claim_generator(m)
            out.findings.append(_source_type_finding(v, label, action, str(dst), agent))
    return out


def _tampered_finding(v: _Validation, mismatch: list[str]) -> Finding:
    codes = ", ".join(mismatch[:3])
    return Finding(
        "c2pa_tampered",
        0.7,
        "edited",
        bilingual(
            f"The image no longer matches its Content Credentials (C2PA {codes}): it was "
            "changed after it was signed.",
            f"L'image ne correspond plus à ses Content Credentials (C2PA {codes}) : elle a été "
            "modifiée après la signature.",
        ),
        v.details(),
    )


def _content_edits_finding(v: _Validation, content_edits: list[str]) -> Finding:
    acts = ", ".join(sorted(set(content_edits)))
    by_en = f" (by {v.generator})." if v.generator else "."
    by_fr = f" (par {v.generator})." if v.generator else "."
    return Finding(
        "c2pa_actions",
        0.6 if not v.invalid else 0.55,
        "edited",
        bilingual(
            f"Content Credentials (C2PA; {v.en}) record edits that change what the "
            f"image shows: {acts}" + by_en,
            f"Des Content Credentials (C2PA ; {v.fr}) enregistrent des modifications "
            f"du contenu de l'image : {acts}" + by_fr,
        ),
        {**v.details(), "actions": sorted(set(content_edits))},
    )


def _no_claim_finding(v: _Validation, other_actions: list[str]) -> Finding:
    """Credentials that declare neither generation nor content edits (information, unless
    their signature or hashes failed)."""
    acts = ", ".join(sorted(set(other_actions))) or "none"
    gen = v.generator or "?"
    return Finding(
        "c2pa",
        0.0 if not v.invalid else 0.3,
        "info" if not v.invalid else "edited",
        bilingual(
            f"Content Credentials (C2PA; {v.en}) were found, from {gen}; recorded actions: "
            f"{acts}. They do not declare AI generation.",
            f"Des Content Credentials (C2PA ; {v.fr}) sont présentes, produites par {gen} ; "
            f"actions enregistrées : {acts}. Elles ne déclarent pas de génération par IA.",
        ),
        {**v.details(), "actions": sorted(set(other_actions))},
    )


def _c2pa_store_findings(store: dict[str, Any]) -> list[Finding]:
    """Findings of a manifest store: declared source types, hashes that no longer match,
    content edits; information only when none of these."""
    manifests: dict[str, Any] = store.get("manifests") or {}
    v = _validation(store, manifests)
    declared = _declared(manifests, v)
    findings = declared.findings
    mismatch = [c for c in v.failures if _HASH_MISMATCH.match(c)]
    if mismatch:
        findings.append(_tampered_finding(v, mismatch))
    if declared.content_edits:
        findings.append(_content_edits_finding(v, declared.content_edits))
    if not findings:
        findings.append(_no_claim_finding(v, declared.other_actions))
    return findings
