"""bridges: rounding to 8 bit, PIL/NumPy round trips, alpha and 16-bit handling."""

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.mark.parametrize("shape", [(7, 9, 3), (2, 7, 9, 4), (5, 6), (3, 5, 6), (2, 3, 5, 6, 3)])
def test_to_uint8_rounds_and_clamps_like_numpy(pack, shape):
    x = torch.rand(shape) * 1.6 - 0.3  # out-of-range values on both sides
    ref = np.clip(np.rint(x.numpy() * 255.0), 0, 255).astype(np.uint8)
    got = pack.utils.bridges.to_uint8(x)
    assert got.dtype == np.uint8 and got.shape == ref.shape
    # Exact halves may round either way (half-to-even vs. half-up): allow one level on those alone.
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4


def test_to_uint8_rounds_not_truncates(pack):
    x = torch.full((1, 2, 2, 3), 0.999 * 200 / 255)  # 199.8 levels: truncation would give 199
    assert (pack.utils.bridges.to_uint8(x) == 200).all()


def test_pil_round_trip_keeps_rgba_and_values(pack):
    b = pack.utils.bridges
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 5, 6, 4)).astype(np.float32) / 255)
    pil = b.tensor2pil(x)
    assert [im.mode for im in pil] == ["RGBA", "RGBA"]
    assert torch.equal(b.pil2tensor(pil), x)


def test_pil2tensor_16_bit_grey_and_palette_alpha(pack):
    b = pack.utils.bridges
    grey16 = Image.fromarray(np.array([[0, 65535], [32768, 257]], dtype=np.uint16))
    t = b.pil2tensor(grey16)
    want = torch.tensor([[0, 1.0], [32768 / 65535, 257 / 65535]])
    assert t.shape == (1, 2, 2, 3) and torch.allclose(t[0, :, :, 0], want)
    pal = Image.new("P", (3, 3))
    pal.info["transparency"] = 0
    assert b.pil2tensor(pal).shape[-1] == 4


def test_np2tensor_rejects_mixed_sizes(pack):
    with pytest.raises(ValueError, match="one size"):
        pack.utils.bridges.np2tensor([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])


@pytest.mark.parametrize("shape", [(37, 23, 3), (37, 23, 4), (37, 23), (2, 37, 23, 4)])
def test_to_uint8_and_to_pil_in_bands_equal_one_pass(pack, monkeypatch, shape):
    """A band of rows at a time (here 3 rows of 23 px): the same bytes as one conversion, strided views too."""
    import cv2

    b = pack.utils.bridges
    x = torch.rand(shape) * 1.6 - 0.3
    a = x.numpy()
    rows = a.reshape(-1, *a.shape[-2:]) if a.ndim > 2 else a
    whole = cv2.convertScaleAbs(np.maximum(rows, 0.0), alpha=255.0).reshape(shape)  # the one-pass conversion
    monkeypatch.setattr(b, "BAND_ELEMENTS", 3 * 23 * (shape[-1] if len(shape) > 2 else 1))
    assert np.array_equal(b.to_uint8(x), whole)
    if len(shape) == 3:
        padded = torch.cat([x, torch.rand(*shape[:2], 1)], -1)[..., :shape[-1]]  # a strided view, as a cut-out's RGB
        mode = "RGBA" if shape[-1] == 4 else "RGB"
        assert np.array_equal(np.asarray(b.to_pil(padded, mode)), whole)
        assert b.to_pil(padded, mode).tobytes() == Image.fromarray(whole, mode).tobytes()
    if len(shape) == 2:
        assert np.array_equal(np.asarray(b.to_pil(torch.cat([x[..., None]] * 2, -1)[..., 1], "L")), whole)
