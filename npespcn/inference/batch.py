"""Upscale many image, video and animation files, in this process or on a Dask cluster, with one set of guarantees.

:func:`upscale_files` is the batch behind ``npespcn upscale``: it expands the inputs (files, folders, glob
patterns), decides every output path and what must not be touched, then upscales one file per task,
either in a loop here or as one ``dask.distributed`` task per file on a cluster (``client=``). Either way:

* every output is written atomically (:mod:`npespcn.atomic`): a crash, a killed worker or Ctrl-C leaves
  either nothing or the complete file at an output path;
* no existing file is replaced without ``overwrite=True`` (not even one that appears meanwhile), never
  the input itself, and not an output of an earlier input of the same batch;
* a file that cannot be read or upscaled is reported in its result and the others are still written;
* with ``skip_existing=True`` an output that exists already counts as done, so running the same batch
  again after the client, a worker or the machine died finishes only what is missing;
* the pixels are the same bits as :func:`npespcn.upscale` gives in this process (on a worker with the
  same CPU and libraries: BLAS may round differently elsewhere).

A video file (by suffix, :func:`npespcn.upscale_video`, needs PyAV) or an animated GIF, APNG or WebP (or any
input written as .gif or .webp, :func:`npespcn.upscale_animation`) is routed by :func:`media_kind` to the
library's video and animation paths. On a cluster a video is split at its keyframes
(:func:`npespcn.inference.video.plan_segments`, here: its packets are read, not decoded) into segments of
at least ``segment_frames`` frames, one task each (:func:`npespcn.inference.video.upscale_segment`: the
code of ``upscale_video``, encoding a video-only file into a temporary folder beside the output); when the
last is done they are joined here without re-encoding, the audio and subtitle streams copied from the
input (:func:`npespcn.inference.video.join_segments`), the output written atomically and the folder
removed. A segment that fails fails its video only, and leaves nothing behind; a re-run does a video whose
output is missing again from the start (its segments are not kept). An animation is upscaled in this
process only: on a cluster it is reported as failed.

On a cluster, the workers need npespcn installed and must see the inputs and the output folder at the
same paths (a shared file system). A task whose worker dies is run again on another worker by Dask; a
file that kills every worker that tries it is reported as failed. ``dask.distributed`` is an optional
extra (``pip install "npespcn[dask]"``), imported through :func:`npespcn.extras.require` only when a
cluster is asked for.

Examples::

    >>> import npespcn
    >>> results = npespcn.upscale_files(["shots/"], "big/", scale=3)           # doctest: +SKIP
    >>> from dask.distributed import Client                                    # doctest: +SKIP
    >>> results = npespcn.upscale_files(["shots/"], "big/", client=Client("tcp://scheduler:8786"))  # doctest: +SKIP
    >>> [r["status"] for r in results]                                         # doctest: +SKIP
    ['written', 'written']
"""
from __future__ import annotations

import contextlib
import filecmp
import functools
import glob
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import HOST_TAG, TMP_PREFIX, clean_stale_temp
from ..extras import MissingExtra, require
from ..image.io import (
    DEFAULT_MAX_PIXELS,
    PNG_COMPRESSION,
    format_for,
    list_images,
    read_image,
    write_image,
    write_png_rows,
)
from ..nn.pretrained import resolve_model
from .animation import ANIMATION_SUFFIXES, is_animated, upscale_animation
from .pipeline import upscale, upscale_bands
from .video import (
    SEGMENT_FRAMES,
    check_segment_frames,
    is_video_path,
    join_segments,
    plan_segments,
    upscale_segment,
    upscale_video,
)


class BatchError(ValueError):
    """A problem with the batch as a whole (no input matches, ``out`` with several inputs, ...)."""


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
        elif glob.has_magic(str(pat)):
            matches = sorted(glob.glob(str(pat)))
            if not matches:
                raise BatchError(f"no file matches {str(pat)!r}")
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


def same_file_key(path: Path) -> str:
    """One spelling of ``path`` (its folder resolved), to tell whether two outputs are the same file."""
    return os.path.normcase(os.path.join(os.path.realpath(path.parent if str(path.parent) else "."), path.name))


def output_path(src: Path, scale: int, out=None, out_dir=None) -> Path:
    """Where ``src`` goes: ``out``, ``out_dir/<name>``, or ``<stem>_x<scale><suffix>`` next to it."""
    if out is not None:
        return Path(out)
    if out_dir is not None:
        return Path(out_dir) / src.name
    return src.with_name(f"{src.stem}_x{scale}{src.suffix}")


def is_media_output(path) -> bool:
    """Whether ``path`` names a video or animation output (``.mp4``, ``.gif``, APNG's ``.png`` counts as an
    image): what :func:`npespcn.image.io.format_for` refuses but the batch writes through
    :func:`upscale_video` or :func:`upscale_animation`."""
    return is_video_path(path) or Path(path).suffix.lower() in ANIMATION_SUFFIXES


def media_kind(src, dst, max_pixels=DEFAULT_MAX_PIXELS) -> str | None:
    """``"video"`` for a video file (by suffix), ``"animation"`` for an animated GIF, APNG or WebP (or any
    input written as .gif or .webp), None for a still image."""
    src, dst = Path(src), Path(dst)
    if is_video_path(src) or is_video_path(dst):
        return "video"
    if dst.suffix.lower() in (".gif", ".webp"):
        return "animation"
    if src.suffix.lower() in ANIMATION_SUFFIXES and is_animated(src, max_pixels):
        return "animation"
    return None


def upscale_media(kind: str, src, dst, net, codec=None, crf=None, preset=None, pix_fmt=None, tile=None,
                  ensemble: bool = False, quality: int = 95, overwrite: bool = False,
                  max_pixels=DEFAULT_MAX_PIXELS, progress=None) -> tuple[int, int]:
    """Upscale a video (``kind == "video"``) or an animation with the library; ``progress(done, total)``
    after each frame written. Returns the result's shape ``(H, W)``. Raises as the library does."""
    if kind == "video":
        info = upscale_video(src, dst, net.scale, net, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                             tile=tile, ensemble=ensemble, overwrite=overwrite, max_pixels=max_pixels,
                             progress=progress)
    else:
        info = upscale_animation(src, dst, net.scale, net, tile=tile, ensemble=ensemble, quality=quality,
                                 overwrite=overwrite, max_pixels=max_pixels, progress=progress)
    return info["height"], info["width"]


def upscale_file(src, dst, net, tile=None, quality: int = 95, png_compression: int = PNG_COMPRESSION,
                 max_pixels=DEFAULT_MAX_PIXELS, clip: bool = False, ensemble: bool = False,
                 overwrite: bool = False, accept_identical: bool = False, codec=None, crf=None, preset=None,
                 pix_fmt=None, frame_progress=None) -> dict:
    """Upscale one file into ``dst`` atomically: the task of a batch, here or on a Dask worker.

    A PNG output of a uint8/uint16 image is streamed (one band of rows at a time). A video or an animation
    (:func:`media_kind`) goes to :func:`upscale_video` (``codec``, ``crf``, ``preset``, ``pix_fmt``) or
    :func:`upscale_animation` (``quality``), ``frame_progress(done, total)`` called after each frame. Never
    raises for a bad file: the result says what happened. When ``dst`` appears while the file is upscaled
    (and ``overwrite`` is False) it is left alone and the file failed; with ``accept_identical`` (the
    cluster's tasks; images only) a ``dst`` holding exactly the bytes this call would have written counts as
    written: it is what a task meets when Dask runs it again because its worker died after writing but
    before reporting.

    Returns:
        ``{"status": "written", "shape": (H, W[, C]) of the output, "seconds"}`` or
        ``{"status": "failed", "message": why}``.
    """
    src, dst = Path(src), Path(dst)
    t0 = time.perf_counter()
    scale = net.scale
    appeared = {"status": "failed", "message": f"skipped: {dst} appeared while it was being upscaled (another "
                                               f"run?); not replaced (pass --overwrite to replace it)"}

    def write(path, image, icc, replace):
        if format_for(dst) == "PNG" and image.dtype in (np.uint8, np.uint16):
            # streamed: one band of rows at a time, the whole result is never in memory
            shape, dtype, bands = upscale_bands(image, scale, net, tile=tile, clip=clip, ensemble=ensemble)
            write_png_rows(path, shape, dtype, bands(), icc_profile=icc, png_compression=png_compression,
                           overwrite=replace)
            return shape
        big = upscale(image, scale, net, tile=tile, clip=clip, ensemble=ensemble)
        write_image(path, big, quality=quality, icc_profile=icc, png_compression=png_compression,
                    overwrite=replace)
        return big.shape

    try:
        kind = media_kind(src, dst, max_pixels)
        if kind is not None:
            try:
                shape = upscale_media(kind, src, dst, net, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                                      tile=tile, ensemble=ensemble, quality=quality, overwrite=overwrite,
                                      max_pixels=max_pixels, progress=frame_progress)
            except FileExistsError:
                return appeared
            return {"status": "written", "shape": tuple(int(n) for n in shape),
                    "seconds": time.perf_counter() - t0}
        format_for(dst)
        image, info = read_image(src, max_pixels)
        icc = info.get("icc_profile")
        try:
            shape = write(dst, image, icc, overwrite)
        except FileExistsError:
            again = functools.partial(write, image=image, icc=icc, replace=True)
            if not (accept_identical and _holds_the_same(dst, again)):
                return appeared
            shape = None
        del image
    except MemoryError:
        return {"status": "failed", "message": "skipped: not enough memory to upscale it (MemoryError; try "
                                               "--tile, or a PNG output, which is streamed)"}
    except (ValueError, TypeError, OSError, MissingExtra) as e:
        return {"status": "failed", "message": f"skipped: {e}"}
    if shape is None:
        with Image.open(dst) as im:
            shape = (im.height, im.width)
    return {"status": "written", "shape": tuple(int(n) for n in shape), "seconds": time.perf_counter() - t0}


def _holds_the_same(dst: Path, write) -> bool:
    """Whether ``dst`` holds the bytes ``write(path)`` writes: written once more beside it, compared, removed."""
    probe = dst.with_name(f"{TMP_PREFIX}{os.getpid()}-{HOST_TAG}-probe{os.urandom(4).hex()}.{dst.name[-100:]}")
    try:
        write(probe)
        return filecmp.cmp(probe, dst, shallow=False)
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def plan_batch(files, found, scale: int, out=None, out_dir=None, overwrite: bool = False,
               skip_existing: bool = False) -> list[dict]:
    """One record per file: ``{"index", "total", "src", "dst", "status"}``, ``status`` ``"todo"`` for the files to
    upscale, else the decision already taken (``"failed"``, ``"earlier-output"``, ``"done"``) and its
    ``"message"``. Nothing is read or written."""
    earlier = earlier_outputs(files, found)
    planned, records = {}, []
    for i, src in enumerate(files, start=1):
        rec = {"index": i, "total": len(files), "src": src, "dst": None, "status": "todo"}
        records.append(rec)
        if src in earlier:
            rec.update(status="earlier-output", message=f"not upscaled: an earlier output of {earlier[src].name} "
                                                        f"(name it on its own to upscale it)")
            continue
        dst = rec["dst"] = output_path(src, scale, out, out_dir)
        key = same_file_key(dst)
        if key in planned:
            rec.update(status="failed", message=f"skipped: {dst} was written by this run for {planned[key]} (two "
                                                f"inputs with the same name: give them separate --out-dir)")
            continue
        planned[key] = src
        if src.exists() and os.path.lexists(dst) and os.path.realpath(dst) == os.path.realpath(src):
            rec.update(status="failed", message=f"skipped: {dst} is the input itself; never replaced")
        elif os.path.lexists(dst) and skip_existing and dst.is_file():
            rec.update(status="done", message=f"already done: {dst} exists")
        elif os.path.lexists(dst) and not overwrite:
            what = "exists as a dangling symlink" if not dst.exists() else "exists"
            rec.update(status="failed", message=f"skipped: {dst} {what} (pass --overwrite to replace it)")
    return records


def upscale_files(inputs, out_dir=None, scale=3, model=None, client=None, overwrite: bool = False,
                  skip_existing: bool = False, out=None, tile=None, quality: int = 95,
                  png_compression: int = PNG_COMPRESSION, max_pixels=DEFAULT_MAX_PIXELS, clip: bool = False,
                  ensemble: bool = False, progress=None, codec=None, crf=None, preset=None, pix_fmt=None,
                  frame_progress=None, segment_frames: int = SEGMENT_FRAMES) -> list[dict]:
    """Upscale image, video and animation files: here, or one task per image and per video segment on a Dask
    cluster (see the module docstring; animations in this process only).

    Args:
        inputs: image, video and animation files, folders (their images, not recursive) and glob patterns.
        out_dir: folder for the outputs (created if missing), which keep the inputs' names; None: each
            output is ``<stem>_x<scale><suffix>`` next to its input.
        scale: the upscale factor; None: the model's own.
        model: anything :func:`npespcn.upscale` takes (None: the shipped ``espcn``).
        client: a ``dask.distributed.Client``; None runs every file in this process.
        overwrite: replace existing outputs (never an input, nor an output of the same batch).
        skip_existing: an output that exists already counts as done (to finish an interrupted batch).
        out: the output file, for a single input (instead of ``out_dir``).
        tile, quality, png_compression, max_pixels, clip, ensemble: as for ``npespcn upscale``.
        progress: called with each file's record as soon as it is known (in completion order on a cluster).
        codec, crf, preset, pix_fmt: the video encoder's settings, as for :func:`npespcn.upscale_video`.
        frame_progress: for videos and animations, called as ``frame_progress(record, done, total)`` after
            each frame written (``total`` may be an estimate; 0 when unknown); on a cluster after each segment.
        segment_frames: on a cluster, the fewest frames of one segment of a video (a video shorter than
            twice that is one task).

    Returns:
        One record per input file, in input order: ``{"index", "total", "src", "dst", "status", ...}`` with
        ``status`` one of ``"written"`` (and ``"shape"``, ``"seconds"``), ``"failed"`` (and ``"message"``),
        ``"done"`` (existed, ``skip_existing``) or ``"earlier-output"`` (an output of an earlier run of a
        sibling input, found through a folder or pattern: left alone).

    Raises:
        BatchError: no input, ``out`` with several inputs, an ``out_dir`` that is a file.
        ValueError: a model that cannot be loaded or does not match ``scale``.
    """
    if out is not None and out_dir is not None:
        raise BatchError("give out or out_dir, not both")
    found: set = set()
    files = expand_inputs(inputs, found)
    if not files:
        raise BatchError("no input images (give files, folders or glob patterns)")
    if out is not None and len(files) != 1:
        raise BatchError(f"-o/--out takes one input, got {len(files)}; use --out-dir for several")
    if out is not None:
        if not is_media_output(out):
            format_for(out)
        if not Path(out).parent.is_dir():
            raise BatchError(f"cannot write {out}: the folder {Path(out).parent} does not exist")
    try:
        check_segment_frames(segment_frames)
    except ValueError as e:
        raise BatchError(str(e)) from None
    net = resolve_model(model, scale)
    if out_dir is not None:
        if Path(out_dir).exists() and not Path(out_dir).is_dir():
            raise BatchError(f"--out-dir {out_dir} exists and is not a folder")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    records = plan_batch(files, found, net.scale, out, out_dir, overwrite, skip_existing)
    options = {"tile": tile, "quality": quality, "png_compression": png_compression, "max_pixels": max_pixels,
               "clip": clip, "ensemble": ensemble, "overwrite": overwrite}
    video_options = {"codec": codec, "crf": crf, "preset": preset, "pix_fmt": pix_fmt}
    report = progress or (lambda rec: None)
    todo = []
    for rec in records:
        if rec["status"] == "todo":
            todo.append(rec)
        else:
            report(rec)
    if client is None:
        for rec in todo:
            frames = None if frame_progress is None else functools.partial(frame_progress, rec)
            rec.update(upscale_file(rec["src"], rec["dst"], net, **options, **video_options, frame_progress=frames))
            report(rec)
    else:
        work = []
        for rec in todo:
            kind = media_kind(rec["src"], rec["dst"], max_pixels)
            if kind == "animation":        # not on a cluster: one task would hold the whole file
                rec.update(status="failed", message="skipped: animations are upscaled in this process only, not on "
                                                    "a Dask cluster; run it without --dask")
                report(rec)
            else:
                work.append((rec, kind))
        _run_on_cluster(client, work, net, options, video_options, segment_frames, report, frame_progress)
    return records


def _run_on_cluster(client, work, net, options, video_options, segment_frames, report, frame_progress) -> None:
    """One task per image and per video segment on ``client``'s cluster; results into the records, in
    completion order. ``work``: ``(record, media kind)`` pairs (None for an image, ``"video"``)."""
    distributed = require("distributed", "upscaling on a Dask cluster")
    if not work:
        return
    [shared_net] = client.scatter([net], broadcast=True, hash=False)     # the weights travel once per worker
    futures = {}            # future -> (record, None) for an image, (video job, segment number) for a segment
    videos = []
    for rec, kind in work:
        if kind is None:
            # absolute paths: a worker's current folder is not the client's
            fut = client.submit(upscale_file, os.path.abspath(rec["src"]), os.path.abspath(rec["dst"]), shared_net,
                                **options,
                                accept_identical=True, pure=False,
                                key=f"npespcn-upscale-{rec['index']}-{os.urandom(6).hex()}")
            futures[fut] = (rec, None)
        else:
            videos.append(rec)
    jobs = []
    try:
        for rec in videos:                # planned here, after the images are on their way
            job = _submit_video(client, rec, shared_net, net.scale, options, video_options, segment_frames, futures)
            if job is None:
                report(rec)
            else:
                jobs.append(job)
        for fut in distributed.as_completed(list(futures)):
            owner, k = futures.pop(fut)
            if k is None:
                rec = owner
                try:
                    rec.update(fut.result())
                except distributed.KilledWorker as e:
                    rec.update(status="failed", message=f"skipped: it killed every worker that tried it ({e})")
                except Exception as e:                          # noqa: BLE001  (a task's failure is that file's)
                    rec.update(status="failed", message=f"skipped: {type(e).__name__}: {e}")
                report(rec)
            elif _segment_done(client, owner, k, fut, distributed, options["overwrite"], frame_progress):
                report(owner["rec"])
            fut.release()
    finally:
        for job in jobs:                  # finished, failed or interrupted: no segment is left behind
            shutil.rmtree(job["folder"], ignore_errors=True)
    folders = sorted({os.path.dirname(os.path.abspath(rec["dst"])) for rec, _ in work})
    for folder in folders:               # temporary files of killed workers, on every worker's host
        client.run(clean_stale_temp, folder)
        clean_stale_temp(folder)


def _submit_video(client, rec, shared_net, scale, options, video_options, segment_frames, futures):
    """Split the video of ``rec`` at its keyframes and submit one task per segment (into ``futures``); its
    job, or None when it failed here (``rec`` says why)."""
    src, dst = Path(os.path.abspath(rec["src"])), Path(os.path.abspath(rec["dst"]))
    try:
        segments = plan_segments(src, dst, segment_frames, max_pixels=options["max_pixels"], **video_options)
    except (ValueError, TypeError, OSError, MissingExtra) as e:
        rec.update(status="failed", message=f"skipped: {e}")
        return None
    folder = dst.with_name(f"{TMP_PREFIX}{os.getpid()}-{HOST_TAG}-segments{os.urandom(4).hex()}.{dst.name[-100:]}")
    try:
        folder.mkdir()
    except OSError as e:
        rec.update(status="failed", message=f"skipped: cannot make the folder of its segments: {e}")
        return None
    job = {"rec": rec, "folder": folder, "segments": segments, "results": [None] * len(segments), "done": 0,
           "frames": sum(s["frames"] for s in segments), "futures": [], "t0": time.perf_counter()}
    job["parts"] = [folder / f"{k:06d}{dst.suffix}" for k in range(len(segments))]
    for k, segment in enumerate(segments):
        fut = client.submit(segment_task, src, job["parts"][k], segment, scale, shared_net, **video_options,
                            tile=options["tile"], ensemble=options["ensemble"], max_pixels=options["max_pixels"],
                            pure=False, key=f"npespcn-segment-{rec['index']}-{k}-{os.urandom(6).hex()}")
        futures[fut] = (job, k)
        job["futures"].append(fut)
    return job


def segment_task(src, dst, segment, scale, net, **options) -> dict:
    """The task of one video segment on a worker: :func:`npespcn.inference.video.upscale_segment`, whose
    result it returns with ``"status": "written"``; never raises for a bad file (``"status": "failed"`` and
    the ``"message"``), so that a worker's log shows no traceback for it."""
    try:
        return {"status": "written", **upscale_segment(src, dst, segment, scale, net, **options)}
    except MemoryError:
        return {"status": "failed", "message": "not enough memory to upscale it (MemoryError; try --tile)"}
    except (ValueError, TypeError, OSError, MissingExtra) as e:
        return {"status": "failed", "message": str(e)}


def _segment_done(client, job, k, fut, distributed, overwrite, frame_progress) -> bool:
    """Take the result of segment ``k`` of ``job``; when it was the last, join the segments into the output.
    True when the video's record is settled (written or failed) and is to be reported now."""
    rec = job["rec"]
    if rec["status"] != "todo":                 # failed already: a cancelled or late segment
        return False
    n = len(job["segments"])
    why = None
    try:
        result = fut.result()
    except distributed.KilledWorker as e:
        why = f"it killed every worker that tried it ({e})"
    except Exception as e:                      # noqa: BLE001  (a segment's failure is that file's)
        why = f"{type(e).__name__}: {e}"
    else:
        if result["status"] == "written":
            job["results"][k] = result
        else:
            why = result["message"]
    if why is not None:
        client.cancel([f for f in job["futures"] if not f.done()])
        shutil.rmtree(job["folder"], ignore_errors=True)
        first = sum(s["frames"] for s in job["segments"][:k]) + 1
        last = first + job["segments"][k]["frames"] - 1
        rec.update(status="failed", message=f"skipped: segment {k + 1} of {n} (frames {first}-{last}): {why}")
        return True
    job["done"] += job["results"][k]["frames"]
    if frame_progress is not None:
        frame_progress(rec, job["done"], job["frames"])
    if any(r is None for r in job["results"]):
        return False
    try:
        info = join_segments(rec["src"], rec["dst"], job["parts"], rotation=job["results"][0]["rotation"],
                             overwrite=overwrite)
    except FileExistsError:
        rec.update(status="failed", message=f"skipped: {rec['dst']} appeared while it was being upscaled (another "
                                            f"run?); not replaced (pass --overwrite to replace it)")
    except (ValueError, OSError, MissingExtra) as e:
        rec.update(status="failed", message=f"skipped: {e}")
    else:
        rec.update(status="written", shape=(int(info["height"]), int(info["width"])),
                   seconds=time.perf_counter() - job["t0"], segments=n)
    finally:
        shutil.rmtree(job["folder"], ignore_errors=True)
    return True


NANNY_ENVIRON = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
"""The Dask setting that, left at its default (65536), makes glibc hand freed memory back at once and map
every large array afresh; npespcn then pays page faults for each one and runs markedly slower in a worker
(measured in benchmarks/README.md). :func:`dask_client` unsets it for the local cluster it starts."""


def dask_client(spec: str, **local_options):
    """``(client, cluster)`` for ``--dask``: a scheduler address (``tcp://host:8786``; ``cluster`` None), or
    ``local:N``, a new local cluster of N worker processes of one thread each (close both when done).

    ``local_options`` go to ``LocalCluster`` (e.g. ``env={"NUMBA_NUM_THREADS": "1"}``)."""
    distributed = require("distributed", "--dask")
    dask = require("dask", "--dask")
    m = re.fullmatch(r"local:(\d+)", spec.strip())
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 256:
            raise BatchError(f"--dask local:N needs 1 <= N <= 256, got {n}")
        with dask.config.set({NANNY_ENVIRON: None}):
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", **local_options)
        return distributed.Client(cluster), cluster
    if not spec.strip():
        raise BatchError("--dask needs a scheduler address (tcp://host:8786) or local:N")
    return distributed.Client(spec.strip()), None
