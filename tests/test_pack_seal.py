"""The pack's signed seal (Ed25519, the case's key) and its RFC 3161 time-stamp, checked against
a time-stamping authority the test starts on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.errors import InputError
from reclaim.report import seal
from reclaim.report.notices import Notifier
from reclaim.report.pack import PackOptions, PackResult, build_pack
from reclaim.report.timestamp import TimestampError, request_der, verify_response
from reclaim.report.verify import verify_pack
from reclaim.store import CaseStore

from .test_evidence_pack import case_with_items, consistent_rewrite
from .tsa_fixture import local_tsa, make_ca, make_tsa_cert, pem, time_stamp_response

__all__ = ["case_with_items"]  # the fixture, imported for these tests

ME = Notifier("Léa Martin", "lea@example.org")
runner = CliRunner()


def _pack(case: Path, shas: list[str], out: Path, **kw: object) -> PackResult:
    with CaseStore.open(case) as store:
        return build_pack(store, shas, out, PackOptions(notifier=ME, pdf=False, **kw))  # type: ignore[arg-type]


def _replace(src: Path, dst: Path, name: str, data: bytes | None) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != name:
                zout.writestr(info, zin.read(info.filename))
        if data is not None:
            zout.writestr(name, data)


def _case_fp(case: Path) -> str:
    return seal.resolve_pin(str(case))


# --- the signed seal -------------------------------------------------------------------------


def test_pack_is_signed_with_the_case_key(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    res = _pack(case, shas, out)
    key_file = case / "keys" / "seal-ed25519.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    fp = _case_fp(case)
    assert res.key_fingerprint == fp and fp.startswith("SHA256:") and len(fp) == 71
    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
        sealed = json.loads(z.read("SEAL.json"))
        html = z.read("report.html").decode()
        assert len(z.read("SEAL.sig")) == 64
    assert manifest["seal_key"]["fingerprint"] == fp == sealed["key"]["fingerprint"]
    assert fp in html and manifest["seal_key"]["public_key"] in html
    check = verify_pack(out)
    assert check.ok, check.problems
    assert check.signer == fp and not check.key_pinned
    assert verify_pack(out, expected_key=fp.lower().replace("sha256:", "")).key_pinned
    # The next pack of the case is signed with the same key.
    _pack(case, shas[:1], tmp_path / "second.zip")
    assert verify_pack(tmp_path / "second.zip", expected_key=fp).key_pinned


def test_consistent_rewrite_resigned_with_another_key_is_named(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    bad = tmp_path / "forged.zip"
    forger = Ed25519PrivateKey.generate()
    consistent_rewrite(out, bad, f"originals/{shas[1]}.jpg", b"forged", sign=forger)
    # Every hash and the forger's signature agree: on its own the pack looks whole, but it
    # names the forger's key, not the case's ...
    alone = verify_pack(bad)
    assert alone.ok, alone.problems
    assert alone.signer == seal.fingerprint(forger.public_key()) != _case_fp(case)
    # ... and with the key the person gave out, it is refused.
    pinned = verify_pack(bad, expected_key=_case_fp(case))
    assert any("signed by a different key" in p for p in pinned.problems), pinned.problems
    res = runner.invoke(app, ["verify-pack", str(bad), "--key", str(case)])
    assert res.exit_code == 1 and "signed by a different key" in res.output
    res = runner.invoke(app, ["verify-pack", str(out), "--key", str(case)])
    assert res.exit_code == 0, res.output
    assert "the expected key" in res.output


def test_unsigned_or_resigned_seal_is_refused(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    bad = tmp_path / "bad.zip"
    _replace(out, bad, "SEAL.sig", None)
    assert any("not signed" in p for p in verify_pack(bad).problems)
    _replace(out, bad, "SEAL.sig", Ed25519PrivateKey.generate().sign(b"x"))
    assert any("does not verify" in p for p in verify_pack(bad).problems)
    with zipfile.ZipFile(out) as z:
        sealed = json.loads(z.read("SEAL.json"))
    sealed["sealed_at"] = "2020-01-01T00:00:00Z"  # backdated, old signature kept
    _replace(out, bad, "SEAL.json", json.dumps(sealed, indent=2).encode())
    problems = verify_pack(bad).problems
    assert any(p.startswith("SEAL.sig: the signature does not verify") for p in problems)


def test_key_pin_forms(case_with_items: tuple[Path, list[str]], tmp_path: Path) -> None:
    case, shas = case_with_items
    _pack(case, shas[:1], tmp_path / "p.zip")
    fp = _case_fp(case)
    hexpart = fp.split(":")[1]
    grouped = " ".join(hexpart[i : i + 4] for i in range(0, 64, 4)).upper()
    assert seal.resolve_pin(grouped) == fp
    assert seal.resolve_pin(str(case / "keys" / "seal-ed25519.pub.pem")) == fp
    (tmp_path / "fp.txt").write_text(fp + "\n")
    assert seal.resolve_pin(str(tmp_path / "fp.txt")) == fp
    for bad in ("SHA256:abc", str(tmp_path / "nope"), str(tmp_path)):
        with pytest.raises(InputError):
            seal.resolve_pin(bad)


def test_key_can_be_encrypted_with_a_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(seal.PASSPHRASE_ENV, "correct horse")
    key = seal.load_or_create_key(tmp_path)
    assert b"ENCRYPTED" in seal.key_path(tmp_path).read_bytes()
    assert seal.fingerprint(seal.load_or_create_key(tmp_path).public_key()) == seal.fingerprint(
        key.public_key()
    )
    monkeypatch.setenv(seal.PASSPHRASE_ENV, "wrong")
    with pytest.raises(InputError, match="wrong"):
        seal.load_or_create_key(tmp_path)
    monkeypatch.delenv(seal.PASSPHRASE_ENV)
    with pytest.raises(InputError, match="encrypted"):
        seal.load_or_create_key(tmp_path)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_openssl_checks_the_signature_without_reclaim(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas[:1], out)
    d = tmp_path / "x"
    zipfile.ZipFile(out).extractall(d)
    cmd = "openssl pkeyutl -verify -pubin -inkey seal-key.pem -rawin -in SEAL.json -sigfile"
    p = subprocess.run([*cmd.split(), "SEAL.sig"], cwd=d, capture_output=True, text=True)
    assert p.returncode == 0 and "Signature Verified Successfully" in p.stdout, p.stderr


# --- the RFC 3161 time-stamp -----------------------------------------------------------------


def test_time_stamp_from_a_local_authority(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    with local_tsa() as tsa:
        res = _pack(case, shas, out, timestamp_url=tsa.url)
        assert len(tsa.requests) == 1
    assert res.timestamp is not None and res.timestamp_error is None
    with zipfile.ZipFile(out) as z:
        assert "SEAL.tsr" in z.namelist()
    check = verify_pack(out)
    assert check.ok, check.problems
    ts = check.timestamp
    assert ts is not None and not ts.pinned
    assert abs(ts.time - datetime.now(UTC)) < timedelta(minutes=2)
    assert "reclaim test TSA" in ts.tsa and "reclaim test TSA" in ts.cert_subject
    assert ts.cert_fingerprint.startswith("SHA256:")
    assert verify_pack(out, tsa_certs=[tsa.cert]).timestamp.pinned  # type: ignore[union-attr]
    other, _ = make_tsa_cert("someone else")
    problems = verify_pack(out, tsa_certs=[other]).problems
    assert any(p.startswith("SEAL.tsr: signed by") and "not the pinned" in p for p in problems)
    # On the command line: the time and the authority, and its certificate pinned.
    (tmp_path / "tsa.pem").write_bytes(pem(tsa.cert))
    r = runner.invoke(app, ["verify-pack", str(out), "--tsa-cert", str(tmp_path / "tsa.pem")])
    assert r.exit_code == 0, r.output
    assert "time-stamped" in r.output and "the trusted authority" in r.output


def test_time_stamp_chain_to_a_pinned_root(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    ca = make_ca()
    out = tmp_path / "pack.zip"
    with local_tsa(make_tsa_cert("issued TSA", issuer=ca)) as tsa:
        _pack(case, shas[:1], out, timestamp_url=tsa.url)
    assert verify_pack(out, tsa_certs=[ca[0]]).timestamp.pinned  # type: ignore[union-attr]


def test_tampered_time_stamp_is_named(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    with local_tsa() as tsa:
        _pack(case, shas[:1], out, timestamp_url=tsa.url)
    with zipfile.ZipFile(out) as z:
        tsr = z.read("SEAL.tsr")
        sealed = z.read("SEAL.json")
    assert verify_response(tsr, sealed).serial == 1

    from asn1crypto import tsp  # type: ignore[import-untyped]

    resp = tsp.TimeStampResp.load(tsr)
    signed = resp["time_stamp_token"]["content"]
    gen_time = bytes(signed["encap_content_info"]["content"].parsed["gen_time"].contents)
    sig = bytes(signed["signer_infos"][0]["signature"].contents)
    earlier = str(int(gen_time[:4]) - 3).encode() + gen_time[4:]  # backdated three years
    cases = {
        "message digest differs": tsr.replace(gen_time, earlier),
        "does not verify": tsr.replace(sig, sig[:-1] + bytes([sig[-1] ^ 1])),
        "not a readable": tsr[: len(tsr) // 2],
    }
    for why, bad_tsr in cases.items():
        assert bad_tsr != tsr
        with pytest.raises(TimestampError, match=why):
            verify_response(bad_tsr, sealed)
        bad = tmp_path / "bad.zip"
        _replace(out, bad, "SEAL.tsr", bad_tsr)
        problems = verify_pack(bad).problems
        assert any(p.startswith("SEAL.tsr: ") and why in p for p in problems), (why, problems)
    # Removed: the signed seal says it was time-stamped.
    _replace(out, bad, "SEAL.tsr", None)
    problems = verify_pack(bad).problems
    assert any(p.startswith("SEAL.tsr: missing") and "removed" in p for p in problems), problems
    # A genuine token, of another seal.
    with pytest.raises(TimestampError, match="another seal"):
        verify_response(tsr, sealed + b" ")
    # A genuine token over this seal, from a certificate without the time-stamping purpose.
    from cryptography import x509

    cert, key = make_tsa_cert()
    builder = x509.CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=key.public_key(),
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
    )
    from cryptography.hazmat.primitives import hashes

    plain = builder.sign(key, hashes.SHA256())
    no_purpose = time_stamp_response(request_der(sealed, 7), plain, key, 1)
    with pytest.raises(TimestampError, match="not for time-stamping"):
        verify_response(no_purpose, sealed)


def test_time_stamp_failure_leaves_a_signed_pack(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    with local_tsa() as tsa:
        tsa.tamper = lambda der: der[:-40]  # a broken answer
        res = _pack(case, shas[:1], out, timestamp_url=tsa.url)
        assert res.timestamp is None and res.timestamp_error
        assert "not a readable time-stamp" in res.timestamp_error
        url = tsa.url
    check = verify_pack(out)
    assert check.ok and check.timestamp is None and check.signer, check.problems
    assert b"timestamp_authority" not in zipfile.ZipFile(out).read("SEAL.json")
    # The authority gone: one line, exit status 1, the pack still written.
    r = runner.invoke(
        app,
        [
            "pack", "--case", str(case), "--out", str(tmp_path / "p2.zip"), "--name", "L",
            "--email", "l@example.org", "--item", shas[0], "--timestamp", url,
        ],
    )  # fmt: skip
    assert r.exit_code == 1 and "not time-stamped" in r.output
    assert verify_pack(tmp_path / "p2.zip").ok


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_openssl_accepts_the_local_authoritys_token(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    # The test TSA is checked against an independent verifier, so that reclaim's verifier and
    # the TSA it is tested with cannot share a misreading of RFC 3161.
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    with local_tsa() as tsa:
        _pack(case, shas[:1], out, timestamp_url=tsa.url)
        (tmp_path / "tsa.pem").write_bytes(pem(tsa.cert))
    d = tmp_path / "x"
    zipfile.ZipFile(out).extractall(d)
    cmd = ["openssl", "ts", "-verify", "-in", "SEAL.tsr", "-data", "SEAL.json"]
    p = subprocess.run(
        [*cmd, "-CAfile", str(tmp_path / "tsa.pem")],
        cwd=d,
        capture_output=True,
        text=True,
        env={**os.environ, "OPENSSL_CONF": "/dev/null"},
    )
    assert p.returncode == 0 and "Verification: OK" in p.stdout, p.stdout + p.stderr
