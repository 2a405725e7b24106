"""RFC 3161 time-stamps of a pack's seal: asked online only when the person chooses, checked
offline.

``reclaim pack --timestamp URL`` sends one TimeStampReq (SHA-256 of SEAL.json, a random nonce,
the TSA's certificate asked for) by HTTP POST to the time-stamping authority, and stores its
TimeStampResp, unchanged, as ``SEAL.tsr``. That is reclaim's only network use when packing, and
it happens only with that option. Only the hash leaves the machine, and it goes to that URL
and nowhere else (proxy variables are not read, as for ``reclaim fetch``). The TSA signs (CMS)
a TSTInfo that holds the seal's hash and the time: the seal (and so every byte it covers, and
its Ed25519 signature, which is deterministic) existed then.
``openssl ts -verify -in SEAL.tsr -data SEAL.json -CAfile tsa.pem`` checks the same file without
reclaim.

Offline check (``verify_response``): the response is granted; the token is CMS SignedData of a
TSTInfo; its message imprint is the hash of SEAL.json; exactly one signer, whose certificate is
embedded in the token, is named by the signing-certificate attribute (ESS, RFC 2634 / RFC 5816),
has the time-stamping purpose and was valid at the stamped time; the content-type and
message-digest attributes match; the signature over the signed attributes verifies (RSA
PKCS#1 v1.5 or PSS, ECDSA, Ed25519; SHA-1 and MD5 are refused).

Trust: offline, reclaim cannot know which TSA the reader trusts, so the check reports the TSA's
name, the signing certificate's subject and SHA-256 fingerprint. ``--tsa-cert FILE`` (PEM or
DER, one or more certificates) pins it: the signing certificate must be one of them or chain up
to one of them through certificates in the token.

asn1crypto (pure Python, no dependency of its own) reads and writes the ASN.1 (it has the
RFC 3161 and CMS structures) and ``cryptography``, already needed for the seal, checks the
signatures. rfc3161ng was not used: it brings pyasn1 and requests (a second HTTP stack beside
httpx) and its check wants the TSA's certificate given up front, where an offline reader first
needs to be told who signed; asn1crypto also lets the tests build a TSA of their own.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from asn1crypto import tsp  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from reclaim.errors import FetchError, ReclaimError

_DER = Encoding.DER
_MAX_RESPONSE = 1024 * 1024
_TIMEOUT_S = 30.0
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class TimestampError(ReclaimError):
    """A time-stamp response that does not prove what it should (one-line reason)."""


@dataclass
class TimestampInfo:
    time: datetime
    tsa: str  # the TSA's name from the TSTInfo, else the signing certificate's subject
    cert_subject: str
    cert_fingerprint: str  # SHA256:<hex> of the signing certificate (DER)
    serial: int
    pinned: bool = False  # the certificate is, or chains to, one given with --tsa-cert


def _digest(alg: str, data: bytes) -> bytes:
    if alg not in _HASHES:
        raise TimestampError(f"hash algorithm {alg} is not accepted (SHA-256/384/512 only)")
    return hashlib.new(alg, data).digest()


def request_der(seal: bytes, nonce: int) -> bytes:
    """The DER TimeStampReq for ``seal`` (SHA-256, nonce, certificate asked for)."""
    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(seal).digest(),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return bytes(req.dump())


def request_timestamp(url: str, seal: bytes) -> tuple[bytes, TimestampInfo]:
    """Ask the TSA at ``url`` to time-stamp ``seal``; the response (DER) once it is checked.

    Raises FetchError when the TSA cannot be reached or answers no time-stamp, TimestampError
    when its answer does not prove the seal's time."""
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"--timestamp {url!r}: not an http(s) URL")
    nonce = secrets.randbits(63)
    try:
        with (
            httpx.Client(
                timeout=_TIMEOUT_S, follow_redirects=True, max_redirects=3, trust_env=False
            ) as client,
            client.stream(
                "POST",
                url,
                content=request_der(seal, nonce),
                headers={
                    "Content-Type": "application/timestamp-query",
                    "Accept": "application/timestamp-reply",
                },
            ) as r,
        ):
            if r.status_code != 200:
                raise FetchError(f"time-stamping authority {url} answered HTTP {r.status_code}")
            body = b""
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > _MAX_RESPONSE:
                    raise FetchError(f"time-stamping authority {url}: answer over 1 MiB")
    except httpx.HTTPError as e:
        raise FetchError(f"time-stamping authority {url}: {type(e).__name__}: {e}") from e
    info = verify_response(body, seal)
    tst = _tst_info(tsp.TimeStampResp.load(body))
    if tst["nonce"].native != nonce:
        raise TimestampError(f"time-stamping authority {url}: answer is not for this request")
    return body, info


def _tst_info(resp: Any) -> Any:
    token = resp["time_stamp_token"]
    return token["content"]["encap_content_info"]["content"].parsed


def _cert_fingerprint(cert: x509.Certificate) -> str:
    return "SHA256:" + cert.fingerprint(hashes.SHA256()).hex()


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from PEM (one or more) or DER bytes; ValueError when none."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def verify_response(
    der: bytes, seal: bytes, pinned: list[x509.Certificate] | None = None
) -> TimestampInfo:
    """Check a TimeStampResp against ``seal`` offline; TimestampError with the first reason it
    does not prove the seal's time."""
    try:
        return _verify(der, seal, pinned or [])
    except TimestampError:
        raise
    except Exception as e:
        # asn1crypto parses lazily: a damaged structure surfaces at first access, as whatever
        # exception the field's parser raises. Any failure to read the token means the same.
        raise TimestampError(f"not a readable time-stamp response ({type(e).__name__})") from e


def _verify(der: bytes, seal: bytes, pinned: list[x509.Certificate]) -> TimestampInfo:
    resp = tsp.TimeStampResp.load(der, strict=True)
    status = resp["status"]["status"].native
    if status not in ("granted", "granted_with_mods"):
        text = resp["status"]["status_string"].native or ""
        raise TimestampError(f"the authority refused to time-stamp ({status}: {text})".strip())
    token = resp["time_stamp_token"]
    if token["content_type"].native != "signed_data":
        raise TimestampError("the token is not CMS signed data")
    signed = token["content"]
    eci = signed["encap_content_info"]
    if eci["content_type"].native != "tst_info":
        raise TimestampError("the token does not hold time-stamp information (TSTInfo)")
    tst_der = bytes(eci["content"].contents)
    tst = tsp.TSTInfo.load(tst_der, strict=True)

    imprint = tst["message_imprint"]
    alg = imprint["hash_algorithm"]["algorithm"].native
    if imprint["hashed_message"].native != _digest(alg, seal):
        raise TimestampError("it time-stamps another seal (message imprint differs)")

    if len(signed["signer_infos"]) != 1:
        raise TimestampError(f"{len(signed['signer_infos'])} signers; a time-stamp has one")
    si = signed["signer_infos"][0]
    embedded = [
        c.chosen for c in signed["certificates"] or [] if c.name == "certificate"
    ]  # asn1crypto certificates
    signer_asn1 = _find_signer(si["sid"], embedded)
    if signer_asn1 is None:
        raise TimestampError("the signing certificate is not in the token")
    signer_der = bytes(signer_asn1.dump())
    cert = x509.load_der_x509_certificate(signer_der)

    # Signed attributes: content type, message digest, signing certificate.
    attrs = si["signed_attrs"]
    if not len(attrs):
        raise TimestampError("the signature covers no attributes (RFC 3161 requires them)")
    by_type: dict[str, Any] = {}
    for a in attrs:
        t = a["type"].native
        if t in by_type or len(a["values"]) != 1:
            raise TimestampError(f"signed attribute {t} given twice or with several values")
        by_type[t] = a["values"][0]
    if "content_type" not in by_type or by_type["content_type"].native != "tst_info":
        raise TimestampError("the signed content type is not TSTInfo")
    digest_alg = si["digest_algorithm"]["algorithm"].native
    if "message_digest" not in by_type or by_type["message_digest"].native != _digest(
        digest_alg, tst_der
    ):
        raise TimestampError("the time-stamp information was altered (message digest differs)")
    _check_signing_certificate(by_type, signer_der)

    to_verify = b"\x31" + bytes(attrs.dump())[1:]  # signed as a SET OF, stored [0] IMPLICIT
    _check_signature(cert, si, digest_alg, to_verify)

    gen_time: datetime = tst["gen_time"].native
    purposes = _eku(cert)
    if ExtendedKeyUsageOID.TIME_STAMPING not in purposes:
        raise TimestampError("the signing certificate is not for time-stamping (no such purpose)")
    if not cert.not_valid_before_utc <= gen_time <= cert.not_valid_after_utc:
        raise TimestampError("the signing certificate was not valid at the stamped time")

    subject = cert.subject.rfc4514_string()
    tsa_name = subject
    if tst["tsa"].native is not None:
        tsa_field = tst["tsa"]
        tsa_name = (
            tsa_field.chosen.human_friendly
            if tsa_field.name == "directory_name"
            else str(tsa_field.native)
        )
    info = TimestampInfo(
        time=gen_time,
        tsa=tsa_name,
        cert_subject=subject,
        cert_fingerprint=_cert_fingerprint(cert),
        serial=int(tst["serial_number"].native),
    )
    if pinned:
        others = [x509.load_der_x509_certificate(bytes(c.dump())) for c in embedded]
        if not _chains_to(cert, others, pinned):
            raise TimestampError(
                f"signed by {subject} ({info.cert_fingerprint}), which is not the pinned "
                "authority and does not chain to it"
            )
        info.pinned = True
    return info


def _find_signer(sid: Any, certs: list[Any]) -> Any | None:
    for c in certs:
        if sid.name == "issuer_and_serial_number":
            v = sid.chosen
            if c.issuer == v["issuer"] and c.serial_number == v["serial_number"].native:
                return c
        elif sid.name == "subject_key_identifier" and c.key_identifier == sid.chosen.native:
            return c
    return None


def _check_signing_certificate(by_type: dict[str, Any], signer_der: bytes) -> None:
    if "signing_certificate_v2" in by_type:
        first = by_type["signing_certificate_v2"]["certs"][0]
        alg = first["hash_algorithm"]["algorithm"].native
        if first["cert_hash"].native != _digest(alg, signer_der):
            raise TimestampError("the signing-certificate attribute names another certificate")
    elif "signing_certificate" in by_type:  # ESSCertID: SHA-1 of the certificate, by definition
        first = by_type["signing_certificate"]["certs"][0]
        if first["cert_hash"].native != hashlib.sha1(signer_der).digest():
            raise TimestampError("the signing-certificate attribute names another certificate")
    else:
        raise TimestampError("no signing-certificate attribute (RFC 3161 requires one)")


def _check_signature(cert: x509.Certificate, si: Any, digest_alg: str, data: bytes) -> None:
    sig_alg = si["signature_algorithm"]
    sig = bytes(si["signature"].native)
    key = cert.public_key()
    name = sig_alg.signature_algo
    try:
        if name == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, data)
            return
        try:
            hash_name = sig_alg.hash_algo
        except ValueError:  # bare rsaEncryption / ecdsa: the digest algorithm says which
            hash_name = digest_alg
        if hash_name not in _HASHES:
            raise TimestampError(f"signature hash {hash_name} is not accepted (SHA-2 only)")
        h = _HASHES[hash_name]()
        if name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), h)
        elif name == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = sig_alg["parameters"]
            mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            if mgf_hash not in _HASHES:
                raise TimestampError(f"PSS mask hash {mgf_hash} is not accepted")
            pss = padding.PSS(
                mgf=padding.MGF1(_HASHES[mgf_hash]()), salt_length=params["salt_length"].native
            )
            key.verify(sig, data, pss, h)
        elif name == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(h))
        else:
            raise TimestampError(f"signature algorithm {name} does not fit the certificate's key")
    except InvalidSignature as e:
        raise TimestampError("the authority's signature does not verify (token altered)") from e


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def _chains_to(
    cert: x509.Certificate, others: list[x509.Certificate], pinned: list[x509.Certificate]
) -> bool:
    """``cert`` is a pinned certificate, or is issued (signature checked) by one, possibly
    through certificates embedded in the token; at most 5 links."""
    pinned_der = {p.public_bytes(_DER) for p in pinned}
    current = cert
    for _ in range(6):
        if current.public_bytes(_DER) in pinned_der:
            return True
        parent = next(
            (c for c in [*pinned, *others] if c != current and _issued_by(current, c)), None
        )
        if parent is None:
            return False
        current = parent
    return False


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
