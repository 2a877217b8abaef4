"""Remove Background's runtimes: torch (the ONNX graph converted) against onnxruntime, the choice, the
fallback, ComfyUI's model management, the cache, cancel, and a machine without onnxruntime."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from conftest import PACK, ROOT
from rembg_cases import models, rb, run

backends = rb.backends
onnx = pytest.importorskip("onnx")


def _photos() -> list[np.ndarray]:
    """Eight real photos of mixed sizes: scikit-image's colour samples and the pack's own assets."""
    from PIL import Image
    from skimage import data

    arrays = [getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field")]
    arrays += [np.asarray(Image.open(ROOT / "assets" / n).convert("RGB")) for n in ("cleancut_cat.jpg",
                                                                                   "cleancut_example.jpg")]
    return [a[..., :3] for a in arrays]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).float().div(255).unsqueeze(0)


def _agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    """Mean and max |a - b| in 1/255 steps, IoU of the masks above 0.5."""
    diff = (a - b).abs()
    iou = ((a > 0.5) & (b > 0.5)).sum().item() / max(1, ((a > 0.5) | (b > 0.5)).sum().item())
    return diff.mean().item() * 255, diff.max().item() * 255, iou


# The parity: the converted graph computes in another order than onnxruntime's kernels (~2e-5 on the
# model's 0..1 output), which can move the 8-bit mask a level before Pillow's resize spreads it.
MEAN, MAX, IOU = 0.5, 3.0, 0.999


@pytest.mark.model
@pytest.mark.slow
def test_torch_matches_onnxruntime_on_single_photos(u2netp):
    for array in _photos():
        image = _tensor(array)
        torch_mask = run(image, runtime="torch")[1]
        ort_mask = run(image, runtime="onnxruntime")[1]
        mean, most, iou = _agreement(torch_mask, ort_mask)
        assert mean <= MEAN and most <= MAX and iou >= IOU, (array.shape, mean, most, iou)


@pytest.mark.model
@pytest.mark.slow
def test_torch_matches_onnxruntime_on_a_batch_of_eight(u2netp):
    from PIL import Image

    batch = torch.cat([_tensor(np.asarray(Image.fromarray(a).resize((400, 300), Image.LANCZOS))) for a in _photos()])
    torch_cut, torch_mask, _ = run(batch, runtime="torch")
    ort_cut, ort_mask, _ = run(batch, runtime="onnxruntime")
    mean, most, iou = _agreement(torch_mask, ort_mask)
    assert mean <= MEAN and most <= MAX and iou >= IOU, (mean, most, iou)
    for i in range(batch.shape[0]):  # a batch through the module equals each image alone
        alone = run(batch[i:i + 1], runtime="torch")[1]
        assert _agreement(alone, torch_mask[i:i + 1])[1] <= 1.0
    assert torch_cut.shape == ort_cut.shape == (8, 300, 400, 4)


@pytest.mark.model
def test_auto_on_the_cpu_is_onnxruntime_bit_identical_to_rembg(u2netp, photos):
    import rembg

    session = rembg.new_session("u2netp", providers=["CPUExecutionProvider"])
    mask = run(photos[:2])[1]
    for i, array in enumerate(PACK.utils.bridges.tensor2np(photos[:2])):
        ref = np.asarray(rembg.remove(array, session=session, only_mask=True))
        assert np.array_equal(np.round(mask[i].numpy() * 255).astype(np.uint8), ref)


def test_choice_of_runtime(monkeypatch):
    cuda, cpu, mps = torch.device("cuda"), torch.device("cpu"), torch.device("mps")
    assert backends.choose("auto", cuda) == backends.choose("auto", mps) == "torch"
    assert backends.choose("auto", cpu) == "onnxruntime"
    assert backends.choose("onnxruntime", cuda) == "onnxruntime" and backends.choose("torch", cpu) == "torch"
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)  # onnxruntime not installed
    assert backends.choose("auto", cpu) == "torch"


def _graph_file(path, op: str | None = None):
    """A u2net-shaped tiny model: [1,3,320,320] -> 3x3 conv -> (``op``) -> sigmoid -> [1,1,320,320]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((1, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])]
    last = "c"
    if op is not None:
        nodes.append(helper.make_node(op, ["c"], ["o"]))
        last = "o"
    nodes.append(helper.make_node("Sigmoid", [last], ["y"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 320, 320])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 320, 320])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


UNCONVERTED = "Shrink"  # an operator onnxruntime runs and the converter does not


@pytest.fixture
def odd_model(tmp_path, monkeypatch):
    """A user's own model file whose graph uses an operator the converter lacks."""
    onnx_torch = pytest.importorskip(f"{PACK.__name__}.utils.rembg.onnx_torch")
    assert UNCONVERTED not in onnx_torch.SUPPORTED
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    _graph_file(tmp_path / "odd.onnx", UNCONVERTED)
    _say_fallback_reset()
    yield "odd.onnx"
    _say_fallback_reset()


def _say_fallback_reset():
    backends._say_fallback.cache_clear()


def test_auto_falls_back_to_onnxruntime_with_one_log_line(odd_model, monkeypatch, caplog):
    monkeypatch.setattr(backends.runtime, "compute_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(backends, "choose", lambda requested, device: "torch" if requested == "auto" else requested)
    image = torch.rand(2, 40, 50, 3)
    with caplog.at_level(logging.INFO, logger="cleancut"):
        first = run(image, model="u2net_custom", model_file=odd_model)[1]
        again = run(image, model="u2net_custom", model_file=odd_model)[1]
    lines = [r.getMessage() for r in caplog.records if "runs on onnxruntime" in r.getMessage()]
    assert len(lines) == 1 and "u2net_custom" in lines[0] and UNCONVERTED in lines[0]
    direct = run(image, model="u2net_custom", model_file=odd_model, runtime="onnxruntime")[1]
    assert torch.equal(first, direct) and torch.equal(again, direct)


def test_torch_on_an_unconvertible_graph_says_to_choose_onnxruntime(odd_model):
    with pytest.raises(RuntimeError, match=f"u2net_custom.*{UNCONVERTED}.*'onnxruntime'"):
        run(torch.rand(1, 40, 50, 3), model="u2net_custom", model_file=odd_model, runtime="torch")


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """A convertible user model, so that runtime tests run in milliseconds."""
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    _graph_file(tmp_path / "tiny.onnx")
    backends.clear()
    yield "tiny.onnx"
    backends.clear()


def test_the_module_is_converted_once_per_file_and_reused(tiny_model, monkeypatch):
    onnx_torch = pytest.importorskip(f"{PACK.__name__}.utils.rembg.onnx_torch")
    made = []
    real = onnx_torch.convert
    monkeypatch.setattr(onnx_torch, "convert", lambda *a, **k: made.append(a) or real(*a, **k))
    image = torch.rand(3, 30, 40, 3)
    first = run(image, model="u2net_custom", model_file=tiny_model, runtime="torch")
    second = run(image[:1], model="u2net_custom", model_file=tiny_model, runtime="torch", only_mask=True)
    assert len(made) == 1
    assert torch.equal(first[1][:1], second[1])
    backends.clear()  # frees the module: the next run converts again
    run(image[:1], model="u2net_custom", model_file=tiny_model, runtime="torch")
    assert len(made) == 2


class Interrupted(Exception):
    pass


def test_cancel_between_runs_on_the_torch_runtime(tiny_model, monkeypatch):
    calls = []
    real_call = backends.TorchBackend.__call__
    monkeypatch.setattr(backends.TorchBackend, "__call__",
                        lambda self, x, shrink=False: calls.append(x.shape[0]) or real_call(self, x, shrink))
    checks = []

    def cancel_on_third():
        checks.append(1)
        if len(checks) == 3:
            raise Interrupted

    monkeypatch.setattr(backends.runtime, "raise_if_cancelled", cancel_on_third)
    monkeypatch.setitem(backends.TORCH_RUN_IMAGES["cpu"], 320, 2)  # runs of 2 images
    with pytest.raises(Interrupted):
        run(torch.rand(12, 30, 40, 3), model="u2net_custom", model_file=tiny_model, runtime="torch")
    assert sum(calls) < 12 and all(n <= 2 for n in calls)  # stopped part-way, whole runs only


def test_under_comfyui_the_module_is_loaded_by_its_model_management(tiny_model, monkeypatch):
    loaded = []

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device

    mm = types.SimpleNamespace(get_torch_device=lambda: torch.device("cpu"),
                               text_encoder_offload_device=lambda: torch.device("cpu"),
                               load_models_gpu=lambda models, memory_required=0: loaded.append(
                                   (models, memory_required)),
                               throw_exception_if_processing_interrupted=lambda: None)
    fakes = {"comfy.model_management": mm, "comfy.model_patcher": types.SimpleNamespace(ModelPatcher=ModelPatcher)}
    monkeypatch.setattr(backends.runtime, "comfy", lambda name: fakes.get(name))
    run(torch.rand(3, 30, 40, 3), model="u2net_custom", model_file=tiny_model, runtime="torch")
    assert loaded, "load_models_gpu was never called"
    patcher = loaded[0][0][0]
    assert isinstance(patcher, ModelPatcher) and isinstance(patcher.model, torch.nn.Module)
    assert all(p[0][0] is patcher for p in loaded) and all(m > 0 for _, m in loaded)  # one patcher, room asked
    params = list(patcher.model.parameters())
    assert params and not any(p.requires_grad for p in params)


def test_outputs_do_not_require_grad_and_inputs_are_untouched(tiny_model):
    image = torch.rand(2, 30, 40, 3, requires_grad=True)
    before = image.detach().clone()
    outs = run(image, model="u2net_custom", model_file=tiny_model, runtime="torch")
    assert not any(o.requires_grad for o in outs)
    assert torch.equal(image.detach(), before)


@pytest.mark.model
def test_torch_runtime_without_onnxruntime_installed(u2netp):
    """In a fresh process where ``import onnxruntime`` fails: runtime torch works, and auto on the CPU picks it."""
    code = f"""
import sys, importlib.abc
class NoOrt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("onnxruntime is not installed here")
sys.meta_path.insert(0, NoOrt())
sys.path.insert(0, {str(ROOT / 'tests')!r})
import torch
from conftest import load_pack
p = load_pack()
node = p.NODE_CLASS_MAPPINGS["CleanCutRembg"]()
args = dict(model="u2netp", alpha_matting=False, alpha_matting_foreground_threshold=240,
            alpha_matting_background_threshold=10, alpha_matting_erode_size=10, only_mask=False,
            post_process_mask=False, background="transparent")
image = torch.rand(2, 64, 80, 3)
a = node.run(image, **args, runtime="torch")[1]
b = node.run(image, **args)[1]
assert torch.equal(a, b) and a.shape == (2, 64, 80)
print(sorted(m for m in sys.modules if m.split(".")[0] == "onnxruntime"))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "U2NET_HOME": str(u2netp.parent)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_runtime_is_a_checked_option():
    with pytest.raises(ValueError, match="runtime"):
        run(torch.rand(1, 8, 8, 3), runtime="tensorrt")
    assert models.MODEL_NAMES[0] == "u2netp"


@pytest.mark.model
def test_command_line_runtime_flag(u2netp, tmp_path, photo_arrays):
    import importlib

    from PIL import Image

    main = importlib.import_module(PACK.__name__ + ".cli").main
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo_arrays["chelsea"][:160, :200]).save(src / "cat.png")
    masks = {}
    for name in ("torch", "onnxruntime"):
        out = tmp_path / name
        assert main(["cutout", str(src), "--out", str(out), "--runtime", name, "--save", "mask", "--quiet"]) == 0
        masks[name] = np.asarray(Image.open(out / "cat_mask.png"), dtype=np.int16)
    assert np.abs(masks["torch"] - masks["onnxruntime"]).max() <= 1
    assert main(["cutout", str(src), "--out", str(tmp_path / "x"), "--runtime", "tensorrt"]) == 2  # usage error


@pytest.mark.model
def test_only_huge_photos_shrink_onnxruntimes_arena(u2netp, monkeypatch):
    """Arena shrinkage costs ~25 % per u2netp run with two runs side by side: asked for huge photos only."""
    inference = rb.inference
    seen = []
    real = backends.OnnxBackend.__call__
    monkeypatch.setattr(backends.OnnxBackend, "__call__",
                        lambda self, x, shrink=False: seen.append(shrink) or real(self, x, shrink))
    run(torch.rand(2, 40, 50, 3), runtime="onnxruntime")
    assert seen and not any(seen)
    seen.clear()
    monkeypatch.setattr(inference, "SHRINK_PIXELS", 40 * 50)  # these photos count as huge now
    mask = run(torch.rand(2, 40, 50, 3), runtime="onnxruntime")[1]
    assert seen and all(seen) and mask.shape == (2, 40, 50)


def test_devices_without_float64_do_the_exact_resize_on_the_cpu():
    """MPS has no float64: Pillow-exact sums would fail there (or round in float32), so they run on the CPU."""
    resample = rb.resample
    assert resample.exact_device(torch.device("mps")) == torch.device("cpu")
    assert resample.exact_device(torch.device("xpu")) == torch.device("cpu")
    assert resample.exact_device(torch.device("cuda")) == torch.device("cuda")
    assert resample.exact_device(torch.device("cpu")) == torch.device("cpu")
