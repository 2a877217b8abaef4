"""API-format prompts through the in-repo executor: validation as the server does, then execution."""

import importlib

import pytest
import torch
from executor import PromptError, run_prompt, tensor_source


@pytest.fixture
def classes(pack, photos, synthetic):
    return {**pack.NODE_CLASS_MAPPINGS, "TestSource": tensor_source({"photos": photos, "rgba": synthetic})}


def chain(**gamma_inputs):
    return {
        "1": {"class_type": "TestSource", "inputs": {"key": "photos"}},
        "2": {"class_type": "CleanCutGammaGain", "inputs": {"image": ["1", 0], "gamma": 1.2, "gain": 1.0,
                                                             **gamma_inputs}},
        "3": {"class_type": "CleanCutSaturation", "inputs": {"image": ["2", 0], "saturation": 0.5}},
    }


def test_chain_runs_and_matches_utils(pack, classes, photos):
    run = run_prompt(chain(), classes)
    (out,) = run.outputs["3"]
    ref = pack.utils.adjust.saturation(pack.utils.adjust.gamma_gain(photos, 1.2, 1.0), 0.5)
    assert torch.allclose(out, ref, atol=1e-6)
    assert out.shape == photos.shape


def test_string_numbers_are_converted_like_the_server(classes):
    run = run_prompt(chain(gamma="1.2"), classes)  # the server converts widget strings to FLOAT
    assert run.outputs["2"][0].shape[0] == 4


@pytest.mark.parametrize("inputs, message", [
    ({"gamma": 9.0}, "bigger than max"),
    ({"gain": -1}, "smaller than min"),
    ({"gamma": "bright"}, "failed to convert"),
    ({"image": ["9", 0]}, "missing node"),
    ({"image": ["1", 1]}, "return type mismatch"),
    ({"colour": 1}, "unknown inputs"),
])
def test_invalid_prompts_are_rejected_before_running(classes, inputs, message):
    with pytest.raises(PromptError, match=message):
        run_prompt(chain(**inputs), classes)


def test_missing_required_input_and_bad_combo(classes):
    prompt = chain()
    del prompt["2"]["inputs"]["gamma"]
    with pytest.raises(PromptError, match="required input 'gamma'"):
        run_prompt(prompt, classes)
    prompt = chain()
    prompt["1"]["inputs"]["key"] = "nope"
    with pytest.raises(PromptError, match="not in list"):
        run_prompt(prompt, classes)


def test_wrong_output_count_is_caught(classes):
    class Broken:
        CATEGORY, FUNCTION, RETURN_TYPES = "x", "run", ("IMAGE", "MASK")

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",)}}

        def run(self, image):
            return (image,)

    prompt = {"1": {"class_type": "TestSource", "inputs": {"key": "photos"}},
              "2": {"class_type": "Broken", "inputs": {"image": ["1", 0]}}}
    with pytest.raises(PromptError, match="RETURN_TYPES declares 2"):
        run_prompt(prompt, {**classes, "Broken": Broken})


def test_mask_and_composite_prompt(pack, classes, photos):
    """Threshold cut -> Refine Mask -> Composite as an API prompt equals the library; a bad colour names its input."""
    prompt = {
        "1": {"class_type": "TestSource", "inputs": {"key": "photos"}},
        "2": {"class_type": "CleanCutAlphaThreshold", "inputs": {"images": ["1", 0], "mode": "background",
                                                                  "threshold": 110, "threshold_tolerance": 2}},
        "3": {"class_type": "CleanCutMask", "inputs": {"mask": ["2", 1], "grow": 3, "fill_holes": True,
                                                        "remove_islands": 50, "smooth": 0.0, "feather": 4,
                                                        "feather_mode": "outside", "black_point": 0.0,
                                                        "white_point": 1.0, "invert": False, "temporal": 0.3}},
        "4": {"class_type": "CleanCutComposite", "inputs": {"foreground": ["1", 0], "background": "color",
                                                             "color": "#00FF00", "fit": "cover", "blur": 20.0,
                                                             "linear_light": False, "mask": ["3", 0]}},
    }
    run = run_prompt(prompt, classes)
    (mask,), (out,) = run.outputs["3"], run.outputs["4"]
    masks = importlib.import_module(pack.__name__ + ".utils.masks")
    cut = pack.NODE_CLASS_MAPPINGS["CleanCutAlphaThreshold"]().run(photos, "background", 110, 2)[1]
    expected = masks.refine_mask(cut, masks.MaskOptions(grow=3, fill_holes=True, remove_islands=50, feather=4,
                                                        feather_mode="outside", temporal=0.3))
    assert torch.allclose(mask, expected, atol=1e-6) and out.shape == photos.shape
    green = torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(out, photos * mask[..., None] + green * (1 - mask[..., None]), atol=1e-5)
    prompt["4"]["inputs"]["color"] = "green"
    with pytest.raises(ValueError, match="color:"):
        run_prompt(prompt, classes)
