"""Provenance signals on fixtures built with the same libraries that write them in the wild.

C2PA manifests are signed here with c2pa-python and a certificate chain the test makes; XMP,
PNG text and EXIF are written with Pillow the way the generators write them; the Stable
Diffusion watermark is embedded with the real ``invisible-watermark`` encoder (installed with
``--no-deps``: its dwtDct method needs neither torch nor RivaGAN).
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from reclaim.detectors import provenance as P
from reclaim_fixtures.provenance import make_chain, sign

from .conftest import jpeg_bytes, photo_like

c2pa = pytest.importorskip("c2pa")

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


# --- certificates and signing ------------------------------------------------------------


@pytest.fixture(scope="session")
def chain() -> tuple[bytes, bytes]:
    return make_chain()


def manifest(*actions: dict[str, Any], generator: str = "reclaim-test-generator") -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "fixture",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": list(actions)}}],
    }


def created(dst: str, agent: str | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"action": "c2pa.created", "digitalSourceType": IPTC + dst}
    if agent:
        a["softwareAgent"] = {"name": agent}
    return a


def png_bytes(im: Image.Image, **kw: Any) -> bytes:
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def signed_generated_jpeg(chain: tuple[bytes, bytes], seed: int = 1) -> bytes:
    img = jpeg_bytes(photo_like(seed, (320, 240)))
    return sign(img, "image/jpeg", manifest(created("trainedAlgorithmicMedia", "ImageGen")), chain)


def names(findings: list[P.Finding]) -> list[str]:
    return [f.name for f in findings]


def only(findings: list[P.Finding], name: str) -> P.Finding:
    hits = [f for f in findings if f.name == name]
    assert len(hits) == 1, [f.as_dict() for f in findings]
    return hits[0]


def assert_bilingual(f: P.Finding) -> None:
    assert set(f.evidence) == {"fr", "en"}
    assert len(f.evidence["fr"]) > 30 and len(f.evidence["en"]) > 30
    assert f.evidence["fr"] != f.evidence["en"]
    assert 0.0 <= f.score <= 1.0


# --- C2PA ---------------------------------------------------------------------------------


def test_c2pa_generated_jpeg_is_found_and_untrusted_signer_reported(chain: Any) -> None:
    data = signed_generated_jpeg(chain)
    f = only(P.metadata_findings(data), "c2pa")
    assert f.kind == "generated" and f.score >= 0.95
    assert f.details["validation_state"] == "Valid"
    assert f.details["untrusted"] is True
    assert f.details["issuer"] == "reclaim tests"
    assert f.details["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert f.details["software_agent"] == "ImageGen"
    assert "untrusted certificate" in f.evidence["en"]
    assert "certificat non reconnu" in f.evidence["fr"]
    assert "ImageGen" in f.evidence["en"]
    assert_bilingual(f)


def test_c2pa_generative_edit_in_png_is_edited(chain: Any) -> None:
    man = manifest(
        created("digitalCapture"),
        {
            "action": "c2pa.edited",
            "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia",
            "softwareAgent": {"name": "Generative Fill"},
        },
    )
    data = sign(png_bytes(photo_like(2, (300, 200))), "image/png", man, chain)
    fs = P.metadata_findings(data)
    edited = [f for f in fs if f.kind == "edited"]
    assert max(f.score for f in edited) >= 0.95
    assert "c2pa_actions" in names(fs)  # c2pa.edited changes what the image shows
    assert not [f for f in fs if f.kind == "generated"]


def test_c2pa_camera_capture_is_information_only(chain: Any) -> None:
    data = sign(jpeg_bytes(photo_like(3)), "image/jpeg", manifest(created("digitalCapture")), chain)
    fs = P.metadata_findings(data)
    assert fs and all(f.kind == "info" and f.score == 0.0 for f in fs)
    assert "not proof" in fs[0].evidence["en"]


def test_c2pa_in_mp4(chain: Any) -> None:
    from .test_video import make_video

    data = sign(
        make_video(seconds=2.0), "video/mp4", manifest(created("trainedAlgorithmicMedia")), chain
    )
    f = only(P.metadata_findings(data), "c2pa")
    assert f.kind == "generated"


def test_c2pa_image_changed_after_signing(chain: Any) -> None:
    data = bytearray(signed_generated_jpeg(chain))
    sos = data.rfind(b"\xff\xda")  # change a byte of the compressed pixels
    data[sos + 200] ^= 0x55
    fs = P.metadata_findings(bytes(data))
    tampered = only(fs, "c2pa_tampered")
    assert tampered.kind == "edited" and tampered.score >= 0.5
    assert any("dataHash.mismatch" in c for c in tampered.details["failures"])
    gen = only(fs, "c2pa")
    assert gen.details["validation_state"] == "Invalid"
    assert gen.score <= 0.9 and "FAILED" in gen.evidence["en"]


def test_c2pa_corrupt_manifest_is_reported_not_raised(chain: Any) -> None:
    data = bytearray(signed_generated_jpeg(chain))
    i = data.find(b"jumb")
    for k in range(i + 20, i + 400, 7):
        data[k] ^= 0xA5
    fs = P.metadata_findings(bytes(data))  # must not raise
    f = only(fs, "c2pa")
    assert "cannot be read" in f.evidence["en"] and f.details["error"]
    assert f.kind == "edited" and f.score < P.DECISIVE  # damage is not proof of editing


def test_no_c2pa_in_a_plain_photo() -> None:
    assert P.c2pa_findings(jpeg_bytes(photo_like(4)), "jpeg") == []
    assert P.metadata_findings(png_bytes(photo_like(4))) == []


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("H", (_Recorder,), {"hits": hits})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()
    srv.server_close()


def test_remote_manifest_is_never_fetched(chain: Any, local_server: Any) -> None:
    base, hits = local_server
    url = f"{base}/manifest.c2pa"
    data = sign(
        jpeg_bytes(photo_like(5)), "image/jpeg", manifest(created("digitalCapture")), chain, url
    )
    # The library's default would fetch it: the fixture really points at the server.
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("image/jpeg", io.BytesIO(data))
    assert hits == ["/manifest.c2pa"]
    hits.clear()
    fs = P.metadata_findings(data)
    assert hits == []
    f = only(fs, "c2pa_remote")
    assert f.details["remote_url"] == url and f.kind == "info"
    assert url in f.evidence["en"] and url in f.evidence["fr"]


def test_ocsp_is_never_fetched(local_server: Any) -> None:
    base, hits = local_server
    ocsp_chain = make_chain(ocsp_url=f"{base}/ocsp")
    data = sign(
        jpeg_bytes(photo_like(6)), "image/jpeg", manifest(created("digitalCapture")), ocsp_chain
    )
    # With OCSP fetching on, the library does call the responder named in the certificate.
    ctx = c2pa.Context(settings=c2pa.Settings.from_dict({"verify": {"ocsp_fetch": True}}))
    with c2pa.Reader("image/jpeg", io.BytesIO(data), None, ctx) as r:
        r.json()
    assert hits  # GET <responder>/<base64 OCSP request>
    hits.clear()
    store = P.read_c2pa(data, "jpeg")
    assert store is not None and hits == []
    info = store["validation_results"]["activeManifest"]["informational"]
    assert any(s["code"] == "signingCredential.ocsp.skipped" for s in info)


def test_offline_settings_are_the_documented_keys() -> None:
    # Unknown keys would be rejected by c2pa-rs; these parse and are applied.
    s = c2pa.Settings.from_dict(P.C2PA_OFFLINE_SETTINGS)
    s.close()
    assert P.C2PA_OFFLINE_SETTINGS["verify"] == {
        "remote_manifest_fetch": False,
        "ocsp_fetch": False,
    }


# --- XMP ----------------------------------------------------------------------------------


def xmp(body: str) -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"{body}</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )


DST_ATTR = (
    '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    'Iptc4xmpExt:DigitalSourceType="{uri}"/>'
)
DST_ELEM = (
    '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
    "<Iptc4xmpExt:DigitalSourceType>{uri}</Iptc4xmpExt:DigitalSourceType></rdf:Description>"
)
TOOL = (
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    'xmp:CreatorTool="{tool}"/>'
)


def test_xmp_dst_in_jpeg_app1() -> None:
    packet = xmp(DST_ATTR.format(uri=IPTC + "trainedAlgorithmicMedia"))
    data = jpeg_bytes(photo_like(7), xmp=packet.encode())
    f = only(P.metadata_findings(data), "xmp_digital_source_type")
    assert f.kind == "generated" and f.score >= 0.95
    assert_bilingual(f)


def test_xmp_dst_element_form_in_compressed_png_itxt() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(
        "XML:com.adobe.xmp",
        xmp(DST_ELEM.format(uri=IPTC + "compositeWithTrainedAlgorithmicMedia")),
        zip=True,
    )
    data = png_bytes(photo_like(8), pnginfo=info)
    assert b"compositeWithTrained" not in data  # really compressed
    f = only(P.metadata_findings(data), "xmp_digital_source_type")
    assert f.kind == "edited" and f.score >= 0.95


def test_xmp_creator_tool_in_webp() -> None:
    b = io.BytesIO()
    photo_like(9).save(b, "WEBP", xmp=xmp(TOOL.format(tool="Adobe Firefly")).encode())
    f = only(P.metadata_findings(b.getvalue()), "xmp_software")
    assert f.kind == "generated" and f.details["tool"] == "Adobe Firefly"


def test_xmp_capture_and_editor_are_not_decisive() -> None:
    body = DST_ATTR.format(uri=IPTC + "digitalCapture") + TOOL.format(
        tool="Adobe Photoshop 25.0 (Windows)"
    )
    fs = P.metadata_findings(jpeg_bytes(photo_like(10), xmp=xmp(body).encode()))
    assert sorted(names(fs)) == ["xmp_digital_source_type", "xmp_software"]
    assert all(f.score < P.DECISIVE for f in fs)


def test_xmp_with_entities_is_not_expanded_and_malformed_falls_back() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + "".join(
            f'<!ENTITY a{i + 1} "&a{i};&a{i};&a{i};&a{i};&a{i};&a{i};&a{i};&a{i};">'
            for i in range(12)
        )
        + "]>"
    ).replace("&a0;", "&a;")
    packet = bomb + xmp(DST_ATTR.format(uri=IPTC + "trainedAlgorithmicMedia") + "&a12;")
    t = time.monotonic()
    props = P.xmp_properties(packet)
    assert time.monotonic() - t < 1.0
    assert props["Iptc4xmpExt:DigitalSourceType"] == [IPTC + "trainedAlgorithmicMedia"]
    broken = xmp(DST_ATTR.format(uri=IPTC + "trainedAlgorithmicMedia"))[:-40] + "<unclosed"
    assert P.xmp_properties(broken)["Iptc4xmpExt:DigitalSourceType"]


def test_classify_dst_table() -> None:
    assert P.classify_dst(IPTC + "trainedAlgorithmicMedia")[:2] == ("generated", 0.99)
    assert P.classify_dst("trainedAlgorithmicMedia")[0] == "generated"
    assert P.classify_dst(IPTC + "digitalCapture")[:2] == ("info", 0.0)
    assert P.classify_dst(IPTC + "minorHumanEdits")[1] < P.DECISIVE
    assert P.classify_dst("http://example.org/whatever")[:2] == ("info", 0.0)


# --- generator metadata -------------------------------------------------------------------

A1111 = (
    "a portrait photo of a woman, detailed skin\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.7.0"
)
COMFY_PROMPT = json.dumps(
    {
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl.safetensors"}},
    }
)
COMFY_WORKFLOW = json.dumps(
    {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}
)


def png_with_text(**text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k.replace("_", "-") if k == "sd_metadata" else k, v)
    return png_bytes(photo_like(11, (256, 192)), pnginfo=info)


@pytest.mark.parametrize(
    ("text", "tool"),
    [
        ({"parameters": A1111}, "Stable Diffusion (Automatic1111 / Forge / SD.Next)"),
        ({"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}, "ComfyUI"),
        (
            {
                "Title": "AI generated image",
                "Software": "NovelAI",
                "Source": "Stable Diffusion XL C1E1DE52",
                "Comment": json.dumps({"steps": 28, "sampler": "k_euler", "seed": 42, "uc": "x"}),
            },
            "NovelAI",
        ),
        ({"invokeai_metadata": json.dumps({"positive_prompt": "x", "seed": 1})}, "InvokeAI"),
        ({"sd_metadata": json.dumps({"model": "stable diffusion", "image": {}})}, "InvokeAI"),
        ({"Dream": '"a cat" -s 50 -S 3423 -W 512 -H 512 -C 7.5'}, "InvokeAI"),
        (
            {"Description": "a castle --ar 3:2 Job ID: 5b3b5e4e-1f2a-4c7e-9a55-0c1d2e3f4a5b"},
            "Midjourney",
        ),
    ],
)
def test_png_generator_text(text: dict[str, str], tool: str) -> None:
    fs = P.metadata_findings(png_with_text(**text))
    gen = [f for f in fs if f.name == "generator_metadata"]
    assert gen, fs
    assert gen[0].details["tool"] == tool
    assert gen[0].kind == "generated" and gen[0].score >= 0.95
    assert_bilingual(gen[0])


def test_png_text_that_only_mentions_a_generator_is_not_evidence() -> None:
    fs = P.metadata_findings(
        png_with_text(
            parameters="exposure=1/250; iso=100",
            Description="Press photo for an article about Midjourney and Stable Diffusion",
            prompt='{"not": "comfy"}',
            Comment="steps: none",
        )
    )
    assert fs == []


def exif_jpeg(tags: dict[int, Any], user_comment: bytes | None = None) -> bytes:
    im = photo_like(12, (320, 240))
    ex = Image.Exif()
    for k, v in tags.items():
        ex[k] = v
    if user_comment is not None:
        ex.get_ifd(0x8769)[0x9286] = user_comment
    return jpeg_bytes(im, exif=ex.tobytes())


def test_exif_user_comment_with_a1111_parameters() -> None:
    uc = b"UNICODE\0" + A1111.encode("utf-16-be")  # what A1111 writes into JPEG/WebP (piexif)
    f = only(P.metadata_findings(exif_jpeg({}, uc)), "generator_metadata")
    assert f.details["field"] == "UserComment" and f.kind == "generated"
    assert "v1-5-pruned-emaonly" in f.evidence["en"]


@pytest.mark.parametrize(
    ("software", "kind", "decisive"),
    [
        ("Midjourney", "generated", True),
        ("FaceApp 11.2", "edited", True),
        ("Reface", "edited", True),
        ("Adobe Photoshop 25.0 (Windows)", "edited", False),
        ("GIMP 2.10.36", "edited", False),
    ],
)
def test_exif_software_table(software: str, kind: str, decisive: bool) -> None:
    f = only(P.metadata_findings(exif_jpeg({0x0131: software})), "exif_software")
    assert f.kind == kind
    assert (f.score >= P.DECISIVE) is decisive
    assert software in f.evidence["en"]


def test_exif_of_a_camera_is_not_evidence() -> None:
    data = exif_jpeg({0x010F: "Canon", 0x0110: "Canon EOS 5D Mark IV", 0x0131: "Ver.1.0.4"})
    assert P.metadata_findings(data) == []
    # ... and a caption that mentions a generator is not a software field.
    assert P.metadata_findings(exif_jpeg({0x010E: "Comparing Midjourney and DALL-E"})) == []


def test_comfyui_animated_webp_exif() -> None:
    ex = Image.Exif()
    ex[0x010F] = "Prompt:" + COMFY_PROMPT
    ex[0x010E] = "Workflow:" + COMFY_WORKFLOW
    b = io.BytesIO()
    photo_like(13, (256, 192)).save(b, "WEBP", exif=ex.tobytes())
    f = only(P.metadata_findings(b.getvalue()), "generator_metadata")
    assert f.details["tool"] == "ComfyUI" and f.details["source"] == "EXIF"


def test_deepfacelab_faceset_jpeg() -> None:
    meta = {"face_type": "whole_face", "landmarks": [[1.0, 2.0]] * 68, "source_filename": "a.png"}
    payload = pickle.dumps(meta)
    plain = jpeg_bytes(photo_like(14, (256, 256)))
    seg = b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload
    data = plain[:2] + seg + plain[2:]
    assert Image.open(io.BytesIO(data)).size == (256, 256)
    f = only(P.metadata_findings(data), "generator_metadata")
    assert f.details["tool"] == "DeepFaceLab" and f.kind == "edited" and f.score >= P.DECISIVE
    assert P.deepfacelab_findings(plain, "jpeg") == []


# --- corrupt and hostile files --------------------------------------------------------------


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xe1\xff\xff" + b"x" * 10,  # segment longer than the file
        b"\xff\xd8\xff\xe1\x00\x01",  # impossible length
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 2**31) + b"tEXt",
        b"RIFF\xff\xff\xff\xffWEBPXMP \xff\xff\xff\x7f",
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00garbage"),
        bytes(range(256)) * 40,
        b"<x:xmpmeta>" * 1000,
    ],
)
def test_corrupt_containers_never_raise(data: bytes) -> None:
    assert P.metadata_findings(data) == []


def test_compressed_text_bomb_is_capped() -> None:
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + _png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)
        + _png_chunk(b"IEND", b"")
    )
    t = time.monotonic()
    assert P.png_text(data) == {}
    assert time.monotonic() - t < 2.0


# --- Stable Diffusion invisible watermark ---------------------------------------------------


def _maxdct() -> ModuleType:
    """invisible-watermark's dwtDct embedder, loaded without the package __init__ (which
    imports torch for RivaGAN)."""
    spec = importlib.util.find_spec("imwatermark")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(
            "invisible-watermark not installed (pip install --no-deps invisible-watermark==0.2.0)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "maxDct.py"
    mspec = importlib.util.spec_from_file_location("_imwatermark_maxdct", path)
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def sd_watermarked(rgb: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Stable Diffusion's ``put_watermark``: RGB → BGR, dwtDct encode, → RGB."""
    md = _maxdct()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    out = md.EmbedMaxDct(list(bits), wmLen=len(bits)).encode(bgr)
    return np.ascontiguousarray(out[:, :, ::-1])


@pytest.fixture(scope="module")
def texture512() -> np.ndarray:
    return np.asarray(photo_like(21, (512, 512)))


@pytest.mark.parametrize("payload", P.SD_PAYLOADS, ids=lambda p: p.key)
def test_sd_watermark_found_in_png(payload: P.WatermarkPayload, texture512: np.ndarray) -> None:
    marked = sd_watermarked(texture512, payload.bits)
    data = png_bytes(Image.fromarray(marked))
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    f = only(P.watermark_findings(rgb), "sd_watermark")
    assert f.kind == "generated" and f.score >= 0.95
    assert payload.label in f.evidence["en"]
    hit = [r for r in f.details["readings"] if r["detected"]]
    assert [r["payload"] for r in hit] == [payload.label]


def test_no_sd_watermark_in_unmarked_images(texture512: np.ndarray) -> None:
    assert P.watermark_findings(texture512) == []
    readings = P.sd_watermark(texture512)
    assert len(readings) == 3 and max(r.z for r in readings) < 4
    assert P.sd_watermark(texture512[:200, :200]) == []  # the package refuses < 256×256 too


def test_block_reading_is_bit_exact_with_the_reference_decoder(texture512: np.ndarray) -> None:
    md = _maxdct()
    for payload in P.SD_PAYLOADS:
        for img in (texture512[:, :500], sd_watermarked(texture512, payload.bits)):
            bgr = np.ascontiguousarray(img[:, :, ::-1])
            ref = np.asarray(md.EmbedMaxDct([], wmLen=len(payload.bits)).decode(bgr))
            scores = P.wm_block_scores(bgr)
            idx = np.arange(len(scores)) % len(payload.bits)
            means = np.bincount(idx, weights=scores) / np.bincount(idx)
            assert np.array_equal(means * 255 > 127, ref)


# --- offline --------------------------------------------------------------------------------


def test_metadata_reading_opens_no_socket(monkeypatch: pytest.MonkeyPatch, chain: Any) -> None:
    data = signed_generated_jpeg(chain, seed=30)

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert only(P.metadata_findings(data), "c2pa").kind == "generated"


def test_c2pa_in_webp_and_tiff(chain: Any) -> None:
    man = manifest(created("trainedAlgorithmicMedia"))
    for fmt, mime in (("WEBP", "image/webp"), ("TIFF", "image/tiff")):
        b = io.BytesIO()
        photo_like(31, (200, 150)).save(b, fmt)
        f = only(P.metadata_findings(sign(b.getvalue(), mime, man, chain)), "c2pa")
        assert f.kind == "generated", fmt


def test_damaged_file_that_mentions_c2pa_has_no_manifest_finding() -> None:
    text = b"about c2pa and dcterms:provenance"
    plain = jpeg_bytes(photo_like(32))
    data = plain[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + plain[2:]
    for cut in (len(data), len(data) // 2, 300):
        assert P.metadata_findings(data[:cut]) == []


def _kinds_in_child(data: bytes) -> list[str]:
    return [f.kind for f in P.metadata_findings(data)]


def test_forked_workers_read_c2pa_after_the_parent_did(chain: Any) -> None:
    import multiprocessing

    data = signed_generated_jpeg(chain, seed=33)
    assert _kinds_in_child(data) == ["generated"]  # the parent's offline context exists now
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_kinds_in_child, [data, data]) == [["generated"], ["generated"]]


def test_png_software_chunk_names_an_editor() -> None:
    f = only(
        P.metadata_findings(png_with_text(Software="Adobe Photoshop 25.0")), "png_text_software"
    )
    assert f.kind == "edited" and f.score < P.DECISIVE and f.details["tool"] == "Adobe Photoshop"
