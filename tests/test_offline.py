"""Nothing phones home: a scan (hashes, faces), a check (provenance, nudity) and an evidence
pack run with every outbound connection refused, and none is even attempted."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from reclaim.detectors.check import DetectorOptions, check_file
from reclaim.report.notices import Notifier
from reclaim.report.pack import PackOptions, build_pack
from reclaim.sample import make_sample
from reclaim.scan import scan
from reclaim.sources import open_source
from reclaim.store import CaseStore


def test_scan_check_and_pack_make_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    sources = make_sample(tmp_path / "sample")
    with CaseStore.open(tmp_path / "case", create=True) as store:
        # faces=True loads dlib's models from the installed package; workers=0 keeps the
        # analysis in this process, where the sockets are patched.
        # check="full": every pixel detector (face blend, AI image, consistency) runs too.
        st = scan(
            store, [open_source(str(p)) for p in sources], workers=0, faces=True, check="full"
        )
        assert st.analysed > 20
        assert any(c["level"] == "full" for c in store.checks_summary().values())
        shas = [r[0] for r in store.conn.execute("SELECT sha256 FROM items WHERE error IS NULL")]
        build_pack(
            store,
            shas[:3],
            tmp_path / "pack.zip",
            PackOptions(notifier=Notifier("L", "l@example.org"), pdf=True),
        )
    rec = check_file(
        sources[0] / "IMG_1001.jpg",
        nudity=True,
        detectors=DetectorOptions(),
        maps_dir=tmp_path / "maps",
    ).to_json()
    assert rec["verdict"] and "nudity" in rec and rec["checks"]["synthetic"] == "checked"
    assert rec["maps"]
    assert attempts == []


def test_onnxruntime_telemetry_is_off_whatever_the_environment_says() -> None:
    # onnxruntime's own telemetry runs in native code, below the socket patches above: it is
    # turned off by reclaim's package before onnxruntime loads, even when asked for.
    import os
    import subprocess
    import sys

    code = (
        "import os, sys, reclaim.faces.dlibnet; "
        "print(os.environ['ORT_DISABLE_TELEMETRY'], 'onnxruntime' in sys.modules)"
    )
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["1", "False"]  # set, and onnxruntime not loaded yet at that point
