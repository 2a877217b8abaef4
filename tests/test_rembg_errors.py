"""Remove Background (rembg): errors naming the input, settings, providers, the run plan, lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from rembg_cases import DEFAULTS, NODE, models, rb, run, sessions

# ---- errors, settings, sessions, laziness ----

@pytest.mark.parametrize("bad, match", [(torch.rand(1, 8, 8, 1), "channels"), (torch.rand(0, 8, 8, 3), "empty"),
                                        (torch.full((1, 8, 8, 3), float("nan")), "NaN"),
                                        (torch.rand(8, 8, 3), "IMAGE batch")])
def test_bad_images_are_value_errors_naming_the_input(bad, match):
    with pytest.raises(ValueError, match=f"images: .*{match}"):
        run(bad)
    with pytest.raises(ValueError, match=f"original: .*{match}"):
        run(torch.rand(1, 8, 8, 3), original=bad)


@pytest.mark.parametrize("original", [torch.rand(1, 9, 8, 3), torch.rand(3, 8, 8, 3)])
def test_mismatched_original_is_a_value_error(original):
    with pytest.raises(ValueError, match="original: .*do not match images"):
        run(torch.rand(2, 8, 8, 3), original=original)


@pytest.mark.parametrize("name, value", [("alpha_matting_foreground_threshold", 256),
                                         ("alpha_matting_background_threshold", -1),
                                         ("alpha_matting_erode_size", 41), ("model", "u3net"),
                                         ("background", "green"), ("only_mask", 1), ("edges", "soft")])
def test_out_of_range_settings_are_value_errors(name, value):
    with pytest.raises(ValueError, match=name):
        run(torch.rand(1, 8, 8, 3), **{name: value})
    with pytest.raises(ValueError, match=name):
            rb.remove_background(torch.rand(1, 8, 8, 3), rb.RembgOptions(**{**DEFAULTS, name: value}))


def test_missing_model_is_a_runtime_error_with_path_md5_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    sessions.get_session.cache_clear()
    with pytest.raises(RuntimeError) as err:
        run(torch.rand(1, 16, 16, 3))
    msg = str(err.value)
    assert "u2netp.onnx" in msg and models.MODELS["u2netp"].md5 in msg and str(tmp_path) in msg
    assert "cleancut models fetch u2netp" in msg


def test_corrupt_model_through_the_node(tmp_path, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    (tmp_path / "u2netp.onnx").write_bytes(b"\x00" * 1000)
    sessions.get_session.cache_clear()
    with pytest.raises(RuntimeError, match=f"{tmp_path / 'u2netp.onnx'} is corrupt.*{models.MODELS['u2netp'].md5}"):
        run(torch.rand(1, 16, 16, 3))


def test_missing_onnxruntime_is_a_clear_runtime_error(u2netp, monkeypatch):
    real = sessions.importlib.import_module

    def no_ort(name, *a):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real(name, *a)
    monkeypatch.setattr(sessions.importlib, "import_module", no_ort)
    sessions.get_session.cache_clear()
    with pytest.raises(RuntimeError, match="onnxruntime is not installed.*onnxruntime-gpu.*onnxruntime"):
        run(torch.rand(1, 8, 8, 3), runtime="onnxruntime")


class _FakeOrt:
    def __init__(self, providers):
        self.providers = providers

    def get_available_providers(self):
        return self.providers


@pytest.mark.parametrize("torch_device, available, expected, warns", [
    ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], ("CUDAExecutionProvider", "CPUExecutionProvider"),
     False),
    ("cuda", ["CPUExecutionProvider"], ("CPUExecutionProvider",), True),  # the onnxruntime-gpu conflict
    ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ("CPUExecutionProvider",), False),
    ("cpu", ["CPUExecutionProvider"], ("CPUExecutionProvider",), False),
])
def test_provider_choice_and_the_cpu_only_warning(monkeypatch, caplog, torch_device, available, expected, warns):
    monkeypatch.setattr(sessions, "onnxruntime", lambda: _FakeOrt(available))
    monkeypatch.setattr(sessions.runtime, "compute_device", lambda: torch.device(torch_device))
    sessions._warn_cpu_only_once.cache_clear()
    with caplog.at_level("WARNING", logger="cleancut"):
        assert sessions.default_providers() == expected
        assert sessions.default_providers() == expected  # asked twice, warned at most once
    messages = [r.getMessage() for r in caplog.records if "onnxruntime offers only the CPU" in r.getMessage()]
    assert len(messages) == (1 if warns else 0)
    if warns:
        assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in messages[0]
    sessions._warn_cpu_only_once.cache_clear()


def test_plan_runs_small_models_in_parallel_on_the_cpu(monkeypatch):
    monkeypatch.setattr(sessions, "default_providers", lambda: ("CPUExecutionProvider",))
    monkeypatch.setattr(sessions.runtime, "cpu_count", lambda: 8)
    monkeypatch.setattr(sessions, "session_threads", lambda model, providers: None)  # no session yet
    small, big = (models.Model(models.MODELS[n], Path(n)) for n in ("u2netp", "birefnet-general"))
    assert sessions.plan(small, 16) == (("CPUExecutionProvider",), 4, 2)
    assert sessions.plan(small, 1) == (("CPUExecutionProvider",), 1, 0)  # one image: every core on it
    assert sessions.plan(big, 16) == (("CPUExecutionProvider",), 1, 0)
    monkeypatch.setattr(sessions, "session_threads", lambda model, providers: 2)  # a session with 2 threads
    assert sessions.plan(small, 1) == (("CPUExecutionProvider",), 1, 2)  # ...is kept to, never a second
    assert sessions.plan(small, 16) == (("CPUExecutionProvider",), 4, 2)
    monkeypatch.setattr(sessions, "default_providers", lambda: ("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert sessions.plan(small, 16)[1:] == (1, 0)


def test_importing_the_pack_imports_neither_rembg_nor_onnxruntime():
    code = ("import sys, importlib.util; sys.path.insert(0, 'tests'); from conftest import load_pack; "
            "p = load_pack(); assert 'CleanCutRembg' in p.NODE_CLASS_MAPPINGS; "
            "print(sorted(m for m in ('rembg', 'onnxruntime', 'pymatting') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_threshold_tooltips_say_direction_and_units():
    spec = NODE.INPUT_TYPES()["required"]
    for name in ("alpha_matting_foreground_threshold", "alpha_matting_background_threshold"):
        tip = spec[name][1]["tooltip"]
        assert "0-255" in tip and ("above" in tip or "below" in tip) and ("Higher" in tip or "Lower" in tip)
    assert "pixels" in spec["alpha_matting_erode_size"][1]["tooltip"]
