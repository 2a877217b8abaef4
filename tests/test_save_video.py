"""The Save Cut-out Video node (utils/video_save, nodes/video): counters and previews, masks and audio, errors
that name the input, atomic writes, and a run in an API prompt. The clip is video_clips.py's.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from video_clips import av, clip_fixture, vio_fixture  # noqa: F401  (fixtures clip, vio)


# ---------------------------------------------------------------- the node
@pytest.fixture
def node(pack, tmp_path, monkeypatch):
    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(tmp_path))
    return pack.NODE_CLASS_MAPPINGS["CleanCutSaveVideo"]()


@pytest.mark.parametrize("fmt", ["webm", "mov", "webp"])
def test_node_saves_with_counters_and_previews(node, tmp_path, clip, fmt):
    first = node.save(clip, 24.0, fmt, 80, "cleancut/video")
    second = node.save(clip[..., :3], 24.0, fmt, 80, "cleancut/video", mask=clip[..., 3])
    for out, counter in ((first, 1), (second, 2)):
        assert out["result"] == ()
        assert out["ui"] == {"images": [{"filename": f"video_{counter:05}_.{fmt}", "subfolder": "cleancut",
                                         "type": "output"}], "animated": (True,)}
    assert sorted(os.listdir(tmp_path / "cleancut")) == [f"video_00001_.{fmt}", f"video_00002_.{fmt}"]


def test_node_png_sequence(node, tmp_path, clip):
    out = node.save(clip[:3], 24.0, "png", 80, "seq/%width%x%height%")
    folder = tmp_path / "seq" / "96x64_00001_"
    assert sorted(os.listdir(folder)) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert out["ui"]["animated"] == (False,)
    assert out["ui"]["images"][0] == {"filename": "frame_000001.png", "subfolder": os.path.join("seq", "96x64_00001_"),
                                      "type": "output"}
    img = Image.open(folder / "frame_000002.png")
    assert img.mode == "RGBA" and np.array_equal(np.asarray(img), np.round(clip[1].numpy() * 255).astype(np.uint8))


def test_node_one_mask_for_every_frame_and_audio(node, tmp_path, clip):
    mask = clip[:1, ..., 3]
    sound = {"waveform": torch.zeros(1, 1, 48000), "sample_rate": 48000}
    node.save(clip[:4, ..., :3], 24.0, "mov", 80, "m", mask=mask, audio=sound, prompt={"1": {}})
    info_path = tmp_path / "m_00001_.mov"
    with av.open(str(info_path)) as container:
        assert container.streams.audio and container.metadata.get("prompt") == "{\"1\": {}}"
        frames = [f.to_ndarray(format="rgba") for f in container.decode(video=0)]
    assert len(frames) == 4 and all(abs(f[..., 3].astype(int) - frames[0][..., 3]).max() <= 1 for f in frames)


def test_node_errors_name_the_input(node, tmp_path, clip):
    save = node.save
    cases = [
        (lambda: save(clip[..., :3], 24.0, "webm", 80, "v"), "images: are RGB"),
        (lambda: save(clip, 24.0, "webm", 80, "v", mask=clip[:, :32, :, 3]), "mask: mask size 96x32"),
        (lambda: save(clip[:4], 24.0, "webm", 80, "v", mask=clip[:3, ..., 3]), "mask: images has 4"),
        (lambda: save(clip, 0.0, "webm", 80, "v"), "fps: 0.0 is below the minimum"),
        (lambda: save(clip, -5.0, "webm", 80, "v"), "fps:"),
        (lambda: save(clip, 24.0, "gif", 80, "v"), "format:"),
        (lambda: save(clip, 24.0, "webm", 101, "v"), "quality:"),
        (lambda: save(clip, 24.0, "webp", 80, "v", audio={"waveform": torch.zeros(1, 1, 8), "sample_rate": 8}),
         "audio: webp holds no audio"),
        (lambda: save(clip, 24.0, "webm", 80, "../outside"), "filename_prefix:"),
        (lambda: save(clip[..., :2], 24.0, "webm", 80, "v"), "images: expected 3 or 4 channels"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
            call()
    assert os.listdir(tmp_path) == []


def test_node_failure_midway_keeps_no_file(node, tmp_path, clip, vio, monkeypatch):
    real, calls = vio.video_write.VideoWriter._encode, []

    def failing(self, *args):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real(self, *args)

    monkeypatch.setattr(vio.video_write.VideoWriter, "_encode", failing)
    with pytest.raises(ValueError, match="^filename_prefix: could not write 'v_00001_.webm'.*nothing was kept"):
        node.save(clip, 24.0, "webm", 80, "v")
    assert os.listdir(tmp_path) == []


def test_node_counter_skips_a_name_taken_meanwhile(node, tmp_path, clip, vio, monkeypatch):
    real = vio.video_write.VideoWriter._encode

    def racing(self, *args):  # another save claims counter 1 while this one encodes
        (tmp_path / "r_00001_.webm").touch()
        return real(self, *args)

    monkeypatch.setattr(vio.video_write.VideoWriter, "_encode", racing)
    out = node.save(clip[:2], 24.0, "webm", 80, "r")
    assert out["ui"]["images"][0]["filename"] == "r_00002_.webm"
    assert (tmp_path / "r_00001_.webm").stat().st_size == 0  # the other file was not touched



def test_node_in_an_api_prompt(pack, tmp_path, monkeypatch, synthetic):
    """A JSON round-tripped API prompt through the in-repo executor (server-side widget checks included)."""
    import json

    from executor import run_prompt, tensor_source

    monkeypatch.setenv("CLEANCUT_OUTPUT_DIR", str(tmp_path))
    classes = {**pack.NODE_CLASS_MAPPINGS, "TestSource": tensor_source({"rgba": synthetic})}
    prompt = {"1": {"class_type": "TestSource", "inputs": {"key": "rgba"}},
              "2": {"class_type": "CleanCutSaveVideo", "inputs": {"images": ["1", 0], "fps": 12.0, "format": "mov",
                                                                  "quality": 80, "filename_prefix": "g/clip"}}}
    run = run_prompt(json.loads(json.dumps(prompt)), classes)
    assert run.ui["2"] == {"images": [{"filename": "clip_00001_.mov", "subfolder": "g", "type": "output"}],
                           "animated": (True,)}
    info = pack.utils.video_read.probe(tmp_path / "g" / "clip_00001_.mov")
    assert (info.frames, info.fps, info.width, info.height) == (2, 12, 130, 97)
