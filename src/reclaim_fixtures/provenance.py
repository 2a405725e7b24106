"""C2PA test certificates and signing, shared by tests/test_provenance.py and bench/provenance.py.

Fixture code only: it signs manifests with a certificate chain made on the spot (c2pa-python,
cryptography), so reading them is tested against what real signers write.
"""

from __future__ import annotations

import datetime
import io
from typing import Any


def make_chain(ocsp_url: str | None = None, org: str = "reclaim tests") -> tuple[bytes, bytes]:
    """(leaf + CA certificate PEM chain, leaf PKCS#8 key PEM): EC P-256, made here, untrusted."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def usage(sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("reclaim test CA"))
        .issuer_name(name("reclaim test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(False, True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_b = (
        x509.CertificateBuilder()
        .subject_name(name("reclaim test signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(True, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if ocsp_url:
        leaf_b = leaf_b.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            ),
            False,
        )
    leaf = leaf_b.sign(ca_key, hashes.SHA256())
    pem = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, key_pem


def sign(
    data: bytes,
    mime: str,
    man: dict[str, Any],
    chain: tuple[bytes, bytes],
    remote_url: str | None = None,
) -> bytes:
    import c2pa

    pem, key = chain
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", pem, key, None))
    dst = io.BytesIO()
    with c2pa.Builder(man) as b:
        if remote_url:
            b.set_no_embed()
            b.set_remote_url(remote_url)
        b.sign(signer, mime, io.BytesIO(data), dst)
    return dst.getvalue()
