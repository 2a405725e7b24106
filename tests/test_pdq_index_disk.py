"""PDQ index on disk: save/open round trips give the in-memory index's results exactly (planted
near-duplicates at every distance 0..31, removed ids, a pending delta), an opened index takes
adds/removals/merges (merges into a new mapped file), the streamed build writes the same index,
broken files are refused with a clear error, saving is atomic, and prefix-shard fan-out."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import reclaim.match.pdq_index as pi
from reclaim.match.pdq_index import PdqIndex, PdqIndexFileError, shard_of, shards_to_probe


def flip_exact(codes: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row with exactly d[i] distinct bits flipped."""
    ranks = rng.random((len(codes), 256)).argsort(axis=1).argsort(axis=1)
    out: np.ndarray = codes ^ np.packbits(ranks < d[:, None], axis=1)
    return out


def hits(index: PdqIndex, q: np.ndarray, r: int | None = None) -> list[list[tuple[int, int]]]:
    return [[(h.id, h.distance) for h in hs] for hs in index.search(q, r)]


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bank of 20,000 random hashes (shuffled ids), and 320 queries: 10 planted near-duplicates
    of bank rows at each distance 0..31, in the order of ``dist``."""
    rng = np.random.default_rng(7)
    n = 20_000
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    ids = (rng.permutation(3 * n)[:n] + 1).astype(np.int64)
    src = rng.integers(0, n, size=320)
    dist = np.repeat(np.arange(32), 10)
    q = flip_exact(codes[src], dist, rng)
    return codes, ids, q, ids[src]


def _built(codes: np.ndarray, ids: np.ndarray, delta_max: int | None = None) -> PdqIndex:
    idx = PdqIndex(31, delta_max=delta_max)
    idx.add(ids, codes)
    idx.compact()
    assert idx.kind == "multihash" and idx.delta_size == 0
    return idx


def test_open_gives_identical_results(tmp_path: Path, data: tuple[np.ndarray, ...]) -> None:
    codes, ids, q, planted = data
    idx = _built(codes, ids)
    removed = [int(x) for x in planted[::7]]  # some planted targets are removed
    idx.remove(removed)
    extra = np.random.default_rng(1).integers(0, 256, size=(50, 32), dtype=np.uint8)
    idx.add(np.arange(10**6, 10**6 + 50), extra)  # a pending delta...
    idx.remove([10**6 + 3])  # ...with a removal in it
    assert idx.delta_size == 50 and idx.tombstones == len(removed) + 1
    path = tmp_path / "bank.pdqi"
    idx.save(path, meta={"seq": 1234, "note": "x"})

    opened = PdqIndex.open(path)
    assert opened.mapped_from == str(path) and opened.memory_bytes() > opened.mapped_bytes() > 0
    assert opened.meta == {"seq": 1234, "note": "x"}
    assert (len(opened), opened.tombstones, opened.delta_size) == (len(idx), idx.tombstones, 50)
    assert (opened.nhash, opened.substring_bits) == (idx.nhash, idx.substring_bits)
    queries = np.concatenate([q, extra[:10]])
    want = hits(idx, queries)
    assert hits(opened, queries) == want
    for r in (0, 8, 16, 24):
        assert hits(opened, queries, r) == hits(idx, queries, r)
    found = [int(planted[i]) in {h for h, _ in want[i]} for i in range(len(planted))]
    assert found == [int(p) not in removed for p in planted]  # every distance 0..31 found
    assert all(10**6 + 3 not in {h for h, _ in w} for w in want)
    assert opened.search_one(q[5].tobytes()) == idx.search_one(q[5].tobytes())
    assert idx.warm() == 0 and opened.warm() >= opened.mapped_bytes()
    assert hits(opened, queries) == want


def test_opened_index_takes_updates_and_merges_into_a_mapped_file(
    tmp_path: Path, data: tuple[np.ndarray, ...]
) -> None:
    codes, ids, q, planted = data
    ref = _built(codes, ids, delta_max=100)
    path = tmp_path / "bank.pdqi"
    ref.save(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    opened = PdqIndex.open(path, delta_max=100, merge_dir=tmp_path)
    rng = np.random.default_rng(2)
    for step in range(3):
        new = flip_exact(codes[rng.integers(0, len(codes), 40)], np.full(40, 5), rng)
        new_ids = np.arange(10**7 + 40 * step, 10**7 + 40 * (step + 1))
        for idx in (ref, opened):
            idx.add(new_ids, new)
            idx.remove([int(planted[step]), int(new_ids[0])])
        assert hits(opened, q) == hits(ref, q)
        assert [h.id for h in opened.search_one(new[1])] == [h.id for h in ref.search_one(new[1])]
    # 120 adds passed delta_max=100: a merge ran, into a new mapped (and unlinked) file
    opened.wait()
    ref.wait()
    assert opened.merge_error is None and opened.delta_size < 120
    assert opened.mapped_from is not None and "unlinked" in opened.mapped_from
    opened.compact()
    ref.compact()
    assert opened.tombstones == 0 and len(opened) == len(ref)
    assert hits(opened, q) == hits(ref, q)
    assert sorted(os.listdir(tmp_path)) == ["bank.pdqi"]  # merge files unlinked
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the file never changes
    again = PdqIndex.open(path)
    assert len(again) == len(codes)  # removals were private to the process


@pytest.mark.parametrize("shuffle", [False, True])
def test_streamed_build_writes_the_same_index(
    tmp_path: Path, data: tuple[np.ndarray, ...], shuffle: bool
) -> None:
    codes, ids, q, _ = data
    order = np.argsort(ids)
    if shuffle:  # ids in no order: the builder sorts the rows through a temporary file
        order = np.random.default_rng(3).permutation(len(ids))
    c, i = codes[order], ids[order]
    chunks = ((i[a : a + 3000], c[a : a + 3000]) for a in range(0, len(i), 3000))
    messages: list[str] = []
    path = tmp_path / "built.pdqi"
    PdqIndex.build_file(path, chunks, len(i), meta={"seq": 9}, progress=messages.append)
    assert any("table" in m for m in messages)
    built = PdqIndex.open(path, verify=True)
    saved_path = tmp_path / "saved.pdqi"
    _built(codes, ids).save(saved_path)
    saved = PdqIndex.open(saved_path)
    assert built.meta == {"seq": 9}
    a, b = built._state.base, saved._state.base
    assert a is not None and b is not None
    for name in ("codes", "ids", "offsets", "positions"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert hits(built, q) == hits(saved, q)


def test_build_file_checks_the_row_count(tmp_path: Path, data: tuple[np.ndarray, ...]) -> None:
    codes, ids, _, _ = data
    with pytest.raises(ValueError, match="announced"):
        PdqIndex.build_file(tmp_path / "x.pdqi", [(ids, codes)], len(ids) + 1)
    with pytest.raises(ValueError, match="announced"):
        PdqIndex.build_file(tmp_path / "x.pdqi", [(ids, codes)], len(ids) - 1)
    assert os.listdir(tmp_path) == []  # no partial file left


def test_snapshot_saves_the_state_when_taken(tmp_path: Path, data: tuple[np.ndarray, ...]) -> None:
    codes, ids, q, planted = data
    idx = _built(codes, ids)
    idx.add(np.array([7]), codes[:1])
    snap = idx.snapshot()
    want = hits(idx, q)
    idx.remove([int(planted[0]), 7])  # after the snapshot: not in the file
    idx.add(np.array([8]), codes[1:2])
    idx.compact()
    snap.save(tmp_path / "snap.pdqi", meta={"seq": 5})
    opened = PdqIndex.open(tmp_path / "snap.pdqi")
    assert hits(opened, q) == want and opened.meta == {"seq": 5}
    assert len(opened) == len(codes) + 1 and opened.delta_size == 1


def test_flat_and_empty_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    idx = PdqIndex(31)
    idx.add(np.arange(300), codes)
    idx.remove([4])
    idx.save(tmp_path / "flat.pdqi")
    opened = PdqIndex.open(tmp_path / "flat.pdqi")
    assert opened.kind == "flat" and opened.mapped_from is None and len(opened) == 299
    assert hits(opened, codes) == hits(idx, codes)
    PdqIndex(31).save(tmp_path / "empty.pdqi")
    assert len(PdqIndex.open(tmp_path / "empty.pdqi")) == 0


def _saved(tmp_path: Path, data: tuple[np.ndarray, ...]) -> tuple[Path, bytes]:
    codes, ids, _, _ = data
    path = tmp_path / "bank.pdqi"
    idx = _built(codes[:6000], ids[:6000])
    idx.remove([int(ids[0])])
    idx.save(path)
    return path, path.read_bytes()


def _section(raw: bytes, name: str) -> dict[str, int]:
    hlen = struct.unpack_from("<I", raw, 12)[0]
    header = json.loads(raw[20 : 20 + hlen])
    sec: dict[str, int] = next(s for s in header["sections"] if s["name"] == name)
    return sec


def test_broken_files_are_refused_clearly(
    tmp_path: Path, data: tuple[np.ndarray, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # sections over 10 kB stand for the big ones (over 256 MB at full size): not read at open
    monkeypatch.setattr(pi, "_VERIFY_ALWAYS_MAX", 10_000)
    path, raw = _saved(tmp_path, data)
    PdqIndex.open(path, verify=True)  # the intact file opens

    def refused(content: bytes, match: str, verify: bool = False) -> None:
        bad = tmp_path / "bad.pdqi"
        bad.write_bytes(content)
        with pytest.raises(PdqIndexFileError, match=match):
            PdqIndex.open(bad, verify=verify)

    refused(b"", "empty file")
    refused(raw[:10], "shorter than")
    refused(b"NOTINDEX" + raw[8:], "wrong magic")
    refused(raw[:8] + struct.pack("<I", 2) + raw[12:], "format version 2, this reclaim reads")
    hlen = struct.unpack_from("<I", raw, 12)[0]
    flipped = bytearray(raw)
    flipped[20 + hlen // 2] ^= 1
    refused(bytes(flipped), "header checksum")
    refused(raw[: len(raw) - 4096], "truncated")
    refused(raw[: 20 + hlen // 2], "does not fit")
    refused(raw + b"\0" * 10, "appended")
    # the dead flags (small) are checked on every open; the big tables only with verify=True
    dead = _section(raw, "dead")
    broken = bytearray(raw)
    broken[dead["offset"] + 5] = 1
    refused(bytes(broken), "section dead fails its checksum")
    pos = _section(raw, "positions")
    broken = bytearray(raw)
    broken[pos["offset"] + 100] ^= 0xFF
    (tmp_path / "quiet.pdqi").write_bytes(bytes(broken))
    PdqIndex.open(tmp_path / "quiet.pdqi")  # not read at open: that is the point
    refused(bytes(broken), "section positions fails its checksum", verify=True)
    off = _section(raw, "offsets")
    broken = bytearray(raw)
    broken[off["offset"] : off["offset"] + 4] = b"\1\0\0\0"
    refused(bytes(broken), "offsets do not span")
    with pytest.raises(FileNotFoundError):
        PdqIndex.open(tmp_path / "missing.pdqi")


def _rewritten(raw: bytes, change: dict[str, object]) -> bytes:
    """The file with its JSON header changed (and a valid header checksum)."""
    hlen = struct.unpack_from("<I", raw, 12)[0]
    header = json.loads(raw[20 : 20 + hlen])
    for path, value in change.items():
        *parents, last = path.split(".")
        node = header
        for key in parents:
            node = node[key]
        node[last] = value
    body = json.dumps(header).encode()
    start = min(sec["offset"] for sec in header["sections"])
    assert 20 + len(body) <= start
    prefix = raw[:8] + struct.pack("<III", 1, len(body), zlib.crc32(body))
    return (prefix + body).ljust(start, b"\0") + raw[start:]


def test_headers_that_lie_are_refused(tmp_path: Path, data: tuple[np.ndarray, ...]) -> None:
    path, raw = _saved(tmp_path, data)
    bad = tmp_path / "bad.pdqi"
    bad.write_bytes(_rewritten(raw, {}))
    assert len(PdqIndex.open(bad)) == len(PdqIndex.open(path))  # the rewriter itself is sound
    cases = {
        "layout.b": (40, "unknown layout"),
        "layout.kind": ("lsh", "unknown layout"),
        "max_radius": (300, "impossible values"),
        "counts.delta_rows": (3, "section delta_codes has shape"),
        "counts.base_rows": (5999, "section codes has shape"),
        "counts.base_dead": (0, "1 removed rows, the header says 0"),
        "format": ("other", "another format"),
    }
    for key, (value, match) in cases.items():
        bad.write_bytes(_rewritten(raw, {key: value}))
        with pytest.raises(PdqIndexFileError, match=match):
            PdqIndex.open(bad)


def test_save_is_atomic(
    tmp_path: Path, data: tuple[np.ndarray, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, raw = _saved(tmp_path, data)
    codes, ids, _, _ = data
    other = _built(codes[6000:12000], ids[6000:12000])

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    with pytest.raises(OSError, match="disk full"):
        PdqIndex.build_file(path, [(ids[:6000], codes[:6000])], 6000)
    monkeypatch.undo()
    assert path.read_bytes() == raw  # the old file untouched, no temporary left beside it
    assert os.listdir(tmp_path) == ["bank.pdqi"]
    opened = PdqIndex.open(path)
    other.save(path)  # replacing the file under an open index: its mapping keeps the old one
    assert len(opened) == 5999 and len(PdqIndex.open(path)) == 6000
    assert int(ids[0]) not in [h.id for h in opened.search_one(codes[0])]  # still the old file
    assert (int(ids[1]), 0) in hits(opened, codes[1:2])[0]


def test_prefix_shard_fan_out() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)
    assert shard_of(np.full((1, 32), 0xFF, np.uint8), 4).tolist() == [15]
    assert shard_of(np.zeros((1, 32), np.uint8), 4).tolist() == [0]
    for p, r in itertools.product((1, 4, 6), (0, 1, 3, 31)):
        q = codes[0]
        probe = set(shards_to_probe(q, p, r).tolist())
        assert len(probe) == sum(math.comb(p, k) for k in range(min(p, r) + 1))
        near = flip_exact(np.repeat(q[None], 200, axis=0), rng.integers(0, r + 1, 200), rng)
        assert set(shard_of(near, p).tolist()) <= probe  # every near-duplicate's shard probed
    assert len(shards_to_probe(codes[1], 8, 31)) == 256  # PDQ's radius: every shard
    assert shards_to_probe(codes[1].tobytes(), 8, 0).tolist() == shard_of(codes[1:2], 8).tolist()
