import threading
import time

import numpy as np
import pytest

from ingest.video.batching import FrameQueue
from ingest.video.source import Backoff, CameraReader, CameraSource, FrameSample, file_frames, source_kind
from simulators.camera.stream import MjpegServer


def sample(camera: str, index: int) -> FrameSample:
    from beffroi.clock import utcnow

    return FrameSample(camera, index, index / 10, utcnow(), np.zeros((4, 4, 3), np.uint8))


def test_source_kinds():
    assert source_kind("rtsp://cam/1") == "rtsp"
    assert source_kind("http://127.0.0.1:8080/cam.mjpg") == "http"
    assert source_kind("/data/cam.avi") == "file"
    assert CameraSource("c", "file:///data/cam.avi").path == "/data/cam.avi"


def test_reader_keeps_n_frames_per_second_of_a_file(sim_video):
    video, _ = sim_video  # 20 frames at 10 fps
    got: list[FrameSample] = []
    reader = CameraReader(CameraSource("cam1", str(video), sample_fps=2.5), sink=got.append)
    reader.run()
    assert [s.index for s in got] == [0, 4, 8, 12, 16]
    assert [s.source_time_s for s in got] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
    assert reader.stats.frames_read == 20
    assert reader.stats.frames_kept == 5
    assert got[0].image.shape == (180, 320, 3)


def test_missing_file_is_an_error_that_names_the_camera(tmp_path):
    reader = CameraReader(CameraSource("gate-7", str(tmp_path / "nope.avi")), sink=lambda s: None)
    reader.run()
    assert reader.stats.connects == 0
    assert "gate-7" in (reader.stats.last_error or "")
    with pytest.raises(OSError, match=r"nope\.avi"):
        list(file_frames(str(tmp_path / "nope.avi")))


def test_all_frames_of_a_file(sim_video):
    video, _ = sim_video
    assert [i for i, _ in file_frames(str(video))] == list(range(20))


def test_queue_drops_the_oldest_under_backpressure_and_counts_it():
    q = FrameQueue(maxsize=3)
    for i in range(5):
        q.put(sample("a" if i % 2 == 0 else "b", i))
    assert q.dropped == {"a": 1, "b": 1}  # frames 0 (a) and 1 (b) went
    batch = q.get_batch(10, timeout=0.1)
    assert [(s.camera_id, s.index) for s in batch] == [("a", 2), ("b", 3), ("a", 4)]
    assert q.get_batch(10, timeout=0.05) == []


def test_batches_mix_cameras_and_wait_to_fill():
    q = FrameQueue(maxsize=100)

    def feed():
        for i in range(6):
            q.put(sample(f"cam{i % 3}", i))
            time.sleep(0.01)

    threading.Thread(target=feed).start()
    batch = q.get_batch(6, timeout=1.0, linger_s=1.0)
    assert {s.camera_id for s in batch} == {"cam0", "cam1", "cam2"}
    assert len(batch) == 6
    q.close()
    assert q.get_batch(6, timeout=1.0) == []


class Publisher:
    """Publishes numbered frames on an MJPEG channel until stopped."""

    def __init__(self, server: MjpegServer, name: str) -> None:
        self.channel = server.channel(name)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            self.channel.publish(np.full((48, 64, 3), (i * 10) % 250, np.uint8))
            i += 1
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_opencv_reads_the_simulator_mjpeg_stream_and_reconnects_after_a_drop():
    with MjpegServer() as server, Publisher(server, "cam9"):
        got: list[FrameSample] = []
        reader = CameraReader(
            CameraSource("cam9", server.url("cam9"), sample_fps=50.0),
            sink=got.append,
            backoff=Backoff(initial_s=0.05, max_s=0.2),
        ).start()
        try:
            deadline = time.monotonic() + 10
            while len(got) < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(got) >= 5
            assert got[0].image.shape == (48, 64, 3)
            server.drop_clients()  # the camera falls off the network
            before = len(got)
            deadline = time.monotonic() + 10
            while (reader.stats.reconnects < 1 or len(got) < before + 5) and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            reader.stop()
    assert reader.stats.reconnects >= 1
    assert len(got) >= before + 5
    assert "dropped" in (reader.stats.last_error or "")


def test_unreachable_stream_backs_off_and_gives_up_after_max_attempts():
    with MjpegServer() as server:
        url = server.url("cam1")
    reader = CameraReader(
        CameraSource("cam1", url),
        sink=lambda s: None,
        backoff=Backoff(initial_s=0.01, max_s=0.02),
        timeout_s=1.0,
        max_attempts=3,
    )
    reader.run()
    assert reader.stats.failures == 3
    assert reader.stats.connects == 0


def test_blocking_queue_makes_readers_wait_instead_of_dropping():
    q = FrameQueue(maxsize=2, policy="block")
    done = threading.Event()

    def feed():
        for i in range(6):
            q.put(sample("file", i))
        done.set()

    threading.Thread(target=feed).start()
    seen = []
    while len(seen) < 6:
        seen += [s.index for s in q.get_batch(1, timeout=2.0)]
    assert done.wait(2.0)
    assert seen == list(range(6))
    assert not q.dropped
