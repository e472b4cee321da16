"""Videos on a Dask cluster: split at keyframes into segments, one task each, joined without re-encoding.

A real ``LocalCluster`` of two worker processes upscales small H.264 clips (64x48, a keyframe every 10
frames) made here with PyAV. With a lossless encoder (FFV1) the joined file must decode to exactly the
frames of a local :func:`npespcn.upscale_video`, with the same timestamps, audio and rotation; with the
default lossy H.264 the frame count and timestamps must be equal and the frames close to
:func:`npespcn.upscale` of the decoded input. Skips when dask.distributed or PyAV is missing.
"""
from __future__ import annotations

import os
import re
import signal

import numpy as np
import pytest
from _clips import frames_for, make_clip, read_packets
from PIL import Image

import npespcn
from npespcn.atomic import HOST_TAG, TMP_PREFIX
from npespcn.cli.upscale import main
from npespcn.inference.video import plan_segments

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (the dask extra)")
av = pytest.importorskip("av", reason='PyAV is not installed (pip install "npespcn[video]")')

PTS = [40 * i for i in range(20)] + [40 * i + 400 for i in range(20, 45)]     # a jump: variable frame rate


def clip(path, n=45, keyint=10, audio=True, rotation=0):
    """An H.264 clip of ``n`` frames of 64x48 (lossless, 4:2:0) at :data:`PTS`, a keyframe every ``keyint``
    frames, one AAC track or none."""
    make_clip(path, frames_for(n, 48, 64, step=3), pts_ms=PTS[:n], audio=int(audio), rotation=rotation,
              options={"crf": "0", "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"})


def audio_packets(path):
    """The audio packets' bytes of the first audio track (none: [])."""
    return read_packets(path).get(("audio", 0), [])


def decode(path):
    """``(frames, timestamps in seconds, rotation)`` of the first video stream."""
    with av.open(str(path)) as c:
        frames, times, rotation = [], [], 0
        for f in c.decode(c.streams.video[0]):
            frames.append(f.to_ndarray(format="rgb24", threads=1))
            times.append(float(f.pts * f.time_base))
            rotation = f.rotation
        return frames, times, rotation


def leftovers(folder):
    """Temporary files and folders of npespcn in ``folder`` (and in any folder in it)."""
    return [os.path.join(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files if n.startswith(TMP_PREFIX)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    clip(root / "long.mkv", rotation=90)
    clip(root / "single.mkv", n=30, keyint=1000, audio=False)
    npespcn.ESPCN.paper(2, seed=3).save(root / "model.npz")
    return root


def test_plan_segments_cuts_at_keyframes_with_enough_frames_on_each_side(clips, tmp_path):
    src, dst = clips / "long.mkv", tmp_path / "out.mkv"
    plan = plan_segments(src, dst, min_frames=10)
    assert [s["frames"] for s in plan] == [10, 10, 10, 15]       # the last keyframe leaves 5: no cut there
    assert [s["start"] for s in plan] == [None, PTS[10], PTS[20], PTS[30]]
    assert [s["end"] for s in plan] == [PTS[10], PTS[20], PTS[30], None]
    assert [s["frames"] for s in plan_segments(src, dst, min_frames=20)] == [20, 25]
    assert [s["frames"] for s in plan_segments(src, dst, min_frames=23)] == [45]    # 30 + 15: the last too short
    assert [s["frames"] for s in plan_segments(clips / "single.mkv", dst, min_frames=10)] == [30]
    with pytest.raises(ValueError, match="unknown video encoder"):
        plan_segments(src, dst, codec="no-such-codec")
    assert not dst.exists()


def test_a_long_clip_is_split_and_joined_losslessly(client, clips, tmp_path):
    """FFV1 is lossless: the joined file decodes to the local run's frames, bit for bit."""
    src = clips / "long.mkv"
    local = tmp_path / "local.mkv"
    npespcn.upscale_video(src, local, scale=2, model=clips / "model.npz", codec="ffv1")
    seen = []
    [rec] = npespcn.upscale_files([src], tmp_path / "out", scale=2, model=clips / "model.npz", client=client,
                                  codec="ffv1", segment_frames=10,
                                  frame_progress=lambda rec, done, total: seen.append((done, total)))
    assert rec["status"] == "written", rec.get("message")
    assert rec["segments"] == 4 and rec["shape"] == (96, 128)
    done = [d for d, _ in seen]                        # frames done after each segment, in completion order
    assert {t for _, t in seen} == {45} and done[-1] == 45
    assert sorted(b - a for a, b in zip([0, *done], done)) == [10, 10, 10, 15]
    want, got = decode(local), decode(tmp_path / "out" / "long.mkv")
    assert len(got[0]) == len(want[0]) == 45
    assert got[1] == want[1] == pytest.approx([p / 1000 for p in PTS])
    assert got[2] == want[2] == 90
    assert all(np.array_equal(a, b) for a, b in zip(got[0], want[0]))
    assert audio_packets(tmp_path / "out" / "long.mkv") == audio_packets(src) != []
    with av.open(str(tmp_path / "out" / "long.mkv")) as c:
        assert c.streams.video[0].average_rate == 25 and c.streams.video[0].codec_context.name == "ffv1"
    assert leftovers(tmp_path) == []


def test_default_h264_keeps_frames_and_timestamps_and_loses_only_the_codecs_share(client, clips, tmp_path):
    src = clips / "long.mkv"
    [rec] = npespcn.upscale_files([src], scale=2, out=tmp_path / "big.mp4", model=clips / "model.npz",
                                  client=client, segment_frames=20)
    assert rec["status"] == "written" and rec["segments"] == 2, rec.get("message")
    local = tmp_path / "local.mp4"
    npespcn.upscale_video(src, local, scale=2, model=clips / "model.npz")
    got, want = decode(tmp_path / "big.mp4"), decode(local)
    assert len(got[0]) == len(want[0]) == 45 and got[1] == want[1]
    net = npespcn.load_model(clips / "model.npz")
    for frame, big in zip(decode(src)[0], got[0]):
        ref = npespcn.upscale(frame, 2, net).astype(np.float64)
        mse = np.mean((big.astype(np.float64) - ref) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 30
    assert audio_packets(tmp_path / "big.mp4") == audio_packets(src)
    assert leftovers(tmp_path) == []


def test_a_clip_with_one_keyframe_is_one_task(client, clips, tmp_path):
    src = clips / "single.mkv"
    [rec] = npespcn.upscale_files([src], tmp_path, scale=2, model=clips / "model.npz", client=client, codec="ffv1",
                                  segment_frames=10)
    assert rec["status"] == "written" and rec["segments"] == 1
    npespcn.upscale_video(src, tmp_path / "local.mkv", scale=2, model=clips / "model.npz", codec="ffv1")
    got, want = decode(tmp_path / "single.mkv"), decode(tmp_path / "local.mkv")
    assert len(got[0]) == 30 and got[1] == want[1]
    assert all(np.array_equal(a, b) for a, b in zip(got[0], want[0]))
    assert audio_packets(tmp_path / "single.mkv") == []


def test_a_corrupt_video_is_reported_and_the_images_written(client, clips, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    for i in range(2):
        Image.fromarray(frames_for(1, 48, 64, seed=i, step=3)[0]).save(inputs / f"im{i}.png")
    records = npespcn.upscale_files([inputs / "broken.mp4", inputs / "im0.png", inputs / "im1.png"], tmp_path / "out",
                                    scale=2, model=clips / "model.npz", client=client, segment_frames=10)
    assert [r["status"] for r in records] == ["failed", "written", "written"]
    assert "broken.mp4" in records[0]["message"] and "\n" not in records[0]["message"]
    assert sorted(os.listdir(tmp_path / "out")) == ["im0.png", "im1.png"]
    assert leftovers(tmp_path) == []


def test_a_failing_segment_fails_its_video_only_and_a_rerun_finishes_it(client, clips, tmp_path):
    """An x264 preset that does not exist fails every segment when its encoder opens on a worker."""
    image = tmp_path / "im.png"
    Image.fromarray(frames_for(1, 48, 64, step=3)[0]).save(image)
    out = tmp_path / "out"
    records = npespcn.upscale_files([clips / "long.mkv", image], out, scale=2, model=clips / "model.npz",
                                    client=client, preset="nonsense", segment_frames=10)
    assert [r["status"] for r in records] == ["failed", "written"]
    assert "segment" in records[0]["message"] and "preset" in records[0]["message"]
    assert re.search(r"segment \d of 4 \(frames \d+-\d+\)", records[0]["message"]) and "\n" not in records[0]["message"]
    assert sorted(os.listdir(out)) == ["im.png"] and leftovers(tmp_path) == []
    dead = 2 ** 22 + 12345                              # above the usual pid_max: a client that died
    stale = out / f"{TMP_PREFIX}{dead}-{HOST_TAG}-segmentsabcd1234.long.mkv"
    stale.mkdir()
    (stale / "000000.mkv").write_bytes(b"half a segment")
    again = npespcn.upscale_files([clips / "long.mkv", image], out, scale=2, model=clips / "model.npz",
                                  client=client, codec="ffv1", segment_frames=10, skip_existing=True)
    assert [r["status"] for r in again] == ["written", "done"]
    assert len(decode(out / "long.mkv")[0]) == 45 and leftovers(tmp_path) == []


def test_the_command_line_splits_a_video_and_refuses_a_bad_segment_length(client, clips, tmp_path, capsys):
    argv = [str(clips / "long.mkv"), "--out-dir", str(tmp_path), "--model", str(clips / "model.npz"),
            "--dask", client.scheduler.address, "--codec", "ffv1"]
    assert main([*argv, "--segment-frames", "0"]) == 2
    assert "--segment-frames" in capsys.readouterr().err
    assert main([*argv, "--segment-frames", "15"]) == 0
    err = capsys.readouterr().err
    assert "long.mkv -> " in err and "(64x48 -> 128x96" in err
    assert len(decode(tmp_path / "long.mkv")[0]) == 45
    assert main(argv) == 1                                            # exists: not replaced
    assert "--overwrite" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_a_worker_killed_mid_video_changes_nothing(client, clips, tmp_path):
    """The segments a dead worker held run again elsewhere; the joined file is the local run's, bit for bit."""
    src = clips / "long.mkv"
    victim = min(client.run(os.getpid).values())
    killed = []

    def kill_after_the_first_segment(rec, done, total):
        if not killed:
            os.kill(victim, signal.SIGKILL)            # a worker process of this test's own cluster
            killed.append(done)

    [rec] = npespcn.upscale_files([src], tmp_path / "out", scale=2, model=clips / "model.npz", client=client,
                                  codec="ffv1", segment_frames=5, frame_progress=kill_after_the_first_segment)
    assert killed and rec["status"] == "written", rec.get("message")
    npespcn.upscale_video(src, tmp_path / "local.mkv", scale=2, model=clips / "model.npz", codec="ffv1")
    got, want = decode(tmp_path / "out" / "long.mkv"), decode(tmp_path / "local.mkv")
    assert len(got[0]) == 45 and got[1] == want[1]
    assert all(np.array_equal(a, b) for a, b in zip(got[0], want[0]))
    assert leftovers(tmp_path) == []
    client.wait_for_workers(2, timeout=60)
