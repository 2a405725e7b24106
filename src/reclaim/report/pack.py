"""Evidence packs: one ZIP a platform, a lawyer or the police can check byte for byte.

Layout::

    originals/<sha256>.<ext>   the items, byte-for-byte as found
    manifest.json              per item: hashes, size, type, every place seen, acquisition time
    custody.jsonl              the case's hash-chained custody log, ending with this export
    SEAL.json                  hash of the last custody entry (the chain's head), signing key
    SEAL.sig                   Ed25519 signature of SEAL.json's exact bytes (64 bytes)
    SEAL.tsr                   RFC 3161 time-stamp of SEAL.json (only with --timestamp URL)
    seal-key.pem               the signing key's public half
    report.html, report.pdf    findings with (blurred) thumbnails
    notices/dsa-art16-N.txt    one EU DSA Article 16 notice per URL where an item was seen
    pharos.txt                 French complaint / PHAROS summary
    requests.json              her removal requests about these items, with their history
    requests/request-N-*.txt   each request's letter as drafted (reclaim.requests)
    README.txt                 how to verify

The export custody entry records the SHA-256 of manifest.json and of every other file, so a
change to any byte of the pack is found by ``verify_pack`` and named. The seal is signed with
the case's key (``reclaim.report.seal``), so a pack rewritten consistently, hashes and all, no
longer verifies, or verifies only with another key, whose fingerprint differs from the one the
person gave out. With ``timestamp_url`` the seal is also time-stamped by that RFC 3161 authority
(the only network use, and only on request).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageFilter

from reclaim import __version__, decisions, findings
from reclaim.decisions import Decision
from reclaim.detectors.record import CheckResult
from reclaim.errors import InputError, ReclaimError
from reclaim.media import Media
from reclaim.report.custody import CustodyLog
from reclaim.report.notices import Notifier, dsa_notice, pharos_summary
from reclaim.report.seal import load_or_create_key, public_key_info, public_key_pem
from reclaim.report.timestamp import TimestampInfo, request_timestamp
from reclaim.requests.pack import pack_files as request_pack_files
from reclaim.sources.resolve import read_verified
from reclaim.store import CaseStore
from reclaim.store.case import now_iso
from reclaim.verdicts import verdict_label

_EXT = {
    "jpeg": "jpg",
    "png": "png",
    "gif": "gif",
    "webp": "webp",
    "tiff": "tif",
    "bmp": "bmp",
    "heic": "heic",
    "avif": "avif",
    "mp4": "mp4",
    "mov": "mov",
    "webm": "webm",
    "mkv": "mkv",
}


@dataclass
class PackOptions:
    notifier: Notifier
    lang: str = "fr"
    reveal: bool = False  # thumbnails unblurred only when the person chooses it
    actor: str | None = None
    pdf: bool = True
    findings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by item sha256
    decisions: dict[str, Decision] = field(default_factory=dict)  # by item sha256
    timestamp_url: str | None = None  # RFC 3161 authority: the only network use, on request


@dataclass
class PackResult:
    path: Path
    items: int
    notices: int
    unreadable: list[str]
    key_fingerprint: str = ""
    timestamp: TimestampInfo | None = None
    timestamp_error: str | None = None  # asked for, not obtained: the pack is written without


def item_record(store: CaseStore, sha256: str) -> dict[str, Any]:
    row = store.item_row(sha256)
    if row is None:
        raise InputError(f"item {sha256} is not in this case")
    sig = store.item_signals(sha256)
    places = store.sightings_of(sha256)
    check = store.item_check(sha256)
    return {
        "check": check,
        "sha256": row["sha256"],
        "md5": row["md5"],
        "size": row["size"],
        "kind": row["kind"],
        "format": row["format"],
        "width": row["width"],
        "height": row["height"],
        "duration_s": row["duration_s"],
        "first_seen_at": row["first_seen_at"],
        "blob": row["blob"],
        "decode_error": row["error"],
        "pdq": sig.get("pdq", (None, None))[0],
        "pdq_quality": sig.get("pdq", (None, None))[1],
        "locators": places,
        "seen_at": [
            {
                "where": loc.display(),
                "kind": loc.kind,
                "path": loc.path,
                "member": loc.member,
                "meta": loc.meta,
            }
            for loc in places
        ],
    }


def thumbnail(data: bytes, reveal: bool) -> bytes | None:
    """A small JPEG preview, heavily blurred unless ``reveal``; None when undecodable."""
    try:
        media = Media(data)
        if media.kind == "video":
            first = next(iter(media.frames()), None)
            if first is None:
                return None
            im = Image.fromarray(first.rgb)
        else:
            im = media.image(max_side=480)
    except ReclaimError:
        return None
    im = im.copy()
    im.thumbnail((240, 240))
    if not reveal:
        small = im.resize((max(1, im.width // 30), max(1, im.height // 30)))
        im = small.resize(im.size, Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(12))
    b = io.BytesIO()
    im.convert("RGB").save(b, "JPEG", quality=80)
    return b.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_case(
    store: CaseStore, out: Path, options: PackOptions, items: list[str] | None = None
) -> PackResult:
    """The export every front end runs (``reclaim pack``, the web app's export page): the
    items named, or else the ones the person confirmed as showing her, with the case's latest
    decisions and findings; ``build_pack`` writes the pack and its "export" custody entry.

    Raises InputError when nothing is named and nothing is confirmed yet.
    """
    chosen = list(items or []) or decisions.selected_for_export(store)
    options = replace(
        options, decisions=decisions.current(store), findings=findings.for_pack(store)
    )
    return build_pack(store, chosen, out, options)


def build_pack(store: CaseStore, items: list[str], out: Path, options: PackOptions) -> PackResult:
    """Write the evidence pack for ``items`` (SHA-256s) to ``out`` (atomically).

    Raises InputError when no item is given or one is unknown; items whose bytes can no longer be
    read are listed in the report and the result, not silently dropped.
    """
    if not items:
        raise InputError("no item to export: confirm findings first, or name items")
    key = load_or_create_key(store.root)  # before anything is written: it may need a passphrase
    key_info = public_key_info(key.public_key())
    records = [item_record(store, sha) for sha in dict.fromkeys(items)]
    files: dict[str, bytes] = {}
    unreadable: list[str] = []
    for rec in records:
        try:
            data, _ = read_verified(rec["sha256"], rec["locators"], store.root, rec["blob"])
        except ReclaimError as e:
            rec["unreadable"] = str(e)
            unreadable.append(rec["sha256"])
            continue
        name = f"originals/{rec['sha256']}.{_EXT.get(rec['format'], 'bin')}"
        files[name] = data
        rec["file"] = name
        thumb = thumbnail(data, options.reveal)
        rec["thumb"] = base64.b64encode(thumb).decode() if thumb else None
        rec["findings"] = options.findings.get(rec["sha256"], [])
        decided = options.decisions.get(rec["sha256"])
        rec["decision"] = decided.as_pack_record() if decided is not None else None

    manifest = {
        "format": "reclaim-evidence-pack/1",
        "created_at": now_iso(),
        "tool": f"reclaim {__version__}",
        "notifier": {"name": options.notifier.name, "email": options.notifier.email},
        "seal_key": key_info,
        "items": [
            {
                "sha256": r["sha256"],
                "md5": r["md5"],
                "pdq": r["pdq"],
                "pdq_quality": r["pdq_quality"],
                "size": r["size"],
                "media_type": f"{r['kind']}/{r['format']}",
                "width": r["width"],
                "height": r["height"],
                "acquired_at": r["first_seen_at"],
                "file": r.get("file"),
                "unreadable": r.get("unreadable"),
                "seen_at": r["seen_at"],
                "findings": r.get("findings", []),
                "manipulation_check": _check_for_manifest(r.get("check")),
                "decision": r.get("decision"),
            }
            for r in records
        ],
    }
    files["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False).encode()

    notices = 0
    for r in records:
        for loc in r["locators"]:
            if loc.kind == "url":
                notices += 1
                url = str(loc.meta.get("final_url") or loc.path)
                files[f"notices/dsa-art16-{notices}.txt"] = dsa_notice(
                    url, r, options.notifier, options.lang
                ).encode()
    files["pharos.txt"] = pharos_summary(records, options.notifier).encode()
    files.update(request_pack_files(store, [r["sha256"] for r in records]))  # requests.json
    html = render_report(records, manifest, options)
    files["report.html"] = html.encode()
    if options.pdf:
        from weasyprint import HTML

        files["report.pdf"] = HTML(string=html).write_pdf()
    files["README.txt"] = _readme(options.lang).encode()
    files["seal-key.pem"] = public_key_pem(key.public_key())

    log = CustodyLog(store.root)
    export = log.append(
        "export",
        {
            "pack": out.name,
            "items": [r["sha256"] for r in records],
            "unreadable": unreadable,
            "manifest_sha256": _sha(files["manifest.json"]),
            "files": {name: _sha(data) for name, data in sorted(files.items())},
            "seal_key": key_info["fingerprint"],
        },
        actor=options.actor,
    )
    chain = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in log.entries())
    files["custody.jsonl"] = chain.encode()
    seal: dict[str, Any] = {
        "custody_head": export["hash"],
        "custody_entries": export["seq"],
        "sealed_at": export["at"],
        "key": key_info,
    }
    stamp: TimestampInfo | None = None
    stamp_error: str | None = None
    if options.timestamp_url:
        # The seal says it is time-stamped, so that removing SEAL.tsr is found; if the authority
        # gives no time-stamp, the seal is made again without that line.
        seal["timestamp_authority"] = _without_credentials(options.timestamp_url)
        files["SEAL.json"] = json.dumps(seal, indent=2).encode()
        try:
            files["SEAL.tsr"], stamp = request_timestamp(options.timestamp_url, files["SEAL.json"])
        except ReclaimError as e:
            stamp_error = str(e)
            del seal["timestamp_authority"]
    files["SEAL.json"] = json.dumps(seal, indent=2).encode()
    files["SEAL.sig"] = key.sign(files["SEAL.json"])

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            z.writestr(name, files[name])
    os.replace(tmp, out)
    return PackResult(
        out,
        len(records) - len(unreadable),
        notices,
        unreadable,
        key_fingerprint=key_info["fingerprint"],
        timestamp=stamp,
        timestamp_error=stamp_error,
    )


def _without_credentials(url: str) -> str:
    """``url`` without a user name or password, which must not go into the pack."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _check_for_manifest(check: CheckResult | None) -> dict[str, Any] | None:
    """The item's manipulation check as evidence: verdict, score, what ran, every signal with
    its sentences (fr/en). Explanation images are not in the pack: ``reclaim check --maps``."""
    if check is None:
        return None
    rec = check.to_json()
    return {k: rec.get(k) for k in ("verdict", "score", "level", "summary", "signals", "checks")}


_TEXT = {
    "fr": {
        "check": "Manipulation ou génération",
        "title": "Dossier de preuves",
        "items": "éléments",
        "seen": "Vu à",
        "acquired": "Constaté le",
        "hashes": "Empreintes",
        "blurred": "aperçu flouté",
        "unreadable": "illisible",
        "findings": "Constatations",
        "decision": "Décision",
        "verify": "Vérifier ce dossier : reclaim verify-pack",
        "seal": "Scellé signé (Ed25519) — empreinte de la clé publique",
        "seal_note": "Demandez cette empreinte à l'expéditeur par un autre canal : "
        "reclaim verify-pack --key EMPREINTE dossier.zip",
    },
    "en": {
        "check": "Manipulation or generation",
        "title": "Evidence pack",
        "items": "items",
        "seen": "Seen at",
        "acquired": "Acquired",
        "hashes": "Fingerprints",
        "blurred": "blurred preview",
        "unreadable": "unreadable",
        "findings": "Findings",
        "decision": "Decision",
        "verify": "Verify this pack: reclaim verify-pack",
        "seal": "Signed seal (Ed25519) — public key fingerprint",
        "seal_note": "Get this fingerprint from the sender through another channel: "
        "reclaim verify-pack --key FINGERPRINT pack.zip",
    },
}


def render_report(
    records: list[dict[str, Any]], manifest: dict[str, Any], options: PackOptions
) -> str:
    env = Environment(
        loader=PackageLoader("reclaim.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    return env.get_template("report.html.j2").render(
        t=_TEXT.get(options.lang, _TEXT["en"]),
        lang=options.lang,
        verdict_label=verdict_label,
        items=records,
        manifest=manifest,
        reveal=options.reveal,
    )


def _readme(lang: str) -> str:
    if lang == "fr":
        return (
            "Ce dossier a été produit par reclaim.\n"
            "Vérification : `reclaim verify-pack dossier.zip` recalcule chaque empreinte,\n"
            "parcourt le journal de traçabilité chaîné (custody.jsonl) et vérifie la signature\n"
            "Ed25519 du scellé (SEAL.json, SEAL.sig). Demandez l'empreinte de la clé (SEAL.json,\n"
            '"fingerprint") à l\'expéditeur par un autre canal et donnez-la : --key EMPREINTE.\n'
            "Sans reclaim : `sha256sum originals/*` doit redonner le nom de chaque fichier ;\n"
            "`openssl pkeyutl -verify -pubin -inkey seal-key.pem -rawin -in SEAL.json\n"
            "-sigfile SEAL.sig` vérifie la signature ; s'il y a SEAL.tsr (horodatage RFC 3161) :\n"
            "`openssl ts -verify -in SEAL.tsr -data SEAL.json -CAfile <certificat de l'autorité>`\n"
        )
    return (
        "This pack was produced by reclaim.\n"
        "Verify: `reclaim verify-pack pack.zip` recomputes every hash, walks the chained\n"
        "custody log (custody.jsonl) and checks the seal's Ed25519 signature (SEAL.json,\n"
        'SEAL.sig). Get the key\'s fingerprint (SEAL.json, "fingerprint") from the sender\n'
        "through another channel and pass it: --key FINGERPRINT.\n"
        "Without reclaim: `sha256sum originals/*` must give each file's name back;\n"
        "`openssl pkeyutl -verify -pubin -inkey seal-key.pem -rawin -in SEAL.json\n"
        "-sigfile SEAL.sig` checks the signature; where there is SEAL.tsr (RFC 3161 time-stamp):\n"
        "`openssl ts -verify -in SEAL.tsr -data SEAL.json -CAfile <the authority's certificate>`.\n"
    )
