"""EXIF: the text fields that name software or carry generation parameters (Software,
ImageDescription, Make, Model, Artist, XPComment, UserComment), read with Pillow."""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

from PIL import Image

from reclaim.detectors.provenance.base import Finding
from reclaim.detectors.provenance.generators import (
    COMFY_PROMPT,
    COMFY_WORKFLOW,
    generator_finding,
    is_comfy_prompt,
    is_comfy_workflow,
    parameters_finding,
    parse_json,
)
from reclaim.detectors.provenance.tools import software_field_findings

_EXIF_FIELDS = {
    0x0131: "Software",
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x013B: "Artist",
}
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_XP_COMMENT = 0x9C9C


def _decode_user_comment(raw: Any) -> str:
    """EXIF UserComment: an 8-byte character-code header (UNICODE, ASCII or none), then text."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes | bytearray):
        return ""
    b = bytes(raw)
    head, body = b[:8], b[8:]
    if head == b"UNICODE\0":
        cands = [body.decode("utf-16-be", "replace"), body.decode("utf-16-le", "replace")]
        return max(cands, key=lambda s: sum(c.isascii() and c.isprintable() for c in s))
    if head in (b"ASCII\0\0\0", b"\0" * 8):
        return body.decode("latin-1").rstrip("\0")
    return b.decode("utf-8", "replace").rstrip("\0")


def exif_fields(data: bytes) -> dict[str, str]:
    """The EXIF text fields that name software or carry generation parameters."""
    out: dict[str, str] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            exif = im.getexif()
            for tag, name in _EXIF_FIELDS.items():
                v = exif.get(tag)
                if isinstance(v, bytes):
                    v = v.decode("utf-8", "replace")
                if isinstance(v, str) and v.strip("\0 "):
                    out[name] = v.strip("\0 ")
            xp = exif.get(_XP_COMMENT)
            if isinstance(xp, bytes | tuple):
                with contextlib.suppress(UnicodeDecodeError, TypeError, ValueError):
                    out["XPComment"] = bytes(xp).decode("utf-16-le").rstrip("\0")
            sub = exif.get_ifd(_EXIF_IFD)
            uc = _decode_user_comment(sub.get(_USER_COMMENT))
            if uc.strip("\0 "):
                out["UserComment"] = uc.strip("\0 ")
    except Exception:  # Pillow raises many types on hostile headers; metadata is best effort
        return out
    return out


def _parameters(fields: dict[str, str]) -> list[Finding]:
    """A1111-style generation parameters in the first comment field that holds them."""
    for key in ("UserComment", "ImageDescription", "XPComment"):
        v = fields.get(key, "")
        f = parameters_finding("EXIF", key, v) if v else None
        if f:
            return [f]
    return []


def _comfyui(fields: dict[str, str]) -> list[Finding]:
    """ComfyUI's animated WebP/PNG savers put the graph in Make ("Prompt:{…}") and
    ImageDescription ("Workflow:{…}")."""
    make, desc = fields.get("Make", ""), fields.get("ImageDescription", "")
    if make.startswith("Prompt:") and is_comfy_prompt(parse_json(make[7:])):
        return [generator_finding("EXIF", "Make", "ComfyUI", *COMFY_PROMPT, make)]
    if desc.startswith("Workflow:") and is_comfy_workflow(parse_json(desc[9:])):
        return [generator_finding("EXIF", "ImageDescription", "ComfyUI", *COMFY_WORKFLOW, desc)]
    return []


def exif_findings(fields: dict[str, str]) -> list[Finding]:
    """Generation parameters and ComfyUI graphs in EXIF fields, then the known tools named in
    the fields meant for software and device names (not captions) that those did not name."""
    out = _parameters(fields) + _comfyui(fields)
    seen = {str(f.details.get("tool")) for f in out}
    keys = ("Software", "Make", "Model")
    return out + software_field_findings("EXIF", fields, keys, seen, ignore_prefix="Prompt:")
