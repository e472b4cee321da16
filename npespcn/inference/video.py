"""Super-resolve video: ``upscale_frames(frames)`` (any iterable of arrays) and ``upscale_video(src, dst)``.

Every frame goes through :func:`npespcn.upscale`, the image pipeline (Y through the network, chroma
bicubic once per frame); nothing here is specific to one model. What this module adds is the stream::

    decoder thread        demux, decode, YUV -> RGB             (PyAV: FFmpeg's libraries)
         | queue of `prefetch` frames
    calling thread        upscale(frame)                        (the network: the bottleneck)
         | queue of `prefetch` frames
    encoder thread        RGB -> YUV, encode, mux; audio and subtitle packets copied as they are

Each queue holds a few frames, so memory stays flat whatever the clip's length, and the three stages
overlap: while the network works on frame ``i``, frame ``i + 1`` is being decoded and frame ``i - 1``
encoded (the codecs release the GIL, the network's kernels too).

What is kept of the input (``upscale_video``):

* every frame, in order, with its own timestamp (variable frame rate stays variable), the stream's time
  base and frame rate, its start time;
* audio and subtitle streams, copied packet by packet without re-encoding (a clip with none, one or
  several audio tracks);
* rotation (the display matrix) and the colour description (matrix, range, primaries, transfer): frames
  are converted to RGB with the input's matrix and range and back with the same, and the output is
  tagged with them;
* bit depth up to the network: more than 8 bits per sample is decoded to 16-bit RGB (``rgb48le``) and
  upscaled in uint16; the output sample format is ``pix_fmt`` (8-bit 4:2:0 unless asked otherwise).

Decisions where a format forces one: 4:2:0 and 4:2:2 need an even width (4:2:0 an even height too); an
odd result (e.g. 321x181 x3 = 963x543) is padded by repeating its last column or row (nothing of the
picture is lost; ``pix_fmt="yuv444p"`` keeps the exact size). An alpha channel of the input video is
dropped (most codecs have none).

The output is written through :func:`npespcn.atomic.atomic_write`: until the last packet is written it
is a temporary file beside ``dst``, removed on any error and on Ctrl-C (left by SIGKILL, it is cleaned
by the next write into that folder), and ``dst`` is never replaced unless ``overwrite=True``.

On a cluster (:func:`npespcn.upscale_files` with ``client=``) a video is cut at its keyframes
(:func:`plan_segments`), each segment is upscaled by this same code into a video-only file of its own
(:func:`upscale_segment`), and the segments are remuxed into one file without re-encoding, the audio and
subtitle streams copied as above (:func:`join_segments`).

PyAV is an optional extra (``pip install "npespcn[video]"``), imported through
:func:`npespcn.extras.require` when a video is opened, never by ``import npespcn``.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import math
import queue
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..extras import require
from ..image.io import DEFAULT_MAX_PIXELS, check_max_pixels
from ..nn.model import check_scale
from ..nn.pretrained import resolve_model
from .pipeline import upscale

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
              ".avi": "avi", ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts", ".flv": "flv",
              ".mpg": "mpeg", ".mpeg": "mpeg", ".ogv": "ogg", ".wmv": "asf"}
"""Video file suffixes and the FFmpeg container (muxer) each is written with."""
VIDEO_SUFFIXES = tuple(CONTAINERS)
DEFAULT_CODECS = {"webm": "libvpx-vp9", "ogg": "libtheora"}
"""The encoder for containers that cannot hold H.264; every other container gets :data:`DEFAULT_CODEC`."""
DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18
"""Constant rate factor of the encoder (x264: 0 lossless .. 51; 18 is close to visually lossless)."""
DEFAULT_PRESET = "medium"
DEFAULT_PIX_FMT = "yuv420p"
LOOKAHEAD = 10
"""Frames x264 looks ahead for its rate control (its own default is 40 at the medium preset). Each
1920x1080 frame in the look-ahead costs about 6.5 MB: 40 took a 300-frame 360p -> 1080p run to about
600 MB peak, 10 keeps it near 400 MB, for files a little larger at the same crf (benchmarks/README.md)."""
PREFETCH = 3
"""Frames each queue between two stages holds."""
SWS_THREADS = 1
"""Threads of each colour conversion (FFmpeg's swscale). One: the conversions already run beside the
network on threads of their own, and swscale's sliced threading, tried here, gave different pixels from
run to run for 16-bit RGB <-> 10-bit YUV (``tests/test_video.py`` caught it; one thread is exact)."""
_STOP = object()


def is_video_path(path) -> bool:
    """Whether ``path``'s suffix is one of :data:`VIDEO_SUFFIXES` (any case)."""
    return Path(path).suffix.lower() in CONTAINERS


# ---------------------------------------------------------------------------------------------- frames
def _produce(iterable, out: queue.Queue, stop: threading.Event) -> None:
    """Thread body: put each item of ``iterable`` into ``out`` (then ``_STOP``); an exception is put as
    ``("error", exc)``; ``stop`` set by the consumer ends it early."""
    try:
        for item in iterable:
            while not stop.is_set():
                try:
                    out.put(("item", item), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        out.put(("end", None))
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
        out.put(("error", e))


def prefetched(iterable, depth: int = PREFETCH):
    """The items of ``iterable``, produced ``depth`` ahead on a thread of their own.

    Whatever ``iterable`` does (decode a file, convert colours) overlaps with what the caller does with
    the items. An exception raised by ``iterable`` is raised here, at the item where it happened; closing
    this generator early stops the thread.
    """
    if depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(iter(iterable), items, stop), daemon=True,
                              name="npespcn-prefetch")
    worker.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():                 # unblock a producer waiting on a full queue
            try:
                items.get(timeout=0.05)
            except queue.Empty:
                pass


def upscale_frames(frames, scale: int = 3, model=None, tile: int | None = None, clip: bool = False,
                   ensemble: bool = False, prefetch: int = PREFETCH):
    """Upscale a stream of frames: yield ``upscale(frame)`` for every frame of ``frames``, in order.

    The model is resolved once; the frames are read ``prefetch`` ahead on another thread, so whatever
    produces them (a decoder, a colour conversion, reading files) overlaps with the network. Nothing is
    held beyond those few frames: a generator of a million frames takes the memory of a few.

    Args:
        frames: any iterable of images :func:`npespcn.upscale` accepts (arrays or PIL images).
        scale, model, tile, clip, ensemble: as for :func:`npespcn.upscale`, for every frame.
        prefetch: frames read ahead.

    Shape:
        - each frame: :math:`(H, W)`, :math:`(H, W, C)`; each result :math:`(rH, rW[, C])`.

    Raises:
        TypeError, ValueError: a bad ``scale``/``model`` at once; a bad frame when its turn comes (the
            earlier frames have been yielded).

    Examples::

        >>> import numpy as np, npespcn
        >>> clip = (np.full((12, 16, 3), 10 * i, np.uint8) for i in range(4))
        >>> [big.shape for big in npespcn.upscale_frames(clip, scale=2)]
        [(24, 32, 3), (24, 32, 3), (24, 32, 3), (24, 32, 3)]
    """
    r = check_scale(scale)
    net = resolve_model(model, r)
    return _upscale_stream(frames, r, net, tile, clip, ensemble, prefetch)


def _upscale_stream(frames, r, net, tile, clip, ensemble, prefetch):
    source = prefetched(frames, prefetch)
    try:
        for frame in source:
            yield upscale(frame, r, net, tile=tile, clip=clip, ensemble=ensemble)
    finally:
        source.close()                  # stops the reading thread now, not when garbage is collected


# ---------------------------------------------------------------------------------------------- files
def _av():
    return require("av", "video files")


def _subsampling(pix_fmt: str) -> tuple[int, int]:
    """``(horizontal, vertical)`` chroma subsampling shifts of an FFmpeg pixel format, e.g. (1, 1) for
    yuv420p; ``ValueError`` for an unknown format."""
    av = _av()
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.FFmpegError):
        raise ValueError(f"unknown pixel format {pix_fmt!r} (e.g. yuv420p, yuv444p, yuv420p10le)") from None
    comps = av.VideoFormat(fmt.name, 4, 4).components          # a 4x4 frame: each plane's size
    if len(comps) < 3 or fmt.is_rgb:
        return 0, 0
    return int(comps[1].width < comps[0].width), int(comps[1].height < comps[0].height)


def _bits(pix_fmt_obj) -> int:
    return max((c.bits for c in pix_fmt_obj.components), default=8)


def _encoder_options(av, codec: str, crf, preset):
    """``(options, codec)``: the encoder's private options for ``crf`` and ``preset``.

    None takes :data:`DEFAULT_CRF` / :data:`DEFAULT_PRESET` when the encoder has that option (x264 has
    both, VP9 a crf only, mpeg4 neither) and leaves it out otherwise; a value the encoder has no option
    for is a ``ValueError``."""
    try:
        c = av.Codec(codec, "w")
    except (ValueError, av.FFmpegError):
        raise ValueError(f"unknown video encoder {codec!r} (e.g. libx264, libx265, libvpx-vp9, mpeg4)") from None
    if c.type != "video":
        raise ValueError(f"{codec!r} is a {c.type} encoder, not a video encoder")
    names = {o.name for o in av.CodecContext.create(c, "w").supported_options.private}
    options = {}
    if crf is not None:
        if isinstance(crf, bool) or not isinstance(crf, (int, float)) or not 0 <= crf <= 63:
            raise ValueError(f"crf must be a number 0..63, got {crf!r}")
        if "crf" not in names:
            raise ValueError(f"the encoder {codec!r} has no crf option; leave crf out (--crf) for it")
    if preset is not None and "preset" not in names:
        raise ValueError(f"the encoder {codec!r} has no preset option; leave preset out (--preset) for it")
    if "crf" in names:
        options["crf"] = f"{DEFAULT_CRF if crf is None else crf:g}"
        if codec.startswith("libvpx"):
            options["b"] = "0"                     # constant quality, no bitrate cap
    if "preset" in names:
        options["preset"] = str(DEFAULT_PRESET if preset is None else preset)
    if "rc-lookahead" in names:
        options["rc-lookahead"] = str(LOOKAHEAD)
    return options, c


class _open_input:
    """``with _open_input(av, src) as container``: the input container; errors are ``ValueError`` naming
    the file."""

    def __init__(self, av, src):
        self.av, self.src, self.container = av, Path(src), None

    def __enter__(self):
        if not self.src.is_file():
            raise ValueError(f"{self.src}: no such file")
        try:
            self.container = self.av.open(str(self.src), "r")
        except (self.av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{self.src}: not a readable video ({_reason(e)})") from None
        return self.container

    def __exit__(self, *exc):
        self.container.close()
        return False


def _reason(e) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:200]


def _video_stream(container, src):
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        raise ValueError(f"{src}: no video stream (found {kinds}); expected a video file")
    return container.streams.video[0]


def _describe(container, v) -> dict:
    cc = v.codec_context
    rate = v.average_rate or v.guessed_rate or v.base_rate
    duration = None
    if v.duration is not None and v.time_base:
        duration = float(v.duration * v.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    frames = int(v.frames or 0)
    fmt = cc.format
    return {"frames": frames, "width": cc.width, "height": cc.height, "fps": Fraction(rate) if rate else None,
            "pix_fmt": fmt.name if fmt is not None else None, "bits": _bits(fmt) if fmt is not None else 8,
            "audio": len(container.streams.audio), "subtitles": len(container.streams.subtitles),
            "duration": duration}


def _expected_frames(info) -> int:
    """The declared frame count, else duration x rate rounded (0: unknown)."""
    if info["frames"]:
        return info["frames"]
    if info["duration"] and info["fps"]:
        return max(0, round(info["duration"] * float(info["fps"])))
    return 0


def upscale_video(src, dst, scale: int = 3, model=None, codec: str | None = None, crf=None,
                  preset: str | None = None, pix_fmt: str | None = None, tile: int | None = None,
                  ensemble: bool = False, overwrite: bool = False, max_pixels=DEFAULT_MAX_PIXELS,
                  progress=None, prefetch: int = PREFETCH) -> dict:
    """Upscale every frame of the video file ``src`` into the video file ``dst``, sound kept.

    See the module docstring for what is kept (timestamps, audio and subtitle streams, rotation, colour
    description) and how the work is streamed. ``dst``'s suffix chooses the container
    (:data:`CONTAINERS`); nothing is ever left half-written at ``dst``.

    Args:
        src: a video file FFmpeg reads (.mp4, .mkv, .mov, .webm, .avi, ...).
        dst: the output file; must not exist unless ``overwrite``.
        scale, model, tile, ensemble: as for :func:`npespcn.upscale`.
        codec: FFmpeg encoder name; None: ``libx264`` (H.264), or ``libvpx-vp9`` for .webm.
        crf: constant rate factor (quality; lower is better and larger); None: :data:`DEFAULT_CRF` when the
            encoder has a crf option.
        preset: the encoder's speed/size preset (x264: ultrafast .. veryslow); None: :data:`DEFAULT_PRESET`
            when the encoder has a preset option.
        pix_fmt: output pixel format; None: ``yuv420p`` (8-bit 4:2:0, what every player shows).
        overwrite: replace an existing ``dst``.
        max_pixels: largest frame (width x height) decoded; None or 0: no limit.
        progress: ``callable(done, total)`` after every frame written (``total`` 0 when unknown).
        prefetch: frames each queue between the decoder, the network and the encoder holds.

    Returns:
        dict: ``frames`` written, ``width``/``height`` of the output, ``fps`` (average, Fraction),
        ``codec``, ``pix_fmt``, ``audio``/``subtitles`` streams copied, ``padded`` (an odd size made even).

    Raises:
        MissingExtra: PyAV is not installed (one line: what to install).
        ValueError: a missing, unreadable or truncated file, no video stream, no frame, a corrupt stream,
            a frame larger than ``max_pixels``, a bad codec option, an unsupported output suffix.
        FileExistsError: ``dst`` exists (or appeared meanwhile) and ``overwrite`` is False.
    """
    av = _av()
    src, dst = Path(src), Path(dst)
    r = check_scale(scale)
    net = resolve_model(model, r)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"{dst} is the input itself; never replaced")
    limit = check_max_pixels(max_pixels)
    settings = _settings(av, dst, codec, crf, preset, pix_fmt)
    with _open_input(av, src) as inp:
        v, info = _checked_video(inp, src, limit)
        copied = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        with atomic_write(dst, "wb", overwrite=overwrite) as f:
            size, written, _ = _transcode(av, inp, v, info, f, settings, r, net, tile, ensemble, copied, None,
                                          progress, prefetch, src, dst)
    return {"frames": written, "width": size[0], "height": size[1], "fps": info["fps"],
            "codec": settings["codec"], "pix_fmt": settings["pix_fmt"], "audio": info["audio"],
            "subtitles": info["subtitles"], "padded": size[2]}


def _settings(av, dst, codec, crf, preset, pix_fmt) -> dict:
    """The output's container and encoder for ``dst``, checked (``ValueError`` saying what is wrong)."""
    container_fmt = CONTAINERS.get(dst.suffix.lower())
    if container_fmt is None:
        raise ValueError(f"{dst}: unsupported video suffix {dst.suffix or '(none)'!r}; expected one of "
                         f"{', '.join(VIDEO_SUFFIXES)}")
    codec = codec or DEFAULT_CODECS.get(container_fmt, DEFAULT_CODEC)
    options, encoder = _encoder_options(av, codec, crf, preset)
    pix_fmt = pix_fmt or DEFAULT_PIX_FMT
    return {"container": container_fmt, "codec": codec, "options": options, "encoder": encoder,
            "pix_fmt": pix_fmt, "subsampling": _subsampling(pix_fmt)}


def _checked_video(inp, src, limit):
    """``(stream, description)`` of the input's video stream; ``ValueError`` for no size or more than ``limit``
    pixels (None: no limit)."""
    v = _video_stream(inp, src)
    info = _describe(inp, v)
    w, h = info["width"], info["height"]
    if not w or not h:
        raise ValueError(f"{src}: the video stream declares no frame size")
    if limit is not None and w * h > limit:
        raise ValueError(f"{src}: frames of {w}x{h} = {w * h / 1e6:.1f} Mpx, more than the limit of "
                         f"{limit / 1e6:.1f} Mpx; raise the limit (--max-pixels) to read it")
    return v, info


def _transcode(av, inp, v, info, f, settings, r, net, tile, ensemble, copied, window, progress, prefetch, src,
               dst):
    """Upscale the frames of ``v`` (those of ``window``, see :func:`_run`) into the open file ``f``, with the
    ``copied`` streams. Returns ``((width, height, padded), frames written, rotation of the first frame)``."""
    sub_x, sub_y = settings["subsampling"]
    out_w, out_h = r * info["width"], r * info["height"]
    pad_w, pad_h = out_w % 2 if sub_x else 0, out_h % 2 if sub_y else 0
    rgb = "rgb48le" if info["bits"] > 8 else "rgb24"
    out = av.open(f, "w", format=settings["container"])
    try:
        streams = _open_output(av, out, v, copied, settings["codec"], settings["encoder"], settings["options"],
                               settings["pix_fmt"], out_w + pad_w, out_h + pad_h, dst)
        written, rotation = _run(av, inp, v, copied, out, streams, r, net, tile, ensemble, rgb,
                                 settings["pix_fmt"], (pad_h, pad_w), _expected_frames(info), progress, prefetch,
                                 src, window)
    finally:
        out.close()
    return (out_w + pad_w, out_h + pad_h, bool(pad_w or pad_h)), written, rotation


def _open_output(av, out, v, copied, codec, encoder, options, pix_fmt, width, height, dst):
    """The output's video stream (configured from the input's ``v``) and the copies of ``copied``."""
    cc = v.codec_context
    rate = _frame_rate(v)
    formats = {f.name for f in (encoder.video_formats or ())}
    if formats and pix_fmt not in formats:
        raise ValueError(f"the encoder {codec!r} cannot write {pix_fmt}; it takes {', '.join(sorted(formats))}")
    try:
        ov = out.add_stream(codec, rate=rate, options=options)
    except (ValueError, av.FFmpegError) as e:
        raise ValueError(f"{dst}: cannot write {codec} into a {out.format.name} file ({_reason(e)})") from None
    ov.width, ov.height, ov.pix_fmt = width, height, pix_fmt
    ov.time_base = v.time_base
    ov.codec_context.time_base = v.time_base
    for attr in ("color_range", "colorspace", "color_primaries", "color_trc"):
        try:
            setattr(ov.codec_context, attr, getattr(cc, attr))
        except (AttributeError, ValueError, TypeError):
            pass
    if v.sample_aspect_ratio:
        ov.codec_context.sample_aspect_ratio = v.sample_aspect_ratio
    return ov, _copy_streams(av, out, copied, dst)


def _frame_rate(v):
    """The frame rate an output of the input stream ``v`` declares: its average, else FFmpeg's guess, else 25."""
    return v.average_rate or v.guessed_rate or Fraction(25)


def _copy_streams(av, out, copied, dst) -> dict:
    """``{input stream index: output stream}``: a copy in ``out`` of each stream of ``copied``."""
    mapping = {}
    for s in copied:
        try:
            mapping[s.index] = out.add_stream_from_template(s)
        except (ValueError, av.FFmpegError) as e:
            raise ValueError(f"{dst}: cannot copy the {s.type} stream #{s.index} ({s.codec_context.name}) into "
                             f"a {out.format.name} file ({_reason(e)}); choose another output suffix") from None
        if s.language:
            mapping[s.index].metadata["language"] = s.language
    return mapping


def _run(av, inp, v, copied, out, streams, r, net, tile, ensemble, rgb, pix_fmt, pad, expected, progress,
         prefetch, src, window=None):
    """Decode, upscale and encode; returns the number of frames written and the first frame's rotation.

    ``window``, ``(start, end)`` in the stream's time base (None: an open end), keeps only the frames whose
    timestamp lies in ``[start, end)``: the input is sought to the keyframe at or before ``start`` and
    decoding stops at the first frame at or after ``end`` (a decoder gives its frames in timestamp order)."""
    ov, mapping = streams
    start, end = window if window is not None else (None, None)
    side = collections.deque()          # (video frames decoded before it, packet) to mux in order
    timing = collections.deque()        # (pts, rotation) of each decoded frame, for the encoder
    state = {"decoded": 0}

    def decoded():
        """Thread of the decoder: yields RGB arrays; queues copied packets and timestamps aside."""
        try:
            if start is not None:
                inp.seek(start, stream=v, backward=True, any_frame=False)
            for packet in inp.demux(v, *copied):
                if packet.stream.index != v.index:
                    if packet.dts is not None and packet.size:
                        side.append((state["decoded"], packet))
                    continue
                for frame in packet.decode():          # the last, empty packet flushes the decoder
                    if window is not None:
                        if frame.pts is None:
                            raise ValueError(f"{src}: a frame without a timestamp; cannot cut the video there")
                        if start is not None and frame.pts < start:
                            continue
                        if end is not None and frame.pts >= end:
                            return
                    yield from emit(frame)
        except av.FFmpegError as e:
            raise ValueError(f"{src}: corrupt video stream after {state['decoded']} frame(s) ({_reason(e)})") \
                from None

    last_pts = [None]

    def emit(frame):
        pts = frame.pts
        step = _frame_step(v)
        if pts is None:
            pts = 0 if last_pts[0] is None else last_pts[0] + step
        if last_pts[0] is not None and pts <= last_pts[0]:
            pts = last_pts[0] + 1                 # an encoder needs strictly increasing timestamps
        last_pts[0] = pts
        arr = frame.to_ndarray(format=rgb, src_color_range=frame.color_range, threads=SWS_THREADS)
        timing.append((pts, frame.rotation, frame.colorspace, frame.color_range))
        state["decoded"] += 1
        yield arr

    frames_out: queue.Queue = queue.Queue(maxsize=prefetch)
    result = {"written": 0, "error": None}
    encoder = threading.Thread(target=_encode, daemon=True, name="npespcn-encoder",
                               args=(av, out, ov, mapping, side, timing, frames_out, rgb, pix_fmt, pad, expected,
                                     progress, result, v.time_base, state))
    encoder.start()
    stream = _upscale_stream(decoded(), r, net, tile, False, ensemble, prefetch)
    try:
        for big in stream:
            while True:
                if result["error"] is not None:
                    raise result["error"]
                try:
                    frames_out.put(big, timeout=0.1)
                    break
                except queue.Full:
                    continue
        frames_out.put(_STOP)
        encoder.join()
    except BaseException:
        stream.close()                  # the decoder thread ends before the input is closed
        result["abort"] = True
        while encoder.is_alive():
            try:
                frames_out.put(_STOP, timeout=0.05)
            except queue.Full:
                try:
                    frames_out.get_nowait()
                except queue.Empty:
                    pass
            encoder.join(timeout=0.05)
        raise
    if result["error"] is not None:
        raise result["error"]
    if result["written"] == 0:
        raise ValueError(f"{src}: the video stream holds no frame; nothing to upscale")
    if window is None and v.frames and result["written"] < v.frames:
        raise ValueError(f"{src}: truncated: {result['written']} of the {v.frames} frames it declares could be "
                         f"decoded")
    return result["written"], result.get("rotation", 0)


def _frame_step(v) -> int:
    """One frame's duration in the stream's time base (at least 1)."""
    rate = v.average_rate or v.guessed_rate or Fraction(25)
    if not v.time_base:
        return 1
    return max(1, round(1 / (Fraction(rate) * v.time_base)))


def _encode(av, out, ov, mapping, side, timing, frames_out, rgb, pix_fmt, pad, expected, progress, result,
            time_base, state):
    """Thread of the encoder: RGB -> ``pix_fmt``, encode, mux, with the copied packets in order."""
    try:
        done = 0
        pad_h, pad_w = pad
        while True:
            big = frames_out.get()
            if big is _STOP:
                break
            if result.get("abort"):
                return
            pts, rotation, colorspace, color_range = timing.popleft()
            if done == 0:
                result["rotation"] = rotation
                if rotation:
                    ov.set_display_rotation(rotation)
            _mux_side(out, mapping, side, done)
            if pad_h or pad_w:
                big = np.pad(big, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big), format=rgb)
            frame = frame.reformat(format=pix_fmt, dst_colorspace=colorspace, dst_color_range=color_range,
                                   threads=SWS_THREADS)
            frame.pts, frame.time_base = pts, time_base
            for packet in ov.encode(frame):
                out.mux(packet)
            done += 1
            result["written"] = done
            if progress is not None:
                progress(done, max(expected, done) if expected else 0)
        if result.get("abort"):
            return
        for packet in ov.encode(None):
            out.mux(packet)
        _mux_side(out, mapping, side, math.inf)
    except BaseException as e:  # noqa: BLE001 - raised again by the calling thread
        result["error"] = e if not isinstance(e, av.FFmpegError) else ValueError(f"encoding failed: {_reason(e)}")


def _mux_side(out, mapping, side, upto) -> None:
    """Mux the copied packets demuxed before video frame ``upto``."""
    while side and side[0][0] <= upto:
        _, packet = side.popleft()
        packet.stream = mapping[packet.stream.index]
        out.mux(packet)


# ---------------------------------------------------------------------------------------------- segments
SEGMENT_FRAMES = 300
"""Fewest frames of one segment when a video is split at its keyframes (:func:`plan_segments`): about 10 s at
30 frames/s, minutes of one worker's time at 1080p, so that a clip with a keyframe every few frames still
makes a handful of tasks, not thousands."""


def check_segment_frames(n) -> int:
    """``n`` if it is a valid :data:`SEGMENT_FRAMES` (a positive integer), else ``ValueError``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"segment_frames (--segment-frames) must be a positive integer, got {n!r}")
    return n


def plan_segments(src, dst, min_frames: int = SEGMENT_FRAMES, codec: str | None = None, crf=None,
                  preset: str | None = None, pix_fmt: str | None = None, max_pixels=DEFAULT_MAX_PIXELS) -> list[dict]:
    """Where the video ``src`` can be cut into segments that :func:`upscale_segment` upscales apart and
    :func:`join_segments` joins into ``dst``.

    Only the video stream's packets are read (demuxed, not decoded). A cut is made at a keyframe that closes
    what comes before it: every packet before it in decoding order is shown before it, every packet from it
    on at or after it (the keyframe of an open GOP, whose first frames lean on the GOP before, is no cut).
    Each segment has at least ``min_frames`` frames, the last one too (so a segment may hold up to about
    twice that, and a video shorter than ``2 * min_frames`` is one segment). A video whose packets lack
    timestamps or repeat one, or whose packet count is not the frame count it declares, is one segment.
    The output's settings (``dst``'s suffix, ``codec``, ``crf``, ``preset``, ``pix_fmt``) and the frame size
    are checked first, as :func:`upscale_video` checks them.

    Returns:
        One dict per segment, in order: ``{"start", "end", "frames"}``: the window ``[start, end)`` of
        timestamps in the video stream's time base (None: open at that side) and the frames in it.

    Raises:
        MissingExtra: PyAV is not installed.
        ValueError: a missing, unreadable or corrupt file, no video stream or no frame, a frame larger than
            ``max_pixels``, a bad codec setting or output suffix, ``min_frames`` < 1.
    """
    av = _av()
    src, dst = Path(src), Path(dst)
    check_segment_frames(min_frames)
    limit = check_max_pixels(max_pixels)
    _settings(av, dst, codec, crf, preset, pix_fmt)
    with _open_input(av, src) as inp:
        v, info = _checked_video(inp, src, limit)
        order, keys = [], []
        try:
            for packet in inp.demux(v):
                if packet.size:                    # not the empty packet that ends the stream
                    order.append(packet.pts)
                    keys.append(packet.is_keyframe)
        except av.FFmpegError as e:
            raise ValueError(f"{src}: corrupt video stream after {len(order)} packet(s) ({_reason(e)})") from None
    n = len(order)
    if not n:
        raise ValueError(f"{src}: the video stream holds no frame; nothing to upscale")
    if None in order or len(set(order)) != n or (info["frames"] and info["frames"] != n):
        return [{"start": None, "end": None, "frames": n}]
    later = [0] * n                                # later[i]: the earliest timestamp of packets i, i + 1, ...
    low = math.inf
    for i in range(n - 1, -1, -1):
        low = later[i] = min(low, order[i])
    cuts, edges, high = [], [0], -math.inf         # edges: frames before each segment
    for i, pts in enumerate(order):
        closed = i > 0 and keys[i] and high < pts == later[i]      # then exactly i frames are shown before it
        if closed and i - edges[-1] >= min_frames and n - i >= min_frames:
            cuts.append(pts)
            edges.append(i)
        high = max(high, pts)
    edges.append(n)
    starts, ends = [None, *cuts], [*cuts, None]
    return [{"start": a, "end": b, "frames": edges[k + 1] - edges[k]} for k, (a, b) in enumerate(zip(starts, ends))]


def upscale_segment(src, dst, segment: dict, scale: int = 3, model=None, codec: str | None = None, crf=None,
                    preset: str | None = None, pix_fmt: str | None = None, tile: int | None = None,
                    ensemble: bool = False, max_pixels=DEFAULT_MAX_PIXELS, prefetch: int = PREFETCH) -> dict:
    """Upscale one segment of :func:`plan_segments` of ``src`` into ``dst``, a video-only file.

    The frames are decoded, upscaled and encoded by the code of :func:`upscale_video`, with the same
    encoder settings, into the container ``dst``'s suffix names; a fresh encoder, so the file starts with a
    keyframe and references nothing before it. The frames keep their timestamps (those of ``src``). ``dst``
    is written atomically and replaced if it exists (it is a temporary file of :func:`join_segments`).

    Returns:
        dict: ``frames`` written, ``width``/``height`` of the output, ``padded``, ``rotation`` (of the first
        frame, which :func:`join_segments` gives the joined file).

    Raises:
        As :func:`upscale_video`; ``ValueError`` too when the window holds another number of frames than
        ``segment["frames"]`` (the input could not be sought or decoded there).
    """
    av = _av()
    src, dst = Path(src), Path(dst)
    r = check_scale(scale)
    net = resolve_model(model, r)
    limit = check_max_pixels(max_pixels)
    settings = _settings(av, dst, codec, crf, preset, pix_fmt)
    start, end = segment["start"], segment["end"]
    window = None if start is None and end is None else (start, end)
    with _open_input(av, src) as inp:
        v, info = _checked_video(inp, src, limit)
        with atomic_write(dst, "wb", overwrite=True) as f:
            size, written, rotation = _transcode(av, inp, v, info, f, settings, r, net, tile, ensemble, [], window,
                                                 None, prefetch, src, dst)
            if window is not None and written != segment["frames"]:
                raise ValueError(f"{src}: {written} frame(s) decoded from timestamp {start} to {end}, where "
                                 f"{segment['frames']} were found; the video cannot be cut there")
    return {"frames": written, "width": size[0], "height": size[1], "padded": size[2], "rotation": rotation}


def join_segments(src, dst, parts, rotation: int = 0, overwrite: bool = False) -> dict:
    """Join the segment files ``parts`` (of :func:`upscale_segment`, in order) into ``dst`` without
    re-encoding, with the audio and subtitle streams of ``src`` copied as :func:`upscale_video` copies them.

    The encoded packets are remuxed as they are, each with its presentation timestamp (the source frame's);
    decoding timestamps are made anew for the whole stream, since each segment's encoder began its own:
    packet ``i`` in decoding order gets the ``i - d``-th smallest presentation timestamp, ``d`` the largest
    reordering delay of any segment (earlier ones extrapolated back), which keeps them increasing and never
    after the presentation. Every segment must have the time base and codec parameters (extradata) of the
    first, and the segments must follow each other in time. ``dst`` is written atomically, never replaced
    unless ``overwrite``.

    Returns:
        dict: ``frames`` joined, ``width``/``height``, ``audio``/``subtitles`` streams copied.

    Raises:
        ValueError: a segment that is unreadable, empty, out of order or encoded otherwise than the first;
            an unreadable ``src``; an unsupported suffix.
        FileExistsError: ``dst`` exists (or appeared meanwhile) and ``overwrite`` is False.
    """
    av = _av()
    src, dst, parts = Path(src), Path(dst), [Path(p) for p in parts]
    container_fmt = CONTAINERS.get(dst.suffix.lower())
    if container_fmt is None:
        raise ValueError(f"{dst}: unsupported video suffix {dst.suffix or '(none)'!r}")
    if not parts:
        raise ValueError(f"{dst}: no segment to join")
    shown, delay, first = [], 0, None             # shown: every presentation timestamp, in order
    for k, part in enumerate(parts):
        with _open_input(av, part) as c:
            s = _video_stream(c, part)
            params = (s.time_base, s.codec_context.name, s.codec_context.extradata)
            if first is None:
                first = params
            elif params != first:
                raise ValueError(f"{dst}: segment {k + 1} of {len(parts)} was encoded with other parameters than "
                                 f"the first; cannot join them without re-encoding")
            try:
                pts = [p.pts for p in c.demux(s) if p.size]
            except av.FFmpegError as e:
                raise ValueError(f"{part}: unreadable segment ({_reason(e)})") from None
        if not pts or None in pts or len(set(pts)) != len(pts):
            raise ValueError(f"{dst}: segment {k + 1} of {len(parts)} has no frames or lacks timestamps")
        ranked = sorted(pts)
        if shown and ranked[0] <= shown[-1]:
            raise ValueError(f"{dst}: segment {k + 1} of {len(parts)} does not follow the one before it in time")
        rank = {q: j for j, q in enumerate(ranked)}
        delay = max(delay, max(j - rank[q] for j, q in enumerate(pts)))
        shown.extend(ranked)
    time_base = first[0]
    step = min((b - a for a, b in itertools.pairwise(shown)), default=1)

    def video_packets(ov):
        i = 0
        for part in parts:
            with _open_input(av, part) as c:
                for packet in c.demux(c.streams.video[0]):
                    if not packet.size:
                        continue
                    packet.dts = shown[i - delay] if i >= delay else shown[0] - (delay - i) * step
                    i += 1
                    yield packet.dts * time_base, packet, ov

    def side_packets(inp, copied, mapping):
        if not copied:
            return
        for packet in inp.demux(*copied):
            if packet.dts is not None and packet.size:
                yield packet.dts * packet.time_base, packet, mapping[packet.stream.index]

    with _open_input(av, src) as inp:
        v = _video_stream(inp, src)
        copied = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        kinds = [s.type for s in copied]            # (a stream is not to be touched once its file is closed)
        with atomic_write(dst, "wb", overwrite=overwrite) as f, _open_input(av, parts[0]) as head:
            out = av.open(f, "w", format=container_fmt)
            try:
                template = head.streams.video[0]
                ov = out.add_stream_from_template(template)
                ov.time_base = v.time_base
                ov.codec_context.framerate = _frame_rate(v)
                mapping = _copy_streams(av, out, copied, dst)
                if rotation:
                    ov.set_display_rotation(rotation)
                for _, packet, stream in heapq.merge(video_packets(ov), side_packets(inp, copied, mapping),
                                                     key=lambda item: item[0]):
                    packet.stream = stream
                    out.mux(packet)
            except av.FFmpegError as e:
                raise ValueError(f"{dst}: joining the segments failed ({_reason(e)})") from None
            finally:
                out.close()
            width, height = template.codec_context.width, template.codec_context.height
    return {"frames": len(shown), "width": width, "height": height,
            "audio": kinds.count("audio"), "subtitles": kinds.count("subtitle")}
