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
"""
from __future__ import annotations

import glob
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from ..extras import MissingExtra
from ..image.io import (
    DEFAULT_MAX_PIXELS,
    PNG_COMPRESSION,
    check_max_pixels,
    format_for,
    list_images,
    read_image,
    write_image,
    write_png_rows,
)
from ..inference import upscale, upscale_bands
from ..inference.animation import ANIMATION_SUFFIXES, is_animated, upscale_animation
from ..inference.video import DEFAULT_CRF, DEFAULT_PRESET, is_video_path, upscale_video
from ..nn import resolve_model
from ..training.progress import Progress
from .common import HelpFormatter, OneLineParser
from .demo import demo_command

PROG = "npespcn upscale"


class UsageError(Exception):
    """A problem with the command line as a whole (exit status 2)."""


def expand_inputs(patterns, found=None) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> a list of files, in order, no repeats.

    ``found``, a set, receives the files that came from a folder or a glob pattern (not named as such)."""
    files, seen = [], set()

    def add(p, listed=False):
        p = Path(p)
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)
            if listed and found is not None:
                found.add(p)

    for pat in patterns:
        p = Path(pat)
        if p.is_dir():
            for q in list_images(p):
                add(q, True)
        elif p.exists():
            add(p)
        elif glob.has_magic(pat):
            matches = sorted(glob.glob(pat))
            if not matches:
                raise UsageError(f"no file matches {pat!r}")
            for m in matches:
                if Path(m).is_file():
                    add(m, True)
        else:
            add(p)                             # reported as unreadable when its turn comes
    return files


_OUTPUT_STEM = re.compile(r"^(?P<stem>.+)_x[1-9][0-9]*$")


def earlier_outputs(files, found) -> dict[Path, Path]:
    """``{file: its source}`` for the files of ``found`` named ``<stem>_x<N><suffix>`` whose
    ``<stem><suffix>`` in the same folder is also among ``files``: outputs of an earlier run."""
    inputs = {p.resolve() for p in files}
    out = {}
    for p in files:
        m = _OUTPUT_STEM.match(p.stem) if p in found else None
        if m:
            source = p.with_name(m.group("stem") + p.suffix)
            if source.resolve() in inputs:
                out[p] = source
    return out


def _key(path: Path) -> str:
    """One spelling of ``path`` (its folder resolved), to tell whether two outputs are the same file."""
    return os.path.normcase(os.path.join(os.path.realpath(path.parent if str(path.parent) else "."), path.name))


def output_path(src: Path, scale: int, out=None, out_dir=None) -> Path:
    """Where ``src`` goes: ``out``, ``out_dir/<name>``, or ``<stem>_x<scale><suffix>`` next to it."""
    if out is not None:
        return Path(out)
    if out_dir is not None:
        return Path(out_dir) / src.name
    return src.with_name(f"{src.stem}_x{scale}{src.suffix}")


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Super-resolve images, videos and animations with ESPCN (Shi et al., 2016).",
                      formatter_class=HelpFormatter,
                      epilog="Exit status: 0 all written, 1 some files failed, 2 usage error.")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image, video (.mp4, .mkv, .mov, .webm, .avi, ...) or animation (.gif, APNG, "
                   ".webp) files, folders of images, or glob patterns")
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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--demo", action="store_true",
                   help="draw a test chart, compare bicubic and ESPCN, write a side-by-side PNG")
    return p


def media_kind(src: Path, dst: Path, max_pixels) -> str | None:
    """``"video"`` for a video file (by suffix), ``"animation"`` for an animated GIF, APNG or WebP (or any
    input written as .gif or .webp), None for a still image."""
    if is_video_path(src) or is_video_path(dst):
        return "video"
    if dst.suffix.lower() in (".gif", ".webp"):
        return "animation"
    if src.suffix.lower() in ANIMATION_SUFFIXES and is_animated(src, max_pixels):
        return "animation"
    return None


def upscale_media(kind: str, src: Path, dst: Path, scale: int, net, args, stderr, label: str):
    """Upscale a video or an animation with the library, a progress bar of its frames on ``stderr``
    (frames done, frames per second, ETA); returns the result's shape ``(H, W)``."""
    bar = Progress(0, label, stream=stderr, unit="frames", show_loss=False, disabled=args.quiet)

    def progress(done, total):
        bar.total = max(total, done)
        bar.update(done - bar.done)

    try:
        if kind == "video":
            info = upscale_video(src, dst, scale, net, codec=args.codec, crf=args.crf, preset=args.preset,
                                 pix_fmt=args.pix_fmt, tile=args.tile, ensemble=args.ensemble,
                                 overwrite=args.overwrite, max_pixels=args.max_pixels, progress=progress)
        else:
            info = upscale_animation(src, dst, scale, net, tile=args.tile, ensemble=args.ensemble,
                                     quality=args.quality, overwrite=args.overwrite, max_pixels=args.max_pixels,
                                     progress=progress)
    finally:
        if bar.done:
            bar.close()
    return info["height"], info["width"]


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
    found: set = set()
    files = expand_inputs(args.inputs, found)
    if not files:
        raise UsageError("no input images (give files, folders or glob patterns, or --demo)")
    if args.out is not None and len(files) != 1:
        raise UsageError(f"-o/--out takes one input, got {len(files)}; use --out-dir for several")
    if args.out is not None:
        if not (is_video_path(args.out) or Path(args.out).suffix.lower() in ANIMATION_SUFFIXES):
            format_for(args.out)
        if not Path(args.out).parent.is_dir():
            raise UsageError(f"cannot write {args.out}: the folder {Path(args.out).parent} does not exist")
    if args.out_dir is not None:
        if Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
            raise UsageError(f"--out-dir {args.out_dir} exists and is not a folder")
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    net, scale = _resolve(args)
    earlier = earlier_outputs(files, found)
    failed, written = 0, {}
    for i, src in enumerate(files, start=1):
        if src in earlier:
            if not args.quiet:
                print(f"[{i}/{len(files)}] {src}: not upscaled: an earlier output of {earlier[src].name} "
                      f"(name it on its own to upscale it)", file=stderr)
            continue
        dst = output_path(src, scale, args.out, args.out_dir)
        t0 = time.perf_counter()
        try:
            if _key(dst) in written:
                raise ValueError(f"{dst} was written by this run for {written[_key(dst)]} (two inputs with the "
                                 f"same name: give them separate --out-dir)")
            if src.exists() and os.path.lexists(dst) and os.path.realpath(dst) == os.path.realpath(src):
                raise ValueError(f"{dst} is the input itself; never replaced")
            if os.path.lexists(dst) and not args.overwrite:
                what = "exists as a dangling symlink" if not dst.exists() else "exists"
                raise ValueError(f"{dst} {what} (pass --overwrite to replace it)")
            kind = media_kind(src, dst, args.max_pixels)
            if kind is not None:
                shape = upscale_media(kind, src, dst, scale, net, args, stderr, f"[{i}/{len(files)}] {src.name}")
            else:
                fmt = format_for(dst)
                image, info = read_image(src, args.max_pixels)
                icc = info.get("icc_profile")
                if fmt == "PNG" and image.dtype in (np.uint8, np.uint16):
                    # streamed: one band of rows at a time, the whole result is never in memory
                    shape, dtype, bands = upscale_bands(image, scale, net, tile=args.tile, clip=args.clip,
                                                         ensemble=args.ensemble)
                    write_png_rows(dst, shape, dtype, bands(), icc_profile=icc,
                                   png_compression=args.png_compression, overwrite=args.overwrite)
                else:
                    big = upscale(image, scale, net, tile=args.tile, clip=args.clip, ensemble=args.ensemble)
                    shape = big.shape
                    write_image(dst, big, quality=args.quality, icc_profile=icc,
                                png_compression=args.png_compression, overwrite=args.overwrite)
                    del big
                del image
        except FileExistsError:
            failed += 1
            print(f"[{i}/{len(files)}] {src}: skipped: {dst} appeared while it was being upscaled (another "
                  f"run?); not replaced (pass --overwrite to replace it)", file=stderr)
            continue
        except MemoryError:
            failed += 1
            print(f"[{i}/{len(files)}] {src}: skipped: not enough memory to upscale it (MemoryError; try "
                  f"--tile, or a PNG output, which is streamed)", file=stderr)
            continue
        except (ValueError, TypeError, OSError, MissingExtra) as e:
            failed += 1
            print(f"[{i}/{len(files)}] {src}: skipped: {e}", file=stderr)
            continue
        written[_key(dst)] = src
        if not args.quiet:
            h, w = shape[:2]
            print(f"[{i}/{len(files)}] {src} -> {dst} ({w // scale}x{h // scale} -> {w}x{h}, "
                  f"{time.perf_counter() - t0:.1f} s)", file=stderr)
    if failed:
        print(f"{PROG}: {failed} of {len(files)} file(s) failed", file=stderr)
    return 1 if failed else 0


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
    except (UsageError, ValueError, TypeError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
