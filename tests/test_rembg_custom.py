"""rembg 2.0.86's newer models: users' own ONNX files (*_custom), sha256 checksums (bria-rmbg), birefnet-general-fp16.

The custom models run tiny ONNX graphs made here (a seeded 3x3 convolution and a sigmoid, at the input size of
the chosen name) against rembg's own session on the same file.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import PACK
from rembg_cases import download, models, run, sessions
from test_cli import cli_fixture, main_fixture  # noqa: F401  (fixtures cli, main)

backends = PACK.utils.rembg.backends
SettingError = PACK.utils.checks.SettingError
CUSTOM = [("u2net_custom", 320, False), ("dis_custom", 1024, True), ("ben_custom", 1024, False)]


def tiny_onnx(path, size: int | str, seed: int, mean_head: bool = False, batch: int | str = 1):
    """A small model for ``size`` px input: ``[b, 3, S, S]`` -> 3x3 conv (seeded) -> sigmoid (-> mean of 2
    channels) -> ``[b, 1, S, S]``; a ``str`` size or batch is a free dimension of that name."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    channels = 2 if mean_head else 1
    weights = numpy_helper.from_array(rng.normal(0, 0.5, (channels, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(0, 0.1, (channels,)).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["conv"], ["prob" if mean_head else "y"])]
    if mean_head:
        nodes.append(helper.make_node("ReduceMean", ["prob"], ["y"], axes=[1], keepdims=1))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1, size, size])], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime builds too
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """One model folder: rembg's home (U2NET_HOME) and ours; no ComfyUI folder."""
    folder = tmp_path / "models"
    folder.mkdir()
    for var in ("REMBG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("U2NET_HOME", str(folder))
    monkeypatch.setattr(PACK.utils.runtime, "model_dirs", lambda kind: [])
    sessions.get_session.cache_clear()
    yield folder
    sessions.get_session.cache_clear()


def rembg_masks(name: str, path, images: torch.Tensor) -> np.ndarray:
    """rembg's own session for ``name`` on the file: ``remove(only_mask=True)`` per image, uint8 ``[B, H, W]``."""
    rembg = pytest.importorskip("rembg")
    from PIL import Image

    session = rembg.new_session(name, model_path=str(path), providers=["CPUExecutionProvider"])
    arrays = PACK.utils.bridges.tensor2np(images)
    return np.stack([np.asarray(rembg.remove(Image.fromarray(a), session=session, only_mask=True)) for a in arrays])


def as_uint8(mask: torch.Tensor) -> np.ndarray:
    return np.rint(mask.double().numpy() * 255).astype(int)


# ---- the *_custom models against rembg ----

@pytest.mark.parametrize("name, size, mean_head", CUSTOM)
def test_custom_model_matches_rembgs_session_on_the_same_file(home, photos, name, size, mean_head):
    path = tiny_onnx(home / f"mine_{name}.onnx", size, seed=size + mean_head, mean_head=mean_head)
    images = photos[:2]
    _, mask, _ = run(images, model=name, model_file=path.name, runtime="onnxruntime")
    ref = rembg_masks(name, path, images)
    diff = np.abs(as_uint8(mask) - ref)
    assert ref.std() > 10, "the tiny model makes a non-trivial mask"
    # Same file, same input bytes, same onnxruntime: exact here (measured), but a differently threaded run (our
    # CPU sessions pin threads and flush denormals) may round float32 otherwise: one truncated 8-bit level, rarely.
    assert diff.max() <= 1 and (diff != 0).mean() < 0.001


def test_input_size_and_normalisation_come_from_the_chosen_name(home, photos):
    """One file of free size and batch, run as u2net_custom (320 px, ImageNet) and as dis_custom (1024 px, mean
    0.5, std 1): each equals rembg's session of that name, and the two masks differ."""
    path = tiny_onnx(home / "any.onnx", "S", seed=3, batch="N")
    images = photos[:3]
    masks = {}
    for name in ("u2net_custom", "dis_custom"):
        masks[name] = as_uint8(run(images, model=name, model_file="any.onnx", runtime="onnxruntime")[1])
        diff = np.abs(masks[name] - rembg_masks(name, path, images))
        assert diff.max() <= 1 and (diff != 0).mean() < 0.001  # see the test above
    assert np.abs(masks["u2net_custom"] - masks["dis_custom"]).mean() > 5


def _onnx_torch():
    """The torch runtime's converter, or a skip while it is not there (importorskip, for the pack's module)."""
    try:
        return importlib.import_module(f"{PACK.__name__}.utils.rembg.onnx_torch")
    except ImportError as exc:
        pytest.skip(f"utils/rembg/onnx_torch.py does not import: {exc}")


@pytest.mark.parametrize("name, size, mean_head", CUSTOM[:2])
def test_custom_model_on_the_torch_runtime_matches_rembg(home, photos, name, size, mean_head):
    _onnx_torch()
    path = tiny_onnx(home / f"t_{name}.onnx", size, seed=7, mean_head=mean_head)
    images = photos[:2]
    backends.clear()
    try:
        _, mask, _ = run(images, model=name, model_file=path.name, runtime="torch")
    finally:
        backends.clear()
    diff = np.abs(as_uint8(mask) - rembg_masks(name, path, images))
    # torch sums the convolution in another order than onnxruntime: float32 rounding moves a truncated 8-bit
    # level by one where the value sits on a boundary (measured: ~3e-5 of the pixels)
    assert diff.max() <= 1 and (diff != 0).mean() < 0.001


# ---- model_file: where it may come from, and errors naming it ----

def test_a_bare_file_name_is_looked_up_in_the_model_folders(home, tmp_path, monkeypatch):
    comfy = tmp_path / "comfy"
    (comfy / "sub").mkdir(parents=True)
    (home / "mine.onnx").write_bytes(b"u2net home")
    (comfy / "sub" / "mine.onnx").write_bytes(b"comfy")
    assert models.resolve("u2net_custom", "mine.onnx").path == home / "mine.onnx"
    monkeypatch.setattr(PACK.utils.runtime, "model_dirs", lambda kind: [str(comfy)])
    assert models.resolve("u2net_custom", "mine.onnx").path == home / "mine.onnx"  # comfy has it in sub/ only
    (comfy / "mine.onnx").write_bytes(b"comfy first")
    model = models.resolve("dis_custom", "mine.onnx")
    assert model.path == comfy / "mine.onnx" and model.spec is models.MODELS["dis_custom"]
    assert models.resolve("ben_custom", "sub/mine.onnx").path == comfy / "sub" / "mine.onnx"
    assert models.resolve("ben_custom", str(comfy / "sub" / "mine.onnx")).path == comfy / "sub" / "mine.onnx"


def test_rembgs_per_model_folder_and_home_are_accepted(home, tmp_path, monkeypatch):
    rembg_home = tmp_path / "rembg"
    monkeypatch.delenv("U2NET_HOME")
    monkeypatch.setenv("REMBG_HOME", str(rembg_home))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    per_model = rembg_home / "models" / "ben_custom"
    per_model.mkdir(parents=True)
    (per_model / "ben2.onnx").write_bytes(b"x")
    assert models.resolve("ben_custom", "ben2.onnx").path == per_model / "ben2.onnx"
    (rembg_home / "elsewhere.onnx").write_bytes(b"x")  # inside rembg's home: rembg accepts it, so do we
    assert models.resolve("ben_custom", str(rembg_home / "elsewhere.onnx")).path == rembg_home / "elsewhere.onnx"


@pytest.mark.parametrize("model, model_file, match", [
    ("u2net_custom", "", "model_file: rembg model 'u2net_custom' runs your own ONNX file"),
    ("dis_custom", "   ", "model_file: rembg model 'dis_custom' runs your own ONNX file"),
    ("u2netp", "mine.onnx", r"model_file: 'mine.onnx' only applies to the \*_custom models"),
    ("ben_custom", "../mine.onnx", "model_file: '../mine.onnx' leaves the model folders"),
    ("ben_custom", 3, "model_file: expected a file name"),
])
def test_model_file_settings_errors_name_model_file(home, model, model_file, match):
    (home.parent / "mine.onnx").write_bytes(b"x")  # exists, but outside the folder
    with pytest.raises(SettingError, match=match):
        PACK.utils.rembg.RembgOptions(model=model, model_file=model_file).check()
    with pytest.raises(SettingError, match=match):
        run(torch.rand(1, 8, 8, 3), model=model, model_file=model_file)


def test_a_path_outside_the_model_folders_is_refused(home):
    outside = home.parent / "elsewhere" / "mine.onnx"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    with pytest.raises(SettingError, match=f"model_file: {outside} lies outside the model folders.*{home}"):
        models.resolve("u2net_custom", str(outside))
    link = home / "link"
    link.symlink_to(outside.parent)  # a folder linked into the model folder is inside it, as for rembg
    assert models.resolve("u2net_custom", "link/mine.onnx").path == link / "mine.onnx"


def test_a_missing_model_file_lists_the_folders(home, tmp_path):
    with pytest.raises(RuntimeError) as err:
        run(torch.rand(1, 8, 8, 3), model="dis_custom", model_file="nope.onnx")
    msg = str(err.value)
    assert msg.startswith("model_file: 'nope.onnx'") and str(home) in msg
    assert str(home / "models" / "dis_custom") in msg and "ComfyUI/models/rembg" in msg


def test_custom_models_have_nothing_to_fetch_or_verify(home):
    with pytest.raises(RuntimeError, match="'ben_custom' has no file to download.*model_file"):
        download.fetch("ben_custom")
    with pytest.raises(SettingError, match="model_file"):
        models.model_path("u2net_custom")
    assert models.find("u2net_custom") is None
    rows = {r.split()[0]: r for r in models.status_rows()}
    for name in models.CUSTOM_NAMES:
        assert rows[name].split()[1] == "custom" and "--model-file" in rows[name]


def test_the_cli_takes_model_file_and_checks_it_up_front(main, home, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    out = tmp_path / "out"
    assert main(["cutout", str(image), "--out", str(out), "--quiet", "--model", "u2net_custom"]) == 2
    err = capsys.readouterr().err
    assert "--model-file:" in err and "runs your own ONNX file" in err and not out.exists()
    assert main(["cutout", str(image), "--out", str(out), "--quiet", "--model-file", "a.onnx"]) == 2
    assert "--model-file:" in capsys.readouterr().err
    assert main(["cutout", str(image), "--out", str(out), "--quiet", "--model", "u2net_custom",
                 "--model-file", "absent.onnx"]) == 1
    assert "model_file: 'absent.onnx'" in capsys.readouterr().err and not out.exists()
    tiny_onnx(home / "tiny.onnx", 320, seed=1)
    assert main(["cutout", str(image), "--out", str(out), "--quiet", "--model", "u2net_custom",
                 "--model-file", "tiny.onnx", "--save", "mask"]) == 0
    assert [p.name for p in out.iterdir()] == ["x_mask.png"]
    assert main(["models", "fetch", "dis_custom"]) == 1
    assert "no file to download" in capsys.readouterr().err


# ---- sha256 checksums (bria-rmbg) ----

PAYLOAD = b"pretend this is RMBG-2.0"


def test_bria_rmbg_is_checked_by_sha256():
    spec = models.MODELS["bria-rmbg"]
    assert spec.algorithm == "sha256" and len(spec.digest) == 64 and spec.md5 == ""
    assert models.MODELS["u2netp"].md5 == "8e83ca70e441ab06c318d82300c84806"  # md5 models keep .md5
    assert "CC BY-NC 4.0" in spec.use and "NON-COMMERCIAL" in spec.use
    tooltip = PACK.NODE_CLASS_MAPPINGS["CleanCutRembg"].REQUIRED["model"][1]["tooltip"]
    assert "bria-rmbg" in tooltip and "CC BY-NC 4.0" in tooltip


def test_a_sha256_model_file_is_verified_by_sha256(home, monkeypatch):
    good = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    monkeypatch.setitem(models.MODELS, "bria-rmbg", replace(models.MODELS["bria-rmbg"], checksum=good))
    path = home / "bria-rmbg-2.0.onnx"  # the release asset's name is accepted too
    path.write_bytes(PAYLOAD)
    assert models.model_path("bria-rmbg") == path and models.resolve("bria-rmbg").path == path
    row = next(r for r in models.status_rows() if r.startswith("bria-rmbg "))
    assert row.split()[1] == "ok"
    wrong = "sha256:" + hashlib.sha256(b"the real weights").hexdigest()
    monkeypatch.setitem(models.MODELS, "bria-rmbg", replace(models.MODELS["bria-rmbg"], checksum=wrong))
    with pytest.raises(RuntimeError) as err:
        models.model_path("bria-rmbg")
    msg = str(err.value)
    assert f"sha256 {hashlib.sha256(PAYLOAD).hexdigest()}, expected {wrong[7:]}" in msg and "md5" not in msg
    assert "cleancut models fetch bria-rmbg" in msg
    row = next(r for r in models.status_rows() if r.startswith("bria-rmbg "))
    assert "CORRUPT (sha256 mismatch)" in row


def test_fetch_verifies_a_download_by_sha256(tmp_path, monkeypatch):
    import io

    good = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    monkeypatch.setitem(models.MODELS, "bria-rmbg", replace(models.MODELS["bria-rmbg"], checksum=good, megabytes=1))
    served = []
    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda url, timeout: served.append(url) or io.BytesIO(PAYLOAD))
    assert download.fetch("bria-rmbg", dest=tmp_path, timeout=1).read_bytes() == PAYLOAD
    assert served == [models.MODELS["bria-rmbg"].url]
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"evil"))
    with pytest.raises(RuntimeError, match=f"downloaded file has sha256 {hashlib.sha256(b'evil').hexdigest()}, "
                                           f"expected {good[7:]}"):
        download.fetch("bria-rmbg", dest=tmp_path / "other", timeout=1)


# ---- birefnet-general-fp16: birefnet-general's verified file, in half precision ----

@pytest.fixture
def fake_birefnet(home, monkeypatch):
    """A tiny ONNX graph as birefnet-general's file (its table digest monkeypatched to match)."""
    path = tiny_onnx(home / "birefnet-general.onnx", "S", seed=5)  # any size: 1024 when run
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(models.MODELS, "birefnet-general",
                        replace(models.MODELS["birefnet-general"], checksum="md5:" + digest))
    return path


def test_fp16_resolves_to_the_verified_birefnet_general_file(fake_birefnet, monkeypatch):
    model = models.resolve("birefnet-general-fp16")
    assert model.path == fake_birefnet and model.name == "birefnet-general-fp16" and model.spec.half
    assert download.fetch("birefnet-general-fp16", dest=fake_birefnet.parent) == fake_birefnet  # the source's file
    monkeypatch.setitem(models.MODELS, "birefnet-general",
                        replace(models.MODELS["birefnet-general"], checksum="md5:" + "0" * 32))
    with pytest.raises(RuntimeError, match=f"{fake_birefnet} is corrupt.*expected {'0' * 32}"):
        models.resolve("birefnet-general-fp16")


def test_fp16_runs_in_float16_on_a_gpu_only(fake_birefnet):
    half, full = models.resolve("birefnet-general-fp16"), models.resolve("birefnet-general")
    assert backends.torch_dtype(half, torch.device("cuda")) == torch.float16
    assert backends.torch_dtype(half, torch.device("cpu")) == torch.float32  # rembg: fp16 is slower on a CPU
    assert backends.torch_dtype(full, torch.device("cuda")) == torch.float32


def test_fp16_on_the_cpu_is_birefnet_general_in_float32(fake_birefnet, photos, monkeypatch):
    _onnx_torch()
    monkeypatch.setattr(PACK.utils.runtime, "compute_device", lambda: torch.device("cpu"))
    images = photos[:1]
    backends.clear()
    try:
        half = run(images, model="birefnet-general-fp16", runtime="torch")[1]
        assert [t for _, _, t in backends._MODULES] == [torch.float32]
        full = run(images, model="birefnet-general", runtime="torch")[1]
        assert len(backends._MODULES) == 1  # the same file, device and dtype: one module for both names
    finally:
        backends.clear()
    assert torch.equal(half, full) and half.std() > 0.05


@pytest.mark.gpu
def test_fp16_runs_birefnet_generals_file_in_float16_on_cuda(fake_birefnet, photos):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    _onnx_torch()
    images = photos[:2].cuda()
    backends.clear()
    try:
        half = run(images, model="birefnet-general-fp16", runtime="torch")[1]
        assert any(p == str(fake_birefnet) and str(d).startswith("cuda") and t == torch.float16
                   for p, d, t in backends._MODULES)  # (file, device, dtype): the source's file, in float16
        full = run(images, model="birefnet-general", runtime="torch")[1]
    finally:
        backends.clear()
    assert half.device.type == "cuda" and half.dtype == full.dtype
    assert (half - full).abs().mean() <= 2 / 255  # float16 rounding, stretched by the min-max normalisation


def test_fp16_on_onnxruntime_without_a_converter_is_a_clear_error(fake_birefnet, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)  # import fails: not installed
    with pytest.raises(RuntimeError, match=r"needs 'pip install onnx onnxconverter-common', or choose runtime "
                                           "'torch'"):
        sessions.onnx_file(models.resolve("birefnet-general-fp16"))
    assert sessions.onnx_file(models.resolve("birefnet-general")) == fake_birefnet  # float32 needs nothing
    assert sorted(p.name for p in fake_birefnet.parent.iterdir()) == [fake_birefnet.name]


def test_fp16_uses_rembgs_converted_file_when_there_is_one(fake_birefnet, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)
    converted = fake_birefnet.parent / "models" / "birefnet-general-fp16" / "birefnet-general-fp16.onnx"
    converted.parent.mkdir(parents=True)
    converted.write_bytes(fake_birefnet.read_bytes())
    half = models.resolve("birefnet-general-fp16")
    assert sessions.onnx_file(half) == converted
    made = []
    ort = sessions.onnxruntime()
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda path, **k: made.append(path) or real(path, **k))
    cpu = (sessions.CPU,)
    full = models.resolve("birefnet-general")
    assert sessions.get_session(half, cpu) is not sessions.get_session(full, cpu)  # one file, two sessions
    assert made == [str(converted), str(fake_birefnet)]


def test_fp16_is_converted_once_as_rembg_does_and_saved_atomically(fake_birefnet, monkeypatch):
    import onnx

    calls = []

    def convert(model, keep_io_types=False):
        calls.append(keep_io_types)
        return model  # the real converter's output is another ModelProto: the saving is what is tested

    fake = types.ModuleType("onnxconverter_common")
    fake.float16 = types.SimpleNamespace(convert_float_to_float16=convert)
    monkeypatch.setitem(sys.modules, "onnxconverter_common", fake)
    path = sessions.onnx_file(models.resolve("birefnet-general-fp16"))
    assert path == fake_birefnet.parent / "birefnet-general-fp16.onnx" and calls == [True]
    assert onnx.load(str(path)).graph.node[0].op_type == "Conv"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([fake_birefnet.name, path.name])  # no temp
    assert sessions.onnx_file(models.resolve("birefnet-general-fp16")) == path and calls == [True]  # reused
