"""Load a scenario file: shape and references checked (`simulators.scenario`), then every core
site's crowd plan compiled (`simulators.crowd`), so one `ConfigError` names each problem's line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from beffroi.venue import Venue, load_venue
from beffroi.yamlconf import ConfigError, ConfigIssue, Loc, line_of, load_yaml, validate_doc
from simulators.crowd import check_plans
from simulators.scenario import Checker, Scenario, ScenarioSpec


def _fast_venue(path: Path) -> Venue:
    """Parse with libyaml and validate; on any problem, reload with line numbers to report it."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return Venue.model_validate(yaml.load(path.read_text(encoding="utf-8"), Loader=loader))
    except (OSError, yaml.YAMLError, ValidationError, TypeError):
        return load_venue(path)


def _load_venue(raw: Any, doc: Any, path: Path) -> Venue:
    if isinstance(raw, str):
        return _fast_venue(venue_path(path, raw))
    try:
        return validate_doc(Venue, doc["venue"], path)
    except ConfigError as exc:
        issues = [ConfigIssue(f"venue.{i.key}", i.line, i.message) for i in exc.issues]
        raise ConfigError(path, issues) from exc


_CACHE: dict[tuple[str, int, int], Scenario] = {}


def load_scenario(path: Path | str, text: str | None = None) -> Scenario:
    """Load and check a scenario file; a `ConfigError` names the file and line of each problem.

    A file already loaded by this process, unchanged since (its venue file included), is not parsed
    again.
    """
    path = Path(path)
    key: tuple[str, int, int] | None = None
    if text is None:
        try:
            st = path.stat()
            key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        cached = _CACHE.get(key) if key is not None else None
        if cached is not None and _venue_unchanged(cached):
            return cached
    scenario = _load(path, text)
    if key is not None:
        _CACHE[key] = scenario
    return scenario


def _venue_unchanged(scenario: Scenario) -> bool:
    raw = scenario.spec.venue
    if not isinstance(raw, str):
        return True
    try:
        return venue_path(scenario.path, raw).stat().st_mtime_ns <= scenario.loaded_ns
    except OSError:
        return False


def _load(path: Path, text: str | None) -> Scenario:
    return scenario_from_doc(path, load_yaml(path, text))


def venue_path(scenario_path: Path, raw: str) -> Path:
    """The venue file a scenario's `venue: FILE` names (relative to the scenario file)."""
    return Path(raw) if Path(raw).is_absolute() else scenario_path.parent / raw


def scenario_from_doc(path: Path, doc: Any, venue: Venue | None = None) -> Scenario:
    """Validate a loaded scenario document (its lines kept by `load_yaml`); `venue` replaces the one
    the document names (a what-if's changed venue)."""
    loaded_ns = time.time_ns()
    spec = validate_doc(ScenarioSpec, doc, path)
    if venue is None:
        venue = _load_venue(spec.venue, doc, path)
    checker = Checker(spec, venue)
    checker.run()
    if checker.issues:
        raise ConfigError(
            path,
            [ConfigIssue(_dotted(loc), line_of(doc, loc), msg) for loc, msg in checker.issues],
        )
    scenario = Scenario(spec=spec, venue=venue, path=path, events=dict(checker.events), loaded_ns=loaded_ns)
    problems = check_plans(scenario)
    if problems:
        raise ConfigError(path, [ConfigIssue(_dotted(p.loc), line_of(doc, p.loc), str(p)) for p in problems])
    return scenario


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<root>"
