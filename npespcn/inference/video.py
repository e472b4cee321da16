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

PyAV is an optional extra (``pip install "npespcn[video]"``), imported through
:func:`npespcn.extras.require` when a video is opened, never by ``import npespcn``.
"""
from __future__ import annotations

import collections
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
    limit = check_max_pixels(max_pixels)
    container_fmt = CONTAINERS.get(dst.suffix.lower())
    if container_fmt is None:
        raise ValueError(f"{dst}: unsupported video suffix {dst.suffix or '(none)'!r}; expected one of "
                         f"{', '.join(VIDEO_SUFFIXES)}")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"{dst} is the input itself; never replaced")
    codec = codec or DEFAULT_CODECS.get(container_fmt, DEFAULT_CODEC)
    options, encoder = _encoder_options(av, codec, crf, preset)
    pix_fmt = pix_fmt or DEFAULT_PIX_FMT
    sub_x, sub_y = _subsampling(pix_fmt)
    with _open_input(av, src) as inp:
        v = _video_stream(inp, src)
        info = _describe(inp, v)
        w, h = info["width"], info["height"]
        if not w or not h:
            raise ValueError(f"{src}: the video stream declares no frame size")
        if limit is not None and w * h > limit:
            raise ValueError(f"{src}: frames of {w}x{h} = {w * h / 1e6:.1f} Mpx, more than the limit of "
                             f"{limit / 1e6:.1f} Mpx; raise the limit (--max-pixels) to read it")
        out_w, out_h = r * w, r * h
        pad_w, pad_h = out_w % 2 if sub_x else 0, out_h % 2 if sub_y else 0
        copied = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        rgb = "rgb48le" if info["bits"] > 8 else "rgb24"
        with atomic_write(dst, "wb", overwrite=overwrite) as f:
            out = av.open(f, "w", format=container_fmt)
            try:
                streams = _open_output(av, out, v, copied, codec, encoder, options, pix_fmt,
                                       out_w + pad_w, out_h + pad_h, dst)
                written = _run(av, inp, v, copied, out, streams, r, net, tile, ensemble, rgb, pix_fmt,
                               (pad_h, pad_w), _expected_frames(info), progress, prefetch, src)
            finally:
                out.close()
    return {"frames": written, "width": out_w + pad_w, "height": out_h + pad_h, "fps": info["fps"],
            "codec": codec, "pix_fmt": pix_fmt, "audio": info["audio"], "subtitles": info["subtitles"],
            "padded": bool(pad_w or pad_h)}


def _open_output(av, out, v, copied, codec, encoder, options, pix_fmt, width, height, dst):
    """The output's video stream (configured from the input's ``v``) and the copies of ``copied``."""
    cc = v.codec_context
    rate = v.average_rate or v.guessed_rate or Fraction(25)
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
    mapping = {}
    for s in copied:
        try:
            mapping[s.index] = out.add_stream_from_template(s)
        except (ValueError, av.FFmpegError) as e:
            raise ValueError(f"{dst}: cannot copy the {s.type} stream #{s.index} ({s.codec_context.name}) into "
                             f"a {out.format.name} file ({_reason(e)}); choose another output suffix") from None
        if s.language:
            mapping[s.index].metadata["language"] = s.language
    return ov, mapping


def _run(av, inp, v, copied, out, streams, r, net, tile, ensemble, rgb, pix_fmt, pad, expected, progress,
         prefetch, src):
    """Decode, upscale and encode; returns the number of frames written."""
    ov, mapping = streams
    side = collections.deque()          # (video frames decoded before it, packet) to mux in order
    timing = collections.deque()        # (pts, rotation) of each decoded frame, for the encoder
    state = {"decoded": 0}

    def decoded():
        """Thread of the decoder: yields RGB arrays; queues copied packets and timestamps aside."""
        try:
            for packet in inp.demux(v, *copied):
                if packet.stream.index != v.index:
                    if packet.dts is not None and packet.size:
                        side.append((state["decoded"], packet))
                    continue
                for frame in packet.decode():          # the last, empty packet flushes the decoder
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
    if v.frames and result["written"] < v.frames:
        raise ValueError(f"{src}: truncated: {result['written']} of the {v.frames} frames it declares could be "
                         f"decoded")
    return result["written"]


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
            if done == 0 and rotation:
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
