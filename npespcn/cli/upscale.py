"""``npespcn upscale``: super-resolve image files with ESPCN.

::

    npespcn upscale photo.png                      # -> photo_x3.png next to it
    npespcn upscale a.jpg -o big.jpg --quality 92
    npespcn upscale 'shots/*.png' frames/ --out-dir big/ --scale 2 --model espcn7
    npespcn upscale --demo [--out espcn_demo.png]  # no data needed

Inputs are files, folders (their images, not recursive) and glob patterns. The output keeps the input's
format (PNG, JPEG, BMP, TIFF) unless ``-o`` names another; every file is written atomically. Video files
(``clip.mp4`` -> ``clip_x3.mp4``, sound kept; :func:`npespcn.upscale_video`, needs PyAV) and animated GIF,
APNG and WebP (:func:`npespcn.upscale_animation`) go to the library's video and animation paths. An unreadable
or corrupt input, a decompression bomb (more than ``--max-pixels``) or one that does not fit in memory is
reported and skipped, the others are still written, and the exit status is 1 when any file failed (2 for
a usage error such as a bad scale or a missing model).

No output is ever replaced without ``--overwrite``: not an existing file, not a dangling symlink, not a
file another process publishes while this one works (the result is published exclusively, see
:func:`npespcn.atomic.atomic_write`), never the input itself (not even with ``--overwrite``), and not the
result of an earlier input of the same run (two inputs named ``x.png`` with ``--out-dir``: the second is
reported and skipped). A file found through a folder or a glob pattern whose name is
``<stem>_x<N><suffix>`` while ``<stem><suffix>`` of the same folder is also an input is taken for an
earlier run's output of it and left alone (noted unless ``-q``; not a failure); name it on its own to
upscale it.

``--dask ADDRESS`` runs one task per image on a Dask cluster (``local:N``: N local worker processes) with the
same guarantees (:func:`npespcn.inference.batch.upscale_files`); a video is split at its keyframes into
segments of at least ``--segment-frames`` frames, one task each, joined here without re-encoding.
``--skip-existing`` finishes a batch that was interrupted, leaving the outputs already written alone.
Animations are upscaled in this process only: with ``--dask`` each is reported as failed.
"""
from __future__ import annotations

import sys

from ..extras import MissingExtra
from ..image.io import DEFAULT_MAX_PIXELS, PNG_COMPRESSION, check_max_pixels
from ..inference.batch import dask_client, upscale_files
from ..inference.video import DEFAULT_CRF, DEFAULT_PRESET, SEGMENT_FRAMES
from ..nn import resolve_model
from ..training.progress import Progress
from .common import HelpFormatter, OneLineParser
from .demo import demo_command

PROG = "npespcn upscale"


class UsageError(Exception):
    """A problem with the command line as a whole (exit status 2)."""


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG,
                      description="Super-resolve images, videos and animations with ESPCN (Shi et al., 2016).",
                      formatter_class=HelpFormatter,
                      epilog="Exit status: 0 all written, 1 some files failed, 2 usage error.")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image, video (.mp4, .mkv, .mov, .webm, .avi, ...) or animation (.gif, APNG, .webp) files, "
                        "folders of images, or glob patterns")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--out", help="output file (one input only; with --demo: the demo PNG, replaced if it "
                       "exists; default: "
                       "<stem>_x<scale><suffix> next to the input)")
    where.add_argument("--out-dir",
                       help="folder for the outputs, created if missing; the outputs keep the inputs' file names")
    p.add_argument("--scale", type=int, default=None,
                   help="upscale factor (default: the model file's, else 3)")
    p.add_argument("--model", default=None,
                   help="shipped name (espcn, espcn7) or a model file (default: the shipped espcn)")
    p.add_argument("--tile", type=int, default=None, help="low-resolution tile side (default: automatic)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality 1..100")
    p.add_argument("--png-compression", type=int, default=PNG_COMPRESSION, metavar="LEVEL",
                   help="PNG zlib level 0..9: higher is smaller and slower")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (never an input, nor an output of the same run)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="largest input (width x height) decoded; larger files are skipped as possible "
                        "decompression bombs; 0: no limit")
    p.add_argument("--clip", action="store_true", help="clip float images to [0, 1] instead of refusing")
    p.add_argument("--ensemble", action="store_true",
                   help="average the network over the 8 flips and rotations of each image (8x the work)")
    p.add_argument("--codec", default=None,
                   help="video encoder (FFmpeg name, e.g. libx264, libx265, libvpx-vp9; default: libx264, "
                        "libvpx-vp9 for .webm)")
    p.add_argument("--crf", type=float, default=None,
                   help=f"video quality: constant rate factor, lower is better and larger (x264: 0..51; "
                        f"default: {DEFAULT_CRF:g} where the encoder has one)")
    p.add_argument("--preset", default=None,
                   help=f"video encoder speed preset (x264: ultrafast .. veryslow; default: {DEFAULT_PRESET} "
                        f"where the encoder has one)")
    p.add_argument("--pix-fmt", default=None,
                   help="video pixel format (default: yuv420p; e.g. yuv444p, yuv420p10le)")
    p.add_argument("--skip-existing", action="store_true",
                   help="count an output that exists already as done (to finish an interrupted batch)")
    p.add_argument("--dask", metavar="ADDRESS|local:N", default=None,
                   help="run one task per image on a Dask cluster: a scheduler address (tcp://host:8786), or "
                        "local:N for N local worker processes (needs the dask extra); a video is split at its "
                        "keyframes, one task per segment, and joined without re-encoding")
    p.add_argument("--segment-frames", type=int, default=SEGMENT_FRAMES, metavar="N",
                   help="with --dask: the fewest frames of one segment of a video (a video shorter than twice "
                        "that is one task)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--demo", action="store_true",
                   help="draw a test chart, compare bicubic and ESPCN, write a side-by-side PNG")
    return p


def _resolve(args):
    """The model and the scale: ``--scale``, else the model file's, else 3."""
    net = resolve_model(args.model, args.scale)
    return net, net.scale


def run(args, stderr=None) -> int:
    """Upscale every input of the parsed ``args``; returns the exit status."""
    stderr = sys.stderr if stderr is None else stderr
    if args.tile is not None and args.tile < 1:
        raise UsageError(f"--tile must be a positive integer, got {args.tile}")
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality must be in 1..100, got {args.quality}")
    if not 0 <= args.png_compression <= 9:
        raise UsageError(f"--png-compression must be in 0..9, got {args.png_compression}")
    try:
        check_max_pixels(args.max_pixels)
    except ValueError:
        raise UsageError(f"--max-pixels must be a positive integer (0: no limit), got {args.max_pixels}") from None
    if args.segment_frames < 1:
        raise UsageError(f"--segment-frames must be a positive integer, got {args.segment_frames}")
    if args.overwrite and args.skip_existing:
        raise UsageError("--overwrite and --skip-existing contradict each other; give one")
    net, scale = _resolve(args)
    n_failed, n_files = 0, 0
    bars = {}                                  # a video's or an animation's frames: one bar per file

    def frame_progress(rec, done, total):
        bar = bars.get(rec["index"])
        if bar is None:
            bar = bars[rec["index"]] = Progress(0, f"[{rec['index']}/{rec['total']}] {rec['src'].name}",
                                                stream=stderr, unit="frames", show_loss=False,
                                                disabled=args.quiet)
        bar.total = max(total, done)
        bar.update(done - bar.done)

    def progress(rec):
        nonlocal n_failed, n_files
        bar = bars.pop(rec["index"], None)
        if bar is not None and bar.done:
            bar.close()
        n_files += 1
        where = f"[{rec['index']}/{rec['total']}] {rec['src']}"
        if rec["status"] == "failed":
            n_failed += 1
            print(f"{where}: {rec['message']}", file=stderr)
        elif args.quiet:
            return
        elif rec["status"] == "written":
            h, w = rec["shape"][:2]
            print(f"{where} -> {rec['dst']} ({w // scale}x{h // scale} -> {w}x{h}, {rec['seconds']:.1f} s)",
                  file=stderr)
        else:
            print(f"{where}: {rec['message']}", file=stderr)

    client, cluster = dask_client(args.dask) if args.dask else (None, None)
    try:
        upscale_files(args.inputs, args.out_dir, scale, net, client=client, overwrite=args.overwrite,
                      skip_existing=args.skip_existing, out=args.out, tile=args.tile, quality=args.quality,
                      png_compression=args.png_compression, max_pixels=args.max_pixels, clip=args.clip,
                      ensemble=args.ensemble, progress=progress, codec=args.codec, crf=args.crf,
                      preset=args.preset, pix_fmt=args.pix_fmt, frame_progress=frame_progress,
                      segment_frames=args.segment_frames)
    finally:
        for bar in bars.values():              # interrupted mid-file: end its bar's line
            if bar.done:
                bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if n_failed:
        print(f"{PROG}: {n_failed} of {n_files} file(s) failed", file=stderr)
    return 1 if n_failed else 0


def main(argv=None) -> int:
    """Entry point: parse ``argv`` and run; errors become one line on stderr and a non-zero status."""
    args = build_parser().parse_args(argv)
    try:
        if args.demo:
            if args.inputs:
                raise UsageError("--demo takes no input files")
            return demo_command(args.out or "espcn_demo.png", 3 if args.scale is None else args.scale,
                                args.model, prog=PROG, tile=args.tile)
        return run(args)
    except (UsageError, ValueError, TypeError, OSError, MissingExtra) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
