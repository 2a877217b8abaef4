"""Shared fixtures: the pack loaded as ComfyUI loads it, devices, dtypes and test photos."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # dev support shared with benchmarks/tools

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from packloader import ROOT, load_pack  # noqa: E402,F401  (ROOT is re-exported to the test modules)

CUDA = torch.cuda.is_available()

pytest_plugins = ["modelfiles"]  # the u2netp model fixture, for every test module

PACK = load_pack()  # once per session, at collection, so tests can parametrise over its nodes


@pytest.fixture(scope="session")
def pack():
    return PACK


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "cuda" and not CUDA:
        pytest.skip("CUDA is not available")
    return torch.device(request.param)


BACKENDS = ("native", "torch")  # every op's two paths: the reference library on the CPU, and batched torch


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each op runs both paths against the same reference (the torch path on the CPU here, on GPUs in use)."""
    return request.param


@pytest.fixture(params=["float32", pytest.param("float16", marks=pytest.mark.gpu)])
def dtype(request, device):
    if request.param == "float16" and device.type != "cuda":
        pytest.skip("float16 is tested on CUDA only")
    return getattr(torch, request.param)


def _photo(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3]


@pytest.fixture(scope="session")
def photo_arrays() -> dict[str, np.ndarray]:
    """Real photos from scikit-image, uint8 RGB, of sizes not divisible by common tile counts."""
    return {n: _photo(n) for n in ("astronaut", "chelsea", "coffee", "rocket")}


@pytest.fixture(scope="session")
def photos(photo_arrays) -> torch.Tensor:
    """Four real photos cropped to one size (300x451: divisible by neither 8 nor 4) as an IMAGE batch."""
    crops = [a[:300, :451] for a in photo_arrays.values()]
    return torch.from_numpy(np.stack(crops)).float() / 255.0


@pytest.fixture(scope="session")
def synthetic() -> torch.Tensor:
    """Two synthetic RGBA images: gradients, a disc and noise, with a non-trivial alpha."""
    g = torch.Generator().manual_seed(0)
    h, w = 97, 130
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = (((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.1).float()
    a = torch.stack([x, y, disc, 0.25 + 0.75 * x], dim=-1)
    b = torch.rand(h, w, 4, generator=g)
    return torch.stack([a, b])
