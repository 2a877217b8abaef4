"""The sound track of a written video: a media file's first audio stream, or ComfyUI's AUDIO dict, re-encoded and
interleaved with the frames as they are written, cut at the video's end. PyAV is passed in by the writer."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import numpy as np
from torch import Tensor

from .checks import InputError, fail
from .video_read import open_container

OPUS_RATE = 48000  # Opus encodes at 48 kHz (or 24/16/12/8): everything is resampled to it


class AudioFeed:
    """An audio stream of the output, filled from ``source`` up to the video's time as frames are written."""

    def __init__(self, av, container, codec: str, source: object):
        self.av, self.container, self._source = av, container, None
        frames, rate, channels = self._frames(source)
        self._iter, self.done, self.pending = frames, 0, None
        self.stream = container.add_stream(codec, rate=OPUS_RATE if codec == "libopus" else rate)
        self.stream.layout = "mono" if channels == 1 else "stereo"  # more channels are mixed down to stereo
        self.rate = rate

    def _frames(self, source: object) -> tuple[Iterator, int, int]:
        if isinstance(source, Mapping):
            return _waveform_frames(self.av, source)
        if not isinstance(source, (str, os.PathLike)):
            fail("audio", f"expected a file path or an AUDIO dict, got {type(source).__name__}.")
        self._source = open_container(source)
        if not self._source.streams.audio:
            fail(str(source), "has no audio stream to copy.", InputError)
        stream = self._source.streams.audio[0]
        return self._source.decode(stream), stream.codec_context.sample_rate, stream.codec_context.channels

    def feed(self, until: float) -> None:
        """Encode the source's samples up to ``until`` seconds from the start (the last frame cut there)."""
        limit = round(until * self.rate)
        while self.done < limit:
            frame = self.pending or next(self._iter, None)
            self.pending = None
            if frame is None:
                return
            if self.done + frame.samples > limit:  # keep the rest for the next feed
                frame, self.pending = _split(self.av, frame, limit - self.done)
            self.done += frame.samples
            frame.pts = None  # PyAV numbers the resampled samples itself
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def finish(self, until: float) -> None:
        self.feed(until)
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.close()

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def _split(av, frame, keep: int):
    """``frame`` cut after ``keep`` samples: (head, tail) as new frames."""
    array = frame.to_ndarray()  # planar: [C, n]; packed: [1, n * C]
    step = 1 if frame.format.is_planar else len(frame.layout.channels)
    parts = []
    for piece in (array[:, :keep * step], array[:, keep * step:]):
        part = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format=frame.format.name,
                                          layout=frame.layout.name)
        part.sample_rate = frame.sample_rate
        parts.append(part)
    return parts[0], parts[1]


def _waveform_frames(av, audio: Mapping) -> tuple[Iterator, int, int]:
    """ComfyUI's AUDIO dict as PyAV frames of one second each (float planar)."""
    wave, rate = audio.get("waveform"), audio.get("sample_rate")
    if not isinstance(wave, Tensor) or wave.ndim != 3 or wave.shape[0] != 1 or wave.shape[1] < 1:
        fail("audio", f"expected an AUDIO waveform [1, channels, samples], got {getattr(wave, 'shape', wave)!r}; "
             "connect one clip (a batch of several has no single sound track).", InputError)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
        fail("audio", f"expected a sample_rate in Hz, got {rate!r}.", InputError)
    data = wave[0].detach().float().cpu().numpy()  # [C, T]
    layout = "mono" if data.shape[0] == 1 else "stereo" if data.shape[0] == 2 else av.AudioLayout(data.shape[0]).name

    def frames() -> Iterator:
        for start in range(0, data.shape[1], rate):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + rate]), format="fltp",
                                               layout=layout)
            frame.sample_rate = rate
            yield frame

    return frames(), rate, data.shape[0]

