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


def mixed_inputs(src: Path, photo_arrays: dict) -> Path:
    """A folder of command-line inputs: mixed sizes and formats (two of one size: one batch), RGBA, 16-bit,
    and a corrupt file."""
    import cv2
    from PIL import Image

    src.mkdir()
    astro, cat = photo_arrays["astronaut"], photo_arrays["chelsea"]
    Image.fromarray(astro[:200, :240]).save(src / "a.png")
    Image.fromarray(astro[200:400, 100:340]).save(src / "b.jpg", quality=95)  # same size as a: one batch
    Image.fromarray(cat[:150, :170]).save(src / "c.webp", lossless=True)
    rgba = np.dstack([cat[:90, :120], np.tile(np.linspace(0, 255, 120, dtype=np.uint8), (90, 1))])
    Image.fromarray(rgba, "RGBA").save(src / "d_rgba.png")
    deep = (astro[:64, :80].astype(np.uint16) * 257)[..., ::-1]  # 16-bit, BGR for cv2
    cv2.imwrite(str(src / "e16.png"), np.ascontiguousarray(deep))
    (src / "f_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return src
