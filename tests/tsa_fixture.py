"""A local RFC 3161 time-stamping authority for tests: an HTTP server on 127.0.0.1, in a thread
of the test process, that answers TimeStampReqs with tokens signed by a self-signed test
certificate (built with cryptography; the ASN.1 written with asn1crypto).

The tokens are made as real TSAs make them: CMS SignedData of a TSTInfo, the signer named by
issuer and serial, signed attributes content-type, message-digest and signing-certificate-v2,
RSA PKCS#1 v1.5 with SHA-256, the certificate embedded (certReq). ``openssl ts -verify`` accepts
them (tested), so they check reclaim's verifier against an independent one.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_tsa_cert(
    name: str = "reclaim test TSA", issuer: tuple[x509.Certificate, Any] | None = None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A time-stamping certificate (critical EKU timeStamping), self-signed or issued by
    ``issuer`` (certificate, key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reclaim tests"),
        ]
    )
    now = datetime.now(UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    )
    cert = b.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def make_ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reclaim test root CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def time_stamp_response(
    request_der: bytes,
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    serial: int,
    chain: list[x509.Certificate] | None = None,
) -> bytes:
    """The DER TimeStampResp a TSA would give for ``request_der``."""
    req = tsp.TimeStampReq.load(request_der)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    a_cert = asn1_x509.Certificate.load(cert_der)
    tst_fields: dict[str, Any] = {
        "version": "v1",
        "policy": "1.3.6.1.4.1.99999.1",
        "message_imprint": req["message_imprint"],
        "serial_number": serial,
        "gen_time": datetime.now(UTC).replace(microsecond=0),
        "tsa": asn1_x509.GeneralName(name="directory_name", value=a_cert.subject),
    }
    if req["nonce"].native is not None:
        tst_fields["nonce"] = req["nonce"].native
    tst_der = tsp.TSTInfo(tst_fields).dump()
    signed_attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
            {
                "type": "signing_certificate_v2",
                "values": [{"certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}],
            },
        ]
    )
    signature = key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": a_cert.issuer, "serial_number": a_cert.serial_number},
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    certs = [a_cert] + [
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain or []
    ]
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": tsp.TSTInfo.load(tst_der),
            },
            "certificates": certs if req["cert_req"].native else [],
            "signer_infos": [signer],
        }
    )
    token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    return bytes(
        tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()
    )


@dataclass
class LocalTSA:
    url: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    #: Replace the answer (DER in, DER out) to test what the client refuses.
    tamper: Any = None


@contextmanager
def local_tsa(
    cert_key: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
    chain: list[x509.Certificate] | None = None,
) -> Iterator[LocalTSA]:
    cert, key = cert_key or make_tsa_cert()
    state = LocalTSA("", cert, key, list(chain or []))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(body)
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self.send_error(415)
                return
            answer = time_stamp_response(body, state.cert, state.key, len(state.requests), chain)
            if state.tamper is not None:
                answer = state.tamper(answer)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/tsa"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
