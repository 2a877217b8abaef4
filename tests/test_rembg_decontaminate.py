"""The rembg node's ``decontaminate`` input against ``rembg.remove(decontaminate=True)`` (rembg 2.0.86)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rembg_cases import DEFAULTS, run
from test_rembg import rembg_reference


def close(ours: np.ndarray, ref: np.ndarray) -> bool:
    """The issue's tolerance: mean abs difference <= 1/255 and >= 99 % of values within 2/255."""
    d = np.abs(ours - ref)
    return d.mean() <= 1 / 255 and (d <= 2 / 255).mean() >= 0.99


@pytest.fixture(scope="module")
def crops(photos):
    return photos[:, :160, :200].contiguous()


@pytest.mark.model
@pytest.mark.parametrize("background, post", [("transparent", False), ("white", False), ("black", True)])
def test_decontaminate_matches_rembg(u2netp, crops, background, post):
    from rembg_cases import rb

    colour = rb.BACKGROUNDS[background]
    bgcolor = None if colour is None else (int(255 * colour),) * 3 + (255,)
    cutout, mask, _ = run(crops, decontaminate=True, background=background, post_process_mask=post)
    refs = rembg_reference(crops, decontaminate=True, bgcolor=bgcolor, post_process_mask=post)
    plain, _, _ = run(crops, background=background, post_process_mask=post)
    for i, ref in enumerate(refs):
        ours = cutout[i].double().numpy()
        assert close(ours, ref[..., :ours.shape[-1]])
        if colour is None:  # the colours under soft alpha changed, and the alpha did not
            assert np.array_equal(ours[..., 3], plain[i, ..., 3].double().numpy())
            soft = (ours[..., 3] > 0.05) & (ours[..., 3] < 0.95)
            assert np.abs(ours[..., :3] - plain[i, ..., :3].double().numpy())[soft].mean() > 2 / 255


@pytest.mark.model
def test_decontaminate_is_ignored_with_matting_or_a_mask_as_rembg(u2netp, crops):
    for options in (dict(only_mask=True), dict(alpha_matting=True, alpha_matting_erode_size=3)):
        small = crops[:1, :64, :64]
        with_flag, without = run(small, decontaminate=True, **options), run(small, **options)
        assert all(torch.equal(a, b) for a, b in zip(with_flag, without, strict=True))


@pytest.mark.model
def test_prompts_saved_before_decontaminate_existed_still_run(u2netp, crops):
    from conftest import PACK
    from executor import run_prompt, tensor_source

    def prompt(**extra):
        return {"1": {"class_type": "TestSource", "inputs": {"key": "photos"}},
                "2": {"class_type": "CleanCutRembg", "inputs": {"images": ["1", 0], **DEFAULTS, **extra}}}

    classes = {**PACK.NODE_CLASS_MAPPINGS, "TestSource": tensor_source({"photos": crops[:2]})}
    old = run_prompt(prompt(), classes).outputs["2"]
    off = run_prompt(prompt(decontaminate=False), classes).outputs["2"]
    on = run_prompt(prompt(decontaminate=True), classes).outputs["2"]
    assert all(torch.equal(a, b) for a, b in zip(old, off, strict=True))
    assert not torch.equal(old[0], on[0]) and torch.equal(old[1], on[1])
