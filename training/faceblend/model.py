"""A compact residual CNN for 128×128 face crops, with a blend-boundary head.

Sized for CPU training on 2 cores (≈0.45 G multiply-adds per face, 1.6 M parameters): a
stride-1 first layer, a stride-2 stem, four residual stages (64², 32², 16², 8²) and one logit
from the global average and max of the 8² stage plus the 16² features pooled over the face
core, the band around the landmark hull and the surroundings (the hull is the 4th input
channel). The boundary head reads the 32² stage with the upsampled 16² stage and predicts the
Face X-ray map ``4·M·(1−M)`` of the blend mask at 32×32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.485, 0.456, 0.406, 0.5)  # RGB + landmark hull channel
STD = (0.229, 0.224, 0.225, 0.5)


def _cbr(i: int, o: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class Block(nn.Module):
    def __init__(self, i: int, o: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_cbr(i, o, stride), nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
        )
        self.short: nn.Module = (
            nn.Identity()
            if i == o and stride == 1
            else nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class FaceBlendNet(nn.Module):
    """Input (N, 4, 128, 128) RGB + hull in [0, 1]; logit (N, 1), boundary logits (N, 1, 32, 32)."""

    def __init__(
        self, widths: tuple[int, int, int, int] = (32, 64, 128, 256), stem: int = 24
    ) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 4, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 4, 1, 1))
        # stride-1 first layer (fine detail: a blend's blur or sharpening is 1–2 px wide)
        self.stem0 = nn.Sequential(*_cbr(4, stem, 1))  # 128²
        self.stem = nn.Sequential(*_cbr(stem, w1, 2))  # 64²
        self.layer1 = Block(w1, w1, 1)  # 64²
        self.layer2 = nn.Sequential(Block(w1, w2, 2), Block(w2, w2, 1))  # 32²
        self.layer3 = nn.Sequential(Block(w2, w3, 2), Block(w3, w3, 1))  # 16²
        self.layer4 = Block(w3, w4, 2)  # 8²
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(2 * w4 + 3 * w3, 1)
        self.map_head = nn.Sequential(
            nn.Conv2d(w2 + w3, 32, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the stem always runs in float32: under bfloat16 autocast the input's small
        # differences (a few grey levels on a bright face) would be rounded away
        with torch.autocast(x.device.type, enabled=False):
            hull_in = x[:, 3:4].float()
            x = self.stem0((x.float() - self.mean) / self.std)
        x = self.layer1(self.stem(x))
        f2 = self.layer2(x)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        # the 16² stage pooled separately over the face's core, the band around the landmark
        # hull (where a pasted face ends) and the surroundings: the classifier compares them
        hull = F.avg_pool2d(hull_in, hull_in.shape[-1] // f3.shape[-1])
        dil = F.max_pool2d(hull, 5, 1, 2)
        ero = -F.max_pool2d(-hull, 5, 1, 2)
        regions = [ero, dil - ero, 1 - dil]
        pooled = [(f3 * r).sum((2, 3)) / (r.sum((2, 3)) + 1e-3) for r in regions]
        pooled += [f4.mean((2, 3)), f4.amax((2, 3))]  # global average and max
        logit = self.fc(self.drop(torch.cat(pooled, 1)))
        up = F.interpolate(f3, scale_factor=2.0, mode="nearest")
        bmap = self.map_head(torch.cat([f2, up], 1))
        return logit, bmap


class Exported(nn.Module):
    """The exported graph: the logit and the boundary map as probabilities."""

    def __init__(self, net: FaceBlendNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit, bmap = self.net(x)
        return logit, torch.sigmoid(bmap)
