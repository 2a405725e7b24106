"""The model cache (signals/modelcache): kept entries and passed checks, read back only intact."""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reclaim.faces import modelcache as C
from reclaim.faces import models as M
from reclaim.faces import pipeline as F

from .conftest import photo_like


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv(C.ENV, str(d))
    return d


def test_an_entry_is_built_once_and_rebuilt_when_damaged(cache: Path) -> None:
    builds: list[Path] = []

    def build(p: Path) -> None:
        builds.append(p)
        p.write_bytes(b"model bytes")

    a = C.entry("thing", C.key_of("v1"), build)
    assert a is not None and a.read_bytes() == b"model bytes" and a.parent == cache
    assert C.entry("thing", C.key_of("v1"), build) == a and len(builds) == 1
    a.write_bytes(b"model bytez")  # damaged on disk: its checksum no longer matches
    assert C.entry("thing", C.key_of("v1"), build) == a and len(builds) == 2
    assert a.read_bytes() == b"model bytes"
    # Another key is another entry; no temporary files are left behind.
    b = C.entry("thing", C.key_of("v2"), build)
    assert b != a and len(builds) == 3
    assert sorted(p.suffix for p in cache.iterdir()) == [".bin", ".bin", ".sha256", ".sha256"]


def test_a_blob_is_built_once_and_rebuilt_when_damaged(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"graph bytes"

    want = (b"graph bytes", hashlib.sha256(b"graph bytes").digest())
    assert C.blob("graph", C.key_of("v1"), build) == want and len(builds) == 1
    assert C.blob("graph", C.key_of("v1"), build) == want and len(builds) == 1
    (kept,) = cache.glob("graph-*.bin")
    kept.write_bytes(b"graph bytez")  # damaged on disk: built again, and kept again
    assert C.blob("graph", C.key_of("v1"), build) == want and len(builds) == 2
    assert kept.read_bytes() == b"graph bytes"
    # Blobs of other keys unused for STALE_DAYS go when a new one is kept; recent ones stay.
    (old,) = cache.glob("graph-*.bin")
    long_ago = time.time() - (C.STALE_DAYS + 1) * 86400
    os.utime(old, (long_ago, long_ago))
    C.blob("graph-x", C.key_of("v1"), build)  # another name: not a candidate
    C.blob("graph", C.key_of("v2"), build)
    assert not old.exists() and not old.with_suffix(".sha256").exists()
    assert len(list(cache.glob("graph-*.bin"))) == 2
    C.blob("graph", C.key_of("v3"), build)  # v2 was just used: kept
    assert len(list(cache.glob("graph-*.bin"))) == 3
    monkeypatch.setenv(C.ENV, "off")  # no cache: built on every call
    n = len(builds)
    assert C.blob("graph", C.key_of("v1"), build) == want and len(builds) == n + 1
    assert C.blob("graph", C.key_of("v1"), build) == want and len(builds) == n + 2


def test_a_kept_blob_that_cannot_be_loaded_is_built_again(cache: Path) -> None:
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"good graph"

    def load(data: bytes, sha: bytes) -> bytes:
        if data != b"good graph":
            raise ValueError("not a graph")
        assert sha == hashlib.sha256(data).digest()
        return data

    assert C.loaded_blob("g", "k", build, load, (ValueError,)) == b"good graph"
    (kept,) = cache.glob("g-*.bin")
    kept.write_bytes(b"garbage")  # intact on disk (its checksum matches) but unusable
    kept.with_suffix(".sha256").write_text(hashlib.sha256(b"garbage").hexdigest())
    assert C.loaded_blob("g", "k", build, load, (ValueError,)) == b"good graph"
    assert kept.read_bytes() == b"good graph" and len(builds) == 2

    def never(data: bytes, sha: bytes) -> bytes:
        raise ValueError("never loads")

    with pytest.raises(ValueError, match="never loads"):  # built afresh and still failing
        C.loaded_blob("g", "k", build, never, (ValueError,))


def test_models_load_past_an_unusable_kept_graph(cache: Path) -> None:
    first = M._Models()
    graphs = sorted(cache.glob("*-graph-*.bin"))
    names = [p.name.rsplit("-", 1)[0] for p in graphs]
    assert names == ["dlib-descriptor-graph", "sface-graph", "yunet-graph"]
    for p in graphs:
        p.write_bytes(b"not an onnx graph")
        p.with_suffix(".sha256").write_text(hashlib.sha256(b"not an onnx graph").hexdigest())
    second = M._Models()
    assert second.descriptor_backend == "onnxruntime" and second.sface.backend == "folded"
    assert second.yunet.backend == "folded"
    assert all(p.read_bytes() != b"not an onnx graph" for p in graphs)  # rebuilt
    chips = [np.asarray(photo_like(5, (150, 150)))]
    assert np.array_equal(first.describe(chips), second.describe(chips))
    scene = np.asarray(photo_like(6, (320, 240)))
    boxes = [
        [(f.x, f.y, f.width, f.height, f.score) for f in m.yunet(scene, min_score=0.0)[:3]]
        for m in (first, second)
    ]
    assert boxes[0] == boxes[1] and len(boxes[0]) == 3


def test_off_or_unwritable_means_no_entry(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def build(p: Path) -> None:
        p.write_bytes(b"x")

    monkeypatch.setenv(C.ENV, "off")
    assert C.cache_dir() is None and C.entry("thing", "k", build) is None
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(C.ENV, str(blocked / "sub"))
    assert C.entry("thing", "k", build) is None  # cannot be written: no error, no entry
    assert C.verdict("check", "k", lambda: None) is None  # the check itself still runs
    monkeypatch.delenv(C.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.cache_dir() == tmp_path / "xdg" / "reclaim" / "models"


def test_only_passed_checks_are_kept(cache: Path) -> None:
    calls: list[str] = []

    def passes() -> str | None:
        calls.append("pass")
        return None

    def fails() -> str | None:
        calls.append("fail")
        return "differs by 0.1"

    assert C.verdict("net", "k1", passes) is None
    assert C.verdict("net", "k1", passes) is None and calls == ["pass"]  # kept
    assert C.verdict("net", "k2", fails) == "differs by 0.1"
    assert C.verdict("net", "k2", fails) == "differs by 0.1" and calls == ["pass", "fail", "fail"]
    # A kept pass whose file is damaged is not believed.
    (bin_file,) = [p for p in cache.glob("net-*.bin")]
    bin_file.write_bytes(b"equal!")
    assert C.verdict("net", "k1", fails) == "differs by 0.1"


def test_check_keys_follow_code_versions_and_inputs(tmp_path: Path) -> None:
    code = tmp_path / "module.py"
    code.write_text("x = 1\n")
    k = C.check_key("net", b"\x00model", code=(str(code),))
    assert k == C.check_key("net", b"\x00model", code=(str(code),))
    assert k != C.check_key("net", b"\x00other", code=(str(code),))
    code.write_text("x = 2\n")
    assert k != C.check_key("net", b"\x00model", code=(str(code),))
    assert C.key_of("ab", "c") != C.key_of("a", "bc")  # parts are delimited
    assert C.cpu_signature() == C.cpu_signature()


def test_cached_hog_detector_is_dlibs_detector(cache: Path, tmp_path: Path) -> None:
    import dlib

    fresh = dlib.get_frontal_face_detector()
    first = M._load_hog(dlib)  # builds the entry
    second = M._load_hog(dlib)  # reads it
    saved = []
    for k, det in enumerate((fresh, first, second)):
        det.save(str(tmp_path / f"hog{k}.svm"))
        saved.append((tmp_path / f"hog{k}.svm").read_bytes())
    assert saved[0] == saved[1] == saved[2]
    assert len(list(cache.glob("dlib-hog-*.bin"))) == 1
    img = np.asarray(photo_like(8, (320, 240)).convert("L"))
    assert repr(fresh.run(img, 1, -0.5)) == repr(second.run(img, 1, -0.5))
    # An entry intact on disk that dlib cannot read (written by something else): dlib's own
    # detector is used, and the entry is dropped to be built again on the next load.
    (entry,) = cache.glob("dlib-hog-*.bin")
    entry.write_bytes(b"not a detector")
    entry.with_suffix(".sha256").write_text(hashlib.sha256(b"not a detector").hexdigest())
    third = M._load_hog(dlib)
    third.save(str(tmp_path / "hog3.svm"))
    assert (tmp_path / "hog3.svm").read_bytes() == saved[0]
    assert not entry.exists()
    M._load_hog(dlib)
    assert entry.read_bytes() == saved[0]


def test_a_second_load_trusts_the_kept_checks(cache: Path) -> None:
    first = M._Models()
    assert first.descriptor_backend == "onnxruntime"
    assert first._encoder is not None  # dlib's own network ran the check
    first.cnn_detect(np.zeros((64, 64, 3), np.uint8))
    assert first.detector_backend == "onnxruntime"
    names = sorted(p.name.rsplit("-", 1)[0] for p in cache.glob("*.bin"))
    assert names == [
        "dlib-descriptor", "dlib-descriptor-graph", "dlib-hog", "dlib-mmod", "sface-folded",
        "sface-graph", "yunet-folded", "yunet-graph",
    ]  # fmt: skip
    second = M._Models()
    assert second.descriptor_backend == "onnxruntime" and second.sface.backend == "folded"
    assert second.yunet.backend == "folded"
    assert second._encoder is None  # not loaded: the check passed before on this machine
    second.cnn_detect(np.zeros((64, 64, 3), np.uint8))
    assert second.detector_backend == "onnxruntime" and second._cnn is None
    chips = [np.asarray(photo_like(2, (150, 150)))]
    assert np.array_equal(first.describe(chips), second.describe(chips))


def _source(obj: object) -> Path:
    return Path(str(inspect.getsourcefile(obj))).resolve()  # type: ignore[arg-type]


def test_keys_cover_the_code_that_derives_and_checks_each_graph(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept graph or verdict is stale when the code behind it changes: each key holds the
    source files of the functions that derive the graph, and of those that run and check it
    (the face code is split over several modules: a key naming only one would outlive edits)."""
    from reclaim.faces import dlibnet, mmod
    from reclaim.faces import resnet as R

    codes: dict[str, set[Path]] = {}
    real = C.check_key

    def spy(*parts: str | bytes, code: tuple[str, ...] = ()) -> str:
        codes[str(parts[0])] = {Path(f).resolve() for f in code}
        return real(*parts, code=code)

    monkeypatch.setattr(C, "check_key", spy)
    m = M._Models()
    m.cnn_detect(np.zeros((64, 64, 3), np.uint8))
    derive = (R.descriptor_graph, R.read_resnet, dlibnet.DatReader, dlibnet.OnnxGraph)
    assert {_source(f) for f in derive} <= codes["dlib descriptor graph"]
    # Every face module the graph's module imports (constants, readers) is in its key too.
    tree = ast.parse(Path(str(R.__file__)).read_text())
    imported = {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    } | {f"reclaim.faces.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
         and n.module == "reclaim.faces" for a in n.names}  # fmt: skip
    faces_mods = {importlib.import_module(x) for x in imported if x.startswith("reclaim.faces.")}
    assert faces_mods and {_source(x) for x in faces_mods} <= codes["dlib descriptor graph"]
    run = (R.OrtDescriptor, M._Models, dlibnet.ort_session)
    assert {_source(f) for f in run} <= codes["dlib descriptor"]
    assert _source(mmod.OrtMmod) in codes["dlib mmod"]


def test_a_warm_cache_loads_the_models_without_deriving_graphs(cache: Path) -> None:
    """The derived graphs are read back: a second process neither imports onnx (SFace's folding
    needs it) nor parses dlib's model file into a graph, and computes the same descriptors."""
    code = """
import sys
import numpy as np
from reclaim.faces import models as M
from reclaim.faces import pipeline as F
calls = []
real = M.descriptor_graph
M.descriptor_graph = lambda data: calls.append(1) or real(data)
m = M._models()
chips = [np.full((150, 150, 3), 90, np.uint8)]
print(int("onnx" in sys.modules), len(calls), m.descriptor_backend, m.sface.backend,
      m.yunet.backend)
np.save(sys.argv[1], F.describe_faces(m, chips[0], chips, [np.array(
    [[100, 60], [80, 60], [40, 60], [60, 60], [70, 90]], float)]))
"""
    runs = []
    for n in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code, str(cache.parent / f"d{n}.npy")],
            capture_output=True, text=True, check=True, env={**os.environ, C.ENV: str(cache)},
        ).stdout.split()  # fmt: skip
        runs.append(out)
    assert runs[0] == ["1", "1", "onnxruntime", "folded", "folded"]  # cold: derived, checked
    assert runs[1] == ["0", "0", "onnxruntime", "folded", "folded"]  # warm: read back
    a, b = (np.load(cache.parent / f"d{n}.npy") for n in range(2))
    assert a.shape == (1, F.DESCRIPTOR_DIM) and np.array_equal(a, b)
