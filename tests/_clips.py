"""Small video clips for the video tests, written with PyAV (the tests that use them skip without it)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

MS = Fraction(1, 1000)


def _av():
    return pytest.importorskip("av", reason='PyAV is not installed (pip install "npespcn[video]")')


def read_packets(path):
    """``{(type, index within its type): [packet bytes, ...]}`` of the audio and subtitle streams."""
    av = _av()
    found = {}
    with av.open(str(path)) as c:
        keys = {}
        for kind, streams in (("audio", c.streams.audio), ("subtitle", c.streams.subtitles)):
            for k, s in enumerate(streams):
                keys[s.index] = (kind, k)
                found[(kind, k)] = []
        for p in c.demux(*[s for s in c.streams if s.index in keys]) if keys else ():
            if p.size:
                found[keys[p.stream.index]].append(bytes(p))
    return found


def frames_for(n, h, w, seed=0, step=12):
    """``n`` smooth, moving, distinct uint8 RGB frames: a gradient whose brightness rises with the index
    (``step`` levels a frame, so a frame out of order shows) and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        base = np.stack([40 + 120 * x / w + step * i, 60 + 100 * y / h, 120 + 60 * np.sin((x + 3 * i) / 5.0)], -1)
        out.append(np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8))
    return out


def make_clip(path, frames, pts_ms=None, audio=0, subtitles=False, rotation=0, pix_fmt="yuv420p",
              codec="libx264", options=None, colorspace=None):
    """Write ``frames`` (RGB arrays) at the timestamps ``pts_ms`` (milliseconds; default 40 ms apart), with
    ``audio`` AAC tracks (different tones), an optional SubRip track and a display rotation. Returns the
    bytes of every audio packet, per track, and of the subtitle packet."""
    av = _av()
    h, w = frames[0].shape[:2]
    pts_ms = list(range(0, 40 * len(frames), 40)) if pts_ms is None else pts_ms
    out = av.open(str(path), "w")
    if options is None and codec == "libx264":
        options = {"crf": "0"}                                 # lossless: the test's reference frames
    v = out.add_stream(codec, rate=25, options=options or {})
    v.width, v.height, v.pix_fmt = w, h, pix_fmt
    v.time_base = MS
    if colorspace is not None:                                 # e.g. 1: BT.709, tagged and used
        v.codec_context.colorspace = v.codec_context.color_primaries = v.codec_context.color_trc = colorspace
    if rotation:
        v.set_display_rotation(rotation)
    tracks = []
    for k in range(audio):
        a = out.add_stream("aac", rate=8000)
        a.layout = "mono"
        tracks.append(a)
    sub = None
    if subtitles:
        sub = out.add_mux_stream("subrip")
        sub.time_base = MS
    for i, (img, p) in enumerate(zip(frames, pts_ms)):
        f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt, threads=1,
                                                                     dst_colorspace=colorspace)
        f.pts, f.time_base = p, MS
        for pk in v.encode(f):
            out.mux(pk)
        if sub is not None and i == 1:
            pk = av.Packet(b"a line of subtitle")
            pk.stream, pk.pts, pk.dts, pk.duration, pk.time_base = sub, p, p, 500, MS
            out.mux(pk)
    for pk in v.encode():
        out.mux(pk)
    for k, a in enumerate(tracks):
        for i in range(4):
            tone = (0.3 * np.sin(np.arange(i * 1024, (i + 1) * 1024) * (0.05 + 0.02 * k)))[None].astype(np.float32)
            af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            af.sample_rate, af.pts = 8000, i * 1024
            for pk in a.encode(af):
                out.mux(pk)
        for pk in a.encode():
            out.mux(pk)
    out.close()
    return read_packets(path)
