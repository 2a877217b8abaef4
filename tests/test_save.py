"""Save Cut-outs: file names, roles, counter, no overwrite, alpha, metadata, broadcasting, errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture
def outdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def node(pack):
    return pack.NODE_CLASS_MAPPINGS["CleanCutSave"]()


def test_full_set_is_written_with_alpha_and_metadata(node, outdir):
    original = torch.rand(2, 16, 24, 3)
    cutout = torch.rand(2, 16, 24, 4)
    mask = (torch.rand(2, 16, 24) > 0.5).float()
    res = node.save("set/item", "png", original=original, cutout=cutout, extracted=cutout, mask=mask,
                    prompt={"1": {"class_type": "X"}}, extra_pnginfo={"workflow": {"nodes": []}})
    names = sorted(p.name for p in (outdir / "set").iterdir())
    assert names == [f"item_{c:05}_{r}.png" for c in (1, 2) for r in sorted(["original", "cutout", "extracted",
                                                                               "mask"])]
    cut = Image.open(outdir / "set" / "item_00002_cutout.png")
    assert cut.mode == "RGBA"
    assert np.array_equal(np.asarray(cut), np.rint(cutout[1].numpy() * 255).astype(np.uint8)), "lossless, rounded"
    m = Image.open(outdir / "set" / "item_00001_mask.png")
    assert m.mode == "L" and np.array_equal(np.asarray(m), (mask[0].numpy() * 255).astype(np.uint8))
    assert json.loads(cut.text["prompt"]) == {"1": {"class_type": "X"}}
    assert json.loads(cut.text["workflow"]) == {"nodes": []}
    ui = res["ui"]["images"]
    assert len(ui) == 6 and all(e["subfolder"] == "set" and e["type"] == "output" for e in ui)


def test_counter_continues_and_never_overwrites(node, outdir):
    img = torch.rand(1, 8, 8, 3)
    node.save("a", "png", original=img)
    (outdir / "a_00007_cutout.png").write_bytes(b"someone else's file")
    node.save("a", "png", original=img)
    assert (outdir / "a_00008_original.png").exists()
    assert (outdir / "a_00007_cutout.png").read_bytes() == b"someone else's file"


def test_webp_is_lossless(node, outdir):
    cutout = torch.rand(1, 12, 12, 4)
    node.save("w", "webp (lossless)", cutout=cutout)
    back = np.asarray(Image.open(outdir / "w_00001_cutout.webp").convert("RGBA"))
    assert np.array_equal(back, np.rint(cutout[0].numpy() * 255).astype(np.uint8))


def test_single_original_broadcasts_to_many_cutouts(node, outdir):
    node.save("b", "png", original=torch.rand(1, 8, 8, 3), cutout=torch.rand(3, 8, 8, 4))
    assert len(list(outdir.glob("b_*_original.png"))) == 3
    assert len(list(outdir.glob("b_*_cutout.png"))) == 3


def test_mixed_sizes_between_roles_are_fine(node, outdir):
    node.save("m", "png", original=torch.rand(2, 30, 20, 3), cutout=torch.rand(2, 8, 8, 4))
    assert Image.open(outdir / "m_00002_original.png").size == (20, 30)


def test_errors(node, outdir):
    with pytest.raises(ValueError, match="original: 2, cutout: 3"):
        node.save("e", "png", original=torch.rand(2, 8, 8, 3), cutout=torch.rand(3, 8, 8, 4))
    with pytest.raises(ValueError, match="Nothing to save"):
        node.save("e", "png")
    with pytest.raises(ValueError, match="outside the output folder"):
        node.save("../../escape", "png", original=torch.rand(1, 8, 8, 3))
    with pytest.raises(ValueError, match="format"):
        node.save("e", "jpeg", original=torch.rand(1, 8, 8, 3))
    with pytest.raises(ValueError, match="mask: "):
        node.save("e", "png", mask=torch.rand(1, 8, 8, 3))


def test_metadata_can_be_disabled(node, outdir, pack, monkeypatch):
    monkeypatch.setattr(pack.utils.runtime, "metadata_disabled", lambda: True)
    node.save("n", "png", original=torch.rand(1, 8, 8, 3), prompt={"a": 1})
    assert "prompt" not in Image.open(outdir / "n_00001_original.png").text
