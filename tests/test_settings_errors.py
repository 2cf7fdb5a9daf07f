"""A bad settings file names the file, the key and the line: from `load_settings`, from
`beffroi validate` and from `beffroi run`, which refuses to start."""

from __future__ import annotations

import textwrap

import pytest

from beffroi.yamlconf import ConfigError
from tower.cli import main
from tower.settings import load_settings

BAD = textwrap.dedent(
    """\
    mode: embedded
    api:
      host: 127.0.0.1
      port: eighty
    worker:
      batchsize: 10
      rules:
        - name: hot
          model: beffroi.temperature.v1
          field: celsius
          above: warm
    kafka:
      topics:
        readings: {name: "bad name!"}
    """
)
EXPECTED = {
    ("api.port", 4),
    ("worker.batchsize", 6),
    ("worker.rules.0.above", 11),
    ("kafka.topics.readings.name", 14),
}


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text(BAD)
    return path


def test_load_settings_names_every_bad_key_and_its_line(bad_file):
    with pytest.raises(ConfigError) as err:
        load_settings(bad_file)
    assert {(i.key, i.line) for i in err.value.issues} == EXPECTED
    assert err.value.path == bad_file
    assert f"{bad_file}:4: api.port:" in str(err.value)


def test_validate_prints_file_line_and_key(bad_file, capsys):
    assert main(["validate", str(bad_file)]) == 1
    err = capsys.readouterr().err
    for key, line in EXPECTED:
        assert f"{bad_file}:{line}: {key}:" in err


def test_run_refuses_to_start_on_a_bad_settings_file(bad_file, capsys):
    assert main(["run", "--settings", str(bad_file)]) == 2
    assert f"{bad_file}:6: worker.batchsize: Extra inputs are not permitted" in capsys.readouterr().err


def test_a_yaml_syntax_error_names_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("mode: embedded\napi:\n  port: [8000\nworker: {}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    [issue] = err.value.issues
    assert issue.line is not None
    assert issue.line >= 3


def test_an_unknown_mode_names_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("BEFFROI_MODE", raising=False)  # the environment would win over the file
    path = tmp_path / "s.yaml"
    path.write_text("\n\nmode: cluster\n")
    with pytest.raises(ConfigError, match=r":3: mode: Input should be 'embedded' or 'stack'"):
        load_settings(path)
