"""Shared by the video tests: the synthetic clip and the modules under test.

The clip has a known subject: a disc with a 4 px soft edge moving right over a colour gradient, 24 frames of
96x64 (even sizes: 4:2:0 codecs need no rounding).
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch

av = pytest.importorskip("av")

H, W, N = 64, 96, 24


def disc_clip(n: int = N, h: int = H, w: int = W) -> torch.Tensor:
    """RGBA ``[n, h, w, 4]``: a disc of radius 18 with a 4 px linear edge moving 2 px right per frame."""
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    frames = []
    for i in range(n):
        alpha = ((18 - torch.hypot(xx - (24 + 2 * i), yy - h / 2)) / 4 + 0.5).clamp(0, 1)
        rgb = torch.stack([xx / w, yy / h, torch.full_like(xx, 0.25 + 0.02 * (i % 30))], dim=-1)
        frames.append(torch.cat([rgb, alpha[..., None]], dim=-1))
    return torch.stack(frames)


@pytest.fixture(scope="module", name="clip")
def clip_fixture() -> torch.Tensor:
    """Fixture ``clip``: ``disc_clip()``, RGBA ``[N, H, W, 4]``."""
    return disc_clip()


@pytest.fixture(scope="module", name="vio")
def vio_fixture(pack):
    """Fixture ``vio``: the video modules (video_read, video_write, video_save, temporal, masks, checks)."""
    mods = {m: importlib.import_module(f"{pack.__name__}.utils.{m}")
            for m in ("video_read", "video_write", "video_save", "temporal", "masks", "checks")}
    return SimpleNamespace(**mods)
