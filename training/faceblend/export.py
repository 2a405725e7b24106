"""Export the face-blend network to ONNX (opset 17) with reclaim's metadata.

The graph takes ``image`` (N, 4, 128, 128) float32 (RGB + landmark hull) in [0, 1] and
returns ``logit`` (N, 1) and ``boundary`` (N, 1, 32, 32, probabilities). Calibration,
threshold and the test-split score lists used in the evidence sentences go into the model's
``metadata_props`` under the key ``reclaim`` (JSON), read by ``reclaim.detectors.faceblend``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from reclaim.detectors.faceblend import CHANNELS, INPUT_SIZE
from training.faceblend.model import Exported, FaceBlendNet


def onnx_bytes(net: FaceBlendNet) -> bytes:
    wrapped = Exported(net).eval()
    x = torch.rand(2, CHANNELS, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    f = io.BytesIO()
    torch.onnx.export(
        wrapped,
        (x,),
        f,
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["logit", "boundary"],
        dynamic_axes={"image": {0: "n"}, "logit": {0: "n"}, "boundary": {0: "n"}},
    )
    data = f.getvalue()
    # The exported graph must compute what the network computes.
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in wrapped(x)]
    for g, w in zip(got, want, strict=True):
        if not np.allclose(g, w, atol=1e-4):
            raise RuntimeError(f"ONNX export differs from torch: {np.abs(g - w).max()}")
    return data


def with_metadata(data: bytes, meta: dict[str, Any]) -> bytes:
    model = onnx.load_from_string(data)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key = "reclaim"
    entry.value = json.dumps(meta, separators=(",", ":"))
    model.producer_name = "reclaim training/faceblend"
    model.doc_string = (
        "reclaim face-blend detector (self-blended images, Shiohara & Yamasaki CVPR 2022). "
        "See face_blend.md."
    )
    return bytes(model.SerializeToString())


def write(data: bytes, meta: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(with_metadata(data, meta))
    return path
