"""`beffroi run --bridges N --workers M`: which members run where, and children started again."""

from __future__ import annotations

import time

import pytest

from tower.scale import Children, ChildSpec, scale_out
from tower.settings import Settings, load_settings


def stack(**overrides: object) -> Settings:
    return Settings().model_copy(update={"mode": "stack", **overrides})


def test_one_bridge_and_one_worker_run_in_process_as_before() -> None:
    settings = stack()
    assert scale_out(settings, bridges=1, workers=1) == (settings, [])


def test_bridges_share_the_sensor_topics_each_with_a_session_of_its_own() -> None:
    settings = stack()
    settings = settings.model_copy(update={"metrics": settings.metrics.model_copy(update={"port": 9300})})
    own, children = scale_out(settings, bridges=3, workers=2)
    assert own.mqtt.subscription == "$share/beffroi/dev/+/data"
    assert own.mqtt.client_id == "beffroi-bridge-0"
    assert [(c.name, c.module, dict(c.env)) for c in children] == [
        (
            "bridge-1",
            "tower.processes.bridge",
            {"BEFFROI_MQTT__CLIENT_ID": "beffroi-bridge-1", "BEFFROI_METRICS__PORT": "9302"},
        ),
        (
            "bridge-2",
            "tower.processes.bridge",
            {"BEFFROI_MQTT__CLIENT_ID": "beffroi-bridge-2", "BEFFROI_METRICS__PORT": "9304"},
        ),
        ("worker-1", "tower.processes.worker", {"BEFFROI_METRICS__PORT": "9303"}),
    ]


def test_workers_alone_keep_the_single_bridge_unshared() -> None:
    own, children = scale_out(stack(), bridges=1, workers=3)
    assert own.mqtt.subscription == "dev/+/data"
    assert [c.name for c in children] == ["worker-1", "worker-2"]


@pytest.mark.parametrize(
    ("bridges", "workers", "mode"), [(2, 1, "embedded"), (0, 1, "stack"), (1, 0, "stack")]
)
def test_impossible_scales_are_refused_with_a_reason(bridges: int, workers: int, mode: str) -> None:
    with pytest.raises(ValueError, match="--bridges"):
        scale_out(stack(mode=mode), bridges=bridges, workers=workers)


def test_a_child_that_exits_is_started_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tower.scale.RESTART_DELAYS_S", (0.2,))
    # `python -m json.tool --settings FILE` exits at once (unknown option): a child that keeps failing
    children = Children(
        [ChildSpec("failing", "json.tool")], settings=stack(), settings_file=tmp_path / "s.yaml"
    )
    assert load_settings(tmp_path / "s.yaml").mode == "stack"
    children.start()
    try:
        events: list[str] = []
        deadline = time.monotonic() + 20
        while len(events) < 2 and time.monotonic() < deadline:
            events += children.check()
            time.sleep(0.05)
    finally:
        children.stop()
    assert len(events) == 2
    assert all(e.startswith("failing exited with 2; restart in") for e in events)
