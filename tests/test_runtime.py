"""runtime: the ComfyUI adapter with fake ComfyUI modules (progress, cancel, devices, folders) and without."""

import json
import sys
import types

import pytest
import torch
from conftest import ROOT, load_pack


class Interrupted(Exception):
    pass


@pytest.fixture
def fake_comfy(pack, monkeypatch, tmp_path):
    """Stand-ins for comfy.utils, comfy.model_management, folder_paths and comfy.cli_args."""
    state = types.SimpleNamespace(updates=[], checks=0, cancel_after=None)

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            state.updates.append((value, total))

    def throw_exception_if_processing_interrupted():
        state.checks += 1
        if state.cancel_after is not None and state.checks > state.cancel_after:
            raise Interrupted

    folders = {"checkpoints": ([str(tmp_path / "ckpt")], {".safetensors"})}
    modules = {
        "comfy.utils": types.SimpleNamespace(ProgressBar=ProgressBar),
        "comfy.model_management": types.SimpleNamespace(
            get_torch_device=lambda: torch.device("cpu"),
            throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted),
        "folder_paths": types.SimpleNamespace(
            models_dir=str(tmp_path / "models"), folder_names_and_paths=folders,
            get_folder_paths=lambda kind: folders[kind][0], get_output_directory=lambda: str(tmp_path / "out"),
            get_input_directory=lambda: str(tmp_path / "input")),
        "comfy.cli_args": types.SimpleNamespace(args=types.SimpleNamespace(disable_metadata=True)),
    }
    monkeypatch.setattr(pack.utils.runtime, "comfy", lambda name: modules.get(name))
    state.modules, state.tmp = modules, tmp_path
    return state


def test_map_batches_keeps_order_and_reports_progress(pack, fake_comfy):
    x = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 2, 2, 3).contiguous()
    seen = []

    def fn(chunk):
        seen.append(chunk.shape[0])
        return chunk * 2

    out = pack.utils.runtime.map_batches(x, fn, chunk=2)
    assert torch.equal(out, x * 2) and seen == [2, 2, 1]
    assert fake_comfy.updates == [(2, 5), (4, 5), (5, 5)]


def test_cancel_between_chunks(pack, fake_comfy):
    fake_comfy.cancel_after = 1
    calls = []
    with pytest.raises(Interrupted):
        pack.utils.runtime.map_batches(torch.rand(6, 2, 2, 3), lambda c: calls.append(1) or c, chunk=2)
    assert len(calls) == 1, "stopped after the first chunk"


def test_nodes_honour_cancel_and_progress(pack, fake_comfy, monkeypatch):
    monkeypatch.setattr(pack.utils.runtime, "PIXELS_PER_CHUNK", 16 * 16)  # one image per chunk
    x = torch.rand(3, 16, 16, 3)
    pack.NODE_CLASS_MAPPINGS["CleanCutGammaGain"]().run(x, gamma=1.5, gain=1.0)
    assert fake_comfy.updates[-1] == (3, 3)
    fake_comfy.updates.clear()
    pack.NODE_CLASS_MAPPINGS["CleanCutAlphaThreshold"]().run(x)
    assert fake_comfy.updates and fake_comfy.updates[-1][0] == 3
    fake_comfy.cancel_after = fake_comfy.checks + 1
    with pytest.raises(Interrupted):
        pack.NODE_CLASS_MAPPINGS["CleanCutSharpen"]().run(x, radius=1.0, amount=1.0, threshold=0)


def test_folders_from_comfy(pack, fake_comfy):
    rt = pack.utils.runtime
    assert rt.model_dirs("rembg") == [str(fake_comfy.tmp / "models" / "rembg")]
    assert rt.output_directory() == str(fake_comfy.tmp / "out")
    assert rt.compute_device() == torch.device("cpu")
    assert rt.metadata_disabled() is True


def test_without_comfy(pack, monkeypatch):
    rt = pack.utils.runtime
    assert rt.comfy("comfy.model_management") is None, "tests run outside ComfyUI"
    assert rt.model_dirs("rembg") == [] and rt.metadata_disabled() is False
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", "/tmp/somewhere")
    assert rt.output_directory() == "/tmp/somewhere"
    rt.raise_if_cancelled()  # a no-op
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert rt.compute_device().type == expected


def test_pick_backend(pack, monkeypatch, caplog):
    rt = pack.utils.runtime
    with caplog.at_level("DEBUG", logger="cleancut"):
        assert rt.pick_backend(torch.device("cpu")) == "native"
    assert "native backend on cpu" in caplog.text
    assert rt.pick_backend(torch.device("cuda")) == "torch"
    monkeypatch.setenv("CLEANCUT_BACKEND", "torch")
    assert rt.pick_backend(torch.device("cpu")) == "torch"
    monkeypatch.setenv("CLEANCUT_BACKEND", "fast")
    with pytest.raises(ValueError, match="CLEANCUT_BACKEND"):
        rt.pick_backend(torch.device("cpu"))


def test_sample_images_are_copied_into_comfys_input_folder(pack, fake_comfy):
    rt, inputs = pack.utils.runtime, fake_comfy.tmp / "input"
    names = [p.name for p in pack.SAMPLE_INPUTS]
    assert rt.provide_input_files(pack.SAMPLE_INPUTS) == names
    assert all((inputs / p.name).read_bytes() == p.read_bytes() for p in pack.SAMPLE_INPUTS)
    assert rt.provide_input_files(pack.SAMPLE_INPUTS) == [], "already there: nothing copied twice"


def test_sample_images_never_replace_a_users_file(pack, fake_comfy):
    inputs = fake_comfy.tmp / "input"
    inputs.mkdir()
    (inputs / "cleancut_cat.jpg").write_bytes(b"the user's own cat")
    copied = pack.utils.runtime.provide_input_files(pack.SAMPLE_INPUTS)
    assert "cleancut_cat.jpg" not in copied and copied, "the others are still copied"
    assert (inputs / "cleancut_cat.jpg").read_bytes() == b"the user's own cat"


def test_an_input_folder_that_cannot_be_written_only_warns(pack, fake_comfy, monkeypatch, caplog):
    rt = pack.utils.runtime
    (fake_comfy.tmp / "a_file").write_text("not a folder")
    monkeypatch.setattr(fake_comfy.modules["folder_paths"], "get_input_directory",
                        lambda: str(fake_comfy.tmp / "a_file" / "input"))
    with caplog.at_level("WARNING", logger="cleancut"):
        assert rt.provide_input_files(pack.SAMPLE_INPUTS) == []
    assert "cleancut_cat.jpg" in caplog.text and "README" in caplog.text


def test_a_copy_that_fails_halfway_leaves_no_broken_file(pack, fake_comfy, monkeypatch):
    rt = pack.utils.runtime

    def disk_full(source, target):
        target.write(source.read(10))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rt.shutil, "copyfileobj", disk_full)
    assert rt.provide_input_files(pack.SAMPLE_INPUTS[:1]) == []
    assert not (fake_comfy.tmp / "input" / pack.SAMPLE_INPUTS[0].name).exists()


def test_outside_comfy_no_input_files_are_copied(pack):
    assert pack.utils.runtime.provide_input_files(pack.SAMPLE_INPUTS) == []


def test_loading_the_pack_in_comfy_provides_every_file_the_example_workflows_load(monkeypatch, tmp_path):
    """A fresh ComfyUI (empty input folder) loads the pack: every image a Load Image node of an example
    workflow names is then in the input folder, and the import itself needs nothing else from ComfyUI."""
    fake = types.SimpleNamespace(get_input_directory=lambda: str(tmp_path / "input"))
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    load_pack()  # a fresh module name: a fresh runtime.comfy cache that finds the fake folder_paths
    named = {node["widgets_values"][0] for wf in (ROOT / "example_workflows").glob("*.json")
             for node in json.loads(wf.read_text())["nodes"] if node["type"] == "LoadImage"}
    assert named and named <= {p.name for p in (tmp_path / "input").iterdir()}

