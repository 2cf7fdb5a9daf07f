"""Fixtures for the video pipeline tests: small simulated scenes, videos and a tiny trained model."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from simulators.camera.crowd import StaticConditions
from simulators.camera.dataset import DatasetSpec, write_dataset
from simulators.camera.render import CameraRenderer
from simulators.camera.sinks import TruthSink, VideoFileSink
from tests.vision.scenes import gate_scene


@pytest.fixture
def make_renderer() -> Callable[..., CameraRenderer]:
    def make(
        *,
        density: float = 0.5,
        seed: int = 1,
        fps: float = 5.0,
        flows: dict[str, float] | None = None,
        **kw: Any,
    ) -> CameraRenderer:
        return CameraRenderer(
            gate_scene(**kw),
            conditions=StaticConditions({"plaza": density, "north": density}, flows or {}),
            fps=fps,
            seed=seed,
        )

    return make


@pytest.fixture
def sim_video(tmp_path: Path, make_renderer: Callable[..., CameraRenderer]) -> tuple[Path, Path]:
    """A 20-frame MJPG video of a light crowd and its ground truth JSONL."""
    r = make_renderer(density=0.3, seed=5, fps=10.0)
    video, truth = tmp_path / "cam1.avi", tmp_path / "cam1.jsonl"
    sinks = [VideoFileSink(video, fps=10.0, size=(320, 180)), TruthSink(truth)]
    for _ in range(20):
        frame, t = r.next_frame()
        for s in sinks:
            s.write(frame, t)
    for s in sinks:
        s.close()
    return video, truth


class NetworkGuard:
    """Records (and refuses) every attempt to reach a host other than this machine."""

    LOCAL: ClassVar[set[str | None]] = {"127.0.0.1", "localhost", "::1", None}

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def install(self, mp: pytest.MonkeyPatch) -> NetworkGuard:
        real_connect = socket.socket.connect
        real_getaddrinfo = socket.getaddrinfo

        def connect(sock: socket.socket, address: Any) -> Any:
            if isinstance(address, tuple) and address[0] not in self.LOCAL:
                self.attempts.append(f"connect {address[0]}")
                raise OSError("network access refused in tests")
            return real_connect(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in self.LOCAL:
                self.attempts.append(f"resolve {host}")
                raise socket.gaierror("network access refused in tests")
            return real_getaddrinfo(host, *args, **kwargs)

        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        return self


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> NetworkGuard:
    return NetworkGuard().install(monkeypatch)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("frames")
    spec = DatasetSpec(clips=4, frames_per_clip=2, width=320, height=192, max_density=1.0, seed=3)
    write_dataset(root, spec)
    return root


@dataclass(frozen=True)
class TrainedWeights:
    path: Path
    network_attempts: list[str]


@pytest.fixture(scope="session")
def tiny_yolo(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedWeights:
    """A YOLO trained for one epoch by `beffroi train-detector`, with the network refused throughout
    (it checks behaviour, not accuracy)."""
    from tower.cli import main

    out = tmp_path_factory.mktemp("weights") / "tiny.pt"
    with pytest.MonkeyPatch.context() as mp:
        guard = NetworkGuard().install(mp)
        args = [
            "--frames",
            str(tiny_dataset),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--imgsz",
            "160",
            "--batch",
            "4",
        ]
        rc = main(["train-detector", *args])
    assert rc == 0
    return TrainedWeights(path=out, network_attempts=guard.attempts)
