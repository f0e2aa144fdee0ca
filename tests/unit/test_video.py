import numpy as np
import pytest

from longvid.data.video import (VideoError, VideoSampling, probe, read_frames, sample_timestamps,
                                timestamps_to_indices)
from tests.helpers import make_video


def test_timestamps_one_per_second_at_bin_centres():
    ts = sample_timestamps(0, 10, VideoSampling(fps=1, max_frames=None))
    np.testing.assert_allclose(ts, np.arange(10) + 0.5)


def test_timestamps_capped_uniformly_and_segment_bounded():
    ts = sample_timestamps(20, 276, VideoSampling(fps=1, max_frames=128))
    assert len(ts) == 128 and ts.min() > 20 and ts.max() < 276
    np.testing.assert_allclose(np.diff(ts), 2.0)
    assert len(sample_timestamps(3, 3.4, VideoSampling())) == 1   # short span: at least one frame
    with pytest.raises(ValueError):
        sample_timestamps(5, 5, VideoSampling())


def test_indices_clipped_to_video():
    idx = timestamps_to_indices(np.array([0.2, 9.9, 50.0]), 2.0, 20)
    assert idx.tolist() == [0, 19, 19]


def test_sampling_validates():
    with pytest.raises(ValueError, match="fps"):
        VideoSampling(fps=0)
    with pytest.raises(ValueError, match="height"):
        VideoSampling(height=32)


def test_read_real_video(tmp_path):
    p = make_video(tmp_path / "v.mp4", n_frames=12, size=32, fps=2)
    assert probe(p) == (6.0, 12)
    f = read_frames(p, VideoSampling(fps=1, max_frames=None))
    assert f.array.shape == (6, 32, 32, 3) and f.array.dtype == np.uint8
    np.testing.assert_allclose(f.timestamps, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
    seg = read_frames(p, VideoSampling(fps=2, max_frames=None), start=2, end=4)
    assert len(seg.array) == 4 and seg.timestamps.min() >= 2 and seg.timestamps.max() < 4
    small = read_frames(p, VideoSampling(max_frames=3, height=16, width=24))
    assert small.array.shape == (3, 16, 24, 3)
    # frames follow the video's brightness ramp (frame i has level 20*i)
    assert np.all(np.diff(f.array.reshape(6, -1).mean(1)) > 0)


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated"])
def test_bad_videos_raise_one_error_type(tmp_path, kind):
    p = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "garbage":
        p.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated":
        good = make_video(tmp_path / "good.mp4", n_frames=30, size=64)
        data = open(good, "rb").read()
        p.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError) as e:
        read_frames(str(p), VideoSampling())
    assert str(p) in str(e.value)


def test_decord_clock_stamps_are_not_part_of_a_failure():
    """decord prefixes messages with the wall-clock time: a rerun would record a new, different failure line."""
    from longvid.data.video import VideoError

    a = VideoError("/v/x.mp4", "decoding frames failed (DECORDError: [22:20:33] /src/video_reader.cc:151: bad frame)")
    b = VideoError("/v/x.mp4", "decoding frames failed (DECORDError: [23:59:01] /src/video_reader.cc:151: bad frame)")
    assert str(a) == str(b) == "cannot read video /v/x.mp4: decoding frames failed (DECORDError: " \
                               "/src/video_reader.cc:151: bad frame)"


def test_probe_opens_each_file_version_once(tmp_path, monkeypatch):
    """The runner's video check and a system that needs a video's length share one decoder open per file version."""
    import longvid.data.video as video
    from tests.helpers import make_video

    path = make_video(tmp_path / "v.mp4", n_frames=6)
    opened = []
    real = video._open
    monkeypatch.setattr(video, "_open", lambda p: opened.append(p) or real(p))
    first = video.probe(path)
    assert video.probe(path) == first and first[1] == 6 and len(opened) == 1
    make_video(path, n_frames=9, seed=1)                  # rewritten: another version, opened again
    assert video.probe(path)[1] == 9 and len(opened) == 2
